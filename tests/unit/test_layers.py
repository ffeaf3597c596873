"""Layering (ARCHITECTURE.md §2): ``card/`` and ``keys/`` are the reusable core.

They import from the project only ``healthcard.card``, ``healthcard.keys``, ``healthcard.codes``
and ``healthcard.errors``; ``keys/`` imports nothing from ``card/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import healthcard

PACKAGE = Path(healthcard.__file__).resolve().parent
ALLOWED = ("healthcard.card", "healthcard.keys", "healthcard.codes", "healthcard.errors", "healthcard.clock")
MODULES = sorted(p for layer in ("card", "keys") for p in (PACKAGE / layer).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def project_imports(
    path: Path, module: str | None = None, is_package: bool | None = None
) -> list[tuple[int, str]]:
    """Every ``healthcard…`` module ``path`` imports (anywhere in the file, lazy imports too),
    as (line, dotted name).  ``from healthcard import errors`` counts as ``healthcard.errors``;
    relative imports are resolved against the module's package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module or _module_name(path)
    is_package = _is_package(path) if is_package is None else is_package
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name == "healthcard" or name.startswith("healthcard.")]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_layers_have_modules() -> None:
    names = {_module_name(p) for p in MODULES}
    assert {
        "healthcard.card.apdu",
        "healthcard.card.cos",
        "healthcard.keys.recipes",
        "healthcard.keys",
    } <= names


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_card_and_keys_import_only_the_core(path: Path) -> None:
    bad = [
        f"line {line}: {name}"
        for line, name in project_imports(path)
        if not any(_within(name, prefix) for prefix in ALLOWED)
    ]
    assert not bad, f"{_module_name(path)} imports outside card/keys/codes/errors: {bad}"


@pytest.mark.parametrize(
    "path", [p for p in MODULES if _module_name(p).startswith("healthcard.keys")], ids=_module_name
)
def test_keys_import_nothing_from_card(path: Path) -> None:
    bad = [f"line {line}: {name}" for line, name in project_imports(path) if _within(name, "healthcard.card")]
    assert not bad, f"{_module_name(path)} imports from healthcard.card: {bad}"


def test_the_import_finder_sees_every_form(tmp_path: Path) -> None:
    """The checker itself: absolute, from-package, relative and lazy imports are all found."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\n"
        "import healthcard.terminal.sdk\n"
        "from healthcard import errors, platform\n"
        "from . import codecs\n"
        "from ..keys import recipes\n"
        "def f():\n"
        "    from healthcard.cli import main\n"
        "    importlib.import_module('healthcard.storage')\n",
        encoding="utf-8",
    )
    names = sorted(name for _, name in project_imports(probe, "healthcard.card.probe", is_package=False))
    assert names == [
        "healthcard.card.codecs",
        "healthcard.cli.main",
        "healthcard.errors",
        "healthcard.keys.recipes",
        "healthcard.platform",
        "healthcard.storage",
        "healthcard.terminal.sdk",
    ]
    bad = [n for n in names if not any(_within(n, prefix) for prefix in ALLOWED)]
    assert bad == [
        "healthcard.cli.main",
        "healthcard.platform",
        "healthcard.storage",
        "healthcard.terminal.sdk",
    ]


#: what each upper layer may not import (ARCHITECTURE.md §2: dependencies point one way)
_ENTRY = ("healthcard.api", "healthcard.cli", "healthcard.bootstrap")
FORBIDDEN = {
    "terminal": ("healthcard.issuance", "healthcard.storage", "healthcard.platform", *_ENTRY),
    "storage": ("healthcard.issuance", "healthcard.terminal", "healthcard.platform", *_ENTRY),
    # the card centre and the platform stand side by side; the platform reads the card centre's
    # application format (a replacement chip's data), never the other way round
    "issuance": ("healthcard.platform", *_ENTRY),
    "platform": _ENTRY,
    "api": ("healthcard.cli",),
    # the pages call the node's use cases, as the API does: no tables, no composition root
    "web": ("healthcard.storage", "healthcard.cli", "healthcard.bootstrap"),
}
UPPER = sorted(
    p for layer in FORBIDDEN for p in (PACKAGE / layer).rglob("*.py") if "migrations" not in p.parts
)


@pytest.mark.parametrize("path", UPPER, ids=_module_name)
def test_upper_layers_import_downwards_only(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    bad = [
        f"line {line}: {name}"
        for line, name in project_imports(path)
        if any(_within(name, prefix) for prefix in FORBIDDEN[layer])
    ]
    assert not bad, f"{_module_name(path)} imports above its layer: {bad}"


#: third-party packages a layer may not import: the web layer reads no database itself
FORBIDDEN_PACKAGES = {"web": ("sqlalchemy", "psycopg", "alembic")}


@pytest.mark.parametrize(
    "path",
    sorted(p for layer in FORBIDDEN_PACKAGES for p in (PACKAGE / layer).rglob("*.py")),
    ids=_module_name,
)
def test_the_web_layer_imports_no_database_package(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    names += [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level
    ]
    bad = [n for n in names if any(_within(n, prefix) for prefix in FORBIDDEN_PACKAGES[layer])]
    assert not bad, f"{_module_name(path)} imports a database package: {bad}"
