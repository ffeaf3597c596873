"""Reader for the published test-vector files in ``tests/vectors/*.txt``.

Format: ``KEY = VALUE`` lines in blocks separated by blank lines; lines starting with ``#`` are
comments.  A block may hold several records one after the other (``diversify.txt`` lists two
``CITY_CODE`` / ``PROVINCE_FACTOR`` pairs in one block), so :func:`records` cuts records by
their first key rather than by block.
"""

from __future__ import annotations

from pathlib import Path

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

Block = list[tuple[str, str]]


def read_blocks(name: str) -> list[Block]:
    """Every block of ``KEY = VALUE`` pairs of ``tests/vectors/<name>``, in file order."""
    path = VECTORS / name
    blocks: list[Block] = []
    current: Block = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if current:
                blocks.append(current)
                current = []
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{path.name}:{number}: not a KEY = VALUE line: {raw!r}")
        current.append((key.strip(), value.strip()))
    if current:
        blocks.append(current)
    return blocks


def records(name: str, *keys: str) -> list[dict[str, str]]:
    """The records of ``keys`` in file order: a record starts at ``keys[0]`` and must be
    complete before its block ends; other keys are ignored."""
    out: list[dict[str, str]] = []
    for block in read_blocks(name):
        current: dict[str, str] | None = None
        for key, value in block:
            if key == keys[0]:
                if current is not None:
                    raise ValueError(f"{name}: record {current} is incomplete")
                current = {}
            if current is None or key not in keys:
                continue
            if key in current:
                raise ValueError(f"{name}: {key} twice in one record")
            current[key] = value
            if len(current) == len(keys):
                out.append(current)
                current = None
        if current is not None:
            raise ValueError(f"{name}: record {current} is incomplete")
    return out


def single(name: str) -> dict[str, str]:
    """The one block of a file that holds exactly one record with unique keys."""
    blocks = read_blocks(name)
    if len(blocks) != 1:
        raise ValueError(f"{name}: expected one block, found {len(blocks)}")
    doc = dict(blocks[0])
    if len(doc) != len(blocks[0]):
        raise ValueError(f"{name}: repeated keys")
    return doc
