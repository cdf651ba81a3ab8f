"""Ops that traced models use beside the merges and reshapes of ``ops.py``: indexing (with sizes
read at run time and with index tensors), gathers, masks, einsum, cumulative sums, positions.

``index`` takes a subscript as Python writes it, over the node's inputs by name::

    - pos: {index: "[:, :tokens.size(1)]", from: pe}      # pe[:, :tokens.size(1)]
    - cls: {index: "[:, 0]"}                               # the first token of the previous node
    - bias: {index: "[idx]", from: table}                  # rows of `table` picked by the tensor `idx`

Sizes in the subscript (``x.size(1)``, ``x.shape[1]``, arithmetic on them) are read when the
forward runs, so the model works at any sequence length, not only the one it was compiled at;
dims count the batch as dim 0, as in torch. The subscript is parsed once and interpreted over a
small grammar (slices, integers, ``None``, ``...``, input names, sizes, ``+ - * //``): it never
runs code. The generated forward holds the same subscript: ``pos = pe[:, :size]``.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

import torch
from torch import fx

from ..errors import GraphError, ShapeError
from . import functional as nsf
from .op_registry import Call, Dims, _check_same, _fmt, op

_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}
_PARAM = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_]\w*")  # `$n` / `${n - 1}`: a number once substituted


def _fail(at: str, message: str) -> GraphError:
    return GraphError(
        f"index `{at}`: {message}",
        hint="a subscript like `[:, :x.size(1)]`: slices, integers, None, ..., input names, "
        "x.size(d) / x.shape[d] and + - * // on them",
    )


@lru_cache(maxsize=1024)
def parse_index(at: str) -> ast.expr:
    """The subscript of ``_[...]`` for ``at`` = ``"[...]"``, checked against the grammar.

    >>> ast.dump(parse_index("[:, 0]"))[:5]
    'Tuple'
    """
    text = at.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise _fail(at, "write the subscript in brackets")
    try:
        tree = ast.parse("_" + _PARAM.sub("0", text), mode="eval").body
    except SyntaxError as e:
        raise _fail(at, f"cannot parse it: {e.msg}") from None
    if not isinstance(tree, ast.Subscript) or not isinstance(tree.value, ast.Name) or tree.value.id != "_":
        raise _fail(at, "write one subscript")
    for node in ast.walk(tree.slice):
        _check_node(node, at)
    return tree.slice


_ALLOWED = (ast.Tuple, ast.Slice, ast.Constant, ast.Name, ast.UnaryOp, ast.BinOp, ast.Call, ast.Subscript)
_PARTS = (ast.Load, ast.USub, ast.Attribute, ast.List, *_ARITH)


def _check_node(node: ast.AST, at: str) -> None:
    if isinstance(node, ast.Constant) and not (
        node.value is None
        or node.value is Ellipsis
        or (isinstance(node.value, int) and not isinstance(node.value, bool))
    ):
        raise _fail(at, f"`{node.value!r}` is not an index")
    if isinstance(node, ast.Call) and not _is_size(node):
        raise _fail(at, "the only call is x.size(dim)")
    if isinstance(node, ast.Subscript) and not _is_shape(node):
        raise _fail(at, "the only inner subscript is x.shape[dim]")
    if isinstance(node, ast.Attribute) and node.attr not in ("size", "shape"):
        raise _fail(at, f"`.{node.attr}`: only .size(dim) and .shape[dim]")
    if isinstance(node, ast.List) and not all(isinstance(e, ast.Constant) for e in node.elts):
        raise _fail(at, "a list index holds integers only")
    if not isinstance(node, (*_ALLOWED, *_PARTS)):
        raise _fail(at, f"`{type(node).__name__}` is not allowed")


def _is_size(node: ast.Call) -> bool:
    f = node.func
    return (
        isinstance(f, ast.Attribute)
        and f.attr == "size"
        and isinstance(f.value, ast.Name)
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], (ast.Constant, ast.UnaryOp))
    )


def _is_shape(node: ast.Subscript) -> bool:
    v = node.value
    return isinstance(v, ast.Attribute) and v.attr == "shape" and isinstance(v.value, ast.Name)


def index_names(args: Any) -> list[str]:
    """The node names an ``index`` subscript reads (they become the node's inputs).

    >>> index_names("[:, :tokens.size(1)]"), index_names({"at": "[idx, x.shape[1] - 1]"})
    (['tokens'], ['idx', 'x'])
    """
    at = args.get("at") if isinstance(args, dict) else args
    if not isinstance(at, str):
        return []
    names = [n.id for n in ast.walk(parse_index(at)) if isinstance(n, ast.Name)]
    return list(dict.fromkeys(names))


class _Interpreter:
    """Evaluates a checked subscript over the inputs (meta tensors, or fx proxies when the
    forward is generated: sizes and arithmetic then become lines of the forward)."""

    def __init__(self, values: dict[str, Any], at: str):
        self.values, self.at = values, at

    def __call__(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Tuple):
            return tuple(self(e) for e in node.elts)
        if isinstance(node, ast.List):
            return [self(e) for e in node.elts]
        if isinstance(node, ast.Slice):
            return slice(*(None if p is None else self(p) for p in (node.lower, node.upper, node.step)))
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.values[node.id]
        if isinstance(node, ast.UnaryOp):
            return -self(node.operand)
        if isinstance(node, ast.BinOp):
            return _ARITH[type(node.op)](self(node.left), self(node.right))
        if isinstance(node, ast.Call):  # x.size(d)
            return self(node.func.value).size(self(node.args[0]))  # type: ignore[attr-defined]
        assert isinstance(node, ast.Subscript)  # x.shape[d]: read as x.size(d)
        return self(node.value.value).size(self(node.slice))  # type: ignore[attr-defined]


def _proxied(value: Any) -> Any:
    """An fx node as a proxy (its operations are recorded in its graph); anything else as is."""
    if isinstance(value, fx.Node):
        return fx.Proxy(value, fx.proxy.GraphAppendingTracer(value.graph))
    return value


def _nodes(value: Any) -> Any:
    return fx.node.map_aggregate(value, lambda a: a.node if isinstance(a, fx.Proxy) else a)


@op("index", positional="at", inputs=(1, None), batch_inputs=1, refs_from=index_names)
def _index(inputs: list[Any], at: str, input_names: list[str] | None = None) -> Call:
    """The first input indexed by a subscript over the inputs: `[:, :x.size(1)]`, `[idx]`."""
    names = input_names or []
    values = {n: _proxied(v) for n, v in zip(names, inputs)}
    try:
        index = _Interpreter(values, at)(parse_index(at))
    except KeyError as e:  # an index op built in Python without the names of its inputs
        raise _fail(at, f"`{e.args[0]}` is not an input of this node") from None
    return operator.getitem, (inputs[0], _nodes(index)), {}


def _check_put(shapes: list[Dims], at: str, value: float | None = None) -> None:
    if (value is None) == (len(shapes) == 1):
        raise ShapeError(
            f"`{at}`: give the value to write either as a second input or as `value`, not both or neither",
            hint='`put: "[:, 1:]", from: [x, v]` or `put: {at: "[0:2]", value: 1}`',
        )
    if any(isinstance(n, ast.Name) for n in ast.walk(parse_index(at))):
        raise ShapeError(f"`{at}`: put's subscript holds numbers only (slices, integers, None, ...)")


@op("put", positional="at", inputs=(1, 2), check=_check_put)
def _put(inputs: list[Any], at: str, value: float | None = None) -> Call:
    """`x[at] = v` on a copy of x: `from: [x, v]` or `value: 3`; the subscript holds numbers only.

    `put: "[:, :, 1:]", from: [x, v]` is torch's item assignment `x[:, :, 1:] = v`, without
    changing x (the nodes that read x keep its values)."""
    index = _Interpreter({}, at)(parse_index(at))
    parts = index if isinstance(index, tuple) else (index,)
    slices = tuple((p.start, p.stop, p.step) if isinstance(p, slice) else p for p in parts)  # nsf.put's form
    return nsf.put, (inputs[0], slices, inputs[1] if value is None else value), {}


# ---- picking by index tensors ------------------------------------------------------------


@op("gather", inputs=(2, 2), positional="dim")
def _gather(inputs: list[Any], dim: int) -> Call:
    """`from: [x, index]`: torch.gather(x, dim, index), the values of x at the indices along dim."""
    return torch.gather, (inputs[0], dim, inputs[1]), {}


def _check_mask(shapes: list[Dims], **_: Any) -> None:
    _check_same(shapes)


@op("masked_fill", inputs=(2, 2), positional="value", check=_check_mask)
def _masked_fill(inputs: list[Any], value: float) -> Call:
    """`from: [x, mask]`: x with `value` where the bool mask (broadcast) is true (-.inf for attention)."""
    return torch.masked_fill, (inputs[0], inputs[1], value), {}


# ---- sizes read at run time ----------------------------------------------------------------


@op("arange", positional="dim", batch_inputs=0)
def _arange(inputs: list[Any], dim: int, start: int = 0, step: int = 1) -> Call:
    """Positions 0..n-1 (int64) where n is the input's size along `dim` (read at run time)."""
    return nsf.arange_like, (inputs[0], dim, start, step), {}


@op("expand", positional="shape")
def _expand(inputs: list[Any], shape: list[int]) -> Call:
    """Broadcast each sample to `shape` without copying (-1 keeps a size); the batch dim is kept."""
    return nsf.expand_sample, (inputs[0], tuple(shape)), {}


def _check_expand_as(shapes: list[Dims], like: str | None = None) -> None:
    x, other = shapes
    if len(x) > len(other) or any(a not in (1, b) for a, b in zip(reversed(x), reversed(other))):
        raise ShapeError(f"cannot expand {_fmt(x)} to {_fmt(other)}", hint="each dim must be 1 or equal")


@op("expand_as", inputs=(2, 2), refs=("like",), check=_check_expand_as)
def _expand_as(inputs: list[Any], like: str | None = None) -> Call:
    """Broadcast the input to the shape of the node `like` (torch.broadcast_to), without copying."""
    return torch.broadcast_to, (inputs[0], _nodes(_proxied(inputs[1]).shape)), {}


@op("tile", positional="repeats")
def _tile(inputs: list[Any], repeats: list[int]) -> Call:
    """Repeat each sample's entries: `tile: [1, 3]` is torch's x.repeat(1, 1, 3) (per sample, as reshape)."""
    return torch.tile, (inputs[0], (1, *repeats)), {}


# ---- along one dim -------------------------------------------------------------------------


@op("roll")
def _roll(inputs: list[Any], shifts: int | list[int], dims: int | list[int]) -> Call:
    """Shift entries along dims, wrapping around (torch.roll; Swin's shifted windows)."""
    return torch.roll, (inputs[0], shifts, dims), {}


@op("flip", positional="dims")
def _flip(inputs: list[Any], dims: int | list[int]) -> Call:
    """Reverse the order of entries along dims (torch.flip)."""
    return torch.flip, (inputs[0], [dims] if isinstance(dims, int) else list(dims)), {}


@op("cumsum", positional="dim")
def _cumsum(inputs: list[Any], dim: int) -> Call:
    """Cumulative sum along dim (torch.cumsum)."""
    return torch.cumsum, (inputs[0], dim), {}


@op("cumprod", positional="dim")
def _cumprod(inputs: list[Any], dim: int) -> Call:
    """Cumulative product along dim (torch.cumprod)."""
    return torch.cumprod, (inputs[0], dim), {}


@op("argmax", positional="dim")
def _argmax(inputs: list[Any], dim: int, keepdim: bool = False) -> Call:
    """Index of the largest entry along dim (torch.argmax), int64."""
    return torch.argmax, (inputs[0], dim), {"keepdim": keepdim}


@op("one_hot", positional="num_classes")
def _one_hot(inputs: list[Any], num_classes: int) -> Call:
    """Each int64 entry k as `num_classes` 0/1 entries, 1 at k, in a new last dim (F.one_hot; Gemma4's position table lookup)."""
    return torch.nn.functional.one_hot, (inputs[0], num_classes), {}


def _extreme(name: str, fn: Callable[..., Any], which: str) -> None:
    """max, min along a dim: the tuple (values, indices), as torch gives it."""

    def emit(inputs: list[Any], dim: int, keepdim: bool = False) -> Call:
        return fn, (inputs[0], dim), {"keepdim": keepdim}

    emit.__doc__ = f"The {which} entries along dim and their indices: the tuple (values, indices) (torch.{name}); pick one with `item`."
    op(name, positional="dim")(emit)


_extreme("max", torch.max, "largest")
_extreme("min", torch.min, "smallest")


@op("triu", positional="diagonal")
def _triu(inputs: list[Any], diagonal: int = 0) -> Call:
    """The upper triangle of the last two dims, zeros below `diagonal` (torch.triu; causal masks)."""
    return torch.triu, (inputs[0], diagonal), {}


@op("tril", positional="diagonal")
def _tril(inputs: list[Any], diagonal: int = 0) -> Call:
    """The lower triangle of the last two dims (torch.tril)."""
    return torch.tril, (inputs[0], diagonal), {}


@op("einsum", positional="equation", inputs=(1, None))
def _einsum(inputs: list[Any], equation: str) -> Call:
    """Einstein summation over the inputs in order: `einsum: "bhqd,bhkd->bhqk"` (torch.einsum)."""
    return torch.einsum, (equation, *inputs), {}


@op("unfold")
def _unfold(inputs: list[Any], dim: int, size: int, step: int) -> Call:
    """Windows of `size` entries every `step` along `dim`, as a new last dim (torch's x.unfold; Halo attention's blocks)."""
    return nsf.unfold_windows, (inputs[0], dim, size, step), {}


@op("repeat_interleave", positional="repeats", folds=True)
def _repeat_interleave(inputs: list[Any], repeats: int, dim: int) -> Call:
    """Each entry along `dim` repeated `repeats` times in place (torch.repeat_interleave); along the batch each sample's copies stay together: B -> `4B`."""
    return torch.repeat_interleave, (inputs[0], repeats), {"dim": dim}


def _check_grid(shapes: list[Dims], **_: Any) -> None:
    if any(len(s) != 1 or isinstance(s[0], str) for s in shapes):
        raise ShapeError(
            f"inputs are {' and '.join(_fmt(s) for s in shapes)}; a grid is of 1-d coordinates without a batch",
            hint="give it the coordinates of each axis, e.g. Buffer nodes with a `value`",
        )


@op("grid", inputs=(1, None), positional="indexing", check=_check_grid)
def _grid(inputs: list[Any], indexing: Literal["ij", "xy"] = "ij") -> Call:
    """The coordinate grid of 1-d inputs, a channel per input, last: stack(meshgrid(*inputs, indexing), -1) (rotary and sin-cos positions)."""
    return nsf.coordinate_grid, tuple(inputs), {"indexing": indexing}
