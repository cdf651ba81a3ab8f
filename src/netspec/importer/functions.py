"""torch functions and tensor methods in a traced forward -> spec ops (or parameterless layers).

Each handler has the signature of the torch call it reads (``flatten(input, start_dim=0,
end_dim=-1)``), so fx's positional and keyword arguments bind to it as they bound to torch.
Tensors arrive as :class:`~netspec.importer.ir.Ref`, numbers the forward computed as plain
values (sizes were folded at the declared input size), numbers that depend on the batch as
:class:`~netspec.importer.ir.BatchSize`. A handler returns the spec node (or a chain of them,
the last one giving the value), or a Ref when the call is the identity in the spec.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..nodes.functional import DTYPE_NAMES
from ..nodes.ops import _UNARY
from .buffers import buffer_node
from .call import Call, Result, const
from .concrete import KEPT_WHOLE
from .errors import ImportFailed
from .ir import BatchSize, Pieces, Ref, SNode

HANDLERS: dict[str, Callable[..., Result]] = {}


def handles(*keys: str) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Register a handler under the names of the torch calls it reads (``torch.flatten``,
    ``Tensor.flatten``, ``F.relu``, ``operator.add``)."""

    def wrap(fn: Callable[..., Result]) -> Callable[..., Result]:
        for key in keys:
            HANDLERS[key] = fn
        KEPT_WHOLE.update(keys)  # a function torch.fx.wrap keeps whole stays whole when read here
        return fn

    return wrap


def _names() -> dict[int, str]:
    out: dict[int, str] = {}
    for prefix, space in (("operator", operator), ("torch", torch), ("F", F)):
        for name in dir(space):
            obj = getattr(space, name)
            if callable(obj) and not name.startswith("__"):
                out.setdefault(id(obj), f"{prefix}.{name}")
    return out


_NAMES: dict[int, str] = {}


def call_name(op: str, target: Any) -> str:
    """The handler key of an fx call: ``Tensor.view``, ``torch.cat``, ``F.relu``, ``operator.add``.

    >>> call_name("call_method", "view"), call_name("call_function", torch.cat), call_name("call_function", F.relu)
    ('Tensor.view', 'torch.cat', 'F.relu')
    """
    if op == "call_method":
        return f"Tensor.{target}"
    if not _NAMES:
        _NAMES.update(_names())
    if id(target) in _NAMES:
        return _NAMES[id(target)]
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', target)}"


def convert_call(c: Call, key: str, args: tuple, kwargs: dict) -> Result:
    """The spec node(s) for one fx call, or ImportFailed naming the call."""
    handler = HANDLERS.get(key) or HANDLERS.get(key.rstrip("_"))  # `x.relu_()` reads as `x.relu()`
    shown = key.replace("Tensor.", "x.").replace("F.", "torch.nn.functional.")
    if handler is None:
        raise ImportFailed(
            f"`{shown}` has no spec op or layer that does the same",
            where=c.where,
            hint="see `netspec layers ops` for the ops",
        )
    try:
        bound = inspect.signature(handler).bind(c, *args, **kwargs)
    except TypeError as e:
        raise ImportFailed(f"`{shown}` called in a way the importer does not read: {e}", where=c.where) from None
    return handler(*bound.args, **bound.kwargs)


# ---- arithmetic --------------------------------------------------------------------------


def _arith(c: Call, name: str, a: Any, b: Any, swap: bool) -> Result:
    """`a op b` with tensors or numbers; `2 * x` reads as `x * 2`, `1 - x` as `-x + 1`."""
    if isinstance(a, Ref) and isinstance(b, Ref):
        return c.op(name, [a, b])
    if isinstance(a, Ref):
        return c.op(name, [a], other=const(c, b, "a number"))
    number = const(c, a, "a number")
    if swap:
        return c.op(name, [b], other=number)
    if name == "sub":  # 1 - x = (-x) + 1
        return [c.op("neg", [b], suffix="neg"), c.op("add", [c.ref("neg")], other=number)]
    return [c.op("reciprocal", [b], suffix="reciprocal"), c.op("mul", [c.ref("reciprocal")], other=number)]


@handles("operator.add", "operator.iadd", "torch.add", "Tensor.add")
def _add(c: Call, input: Any, other: Any, alpha: Any = 1) -> Result:
    if alpha != 1:
        raise ImportFailed("`add` with `alpha` has no spec op", where=c.where)
    return _arith(c, "add", input, other, True)


@handles("operator.sub", "operator.isub", "torch.sub", "Tensor.sub")
def _sub(c: Call, input: Any, other: Any, alpha: Any = 1) -> Result:
    if alpha != 1:
        raise ImportFailed("`sub` with `alpha` has no spec op", where=c.where)
    return _arith(c, "sub", input, other, False)


@handles("operator.mul", "operator.imul", "torch.mul", "Tensor.mul")
def _mul(c: Call, input: Any, other: Any) -> Result:
    return _arith(c, "mul", input, other, True)


@handles("operator.truediv", "operator.itruediv", "torch.div", "Tensor.div")
def _div(c: Call, input: Any, other: Any, rounding_mode: Any = None) -> Result:
    out = c.result.meta[0]
    if rounding_mode == "floor" and getattr(getattr(out, "dtype", None), "is_floating_point", False):
        quotient = _arith(c, "div", input, other, False)  # XCiT's `torch.div(dim_t, 2, rounding_mode="floor")`
        steps = quotient if isinstance(quotient, list) else [quotient]
        assert isinstance(steps[-1], SNode)  # _arith makes nodes
        steps[-1].name = c.fresh(f"{c.name}_quotient")
        return [*steps, c.op("floor", [steps[-1].name])]
    if rounding_mode is not None:
        raise ImportFailed("`div` with `rounding_mode` has no spec op", where=c.where)
    return _arith(c, "div", input, other, False)


@handles("operator.matmul", "torch.matmul", "torch.bmm", "Tensor.matmul", "Tensor.bmm")
def _matmul(c: Call, input: Ref, other: Ref) -> Result:
    return c.op("matmul", [input, other])


@handles("operator.pow", "torch.pow", "Tensor.pow")
def _pow(c: Call, input: Ref, exponent: Any) -> Result:
    if isinstance(exponent, Ref) and not isinstance(input, Ref):  # XCiT's `temperature ** t`: a number's power
        number = const(c, input, "a number")
        base = buffer_node(
            c.fresh(f"{c.name}_base"), torch.tensor(number, dtype=c.result.meta[0].dtype), False, c.where, []
        )
        return [base, c.op("pow", [str(base.name), exponent])]
    if isinstance(exponent, Ref):
        return c.op("pow", [input, exponent])
    return c.op("pow", [input], exponent=const(c, exponent, "a number"))


def _compare(name: str) -> None:
    def handler(c: Call, input: Ref, other: Any) -> Result:
        if isinstance(other, Ref):
            return c.op(name, [input, other])
        return c.op(name, [input], other=const(c, other, "a number"))

    handles(f"operator.{name}", f"torch.{name}", f"Tensor.{name}")(handler)


for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    _compare(_name)


@handles("torch.maximum", "Tensor.maximum")
def _maximum(c: Call, input: Ref, other: Ref) -> Result:
    return c.op("maximum", [input, other])


@handles("torch.minimum", "Tensor.minimum")
def _minimum(c: Call, input: Ref, other: Ref) -> Result:
    return c.op("minimum", [input, other])


@handles("torch.clamp", "torch.clip", "Tensor.clamp", "Tensor.clip")
def _clamp(c: Call, input: Ref, min: Any = None, max: Any = None) -> Result:
    if isinstance(min, Ref) and isinstance(max, Ref):  # Gemma4's clamp to its buffers: min(max(x, lo), hi)
        return [c.op("maximum", [input, min], suffix="low"), c.op("minimum", [c.ref("low"), max])]
    return c.op("clamp", [input], min=const(c, min, "a number"), max=const(c, max, "a number"))


def _unary(name: str) -> None:
    def handler(c: Call, input: Ref, inplace: bool = False) -> Result:
        return c.op(name, [input])  # in place or not: the value is the same

    handles(f"torch.{name}", f"Tensor.{name}", f"F.{name}", f"operator.{name}")(handler)


for _name in _UNARY:
    _unary(_name)


@handles("operator.invert", "torch.bitwise_not", "Tensor.bitwise_not")
def _invert(c: Call, input: Ref) -> Result:
    """``~mask`` of a boolean tensor: ``logical_not`` (of integers it flips bits: no spec op)."""
    if not (isinstance(input, Ref) and input.is_tensor and input.meta[0].dtype == torch.bool):
        raise ImportFailed("`~` of other than a boolean tensor has no spec op", where=c.where)
    return c.op("logical_not", [input])


# ---- merges and reshapes -----------------------------------------------------------------


@handles("torch.cat", "torch.concat", "torch.concatenate")
def _cat(c: Call, tensors: list, dim: int = 0) -> Result:
    if len(tensors) == 1:
        return tensors[0]
    return c.op("cat", list(tensors), dim=dim)


_CASTS = {
    "Tensor.float": torch.float32,
    "Tensor.long": torch.int64,
    "Tensor.int": torch.int32,
    "Tensor.bool": torch.bool,
}


@handles("Tensor.to", "Tensor.type", *_CASTS)
def _to(c: Call, input: Ref, dtype: Any = None, *args: Any, **kwargs: Any) -> Result:
    """``x.float()``, ``x.long()``, ``x.to(torch.float16)``: the `to` op; ``x.to(device=...,
    dtype=None)`` is the identity (a spec's tensors are on its module's device)."""
    if isinstance(dtype, Ref) and dtype.is_tensor:  # `x.to(table)`: to the other's dtype (Gemma4's one-hot)
        dtype = dtype.meta[0].dtype
    wanted = _CASTS.get(c.key, None if isinstance(dtype, torch.device) else dtype)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("device", "non_blocking", "copy")}
    if c.key == "Tensor.to" and wanted is None and not args and not kwargs:
        return input
    if wanted not in DTYPE_NAMES or args or kwargs:
        raise ImportFailed(f"`{c.key.replace('Tensor.', 'x.')}` other than to a dtype has no spec op", where=c.where)
    return c.op("to", [input], dtype=DTYPE_NAMES[wanted])


@handles("torch.stack")
def _stack(c: Call, tensors: list, dim: int = 0) -> Result:
    return c.op("stack", list(tensors), dim=dim)


@handles("torch.flatten", "Tensor.flatten")
def _flatten(c: Call, input: Ref, start_dim: int = 0, end_dim: int = -1) -> Result:
    """From the batch on, it folds dims into the batch (Hiera's `x.flatten(0, 1)`: `4B`)."""
    _batch_factor(c, input, "flatten")
    _batch_factor(c, c.result, "flatten")
    return c.op("flatten", [input], start_dim=start_dim, end_dim=end_dim)


def _batch_factor(c: Call, ref: Ref, what: str) -> int:
    """The rows per sample of a value's batch dim (1: ``B``; 64: 64 windows folded into each
    sample, ``64B``); refused where it is no multiple of the batch (``2B+1``).

    >>> from netspec.importer.trace import TensorMeta
    >>> c = Call("g", "x", Ref("g", (TensorMeta((64, 7), None), TensorMeta((128, 7), None))), lambda wish: wish)
    >>> _batch_factor(c, c.result, "reshape")
    64
    """
    if len(ref.batch_dims) != 1:
        return 1  # no batch (a parameter), or several dims of it: the compiler's checks say why
    at = ref.batch_dims[0]
    one, two = ref.meta[0].shape[at], ref.meta[1].shape[at]  # at batch 1 and 2 (`trace.BATCHES`)
    if two != 2 * one:
        raise ImportFailed(
            f"a {what} to {_shown(ref)} leaves a batch dim that is no multiple of the batch", where=c.where
        )
    return one


def _shown(ref: Ref) -> str:
    """``(B, 8, 7, 96)``, or ``(64B, 7, 96)`` where the batch dim holds more than the batch."""
    a, b = ref.meta[0].shape, ref.meta[1].shape
    return "(" + ", ".join(str(x) if x == y else "B" if x == 1 else f"{x}B" for x, y in zip(a, b)) + ")"


@handles("torch.reshape", "Tensor.reshape", "Tensor.view")
def _reshape(c: Call, input: Ref, *shape: Any) -> Result:
    """Read from the shape it gave: the per-sample shape at the declared input size; where it
    folds dims into the batch or unfolds them (Swin's windows), the batch written first."""
    out = c.result
    if not input.batch_dims and not out.batch_dims:  # a parameter's: `gamma.reshape(1, -1, 1, 1)`
        return _ones_added(c, input, out)
    if out.batch_dims != [0] and _kept_in_front(input, out):
        return _reshape_behind(c, input, out)
    if out.batch_dims != [0]:
        raise ImportFailed(
            f"a reshape to {list(out.shape)} that does not keep the batch as dim 0 has no "
            "spec op (`reshape` keeps the batch first)",
            where=c.where,
        )
    was, now = _batch_factor(c, input, "reshape"), _batch_factor(c, out, "reshape")
    if was != now:  # `reshape: [64B, 7, 7, 96]`: windows into samples, or back
        return c.op("reshape", [input], shape=["B" if now == 1 else f"{now}B", *out.shape[1:]])
    return c.op("reshape", [input], shape=list(out.sample_shape))


def _kept_in_front(input: Ref, out: Ref) -> bool:
    """Whether a reshape leaves the dims in front of the batch as they are and reshapes the rest:
    SAM's ``qkv.reshape(3, B * heads, N, -1)`` of ``(3, B, heads, N, d)``."""
    if len(input.batch_dims) != 1 or len(out.batch_dims) != 1 or input.batch_dims != out.batch_dims:
        return False
    at = out.batch_dims[0]
    return all(i.shape[:at] == o.shape[:at] for i, o in zip(input.meta, out.meta))


def _reshape_behind(c: Call, input: Ref, out: Ref) -> Result:
    """A reshape of the dims from the batch on, with ``a`` dims in front of it kept: the same values
    as moving those dims to the end (``permute``), reshaping with the batch first (``12B`` where it
    folds dims into the batch) and moving them back, as a spec's ``reshape`` keeps the batch first.

    >>> from netspec.importer.trace import TensorMeta
    >>> meta = lambda b: (TensorMeta((3, 1, *b), None), TensorMeta((3, 2, *b), None))
    >>> c = Call("qkv2", "attn", Ref("qkv2", (TensorMeta((3, 4, 5), None), TensorMeta((3, 8, 5), None))), lambda w: w)
    >>> [(n.op, n.args) for n in _reshape_behind(c, Ref("qkv", meta((4, 5))), c.result)]
    [('permute', {'dims': [1, 2, 3, 0]}), ('reshape', {'shape': ['4B', 5, 3]}), ('permute', {'dims': [2, 0, 1]})]
    """
    at, rank = out.batch_dims[0], len(out.shape)
    front = list(input.shape[:at])
    behind = c.op("permute", [input], suffix="behind", dims=[*range(at, len(input.shape)), *range(at)])
    rows = _batch_factor(c, out, "reshape")
    folded = c.op(
        "reshape",
        [c.ref("behind")],
        suffix="rows",
        shape=["B" if rows == 1 else f"{rows}B", *out.shape[at + 1 :], *front],
    )
    back = c.op("permute", [c.ref("rows")], dims=[*range(rank - at, rank), *range(rank - at)])
    return [behind, folded, back]


@handles("Tensor.reshape_as", "Tensor.view_as")
def _reshape_as(c: Call, input: Ref, other: Any) -> Result:
    """``bn(x.flatten(0, 1)).reshape_as(x)`` (LeViT): the reshape to the shape ``other`` has, read
    from the value it gave, as for ``x.reshape``."""
    return _reshape(c, input)


def _ones_added(c: Call, input: Ref, out: Ref) -> Result:
    """A reshape of a tensor without a batch (a parameter) that only adds dims of size 1, as
    ``unsqueeze`` steps (torch semantics: no batch to keep); any other as a ``reshape`` to
    ``(1, *shape)`` and a ``squeeze`` of that 1 (Swin's ``index.view(-1)``).

    >>> from netspec.importer.trace import TensorMeta
    >>> meta = lambda s: (TensorMeta(s, None),) * 2
    >>> c = Call("g", "ls", Ref("g", meta((1, 4, 1, 1))), lambda wish: wish)
    >>> [(n.op, n.args) for n in _ones_added(c, Ref("gamma", meta((4,))), c.result)]
    [('unsqueeze', {'dim': 0}), ('unsqueeze', {'dim': 2}), ('unsqueeze', {'dim': 3})]
    """
    shape, want = list(input.shape), list(out.shape)
    if [s for s in want if s != 1] != [s for s in shape if s != 1] or 1 in shape:
        # reshape keeps dim 0 as the batch's place: (1, *want), then that 1 is squeezed away
        return [c.op("reshape", [input], suffix="whole", shape=want), c.op("squeeze", [c.ref("whole")], dim=0)]
    dims = [d for d, s in enumerate(want) if s == 1]
    nodes, current = [], input.name
    for k, d in enumerate(dims):
        node = c.op("unsqueeze", [current], suffix=f"dim{k}", dim=d)
        nodes.append(node)
        current = str(node.name)
    return _last_named(c, nodes) if nodes else input


@handles("Tensor.expand")
def _expand(c: Call, input: Ref, *sizes: Any) -> Result:
    """``token.expand(x.shape[0], -1, -1)``: a learnt token for every sample of x's batch; ``x.expand(-1,
    -1, 7, -1)``: each sample of x broadcast (the expand op)."""
    flat = list(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)) else list(sizes)
    batch = flat[0] if flat else None
    same = all(s in (-1, d) for s, d in zip(flat[1:], input.shape[1:])) and len(flat) == len(input.shape)
    own = batch == -1 or (
        isinstance(batch, BatchSize) and batch.values == (input.meta[0].shape[0], input.meta[1].shape[0])
    )
    if input.batch_dims == [0] and own and len(flat) == len(input.shape) and all(isinstance(s, int) for s in flat[1:]):
        return c.op("expand", [input], shape=flat[1:])  # each sample broadcast: `x.expand(-1, -1, 7, -1)`
    if not (isinstance(batch, BatchSize) and batch.source and input.shape[0] == 1 and same):
        raise ImportFailed("`x.expand` other than a size-1 dim 0 to the batch has no spec op", where=c.where)
    node = c.op("expand_batch", [input])
    node.args = {"like": batch.source}
    return node


@handles("F.layer_norm")
def _layer_norm(
    c: Call, input: Ref, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Result:
    inputs = affine_inputs(c, "layer_norm", input, weight, bias)
    return c.op("layer_norm", inputs, normalized_shape=list(normalized_shape), eps=eps)


def affine_inputs(c: Call, op: str, input: Ref, weight: Any, bias: Any) -> list[Any]:
    """A functional norm's inputs as its op takes them: the input, then the weight and the bias
    where given (a bias without a weight has no op)."""
    if weight is None and bias is not None:
        raise ImportFailed(f"`{op}` with a bias and no weight has no spec op", where=c.where)
    return [input] + [t for t in (weight, bias) if t is not None]


@handles("torch.permute", "Tensor.permute")
def _permute(c: Call, input: Ref, *dims: Any) -> Result:
    flat = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else list(dims)
    return c.op("permute", [input], dims=flat)


@handles("torch.transpose", "Tensor.transpose", "torch.swapaxes", "Tensor.swapaxes")
def _transpose(c: Call, input: Ref, dim0: int, dim1: int) -> Result:
    return c.op("transpose", [input], dim0=dim0, dim1=dim1)


@handles("Tensor.contiguous")
def _contiguous(c: Call, input: Ref, memory_format: Any = None) -> Result:
    return c.op("contiguous", [input])


@handles("torch.squeeze", "Tensor.squeeze")
def _squeeze(c: Call, input: Ref, dim: Any = None) -> Result:
    if dim is None:
        raise ImportFailed("`squeeze` without a dim has no spec op (it could take the batch)", where=c.where)
    return c.op("squeeze", [input], dim=dim)


@handles("torch.unsqueeze", "Tensor.unsqueeze")
def _unsqueeze(c: Call, input: Ref, dim: int) -> Result:
    return c.op("unsqueeze", [input], dim=dim)


@handles("torch.chunk", "Tensor.chunk")
def _chunk(c: Call, input: Ref, chunks: int, dim: int = 0) -> Result:
    return c.op("chunk", [input], chunks=chunks, dim=dim)


def _reduction(name: str) -> None:
    def handler(c: Call, input: Ref, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Result:
        if dim is None or dtype is not None:
            raise ImportFailed(f"`{name}` over every dim (or with a dtype) has no spec op", where=c.where)
        return c.op(name, [input], dim=list(dim) if isinstance(dim, tuple) else dim, keepdim=keepdim)

    handles(f"torch.{name}", f"Tensor.{name}")(handler)


for _name in ("mean", "sum", "amax", "amin", "logsumexp"):
    _reduction(_name)


@handles("torch.softmax", "Tensor.softmax", "F.softmax")
def _softmax(c: Call, input: Ref, dim: Any = None, _stacklevel: int = 3, dtype: Any = None) -> Result:
    if dim is None or dtype is not None:
        raise ImportFailed("`softmax` without a dim (or with a dtype) has no spec op", where=c.where)
    return c.op("softmax", [input], dim=dim)


@handles("torch.log_softmax", "Tensor.log_softmax", "F.log_softmax")
def _log_softmax(c: Call, input: Ref, dim: Any = None, _stacklevel: int = 3, dtype: Any = None) -> Result:
    if dim is None or dtype is not None:
        raise ImportFailed("`log_softmax` without a dim (or with a dtype) has no spec op", where=c.where)
    return c.op("log_softmax", [input], dim=dim)


@handles("F.interpolate")
def _interpolate(
    c: Call,
    input: Ref,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: Any = None,
    recompute_scale_factor: Any = None,
    antialias: bool = False,
) -> Result:
    if antialias or recompute_scale_factor:
        raise ImportFailed("`interpolate` with antialias or recompute_scale_factor has no spec op", where=c.where)
    return c.op(
        "interpolate",
        [input],
        size=_plain(size),
        scale_factor=_plain(scale_factor),
        mode=mode,
        align_corners=align_corners,
    )


@handles("F.pad")
def _pad(c: Call, input: Ref, pad: Any, mode: str = "constant", value: Any = None) -> Result:
    return c.op("pad", [input], pad=list(pad), mode=mode, value=0.0 if value is None else value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---- indexing ----------------------------------------------------------------------------


@handles("operator.getitem")
def _getitem(c: Call, value: Ref, index: Any) -> Result:
    """A tuple's item (LSTM's output, a chunk), or a tensor's ``x[:, 0]``, ``x[:, 1:3]``, ``x[:, None]``."""
    if isinstance(value, tuple):  # a module's tensors and sizes (passing.with_sizes)
        return value[index]
    if isinstance(value, Pieces):  # `qkv.unbind(0)[1]`
        return piece(c, value, index)
    if isinstance(value.meta[0], dict) and isinstance(index, str):  # a block that returns a dict: by key
        keys = list(value.meta[0])
        if len(keys) == 1:  # the block returns that one tensor
            return Ref(value.name, (value.meta[0][index], value.meta[1][index]))
        return c.op("item", [value], index=keys.index(index))
    if not value.is_tensor:
        return c.op("item", [value], index=const(c, index, "an index"))
    parts = index if isinstance(index, tuple) else (index,)
    if Ellipsis in parts or any(isinstance(p, (Ref, list)) for p in parts):
        raise ImportFailed("indexing with `...` or with a tensor has no spec op", where=c.where)
    shape, batch = list(value.shape), set(value.batch_dims)
    nodes: list[SNode] = []
    dim, current = 0, value.name
    for k, part in enumerate(parts):
        step = _index_step(c, current, dim, part, shape, batch, k)
        if step is not None:
            nodes.append(step)
            assert step.name is not None  # c.op names the nodes it makes
            current = step.name
        dim = dim if isinstance(part, int) else dim + 1
    return _last_named(c, nodes) if nodes else value


def _index_step(c: Call, value: str, dim: int, part: Any, shape: list[int], batch: set[int], k: int) -> SNode | None:
    """One step of an index, with ``shape`` and ``batch`` (dims) updated to what it gives."""
    if part is None:
        shape.insert(dim, 1)
        _renumber(batch, lambda b: b + 1 if b >= dim else b)
        return c.op("unsqueeze", [value], suffix=f"index{k}", dim=dim)
    if dim in batch:
        if part == slice(None):
            return None
        raise ImportFailed("indexing the batch dim has no spec op (it would mix the samples)", where=c.where)
    if isinstance(part, int):
        shape.pop(dim)
        _renumber(batch, lambda b: b - 1 if b > dim else b)
        return c.op("select", [value], suffix=f"index{k}", dim=dim, index=part)
    if isinstance(part, slice) and part.step in (None, 1):
        start, stop, _ = part.indices(shape[dim])
        if (start, stop) == (0, shape[dim]):
            return None
        shape[dim] = max(stop - start, 0)
        return c.op("narrow", [value], suffix=f"index{k}", dim=dim, start=start, length=shape[dim])
    if isinstance(part, slice) and isinstance(part.step, int) and part.step > 1:  # `x[..., 0::2]`: every other
        start, stop, step = part.indices(shape[dim])
        shape[dim] = len(range(start, stop, step))
        return c.op("index", [value], suffix=f"index{k}", at=f"[{':, ' * dim}{start}:{stop}:{step}]")
    raise ImportFailed(f"indexing with {part!r} has no spec op", where=c.where)


def _renumber(dims: set[int], move: Callable[[int], int]) -> None:
    moved = {move(d) for d in dims}
    dims.clear()
    dims.update(moved)


def _last_named(c: Call, nodes: list[SNode]) -> list[SNode]:
    """The last step takes the call's own name."""
    nodes[-1].name = c.name
    return nodes


def piece(c: Call, pieces: Pieces, index: Any) -> Result:
    """Piece ``index`` as a ``select`` or ``narrow`` node of the source (the source itself when
    a split has one piece).

    >>> from netspec.importer.trace import TensorMeta
    >>> x = Ref("qkv", (TensorMeta((1, 3, 4), None), TensorMeta((2, 3, 4), None)))
    >>> c = Call("q", "attn", None, lambda wish: wish)
    >>> piece(c, Pieces(x, 1, ((0, 1), (1, 1), (2, 1)), drop_dim=True), 2).args
    {'dim': 1, 'index': 2}
    """
    k = const(c, index, "an index")
    if not isinstance(k, int) or not -len(pieces.spans) <= k < len(pieces.spans):
        raise ImportFailed(f"reading piece {index!r} of {len(pieces.spans)} has no spec op", where=c.where)
    start, length = pieces.spans[k]
    if pieces.drop_dim:
        return c.op("select", [pieces.source], dim=pieces.dim, index=start)
    if length == pieces.source.shape[pieces.dim]:
        return pieces.source
    return c.op("narrow", [pieces.source], dim=pieces.dim, start=start, length=length)
