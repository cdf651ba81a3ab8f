"""Traced torch calls that map to the ops of ``nodes/ops_index.py`` and the norms of ``ops.py``:
``torch.einsum``, ``x.tile``, ``torch.roll``, ``torch.gather``, ``x.masked_fill``, ``torch.where``,
``F.group_norm``, ``F.normalize``, and indexing with tensors (``table[idx]``: the ``index`` op).

Dims are written as torch counts them (the batch is dim 0), as the spec's ops count them; a
call that would mix the samples of a batch (a roll, gather or index along the batch dim) is
refused in one line.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import torch

from ..nodes.functional import _DTYPES, coordinate_grid
from . import functions
from .buffers import buffer_node
from .call import Call, Result, const
from .errors import ImportFailed
from .functions import handles
from .ir import BatchSize, Pieces, Ref, SNode
from .trace import TensorMeta


def _dims(c: Call, input: Ref, dims: Any, what: str) -> list[int]:
    """``dims`` (one or several) as non-negative dims of ``input``, none of them a batch dim."""
    given = const(c, dims, "a dim")
    flat = list(given) if isinstance(given, list) else [given]
    ndim = len(input.shape)
    if not all(isinstance(d, int) and -ndim <= d < ndim for d in flat):
        raise ImportFailed(f"`{what}` along dims {given!r} has no spec op", where=c.where)
    if any(d % ndim in input.batch_dims for d in flat):
        raise ImportFailed(f"`{what}` along the batch dim has no spec op (it would mix the samples)", where=c.where)
    return [d % ndim for d in flat]


@handles("torch.einsum")
def _einsum(c: Call, equation: str, *operands: Any) -> Result:
    """``torch.einsum("bhqd,bhkd->bhqk", q, k)`` (or the operands as one list): the einsum op."""
    refs = list(operands[0]) if len(operands) == 1 and isinstance(operands[0], (list, tuple)) else list(operands)
    if not isinstance(equation, str) or not refs or not all(isinstance(r, Ref) for r in refs):
        raise ImportFailed("`torch.einsum` other than of an equation and tensors has no spec op", where=c.where)
    return c.op("einsum", refs, equation=equation)


@handles("torch.tile", "Tensor.tile", "Tensor.repeat")
def _tile(c: Call, input: Ref, *dims: Any) -> Result:
    """``x.tile(1, 1, 2, 2)``: the tile op, whose repeats leave out dim 0 (kept once: the batch,
    or a parameter's leading 1)."""
    flat = list(dims[0] if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else dims)
    ndim = len(input.shape)
    if c.key == "Tensor.repeat" and len(flat) > ndim and not input.batch_dims:  # a constant's: dims added in front
        added = [c.op("unsqueeze", [input], suffix="dims", dim=0)]
        added += [c.op("unsqueeze", [c.ref("dims")], suffix="dims", dim=0) for _ in range(len(flat) - ndim - 1)]
        tiled = _tile(c, Ref(str(added[-1].name), _ones_in_front(input, len(flat) - ndim)), *flat)
        return [*added, *_list(tiled)]
    if flat and isinstance(flat[0], BatchSize) and c.key == "Tensor.repeat":  # XCiT's `pos.repeat(B, 1, 1, 1)`
        return functions._expand(c, input, flat[0], *[-1 if r == 1 else r for r in flat[1:]])
    given = const(c, flat, "repeats")
    reps = list(given)
    if c.key == "Tensor.repeat" and len(reps) != ndim:
        raise ImportFailed("`x.repeat` that adds dims has no spec op", where=c.where)
    reps = [1] * (ndim - len(reps)) + reps  # torch.tile: fewer repeats than dims repeat the last dims
    if len(reps) != ndim or reps[0] != 1 or input.batch_dims not in ([], [0]):
        raise ImportFailed(
            f"`{c.key.replace('Tensor.', 'x.')}` by {given} repeats dim 0 (the batch's place): the tile op keeps it",
            where=c.where,
        )
    return c.op("tile", [input], repeats=reps[1:])


def _ones_in_front(ref: Ref, k: int) -> tuple[Any, Any]:
    """``ref``'s values with ``k`` dims of size 1 added in front."""
    return tuple(TensorMeta((1,) * k + m.shape, m.dtype) for m in ref.meta)  # type: ignore[return-value]


@handles("torch.roll", "Tensor.roll")
def _roll(c: Call, input: Ref, shifts: Any, dims: Any = None) -> Result:
    if dims is None:
        raise ImportFailed("`roll` without dims (over the flattened tensor) has no spec op", where=c.where)
    rolled = _dims(c, input, dims, "roll")
    amounts = const(c, shifts, "a shift")
    one = not isinstance(amounts, list) and not isinstance(const(c, dims, "a dim"), list)
    return c.op("roll", [input], shifts=amounts, dims=rolled[0] if one else rolled)


@handles("torch.gather", "Tensor.gather")
def _gather(c: Call, input: Ref, dim: int, index: Ref, sparse_grad: bool = False) -> Result:
    (d,) = _dims(c, input, dim, "gather")
    return c.op("gather", [input, index], dim=d)


@handles("torch.masked_fill", "Tensor.masked_fill")
def _masked_fill(c: Call, input: Ref, mask: Ref, value: Any) -> Result:
    number = const(c, value, "a number")
    return c.op("masked_fill", [input, mask], value=float(number))


@handles("torch.where")
def _where(c: Call, condition: Ref, input: Any = None, other: Any = None) -> Result:
    """``torch.where(cond, x, y)``; a number on either side is the op's `other` (the condition
    negated where the number is the first)."""
    if isinstance(input, Ref) and isinstance(other, Ref):
        return c.op("where", [condition, input, other])
    if isinstance(input, Ref):
        return c.op("where", [condition, input], other=float(const(c, other, "a number")))
    if isinstance(other, Ref):
        number = float(const(c, input, "a number"))
        return [c.op("logical_not", [condition], suffix="not"), c.op("where", [c.ref("not"), other], other=number)]
    raise ImportFailed("`torch.where` of two numbers (or of the condition alone) has no spec op", where=c.where)


@handles("F.group_norm")
def _group_norm(
    c: Call, input: Ref, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Result:
    inputs = functions.affine_inputs(c, "group_norm", input, weight, bias)
    return c.op("group_norm", inputs, num_groups=const(c, num_groups, "a number"), eps=eps)


@handles("F.rms_norm")
def _rms_norm(c: Call, input: Ref, normalized_shape: Any, weight: Any = None, eps: float | None = None) -> Result:
    """timm's RmsNorm: ``F.rms_norm(x, shape, self.weight, eps)``, the rms_norm op."""
    inputs = [input] + ([weight] if weight is not None else [])
    return c.op("rms_norm", inputs, normalized_shape=list(const(c, normalized_shape, "a shape")), eps=eps)


@handles("F.normalize")
def _normalize(c: Call, input: Ref, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Any = None) -> Result:
    (d,) = _dims(c, input, dim, "normalize")
    return c.op("normalize", [input], dim=d, p=float(const(c, p, "a number")), eps=eps)


@handles("torch.norm", "Tensor.norm")
def _norm(c: Call, input: Ref, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Result:
    """``x.norm(p=2, dim=(1, 2), keepdim=True)``: the norm op (a vector norm along dims that are not
    the batch's; "fro" over one or two dims is the 2-norm)."""
    order = 2.0 if p == "fro" else const(c, p, "a number")
    if dim is None or dtype is not None or not isinstance(order, (int, float)):
        raise ImportFailed("`norm` over every dim, of a named order or with a dtype has no spec op", where=c.where)
    dims = _dims(c, input, dim, "norm")
    return c.op(
        "norm", [input], dim=dims if isinstance(dim, (list, tuple)) else dims[0], p=float(order), keepdim=keepdim
    )


@handles("torch.addcmul", "Tensor.addcmul")
def _addcmul(c: Call, input: Ref, tensor1: Ref, tensor2: Ref, value: Any = 1) -> Result:
    """``torch.addcmul(b, w, x)``, ``b + value * w * x``: mul (scale) and add (GRN's affine)."""
    k = const(c, value, "a number")
    steps = [c.op("mul", [tensor1, tensor2], suffix="prod")]
    if k != 1:
        steps.append(c.op("scale", [c.ref("prod")], suffix="scaled", factor=k))
    return [*steps, c.op("add", [input, c.ref("scaled" if k != 1 else "prod")])]


# ---- indexing with tensors -----------------------------------------------------------------


@handles("operator.getitem")
def _getitem(c: Call, value: Any, index: Any) -> Result:
    """``x[..., idx]`` with ``...``, index tensors or a slice's step: the ``index`` op; any other index as
    ``functions._getitem`` reads it (select, narrow, unsqueeze; a tuple's item)."""
    parts = index if isinstance(index, tuple) else (index,)
    tensors = Ellipsis in parts or any(isinstance(p, (Ref, list)) for p in parts)
    steps = any(isinstance(p, slice) and p.step not in (None, 1) for p in parts)  # LeViT's x[:, ::2, ::2]
    if isinstance(value, Ref) and value.is_tensor and (tensors or steps):
        return tensor_index(c, value, parts)
    return functions._getitem(c, value, index)


def tensor_index(c: Call, value: Ref, parts: tuple) -> SNode:
    """``table[idx]``, ``x[:, idx, 0]``, ``x[..., :2]``: the ``index`` op, its subscript written as
    Python writes it over the names of the index tensors (which it reads by name).

    >>> from netspec.importer.trace import TensorMeta
    >>> meta = lambda s: (TensorMeta(s, None),) * 2
    >>> c = Call("bias", "attn", Ref("bias", meta((4, 2))), str)
    >>> tensor_index(c, Ref("table", meta((9, 2))), (Ref("idx", meta((4,))),)).args
    {'at': '[idx]'}
    """
    ndim, batch = len(value.shape), value.batch_dims
    if batch not in ([], [0]) or any(isinstance(p, Ref) and p.batch_dims for p in parts):
        raise ImportFailed(
            "indexing by a tensor of each sample has no spec op (it would mix the samples)", where=c.where
        )
    taken = sum(1 for p in parts if p is not None and p is not Ellipsis)
    first = parts[0] if parts else None
    if batch and not (first == slice(None) or (first is Ellipsis and taken < ndim)):
        raise ImportFailed("indexing the batch dim has no spec op (it would mix the samples)", where=c.where)
    text = "[" + ", ".join(_part(c, p) for p in parts) + "]"
    return c.op("index", [value], at=text)


def _part(c: Call, part: Any) -> str:
    if isinstance(part, Ref):
        if not part.name.isidentifier():
            raise ImportFailed(f"indexing by `{part.name}`, which is no name a subscript can read", where=c.where)
        return part.name
    if part is Ellipsis:
        return "..."
    if isinstance(part, slice):
        ends = [const(c, e, "an index") for e in (part.start, part.stop, part.step)]
        text = ":".join("" if e is None else str(e) for e in ends[:2])
        return text + ("" if ends[2] is None else f":{ends[2]}")
    number = const(c, part, "an index")
    if (
        number is None
        or isinstance(number, int)
        or (isinstance(number, list) and all(isinstance(n, int) for n in number))
    ):
        return repr(number)
    raise ImportFailed(f"indexing with {part!r} has no spec op", where=c.where)


@handles("F.linear")
def _linear(c: Call, input: Ref, weight: Ref, bias: Any = None) -> Result:
    """``F.linear(x, self.qkv.weight, bias)`` with tensors the forward picked (BEiT's qkv with its
    own bias): ``x @ weight.T (+ bias)``, as a transpose, a matmul and an add."""
    if not isinstance(weight, Ref) or not (bias is None or isinstance(bias, Ref)) or len(weight.shape) != 2:
        raise ImportFailed("`linear` other than of tensors (a 2-d weight) has no spec op", where=c.where)
    nodes = [c.op("transpose", [weight], suffix="weight_t", dim0=0, dim1=1)]  # (in, out)
    if bias is None:
        return [*nodes, c.op("matmul", [input, c.ref("weight_t")])]
    nodes.append(c.op("matmul", [input, c.ref("weight_t")], suffix="matmul"))
    return [*nodes, c.op("add", [c.ref("matmul"), bias])]


@handles("torchvision.models.swin_transformer._get_relative_position_bias")
def _swin_bias(c: Call, relative_position_bias_table: Ref, relative_position_index: Ref, window_size: Any) -> Result:
    """torchvision Swin's helper (torch.fx.wrap keeps it whole): ``table[index]`` (one row per
    pair of window positions) as (1, heads, N, N)."""
    n = len(relative_position_index.shape) == 1 and const(c, window_size, "a size")
    table, index = relative_position_bias_table, relative_position_index
    if not n or len(table.shape) != 2 or table.batch_dims or index.batch_dims:
        raise ImportFailed(
            "Swin's relative position bias other than of a table and a flat index has no spec op", where=c.where
        )
    side = n[0] * n[1]
    rows = tensor_index(c, table, (index,))
    rows.name = c.fresh(f"{c.name}_rows")
    return [
        rows,  # (N*N, heads)
        c.op("reshape", [rows.name], suffix="pairs", shape=[side, side, table.shape[1]]),  # (1, N, N, heads)
        c.op("permute", [c.ref("pairs")], dims=[0, 3, 1, 2]),  # (1, heads, N, N)
    ]


@handles("torch.flip", "Tensor.flip")
def _flip(c: Call, input: Ref, *by_place: Any, dims: Any = None) -> Result:
    """``x.flip(1)``, ``x.flip(1, 2)``, ``torch.flip(x, [1])``, ``x.flip(dims=(-1,))`` (gemma4's coordinates)."""
    flat = dims if dims is not None else by_place[0] if len(by_place) == 1 else list(by_place)
    return c.op("flip", [input], dims=_dims(c, input, flat, "flip"))


def _along(name: str) -> None:
    """cumsum, cumprod: along one dim that is not the batch's."""

    def handler(c: Call, input: Ref, dim: int, dtype: Any = None) -> Result:
        (d,) = _dims(c, input, dim, name)
        if dtype is not None:  # torch casts the input first (EdgeNeXt's `mask.cumsum(1, dtype=torch.float32)`)
            cast = c.op("to", [input], suffix="cast", dtype=str(dtype).removeprefix("torch."))
            return [cast, c.op(name, [c.ref("cast")], dim=d)]
        return c.op(name, [input], dim=d)

    handles(f"torch.{name}", f"Tensor.{name}")(handler)


for _name in ("cumsum", "cumprod"):
    _along(_name)


@handles("torch.argmax", "Tensor.argmax")
def _argmax(c: Call, input: Ref, dim: Any = None, keepdim: bool = False) -> Result:
    if dim is None:
        raise ImportFailed("`argmax` over every dim has no spec op (it would mix the samples)", where=c.where)
    (d,) = _dims(c, input, dim, "argmax")
    return c.op("argmax", [input], dim=d, keepdim=keepdim)


def _triangle(name: str) -> None:
    """triu, tril: of the last two dims, neither the batch's."""

    def handler(c: Call, input: Ref, diagonal: int = 0) -> Result:
        _dims(c, input, [-2, -1], name)
        return c.op(name, [input], diagonal=const(c, diagonal, "a number"))

    handles(f"torch.{name}", f"Tensor.{name}")(handler)


for _name in ("triu", "tril"):
    _triangle(_name)


@handles("torch.arange")
def _arange(c: Call, start: Any, end: Any = None, step: Any = 1, **options: Any) -> Result:
    """``torch.arange(x.size(1))``: the size was folded at the declared input size, so the
    positions are a constant, a Buffer node in no state_dict (its values written in the spec)."""
    numbers = [const(c, v, "a size") for v in ((start,) if end is None else (start, end, step))]
    unknown = set(options) - {"dtype", "device", "layout", "pin_memory", "requires_grad"}
    if unknown or not all(isinstance(v, (int, float)) for v in numbers):
        raise ImportFailed("`torch.arange` other than of numbers (and a dtype) has no spec op", where=c.where)
    values = torch.arange(*numbers, dtype=options.get("dtype"))
    return buffer_node(c.name, values, False, c.where, c.notes if c.notes is not None else [])


@handles("torch.zeros", "torch.ones")
def _filled(c: Call, *size: Any, **options: Any) -> Result:
    """``torch.zeros(shape)``: a constant, a Buffer node in no state_dict; with the batch size first
    (EdgeNeXt's ``torch.zeros((B, H, W))``), the Buffer of one sample's and ``expand_batch``."""
    flat = list(size[0]) if len(size) == 1 and isinstance(size[0], (list, tuple)) else list(size)
    batch = flat[0] if flat and isinstance(flat[0], BatchSize) and flat[0].source else None
    numbers = const(c, [1, *flat[1:]] if batch else flat, "a size")
    unknown = set(options) - {"dtype", "device", "layout", "pin_memory", "requires_grad"}
    if unknown or not all(isinstance(v, int) for v in numbers):
        raise ImportFailed(f"`{c.key}` other than of sizes (and a dtype) has no spec op", where=c.where)
    values = getattr(torch, c.key.split(".")[1])(numbers, dtype=options.get("dtype"))
    notes = c.notes if c.notes is not None else []
    if batch is None:
        return buffer_node(c.name, values, False, c.where, notes)
    one = buffer_node(c.fresh(f"{c.name}_sample"), values, False, c.where, notes)  # (1, H, W)
    sample = Ref(str(one.name), (TensorMeta(tuple(numbers), values.dtype),) * 2)
    return [one, *_list(functions._expand(c, sample, batch, *flat[1:]))]  # (B, H, W)


def _list(result: Result) -> list[SNode]:
    return result if isinstance(result, list) else [result]  # type: ignore[list-item]


# ---- windows, repeats, coordinate grids ---------------------------------------------------


@handles("Tensor.unfold")
def _unfold(c: Call, input: Ref, dimension: int, size: int, step: int) -> Result:
    """``x.unfold(2, 7, 4)``: windows along a dim that is not the batch's (Halo attention's
    blocks), a new last dim of each window's entries: the unfold op."""
    (d,) = _dims(c, input, dimension, "unfold")
    return c.op("unfold", [input], dim=d, size=const(c, size, "a size"), step=const(c, step, "a step"))


@handles("torch.repeat_interleave", "Tensor.repeat_interleave")
def _repeat_interleave(c: Call, input: Ref, repeats: Any, dim: Any = None, output_size: Any = None) -> Result:
    """``q.repeat_interleave(4, dim=0)``: each entry repeated in place; along the batch dim each
    sample's copies stay together (GCViT's global query for each of a sample's windows: ``4B``)."""
    number = const(c, repeats, "a number of repeats")
    if dim is None or not isinstance(number, int):
        raise ImportFailed(
            "`repeat_interleave` other than by a number along a dim has no spec op (it flattens, "
            "or repeats each entry its own number of times)",
            where=c.where,
        )
    d = const(c, dim, "a dim")
    return c.op("repeat_interleave", [input], repeats=number, dim=d % len(input.shape))


@handles("timm.layers.pos_embed_sincos._build_grid")
def _timm_grid(c: Call, feat_shape: Any, *args: Any, **kwargs: Any) -> Result:
    """timm's coordinate grid for sin-cos and rotary positions (torch.fx keeps the function whole),
    built from sizes only: a Buffer of each axis's coordinates and the grid op over them, checked
    to give what timm's function gives."""
    build = importlib.import_module("timm.layers.pos_embed_sincos")._build_grid
    bound = inspect.signature(build).bind(feat_shape, *args, **kwargs).arguments
    options = {k: const(c, v, "a size or an option") for k, v in bound.items() if k != "device"}
    grid = build(**options)  # (*feat_shape, n): channel k runs along dim k (for "xy", 0 and 1 swap)
    indexing, n = options.get("grid_indexing", "ij"), grid.shape[-1]
    order = [1, 0, *range(2, n)] if indexing == "xy" and n > 1 else list(range(n))  # the dim channel k runs along
    axes = [grid[tuple(slice(None) if i == order[k] else 0 for i in range(n)) + (k,)] for k in range(n)]
    if not torch.equal(coordinate_grid(*axes, indexing=indexing), grid):  # (*feat_shape, n) by timm's contract
        raise ImportFailed("`_build_grid` giving no grid of one coordinate per axis has no spec op", where=c.where)
    notes = c.notes if c.notes is not None else []
    nodes = [buffer_node(c.fresh(f"{c.name}_axis{k}"), axis, False, c.where, notes) for k, axis in enumerate(axes)]
    return [*nodes, c.op("grid", [str(b.name) for b in nodes], indexing=indexing)]


@handles("F.one_hot")
def _one_hot(c: Call, tensor: Ref, num_classes: Any = -1) -> Result:
    """``F.one_hot(positions, num_classes=16)``; without a number of classes (from the values) refused."""
    number = const(c, num_classes, "a number of classes")
    if not isinstance(number, int) or number < 1:
        raise ImportFailed(
            "`F.one_hot` without a number of classes (one read from the values) has no spec op", where=c.where
        )
    return c.op("one_hot", [tensor], num_classes=number)


@handles("torch.meshgrid")
def _meshgrid(c: Call, *tensors: Any, indexing: str | None = None) -> Result:
    """``grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")``: the grid op (the grids stacked,
    last) and its pieces, each read by index as a ``select`` of the last dim (torch's default
    indexing is "ij")."""
    axes = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
    if not axes or not all(isinstance(a, Ref) and a.is_tensor and len(a.shape) == 1 for a in axes):
        raise ImportFailed("`torch.meshgrid` other than of 1-d tensors has no spec op", where=c.where)
    if any(a.batch_dims for a in axes):
        raise ImportFailed("`torch.meshgrid` of a tensor along the batch has no spec op", where=c.where)
    grid = c.op("grid", axes, indexing=const(c, indexing or "ij", "an indexing"))
    meta = tuple(TensorMeta((*m[0].shape, len(axes)), m[0].dtype) for m in c.result.meta)  # (*sizes, n)
    whole = Ref(str(grid.name), meta)  # type: ignore[arg-type]  # one TensorMeta per batch size
    return Pieces(whole, len(axes), tuple((k, 1) for k in range(len(axes))), drop_dim=True, made=(grid,))


def _extreme(name: str) -> None:
    """``x.max(1)`` (the tuple (values, indices), read by item), ``torch.max(a, b)`` (maximum)."""

    def handler(c: Call, input: Ref, dim: Any = None, keepdim: bool = False) -> Result:
        if isinstance(dim, Ref):
            return c.op("maximum" if name == "max" else "minimum", [input, dim])
        if dim is None:
            raise ImportFailed(f"`{name}` over every dim has no spec op (it would mix the samples)", where=c.where)
        (d,) = _dims(c, input, dim, name)
        return c.op(name, [input], dim=d, keepdim=const(c, keepdim, "a flag"))

    handles(f"torch.{name}", f"Tensor.{name}")(handler)


for _name in ("max", "min"):
    _extreme(_name)


@handles("Tensor.type_as")
def _type_as(c: Call, input: Ref, other: Ref) -> Result:
    """``x.type_as(q)``: the identity where the dtypes agree (the dtype traced), else the `to` op."""
    names = {v: k for k, v in _DTYPES.items()}
    wanted = other.meta[0].dtype if isinstance(other, Ref) and other.is_tensor else None
    if wanted not in names:
        raise ImportFailed("`x.type_as` other than of a tensor of a dtype a spec names has no spec op", where=c.where)
    return input if input.meta[0].dtype == wanted else c.op("to", [input], dtype=names[wanted])


@handles("builtins.getattr")
def _field(c: Call, value: Any, name: Any, *default: Any) -> Result:
    """``torch.max(x, 1).values``: a field of (values, indices), read as the tuple's item."""
    fields = ("values", "indices")
    if not (isinstance(value, Ref) and not value.is_tensor and name in fields and not default):
        raise ImportFailed(
            "`builtins.getattr` has no spec op or layer that does the same",
            where=c.where,
            hint="see `netspec layers ops` for the ops",
        )
    return c.op("item", [value], index=fields.index(name))
