"""The house's import graph: the layering in pyproject.toml's ``[tool.importlinter]`` holds, and no
import circle is left anywhere, imports inside functions included.

grimp (import-linter's graph builder) reads every ``import`` statement, also those inside
functions, which Python's own import system would only meet when the function runs; imports
under ``if TYPE_CHECKING:`` never run and are left out. Run ``lint-imports`` for the contracts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

import netspec

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(netspec.__file__).resolve().parent.parent  # the netspec under test (PYTHONPATH first)


def import_circles(package: str) -> list[list[str]]:
    """Every import circle in ``package``, one shortest chain per circle (first module repeated
    at the end), found by grimp, imports inside functions included."""
    graph = grimp.build_graph(package, cache_dir=None, exclude_type_checking_imports=True)
    circles: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back and frozenset(back) not in circles:
                circles[frozenset(back)] = [importer, *back]
    return list(circles.values())


def test_no_import_circle() -> None:
    circles = import_circles("netspec")
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_circle_through_an_import_inside_a_function_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a circle closed only by a function-level import is reported."""
    pkg = tmp_path / "circled"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import B\n")
    (pkg / "b.py").write_text(
        textwrap.dedent("""\
        B = 1
        def late():
            from .a import B  # closes the circle only when called
            return B
        """)
    )
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import B\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_circles("circled") == [["circled.a", "circled.b", "circled.a"]]


def test_import_contracts_are_kept() -> None:
    """``lint-imports`` with the contracts in pyproject.toml (the layers, the forbidden imports,
    no circle inside a room)."""
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "import-linter is not installed: pip install -e '.[dev]'"
    run = subprocess.run(
        [str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(SRC), "PATH": ""},
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout
