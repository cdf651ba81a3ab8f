"""The pieces of an ejected Python file: constructor calls as values, literals, the forward
code fx generated (made standalone), and netspec's helper functions copied as plain source.

A constructor call is kept as a small tree (:class:`Call`, :class:`ListOf`, literal leaves)
rather than as text, so that instances of one block can be compared leaf by leaf and the
leaves that differ become the parameters of one class (:mod:`netspec.interop.eject`).
"""

from __future__ import annotations

import ast
import inspect
import keyword
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from . import ExportError

__all__ = ["Var", "Call", "ListOf", "render_wrapped", "leaves", "replace_leaves", "masked", "render", "layer_call",
           "forward_source", "helper_sources", "python_name", "attr_ref", "assign_child",
           "child_assignment"]


@dataclass(frozen=True)
class Var:
    """A constructor parameter of the class being written, in place of a literal."""

    name: str


@dataclass(frozen=True)
class Call:
    """``func(arg, ..., key=value, ...)``: the first ``positional`` items are written without their names."""

    func: str
    items: tuple[tuple[str | None, Any], ...] = ()
    positional: int = 0


@dataclass(frozen=True)
class ListOf:
    """A list of constructor calls (the copies of a repeat)."""

    items: tuple[Any, ...]


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str | None, Any]]:
    """Every literal of a call tree, in a fixed order: (path, argument name, value).

    >>> [(name, v) for _, name, v in leaves(Call("nn.Linear", (("in_features", 4), ("out_features", 2)), 2))]
    [('in_features', 4), ('out_features', 2)]
    """
    if isinstance(value, Call):
        for i, (name, item) in enumerate(value.items):
            if isinstance(item, (Call, ListOf)):
                yield from leaves(item, (*path, i))
            else:
                yield (*path, i), name, item
    elif isinstance(value, ListOf):
        for i, item in enumerate(value.items):
            yield from leaves(item, (*path, i))


def replace_leaves(value: Any, new: dict[tuple, Any], path: tuple = ()) -> Any:
    """The same tree with the literals at the given paths replaced."""
    if isinstance(value, Call):
        items = tuple((name, replace_leaves(item, new, (*path, i)) if isinstance(item, (Call, ListOf))
                       else new.get((*path, i), item)) for i, (name, item) in enumerate(value.items))
        return Call(value.func, items, value.positional)
    if isinstance(value, ListOf):
        return ListOf(tuple(replace_leaves(item, new, (*path, i)) for i, item in enumerate(value.items)))
    return value


def masked(value: Any) -> Any:
    """The tree's structure without its literals: equal for instances one class can build."""
    return replace_leaves(value, {p: Var("?") for p, _, _ in leaves(value)})


def literal(value: Any, where: str) -> str:
    """Python source of a constructor argument from a spec (numbers, strings, lists, dtypes).

    >>> literal([3, 3], "conv"), literal(float("inf"), "x"), literal(torch.float16, "x")
    ('[3, 3]', "float('inf')", 'torch.float16')
    """
    if isinstance(value, Var):
        return value.name
    if isinstance(value, float) and not math.isfinite(value):
        return f"float('{value}')"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(v, where) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return "{" + ", ".join(f"{k!r}: {literal(v, where)}" for k, v in value.items()) + "}"
    raise ExportError(f"{where}: cannot write the argument {value!r} ({type(value).__name__}) as Python source")


def render(value: Any, where: str = "") -> str:
    """Python source of a call tree; copies that are all alike are written once, in a loop.

    >>> render(Call("nn.Sequential", ((None, Call("nn.ReLU")), (None, Call("nn.ReLU"))), 2))
    'nn.Sequential(*(nn.ReLU() for _ in range(2)))'
    >>> render(Call("nn.Conv2d", (("in_channels", 1), ("out_channels", 6), ("kernel_size", 5)), 2))
    'nn.Conv2d(1, 6, kernel_size=5)'
    """
    if isinstance(value, ListOf):
        items = [render(v, where) for v in value.items]
        if len(items) > 1 and len(set(items)) == 1:
            return f"[{items[0]} for _ in range({len(items)})]"
        return "[" + ", ".join(items) + "]"
    if not isinstance(value, Call):
        return literal(value, where)
    if value.func == "nn.Sequential" and value.positional == len(value.items) > 1:
        items = [render(v, where) for _, v in value.items]
        if len(set(items)) == 1:
            return f"nn.Sequential(*({items[0]} for _ in range({len(items)})))"
    args = [render(v, where) if i < value.positional else f"{name}={render(v, where)}"
            for i, (name, v) in enumerate(value.items)]
    return f"{value.func}({', '.join(args)})"


def render_wrapped(value: Any, indent: str, used: int = 0, where: str = "", width: int = 120) -> str:
    """:func:`render`, with one argument per line (as black would) where a line gets longer than
    ``width``; ``used`` is what the line holds before the value.

    >>> print(render_wrapped(Call("nn.Sequential", ((None, Call("nn.Linear", (("a", 1),), 1)),), 1), "", 0, width=20))
    nn.Sequential(
        nn.Linear(1),
    )
    """
    flat = render(value, where)
    if len(indent) + used + len(flat) <= width or not isinstance(value, (Call, ListOf)):
        return flat
    inner = indent + "    "
    if isinstance(value, ListOf):
        items = [render_wrapped(v, inner, 0, where, width) for v in value.items]
        if len(items) > 1 and len(set(items)) == 1:
            return f"[\n{inner}{items[0]}\n{inner}for _ in range({len(items)})\n{indent}]"
        return "[\n" + "".join(f"{inner}{item},\n" for item in items) + f"{indent}]"
    args = []
    for i, (name, v) in enumerate(value.items):
        key = "" if i < value.positional else f"{name}="
        args.append(key + render_wrapped(v, inner, len(key) + 1, where, width))
    if value.func == "nn.Sequential" and value.positional == len(args) > 1 and len(set(args)) == 1:
        args = [f"*({args[0]} for _ in range({len(args)}))"]
    return f"{value.func}(\n" + "".join(f"{inner}{a},\n" for a in args) + f"{indent})"


def layer_call(func: str, cls: type, args: dict[str, Any]) -> Call:
    """A layer's constructor call: arguments in signature order, the required ones positional.

    >>> layer_call("nn.Linear", torch.nn.Linear, {"out_features": 2, "in_features": 4})
    Call(func='nn.Linear', items=(('in_features', 4), ('out_features', 2)), positional=2)
    """
    params = [p for p in inspect.signature(cls).parameters.values() if p.name != "self"]
    order = {p.name: i for i, p in enumerate(params)}
    items = tuple(sorted(args.items(), key=lambda kv: order.get(kv[0], len(order))))
    positional = 0
    for p, (name, _) in zip(params, items):
        if p.name != name or p.default is not p.empty or p.kind is not p.POSITIONAL_OR_KEYWORD:
            break
        positional += 1
    return Call(func, items, positional)


def python_name(name: str) -> str:
    """A name usable as a Python parameter.

    >>> python_name("in"), python_name("out")
    ('in_', 'out')
    """
    return name + "_" if keyword.iskeyword(name) else name


def attr_ref(obj: str, name: str) -> str:
    """``self.conv1``, or ``getattr(self, "0")`` for a child named like nn.Sequential's."""
    return f"{obj}.{name}" if name.isidentifier() and not keyword.iskeyword(name) else f'getattr({obj}, "{name}")'


def assign_child(obj: str, name: str, value: str) -> str:
    """``self.conv1 = ...``, or ``self.add_module("0", ...)``.

    >>> assign_child("self", "0", "nn.ReLU()")
    'self.add_module("0", nn.ReLU())'
    """
    head, tail = child_assignment(obj, name)
    return head + value + tail


def child_assignment(obj: str, name: str) -> tuple[str, str]:
    """What goes before and after the value that sets a child."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{obj}.{name} = ", ""
    return f'{obj}.add_module("{name}", ', ")"


# ---------------------------------------------------------------------------------------------
# The forward: fx's code, standalone
# ---------------------------------------------------------------------------------------------

_FX_GLOBALS = {"torch", "inf", "nan", "NoneType", "device", "fx_pytree", "pytree"}


def forward_source(gm: torch.fx.GraphModule) -> tuple[str, dict[str, Callable[..., Any]]]:
    """The module's forward as fx generates it (one line per node, shape comments), with
    ``dim = 1`` written ``dim=1``, and the functions it calls that are not ``torch.*``: name in
    the code -> function. netspec's own helpers are renamed to their plain names.
    """
    code = gm.graph.python_code(root_module="self")
    used = {name: fn for name, fn in code.globals.items()
            if name not in _FX_GLOBALS and re.search(rf"\b{re.escape(name)}\b", code.src)}
    src = code.src.strip("\n").rstrip() + "\n"
    renames: dict[str, Callable[..., Any]] = {}
    for name, fn in used.items():
        plain = getattr(fn, "__name__", name)
        if getattr(fn, "__module__", "") != "netspec.functional":
            plain = name  # imported under fx's name (see helper_sources)
        src = re.sub(rf"\b{re.escape(name)}\b", plain, src)
        renames[plain] = fn
    for name in ("inf", "nan"):
        if re.search(rf"\b{name}\b", src):
            renames[name] = getattr(math, name)
    return "\n".join(_tidy(line) for line in src.splitlines()) + "\n", renames


def _tidy(line: str) -> str:
    """``x = f(a, dim = 1)  # (B, 4)`` -> ``x = f(a, dim=1)`` with the comment re-aligned."""
    code, sep, comment = line.partition("  # ")
    code = code.rstrip()
    head, eq, call = code.partition(" = ")
    if eq:
        code = head + eq + re.sub(r"(\w) = ", r"\1=", call)
    return f"{code:<72}  # {comment.strip()}" if sep else code


def helper_sources(functions: dict[str, Callable[..., Any]]) -> tuple[list[str], list[str]]:
    """(import lines, source blocks) for the functions the forward calls beside torch's:
    netspec's helpers (and the module-level names they use) are copied; other functions
    are imported from their modules; ``inf``/``nan`` come from math.

    >>> from netspec import functional
    >>> imports, blocks = helper_sources({"cast": functional.cast})
    >>> imports, [b.partition("(")[0].partition(" = ")[0] for b in blocks]
    ([], ['_DTYPES', 'def cast'])
    """
    imports: set[str] = set()
    copied: dict[str, str] = {}
    for name, fn in functions.items():
        if name in ("inf", "nan"):
            imports.add(f"from math import {name}")
        elif getattr(fn, "__module__", "") == "netspec.functional":
            _copy_helper(fn.__name__, copied, imports)
        else:
            imports.add(_import_line(name, fn))
    return sorted(imports), list(copied.values())


def _copy_helper(name: str, copied: dict[str, str], imports: set[str]) -> None:
    """Copy a function of netspec.functional, and first what it refers to, into ``copied``."""
    from .. import functional

    if name in copied:
        return
    obj = getattr(functional, name)
    if inspect.isfunction(obj):
        for used in obj.__code__.co_names:
            target = vars(functional).get(used)
            if inspect.ismodule(target) and used != "torch":  # F: torch.nn.functional
                imports.add(f"import {target.__name__} as {used}")
            elif used in vars(functional) and not inspect.ismodule(target):
                _copy_helper(used, copied, imports)
        copied[name] = inspect.getsource(obj)
        return
    tree = ast.parse(inspect.getsource(functional))
    for stmt in tree.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and name in {t.id for t in ast.walk(stmt)
                                                                        if isinstance(t, ast.Name)}:
            copied[name] = ast.get_source_segment(inspect.getsource(functional), stmt) + "\n"
            return
    raise AssertionError(f"netspec.functional.{name} not found")


def _import_line(name: str, fn: Any) -> str:
    module, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qual or "." in qual or module == "__main__" or module.startswith("netspec"):
        raise ExportError(f"the generated forward calls {name} ({fn!r}), which a standalone file cannot import")
    return f"from {module} import {qual}" + (f" as {name}" if name != qual else "")
