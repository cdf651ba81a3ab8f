"""The pieces of an ejected Python file: constructor calls as values, literals, the forward
code fx generated (made standalone), and netspec's helper functions copied as plain source.

A spec may come from a stranger, and the file is imported (by ``netspec export`` to check it,
and by its user), so no spec text reaches it raw: strings are written as literals
(:func:`literal`), names only once checked (:func:`identifier`, :func:`free_name`), docstrings
with every quote run, backslash and line break escaped (:func:`docstring`), and comments
without any character a tokenizer or an editor could take for a line end (:func:`comment`).

A constructor call is kept as a small tree (:class:`Call`, :class:`ListOf`, literal leaves)
rather than as text, so that instances of one block can be compared leaf by leaf and the
leaves that differ become the parameters of one class (:mod:`netspec.interop.eject`).
"""

from __future__ import annotations

import ast
import inspect
import io
import keyword
import math
import re
import sys
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from . import ExportError

__all__ = [
    "FREEZE_HELPER",
    "LOAD_HELPER",
    "LOAD_METHOD",
    "Var",
    "Call",
    "ListOf",
    "render_wrapped",
    "leaves",
    "replace_leaves",
    "masked",
    "render",
    "layer_call",
    "forward_source",
    "helper_sources",
    "python_name",
    "attr_ref",
    "assign_child",
    "child_assignment",
    "docstring",
    "comment",
    "flat",
    "identifier",
    "free_name",
    "rename_local",
    "plain_name",
    "doc_value",
]


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
        items = tuple(
            (
                name,
                replace_leaves(item, new, (*path, i))
                if isinstance(item, (Call, ListOf))
                else new.get((*path, i), item),
            )
            for i, (name, item) in enumerate(value.items)
        )
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


# ---------------------------------------------------------------------------------------------
# Spec text in the file: checked names, docstrings, comments
# ---------------------------------------------------------------------------------------------


def flat(text: str) -> str:
    """``text`` on one line: every character that is not printable (line breaks of any kind,
    NUL, bidi controls) written as its escape, so it can stand in a comment or one docstring line.

    >>> flat("a\\nb\\u2028c\\x00d é")
    'a\\\\nb\\\\u2028c\\\\x00d é'
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def comment(text: str) -> str:
    """A ``# ...`` comment that ends where the line ends, whatever ``text`` holds.

    >>> comment("weights: a.pt\\nimport os")
    '# weights: a.pt\\\\nimport os'
    """
    return "# " + flat(text)


def doc_value(text: str) -> str:
    r"""``text`` as a docstring can hold it: a lone surrogate (JSON allows ``"\ud800"``) written
    as its escape, as CPython cannot make a class whose ``__doc__`` holds one.

    >>> doc_value("a\ud800b")
    'a\\ud800b'
    """
    return "".join(repr(ch)[1:-1] if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def docstring(text: str) -> str:
    r'''A triple-quoted literal whose value is ``text`` (:func:`doc_value`): backslashes escaped, a
    quote escaped where it follows another or ends the text (so no run of three closes it), every
    line break but ``\n`` and every other unprintable character written as its escape.

    >>> print(docstring("C:\\Users " + '"' * 3 + "; import os"))
    """C:\\Users "\"\"; import os"""
    '''
    text = doc_value(text)
    out = ['"""']
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"' if out[-1].endswith('"') else '"')
        else:
            out.append(ch if ch == "\n" or ch.isprintable() else repr(ch)[1:-1])
    if out[-1] == '"':
        out[-1] = '\\"'
    source = "".join(out) + '"""'
    assert ast.literal_eval(source) == text, f"docstring escaping failed for {text!r}"
    return source


def plain_name(name: str) -> bool:
    """An ASCII identifier that is not a keyword (ASCII: Python folds other letters, NFKC, so
    `ｔorch` would be `torch`).

    >>> plain_name("conv1"), plain_name("0"), plain_name("class"), plain_name("ｔorch")
    (True, False, False, False)
    """
    return isinstance(name, str) and name.isidentifier() and name.isascii() and not keyword.iskeyword(name)


def identifier(name: str, what: str) -> str:
    """``name`` if it can stand in the file as a Python name; else an ExportError naming it.

    >>> identifier("conv1", "node")
    'conv1'
    >>> identifier("a; b", "node")
    Traceback (most recent call last):
    netspec.interop.ExportError: <spec>: node `a; b` cannot be written as a Python name; rename it to letters, digits and _
    """
    if not plain_name(name):
        raise ExportError(
            f"{what} `{flat(str(name))}` cannot be written as a Python name", hint="rename it to letters, digits and _"
        )
    return name


def free_name(name: str, taken: set[str] | frozenset[str]) -> str:
    """``name``, with ``_`` added until it is neither taken nor a keyword: a constructor argument
    or a local variable named like an import or builtin the code uses (``nn``, ``range``).

    >>> free_name("nn", {"nn", "torch"}), free_name("out", {"nn"}), free_name("in", set())
    ('nn_', 'out', 'in_')
    """
    while name in taken or keyword.iskeyword(name):
        name += "_"
    return name


def rename_local(src: str, old: str, new: str) -> str:
    """Python source with the variable ``old`` renamed ``new``: not an attribute (``self.old``), a
    keyword argument (``f(old=1)``) or text inside a string.

    >>> rename_local("add_n = f(self.add_n, add_n=1)\\nreturn add_n", "add_n", "add_n_1")
    'add_n_1 = f(self.add_n, add_n=1)\\nreturn add_n_1'
    """
    tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
    spots, depth = [], 0
    for i, tok in enumerate(tokens):
        depth += tok.string in "([{" if tok.type == tokenize.OP else 0
        depth -= tok.string in ")]}" if tok.type == tokenize.OP else 0
        if tok.type != tokenize.NAME or tok.string != old:
            continue
        before, after = tokens[i - 1].string if i else "", tokens[i + 1].string if i + 1 < len(tokens) else ""
        if before != "." and not (depth and after == "="):
            spots.append(tok.start)
    lines = src.split("\n")
    for row, col in reversed(spots):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[col + len(old) :]
    return "\n".join(lines)


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
    args = [
        render(v, where) if i < value.positional else f"{_keyword(name, where)}={render(v, where)}"
        for i, (name, v) in enumerate(value.items)
    ]
    return f"{_callee(value.func)}({', '.join(args)})"


def _keyword(name: Any, where: str) -> str:
    """A keyword argument's name, checked (a layer taking ``**kwargs`` accepts any string)."""
    return identifier(name, f"{where}: the argument") if where else identifier(name, "the argument")


def _callee(func: str) -> str:
    """What a call calls: a dotted name, or nothing (a tuple)."""
    if func and not all(plain_name(part) for part in func.split(".")):
        raise ExportError(f"cannot write a call to `{flat(func)}`: not a dotted Python name")
    return func


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
        key = "" if i < value.positional else f"{_keyword(name, where)}="
        args.append(key + render_wrapped(v, inner, len(key) + 1, where, width))
    if value.func == "nn.Sequential" and value.positional == len(args) > 1 and len(set(args)) == 1:
        args = [f"*({args[0]} for _ in range({len(args)}))"]
    return f"{_callee(value.func)}(\n" + "".join(f"{inner}{a},\n" for a in args) + f"{indent})"


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
    """``self.conv1``, or ``getattr(self, '0')`` for a child named like nn.Sequential's.

    >>> attr_ref("self", "conv1"), attr_ref("self", "0")
    ('self.conv1', "getattr(self, '0')")
    """
    if "." in name:  # a node at a key: `convs.0` is `getattr(self.convs, '0')`
        holder, _, leaf = name.rpartition(".")
        return attr_ref(attr_ref(obj, holder), leaf)
    return f"{obj}.{name}" if plain_name(name) else f"getattr({obj}, {name!r})"


def assign_child(obj: str, name: str, value: str) -> str:
    """``self.conv1 = ...``, or ``self.add_module("0", ...)``.

    >>> assign_child("self", "0", "nn.ReLU()")
    "self.add_module('0', nn.ReLU())"
    """
    head, tail = child_assignment(obj, name)
    return head + value + tail


def child_assignment(obj: str, name: str) -> tuple[str, str]:
    """What goes before and after the value that sets a child (in its holder, at a key)."""
    if "." in name:
        holder, _, leaf = name.rpartition(".")
        return child_assignment(attr_ref(obj, holder), leaf)
    if plain_name(name):
        return f"{obj}.{name} = ", ""
    return f"{obj}.add_module({name!r}, ", ")"


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
    used = {
        name: fn
        for name, fn in code.globals.items()
        if name not in _FX_GLOBALS and re.search(rf"\b{re.escape(name)}\b", code.src)
    }
    src = code.src.strip("\n").rstrip() + "\n"
    renames: dict[str, Callable[..., Any]] = {}
    for name, fn in used.items():
        plain = getattr(fn, "__name__", name)
        if getattr(fn, "__module__", "") != "netspec.nodes.functional":
            plain = name  # imported under fx's name (see helper_sources)
        elif plain != name and re.search(rf"\b{re.escape(plain)}\b", src):
            src = rename_local(src, plain, _unused(plain, src))  # a node named `add_n` would hide the helper
        src = re.sub(rf"\b{re.escape(name)}\b", plain, src)
        renames[plain] = fn
    for name in ("inf", "nan"):
        if re.search(rf"(?<!\.)\b{name}\b", src):  # not `self.inf`, a node named inf
            renames[name] = getattr(math, name)
    return "\n".join(_tidy(line) for line in src.splitlines()) + "\n", renames


def _unused(name: str, src: str) -> str:
    """``name_1``, ``name_2``...: the first that ``src`` does not use."""
    n = 1
    while re.search(rf"\b{re.escape(name)}_{n}\b", src):
        n += 1
    return f"{name}_{n}"


def _tidy(line: str) -> str:
    """``x = f(a, dim = 1)  # (B, 4)`` -> ``x = f(a, dim=1)`` with the comment re-aligned; read
    with Python's tokenizer, so a string holding ``" = "`` or ``"  # "`` (a dict output's key) stays.

    >>> _tidy("    x = f(a, {'k = 1  # no': a}, dim = 1)  # (B, 4)").rstrip()
    "    x = f(a, {'k = 1  # no': a}, dim=1)                                   # (B, 4)"
    """
    text = line.strip()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text + "\n").readline))
    except (tokenize.TokenError, SyntaxError):
        return line.rstrip()  # not a whole statement: as fx wrote it
    code, note, depth, cuts = text, None, 0, []
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            code, note = text[: tok.start[1]].rstrip(), tok.string[1:].strip()
        elif tok.type == tokenize.OP:
            depth += (tok.string in "([{") - (tok.string in ")]}")
            if tok.string == "=" and depth:
                cuts.append(tok.start[1])  # a keyword argument: `dim = 1` -> `dim=1`
    for col in reversed(cuts):
        code = code[:col].rstrip() + "=" + code[col + 1 :].lstrip()
    code = line[: len(line) - len(line.lstrip())] + code
    return f"{code:<72}  {comment(note)}" if note is not None else code


def helper_sources(functions: dict[str, Callable[..., Any]]) -> tuple[list[str], list[str]]:
    """(import lines, source blocks) for the functions the file calls beside torch's:
    netspec's helpers and table inits (and the module-level names they use) are copied; other
    functions are imported from their modules; ``inf``/``nan`` come from math.

    >>> from netspec.nodes import functional
    >>> imports, blocks = helper_sources({"cast": functional.cast})
    >>> imports, [b.partition("(")[0].partition(" = ")[0] for b in blocks]
    ([], ['_DTYPES', 'def cast'])
    """
    imports: set[str] = set()
    copied: dict[str, str] = {}
    for name, fn in functions.items():
        if name in ("inf", "nan"):
            imports.add(f"from math import {name}")
        elif getattr(fn, "__module__", "") in COPIED_MODULES:
            _copy_helper(fn.__name__, copied, imports, sys.modules[fn.__module__])
        else:
            imports.add(_import_line(name, fn))
    return sorted(imports), list(copied.values())


#: netspec's modules whose functions an ejected file holds copies of: the forward's helpers, the
#: table inits of buffers (`relative_position_index_`)
COPIED_MODULES = ("netspec.nodes.functional", "netspec.nodes.initializers")


def _copy_helper(name: str, copied: dict[str, str], imports: set[str], module: Any) -> None:
    """Copy a function of ``module`` (one of :data:`COPIED_MODULES`), and first what it refers to,
    into ``copied``."""
    if name in copied:
        return
    obj = getattr(module, name)
    if inspect.isfunction(obj):
        for used in obj.__code__.co_names:
            target = vars(module).get(used)
            if inspect.ismodule(target) and used != "torch":  # F: torch.nn.functional
                imports.add(f"import {target.__name__} as {used}")
            elif used in vars(module) and not inspect.ismodule(target) and used != name:  # not x.contiguous()
                _copy_helper(used, copied, imports, module)
        if "Any" in inspect.signature(obj).__str__():  # its annotations name typing.Any
            imports.add("from typing import Any")
        copied[name] = inspect.getsource(obj)
        return
    source = inspect.getsource(module)
    for stmt in ast.parse(source).body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and name in {
            t.id for t in ast.walk(stmt) if isinstance(t, ast.Name)
        }:
            segment = ast.get_source_segment(source, stmt)
            assert segment is not None  # the statement was parsed from this very source
            copied[name] = segment + "\n"
            return
    raise AssertionError(f"{module.__name__}.{name} not found")


def _import_line(name: str, fn: Any) -> str:
    module, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qual or "." in qual or module == "__main__" or module.startswith("netspec"):
        raise ExportError(f"the generated forward calls {name} ({fn!r}), which a standalone file cannot import")
    return f"from {module} import {qual}" + (f" as {name}" if name != qual else "")


# ---------------------------------------------------------------------------------------------
# The fixed texts of an ejected file: its helpers and the root class's `load`
# ---------------------------------------------------------------------------------------------

FREEZE_HELPER = '''\
def freeze(module: nn.Module, patterns: list[str]) -> None:
    """Stop training the parameters whose names match a pattern (the spec's `freeze`)."""
    for name, param in module.named_parameters():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            param.requires_grad_(False)
'''

BUFFERS_HELPER = '''\
BUFFERS_FILE = Path(__file__).with_name({file})  # buffers in no checkpoint (not persistent)


@functools.cache
def load_buffers(path: str) -> dict:
    """The tensors of a buffers file, read once with torch.load(weights_only=True)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_buffer(key: str) -> torch.Tensor:
    """A buffer that no checkpoint holds (not persistent), from BUFFERS_FILE: the file netspec
    wrote beside this one (set BUFFERS_FILE before building the model to read another)."""
    return load_buffers(str(BUFFERS_FILE))[key].clone()
'''

LOAD_HELPER = '''\
def load_state(path: str, map_location: str) -> dict:
    """The tensors of a .safetensors file (this needs the safetensors package), or what a torch
    file holds, read with torch.load(weights_only=True)."""
    if str(path).endswith(".safetensors"):  # netspec export --format safetensors, timm, Hugging Face
        from safetensors.torch import load_file

        return load_file(path, device=map_location)
    return torch.load(path, map_location=map_location, weights_only=True)
'''

LOAD_METHOD = '''\
    @classmethod
    def load(cls, path: str, map_location: str = "cpu") -> "{name}":
        """The model with the weights of a netspec checkpoint (last.pt, best.pt), of a state_dict
        file or of a .safetensors file; in eval mode."""
        state = load_state(path, map_location)
        if isinstance(state, dict) and state.get("format") == "{checkpoint_format}":
            state = state["model"]
        model = cls()
        model.load_state_dict(state)
        return model.eval()
'''
