"""The check of a file written from a spec (``netspec export --format python``) before anything
runs it: statement by statement, it holds only what netspec wrote (see
:mod:`netspec.interop.pysource` for how spec text is escaped on the way in)."""

from __future__ import annotations

import ast

from . import ExportError
from .pysource import doc_value, flat

__all__ = ["audit", "BUILTINS_USED"]


# ---------------------------------------------------------------------------------------------
# The file as a whole: only the statements that were written
# ---------------------------------------------------------------------------------------------

#: the builtins generated code may name (fx writes ``getattr`` and ``slice``); never eval, open...
BUILTINS_USED = frozenset(
    {
        "super",
        "getattr",
        "range",
        "isinstance",
        "float",
        "int",
        "bool",
        "list",
        "dict",
        "tuple",
        "str",
        "len",
        "slice",
        "any",
        "all",
        "min",
        "max",
        "abs",
        "classmethod",
        "Ellipsis",
    }
)


def audit(source: str, doc: str, classes: dict[str, str], imports: str, helpers: list[str]) -> None:
    """Refuse (ExportError) a file that is not exactly what was written: the module docstring
    ``doc``; the import lines ``imports``; the ``helpers``' statements; then the ``classes``
    (name -> docstring), each holding only methods whose every name is an argument, a local, a
    name of the file or one of :data:`BUILTINS_USED`. Nothing of it runs.

    >>> audit("'d'\\nimport torch\\nclass A:\\n    'a'\\n", "d", {"A": "a"}, "import torch", [])
    >>> audit("'d'\\nimport torch\\nimport os\\n", "d", {}, "import torch", [])
    Traceback (most recent call last):
    netspec.interop.ExportError: <spec>: the generated file holds a statement netspec did not write (line 3); this is a bug in netspec
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:  # NUL bytes are a ValueError before Python 3.12
        raise ExportError(
            f"the generated file does not parse: {flat(str(e))}", hint="this is a bug in netspec"
        ) from None
    want = [
        ast.Expr(ast.Constant(doc_value(doc))),
        *ast.parse(imports).body,
        *(s for h in helpers for s in ast.parse(h).body),
    ]
    head, rest = tree.body[: len(want)], tree.body[len(want) :]
    known = {*BUILTINS_USED, *classes, *(_bound(s) for s in want[1:])}
    for i, got in enumerate([*head, *rest]):
        ok = i < len(want) and ast.dump(got) == ast.dump(want[i])
        if i >= len(want) and isinstance(got, ast.ClassDef) and got.name in classes:
            ok = ast.get_docstring(got, clean=False) == doc_value(classes.pop(got.name)) and _methods_only(got, known)
        if not ok:
            raise ExportError(
                f"the generated file holds a statement netspec did not write (line {got.lineno})",
                hint="this is a bug in netspec",
            )
    if len(head) < len(want) or classes:
        raise ExportError("the generated file lacks a statement netspec wrote", hint="this is a bug in netspec")


def _bound(stmt: ast.stmt) -> str:
    """The name a top-level import, function or assignment binds (one per statement here)."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        alias = stmt.names[0]
        return alias.asname or alias.name.split(".")[0]
    if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
        return stmt.name
    return next(n.id for n in ast.walk(stmt) if isinstance(n, ast.Name))


def _methods_only(cls: ast.ClassDef, known: set[str]) -> bool:
    """A class of docstring and methods whose names are all known, locals or arguments."""
    for stmt in cls.body[1:]:
        if not isinstance(stmt, ast.FunctionDef):
            return False
        names = [n for n in ast.walk(stmt) if isinstance(n, ast.Name)]
        local = {n.id for n in names if isinstance(n.ctx, ast.Store)} | {
            a.arg for a in ast.walk(stmt.args) if isinstance(a, ast.arg)
        }
        if any(n.id not in known | local for n in names):
            return False
        if any(
            isinstance(n, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.ClassDef)) for n in ast.walk(stmt)
        ):
            return False
    return True
