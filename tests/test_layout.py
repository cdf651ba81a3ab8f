"""The source stays in rooms a reader can take in: no module over 600 lines, no function over
60 (docs/DESIGN.md says where each kind of change goes). The largest of each are printed, so a
run with `-s` shows how close the code is to the limits."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "netspec"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, int]:
    return {str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines()) for p in SRC.rglob("*.py")}


def _functions() -> dict[str, int]:
    sizes = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                sizes[f"{path.relative_to(SRC)}:{node.lineno} {node.name}"] = node.end_lineno - node.lineno + 1
    return sizes


def _largest(sizes: dict[str, int], n: int = 5) -> list[tuple[str, int]]:
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:n]


def test_no_module_is_over_600_lines() -> None:
    largest = _largest(_modules())
    print("largest modules:", ", ".join(f"{name} {lines}" for name, lines in largest))
    assert largest[0][1] <= MAX_MODULE_LINES, largest


def test_no_function_is_over_60_lines() -> None:
    largest = _largest(_functions())
    print("largest functions:", ", ".join(f"{name} {lines}" for name, lines in largest))
    assert largest[0][1] <= MAX_FUNCTION_LINES, largest


FRONT_DOORS = {
    "__init__.py",
    "__main__.py",
    "api.py",
    "cli.py",
    "cli_options.py",
    "errors.py",
    "reference.py",
}  # `python -m netspec.reference`: the docs' generated pages
ROOMS = {"compiler", "nodes", "views", "files", "data", "training", "interop", "importer", "sweep"}


def test_package_root_holds_only_the_front_doors() -> None:
    """The listing of src/netspec/ shows the pipeline: the front doors, then one room per concern
    (docs/DESIGN.md, "The map"); a new module goes into the room it belongs to."""
    modules = {p.name for p in SRC.glob("*.py")}
    rooms = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert modules == FRONT_DOORS, f"at the package root, not a front door: {sorted(modules - FRONT_DOORS)}"
    assert len(modules) <= 8
    assert rooms == ROOMS, f"rooms: {sorted(rooms)}"
