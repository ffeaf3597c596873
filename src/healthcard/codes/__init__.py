"""National code sets as data (CARD-SPEC.md §8): ``valuesets.json`` beside this module."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class ValueSet:
    id: str
    name_cn: str
    name_en: str
    standard: str
    codes: dict[str, str]

    def meaning(self, code: str) -> str | None:
        return self.codes.get(code)


@cache
def value_sets() -> dict[str, ValueSet]:
    text = resources.files(__package__).joinpath("data/valuesets.json").read_text(encoding="utf-8")
    return {
        key: ValueSet(key, v["name_cn"], v["name_en"], v["standard"], dict(v["codes"]))
        for key, v in json.loads(text).items()
    }


def value_set(name: str) -> ValueSet:
    return value_sets()[name]


def meaning(name: str, code: str) -> str | None:
    """The meaning of ``code`` in value set ``name`` (None when unknown)."""
    return value_sets()[name].meaning(code)


__all__ = ["ValueSet", "meaning", "value_set", "value_sets"]
