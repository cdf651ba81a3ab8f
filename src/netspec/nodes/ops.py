"""Registry of tensor operations usable as nodes: merges (cat, add, ...), reshapes, pads.

An op is a small function that, given its input values and validated arguments, returns
``(target, args, kwargs)`` -- the call the generated forward makes. The same description
drives shape inference (the call runs on meta tensors) and code generation (the call
becomes one line of the fx graph), so the two cannot disagree.

Dims count the batch as dim 0, exactly as in torch (``cat`` on channels is ``dim: 1``);
shapes (``reshape``) are per sample, the batch dim is kept.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..compiler.dims import batch_factor
from ..compiler.spec_base import DType
from ..errors import GraphError, ShapeError
from . import functional as nsf
from .op_registry import OPS, Call, Dims, OpType, _check_same, _fmt, _two_or_number, op

__all__ = ["OPS", "OpType", "Call", "op"]

# ---- checks with messages that name the shapes -------------------------------------------
# A check gets each input's full shape with its batch dims as labels: ("B", 64, 28, 28), or
# (1, "B", 64) for an LSTM's h_n (see dims.py).


def _check_cat(shapes: list[Dims], dim: int = 1) -> None:
    ndim = len(shapes[0])
    if any(len(s) != ndim for s in shapes) or ndim == 0:
        raise ShapeError(f"inputs are {' and '.join(_fmt(s) for s in shapes)}; they must have the same number of dims")
    d = dim % ndim
    if isinstance(shapes[0][d], str):
        raise ShapeError(f"cannot concatenate along the batch dim {dim}")
    for s in shapes[1:]:
        if any(a != b for i, (a, b) in enumerate(zip(shapes[0], s)) if i != d):
            raise ShapeError(
                f"inputs are {' and '.join(_fmt(x) for x in shapes)}; they must match outside dim {dim}",
                hint="pad or crop one side first (e.g. `pad_to: {like: ...}`)",
            )


def _check_stack(shapes: list[Dims], dim: int = 1) -> None:
    if any(tuple(s) != tuple(shapes[0]) for s in shapes):
        raise ShapeError(f"inputs are {' and '.join(_fmt(s) for s in shapes)}; stack needs equal shapes")


# ---- merges and arithmetic ---------------------------------------------------------------


def _catted(shapes: list[tuple[int, ...]], dim: int = 1) -> tuple[int, ...] | None:
    """cat's output: the inputs' shape, with the sizes along `dim` added.

    >>> _catted([(2, 3, 4), (2, 5, 4)]), _catted([(2, 3, 4), (2, 5, 5)])
    ((2, 8, 4), None)
    """
    ndim = len(shapes[0])
    if not -ndim <= dim < ndim or any(len(s) != ndim for s in shapes):
        return None
    d = dim % ndim
    if any(s[:d] + s[d + 1 :] != shapes[0][:d] + shapes[0][d + 1 :] for s in shapes):
        return None
    return (*shapes[0][:d], sum(s[d] for s in shapes), *shapes[0][d + 1 :])


@op("cat", inputs=(2, None), check=_check_cat, shape=_catted)
def _cat(inputs: list[Any], dim: int = 1) -> Call:
    """Concatenate the inputs along `dim` (default 1, channels), in the order listed."""
    return torch.cat, (list(inputs),), {"dim": dim}


@op("stack", inputs=(2, None), check=_check_stack)
def _stack(inputs: list[Any], dim: int = 1) -> Call:
    """Stack equal-shaped inputs along a new dim."""
    return torch.stack, (list(inputs),), {"dim": dim}


def _arithmetic(name: str, fn: Callable[..., Any], many: Callable[..., Any] | None, doc: str) -> None:
    """add / sub / mul / div: of two inputs (or more, for add and mul), or of one input and a number."""

    def emit(inputs: list[Any], other: float | None = None) -> Call:
        _two_or_number(name, inputs, other)
        if other is not None:
            return fn, (inputs[0], other), {}
        if len(inputs) == 2:
            return fn, tuple(inputs), {}
        assert many is not None  # the op takes more than two inputs only when it has a `many`
        return many, tuple(inputs), {}

    emit.__doc__ = doc
    op(name, inputs=(1, None if many else 2), positional="other", check=_check_same)(emit)


_arithmetic(
    "add", operator.add, nsf.add_n, "Element-wise sum (broadcasting), e.g. a residual; or the input plus a number."
)
_arithmetic(
    "mul", operator.mul, nsf.mul_n, "Element-wise product (broadcasting), e.g. gating; or the input times a number."
)
_arithmetic("sub", operator.sub, None, "First input minus the second, or the input minus a number.")
_arithmetic("div", operator.truediv, None, "First input divided by the second, or the input divided by a number.")


@op("matmul", inputs=(2, 2))
def _matmul(inputs: list[Any]) -> Call:
    """Matrix product of the two inputs (torch.matmul)."""
    return torch.matmul, tuple(inputs), {}


@op("attention", inputs=(3, 4))
def _attention(inputs: list[Any], scale: float | None = None) -> Call:
    """softmax(q @ k^T * scale + mask) @ v of the inputs q, k, v and an optional 4th, the mask (added, or bool: where true) (torch.nn.functional.scaled_dot_product_attention; scale: 1/sqrt(head size))."""
    mask = inputs[3] if len(inputs) > 3 else None
    return F.scaled_dot_product_attention, tuple(inputs[:3]), {"attn_mask": mask, "scale": scale}


@op("maximum", inputs=(2, 2), check=_check_same)
def _maximum(inputs: list[Any]) -> Call:
    """Element-wise maximum of two inputs."""
    return torch.maximum, tuple(inputs), {}


@op("minimum", inputs=(2, 2), check=_check_same)
def _minimum(inputs: list[Any]) -> Call:
    """Element-wise minimum of two inputs."""
    return torch.minimum, tuple(inputs), {}


# ---- reshaping ---------------------------------------------------------------------------


def _batch_at(dims: Dims, what: str) -> int | None:
    """Where the batch is in a reshape's input (None: it has none); refused where the reshape
    would read dims in front of it together with it, which interleaves the samples."""
    at = [i for i, d in enumerate(dims) if batch_factor(d) is not None]
    if not at:
        return None
    if len(at) > 1 or any(d != 1 for d in dims[: at[0]]):
        raise ShapeError(
            f"a {what} of {_fmt(dims)} would interleave the samples of a batch: the dims in front "
            f"of the batch (dim {at[0]}) are read together with it",
            hint="move the batch to dim 0 first (`transpose` or `permute`)",
        )
    return at[0]


def _check_flatten(shapes: list[Dims], start_dim: int = 1, end_dim: int = -1) -> None:
    dims = shapes[0]
    if not dims:
        return
    start, end = start_dim % len(dims), end_dim % len(dims)
    at = [i for i, d in enumerate(dims) if batch_factor(d) is not None]
    if at and start < at[0] <= end and any(d != 1 for d in dims[start : at[0]]):
        raise ShapeError(
            f"flatten of {_fmt(dims)} from dim {start_dim} would interleave the samples of a batch: the "
            f"dims in front of the batch (dim {at[0]}) are merged with it",
            hint=f"start at the batch (`flatten: {{start_dim: {at[0]}, end_dim: {end_dim}}}`), or move it first",
        )


@op("flatten", positional="start_dim", check=_check_flatten, folds=True)
def _flatten(inputs: list[Any], start_dim: int = 1, end_dim: int = -1) -> Call:
    """Flatten dims start_dim..end_dim (default: everything but the batch; from 0: into it)."""
    return torch.flatten, (inputs[0],), {"start_dim": start_dim, "end_dim": end_dim}


_WRITTEN_BATCH = re.compile(r"^\s*(?:(\d+)\s*\*?\s*B|B\s*\*\s*(\d+)|B)\s*$")


def written_batch(entry: str) -> int:
    """The batch a reshape writes as its first size -> rows per sample: ``B`` 1, ``64B`` or ``B*64`` 64.

    >>> written_batch("B"), written_batch("64B"), written_batch("B*64"), written_batch("64*B")
    (1, 64, 64, 64)
    """
    m = _WRITTEN_BATCH.match(entry)
    if m is None or int(m.group(1) or m.group(2) or 1) < 1:
        raise ShapeError(
            f"`{entry}` is no size: the batch is written `B`, or `64B` (`B*64`) for 64 rows per sample",
            hint="e.g. `reshape: [64B, 7, 7, 96]` folds dims into the batch, `reshape: [B, 8, 8, 7, 7, 96]` unfolds them",
        )
    return int(m.group(1) or m.group(2) or 1)


def _check_reshape(shapes: list[Dims], shape: list[int | str]) -> None:
    dims = shapes[0]
    written = [i for i, s in enumerate(shape) if isinstance(s, str)]
    if written and written != [0]:
        raise ShapeError(f"`{shape[written[-1]]}` is size {written[-1]}: only the first size can be the batch")
    at = _batch_at(dims, "reshape")
    if at is None:
        if written:
            raise ShapeError(f"the input {_fmt(dims)} has no batch dim to write as `{shape[0]}`")
        return
    if not all(isinstance(d, int) for d in dims[at + 1 :]):
        return
    factor, row = batch_factor(dims[at]) or 1, math.prod(int(d) for d in dims[at + 1 :])
    sizes = [int(d) for d in shape[1:]] if written else [int(d) for d in shape]
    if -1 in sizes:
        if written:
            raise ShapeError(f"[{', '.join(map(str, shape))}] writes the batch, so it needs every other size (no -1)")
        return
    size: int = math.prod(sizes)  # the values of one row the reshape writes
    per_sample = (written_batch(str(shape[0])) if written else factor) * size
    if per_sample != factor * row:
        k, left = divmod(factor * row, size or 1)
        hint = (
            f"to fold dims into the batch, write it: `reshape: [{'B' if k == 1 else f'{k}B'}, "
            f"{', '.join(map(str, sizes))}]`"
            if not written and not left and size
            else "the sizes must multiply to the same number of values per sample"
        )
        raise ShapeError(
            f"[{', '.join(map(str, shape))}] holds {per_sample} values per sample; the input {_fmt(dims)} holds {factor * row}",
            hint=hint,
        )


@op("reshape", positional="shape", check=_check_reshape, folds=True)
def _reshape(inputs: list[Any], shape: list[int | str]) -> Call:
    """Reshape each sample to `shape`, the batch kept; `[64B, 7, 7, 96]` writes it: windows into samples."""
    if shape and isinstance(shape[0], str):  # the batch written: the -1 in its place is B * 64 (checked)
        return torch.reshape, (inputs[0], (-1, *shape[1:])), {}
    if -1 in shape:
        return nsf.reshape_batch, (inputs[0], tuple(shape)), {}
    return torch.reshape, (inputs[0], (-1, *shape)), {}


OPS.add("view", OPS["reshape"])


@op("permute", positional="dims")
def _permute(inputs: list[Any], dims: list[int]) -> Call:
    """Permute dims (torch semantics: dim 0 is the batch)."""
    return torch.permute, (inputs[0], tuple(dims)), {}


@op("transpose")
def _transpose(inputs: list[Any], dim0: int, dim1: int) -> Call:
    """Swap two dims (torch semantics)."""
    return torch.transpose, (inputs[0], dim0, dim1), {}


@op("squeeze", positional="dim")
def _squeeze(inputs: list[Any], dim: int) -> Call:
    """Remove a size-1 dim (torch semantics: dim 0 is the batch)."""
    return torch.squeeze, (inputs[0], dim), {}


@op("unsqueeze", positional="dim")
def _unsqueeze(inputs: list[Any], dim: int) -> Call:
    """Insert a size-1 dim, e.g. a scalar input (B,) -> (B, 1) with `unsqueeze: 1`."""
    return torch.unsqueeze, (inputs[0], dim), {}


@op("contiguous")
def _contiguous(inputs: list[Any]) -> Call:
    """Make the tensor contiguous in memory."""
    return nsf.contiguous, (inputs[0],), {}


@op("item", positional="index")
def _item(inputs: list[Any], index: int) -> Call:
    """Pick element `index` of a tuple output (e.g. LSTM's output sequence is item 0)."""
    return operator.getitem, (inputs[0], index), {}


@op("select")
def _select(inputs: list[Any], dim: int, index: int) -> Call:
    """Select one index along a dim, removing it (e.g. the last LSTM step: dim 1, index -1)."""
    return torch.select, (inputs[0], dim, index), {}


@op("narrow")
def _narrow(inputs: list[Any], dim: int, start: int, length: int) -> Call:
    """Keep `length` entries of `dim` starting at `start`."""
    return torch.narrow, (inputs[0], dim, start, length), {}


@op("chunk")
def _chunk(inputs: list[Any], chunks: int, dim: int = 1) -> Call:
    """Split into `chunks` pieces along `dim`; pick one with `item`."""
    return torch.chunk, (inputs[0], chunks), {"dim": dim}


# ---- padding and resizing ----------------------------------------------------------------


@op("pad", positional="pad")
def _pad(
    inputs: list[Any],
    pad: list[int],
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant",
    value: float = 0.0,
) -> Call:
    """torch.nn.functional.pad with the same `pad` list (last dim first)."""
    kwargs: dict[str, Any] = {"mode": mode}
    if mode == "constant":
        kwargs["value"] = value
    return F.pad, (inputs[0], list(pad)), kwargs


def _padded_to(shapes: list[tuple[int, ...]], like: str | None = None) -> tuple[int, ...] | None:
    """pad_to's output: dims 0-1 of the input, the rest of `like` (F.pad crops where it is smaller).

    >>> _padded_to([(2, 8, 5, 5), (2, 4, 6, 7)]), _padded_to([(2, 8, 5), (2, 4, 6, 7)])
    ((2, 8, 6, 7), None)
    """
    x, other = shapes
    return (*x[:2], *other[2:]) if len(x) == len(other) >= 2 else None


@op("pad_to", inputs=(2, 2), refs=("like",), shape=_padded_to)
def _pad_to(inputs: list[Any], like: str | None = None) -> Call:
    """Zero-pad dims 2.. to the size of the node `like`, half before, half after (U-Net's Up)."""
    return nsf.pad_to_match, (inputs[0], inputs[1]), {}


@op("expand_batch", inputs=(2, 2), refs=("like",))
def _expand_batch(inputs: list[Any], like: str | None = None) -> Call:
    """Expand dim 0 (size 1) to the batch of `like`: a learnt token (ViT's class token) for every sample."""
    return nsf.expand_to_batch, (inputs[0], inputs[1]), {}


@op("interpolate")
def _interpolate(
    inputs: list[Any],
    size: int | list[int] | None = None,
    scale_factor: float | list[float] | None = None,
    mode: Literal["nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact"] = "nearest",
    align_corners: bool | None = None,
) -> Call:
    """Resize with torch.nn.functional.interpolate."""
    return (
        F.interpolate,
        (inputs[0],),
        {"size": size, "scale_factor": scale_factor, "mode": mode, "align_corners": align_corners},
    )


# ---- reductions and activations ----------------------------------------------------------


def _reduction(name: str, fn: Callable[..., Any], doc: str) -> None:
    def emit(inputs: list[Any], dim: int | list[int], keepdim: bool = False) -> Call:
        return fn, (inputs[0],), {"dim": tuple(dim) if isinstance(dim, list) else dim, "keepdim": keepdim}

    emit.__doc__ = doc
    op(name, positional="dim")(emit)


_reduction("mean", torch.mean, "Mean over `dim` (int or list; torch semantics).")
_reduction("sum", torch.sum, "Sum over `dim`.")
_reduction("amax", torch.amax, "Maximum over `dim`.")
_reduction("amin", torch.amin, "Minimum over `dim`.")
_reduction("logsumexp", torch.logsumexp, "log(sum(exp(x))) over `dim`, computed stably.")
_reduction("std", torch.std, "Standard deviation over `dim` (Bessel-corrected, as torch).")
_reduction("var", torch.var, "Variance over `dim` (Bessel-corrected, as torch).")


@op("norm", positional="dim")
def _norm(inputs: list[Any], dim: int | list[int], p: float = 2.0, keepdim: bool = False) -> Call:
    """The p-norm over `dim` (an int or a list; torch.norm): ConvNeXt v2's global response norm."""
    return torch.norm, (inputs[0],), {"p": p, "dim": tuple(dim) if isinstance(dim, list) else dim, "keepdim": keepdim}


@op("softmax", positional="dim")
def _softmax(inputs: list[Any], dim: int = 1) -> Call:
    """Softmax over `dim` (default 1)."""
    return torch.softmax, (inputs[0], dim), {}


@op("log_softmax", positional="dim")
def _log_softmax(inputs: list[Any], dim: int = 1) -> Call:
    """Log-softmax over `dim` (default 1)."""
    return torch.log_softmax, (inputs[0], dim), {}


@op("layer_norm", inputs=(1, 3))
def _layer_norm(inputs: list[Any], normalized_shape: list[int], eps: float = 1e-5) -> Call:
    """Layer norm over the last dims, times and plus the optional 2nd and 3rd inputs (Parameter nodes)."""
    weight, bias = (list(inputs[1:]) + [None, None])[:2]
    return F.layer_norm, (inputs[0], list(normalized_shape), weight, bias, eps), {}


@op("rms_norm", inputs=(1, 2))
def _rms_norm(inputs: list[Any], normalized_shape: list[int], eps: float | None = None) -> Call:
    """RMS norm over the last dims, times the optional 2nd input (a Parameter node): F.rms_norm."""
    weight = inputs[1] if len(inputs) > 1 else None
    return F.rms_norm, (inputs[0], list(normalized_shape), weight, eps), {}


@op("group_norm", inputs=(1, 3), positional="num_groups")
def _group_norm(inputs: list[Any], num_groups: int, eps: float = 1e-5) -> Call:
    """Group norm over channel groups (dim 1), times and plus the optional 2nd and 3rd inputs (F.group_norm)."""
    weight, bias = (list(inputs[1:]) + [None, None])[:2]
    return F.group_norm, (inputs[0], num_groups, weight, bias, eps), {}


@op("normalize", positional="dim")
def _normalize(inputs: list[Any], dim: int = 1, p: float = 2.0, eps: float = 1e-12) -> Call:
    """Divide by the p-norm along `dim` (at least eps): F.normalize, unit vectors for cosine attention."""
    return F.normalize, (inputs[0],), {"p": p, "dim": dim, "eps": eps}


@op("clamp")
def _clamp(inputs: list[Any], min: float | None = None, max: float | None = None) -> Call:
    """Clamp values into [min, max]."""
    return torch.clamp, (inputs[0],), {"min": min, "max": max}


@op("scale", positional="factor")
def _scale(inputs: list[Any], factor: float) -> Call:
    """Multiply by a constant."""
    return operator.mul, (inputs[0], factor), {}


@op("to", positional="dtype")
def _to(inputs: list[Any], dtype: DType) -> Call:
    """Cast to a dtype (e.g. integer features to float32 before a Linear)."""
    return nsf.cast, (inputs[0], dtype), {}


# ---- element-wise functions, by their torch names -----------------------------------------
# A fixed list of torch functions: a spec names one of these, never an arbitrary attribute of
# torch. Shapes need no rule of their own: the call runs on meta tensors like any other op.

_UNARY: dict[str, tuple[Callable[..., Any], str]] = {
    "abs": (torch.abs, "|x|"),
    "neg": (torch.neg, "-x"),
    "sign": (torch.sign, "-1, 0 or 1 by the sign of x"),
    "exp": (torch.exp, "e ** x"),
    "expm1": (torch.expm1, "e ** x - 1, accurate near 0"),
    "log": (torch.log, "Natural logarithm"),
    "log1p": (torch.log1p, "log(1 + x), accurate near 0"),
    "sqrt": (torch.sqrt, "Square root"),
    "rsqrt": (torch.rsqrt, "1 / sqrt(x)"),
    "square": (torch.square, "x ** 2"),
    "reciprocal": (torch.reciprocal, "1 / x"),
    "sigmoid": (torch.sigmoid, "Logistic sigmoid"),
    "tanh": (torch.tanh, "Hyperbolic tangent"),
    "relu": (torch.relu, "max(x, 0)"),
    "sin": (torch.sin, "Sine"),
    "cos": (torch.cos, "Cosine"),
    "erf": (torch.erf, "Error function"),
    "floor": (torch.floor, "Round down"),
    "ceil": (torch.ceil, "Round up"),
    "round": (torch.round, "Round to nearest"),
    "logical_not": (torch.logical_not, "Boolean not (masks)"),
    # random: torch's global generator draws, so `train.seed` (torch.manual_seed) decides them
    "randn_like": (torch.randn_like, "Standard normal noise of the input's shape and dtype (global RNG)"),
    "rand_like": (torch.rand_like, "Uniform [0, 1) noise of the input's shape and dtype (global RNG)"),
    "bernoulli": (torch.bernoulli, "0/1 draws with the input as probabilities (global RNG)"),
    "zeros_like": (torch.zeros_like, "Zeros of the input's shape and dtype"),
    "ones_like": (torch.ones_like, "Ones of the input's shape and dtype"),
}


def _unary(name: str, fn: Callable[..., Any], doc: str) -> None:
    def emit(inputs: list[Any]) -> Call:
        return fn, (inputs[0],), {}

    emit.__doc__ = f"{doc} (torch.{name})."
    op(name)(emit)


for _name, (_fn, _doc) in _UNARY.items():
    _unary(_name, _fn, _doc)


def _binary(name: str, fn: Callable[..., Any], doc: str) -> None:
    """Comparisons and logic: of two inputs, or of one input and a number (`eq: 0`)."""

    def emit(inputs: list[Any], other: float | None = None) -> Call:
        _two_or_number(name, inputs, other)
        return fn, (inputs[0], other if other is not None else inputs[1]), {}

    emit.__doc__ = f"{doc} (torch.{name})."
    op(name, inputs=(1, 2), positional="other", check=_check_same)(emit)


for _name, (_fn, _doc) in {
    "eq": (torch.eq, "x == other, a bool mask"),
    "ne": (torch.ne, "x != other"),
    "lt": (torch.lt, "x < other"),
    "le": (torch.le, "x <= other"),
    "gt": (torch.gt, "x > other"),
    "ge": (torch.ge, "x >= other"),
    "logical_and": (torch.logical_and, "Boolean and"),
    "logical_or": (torch.logical_or, "Boolean or"),
}.items():
    _binary(_name, _fn, _doc)


@op("pow", inputs=(1, 2), positional="exponent", check=_check_same)
def _pow(inputs: list[Any], exponent: float | None = None) -> Call:
    """x ** exponent: a number (`pow: 2`), or a second input (torch.pow)."""
    _two_or_number("pow", inputs, exponent)
    return torch.pow, (inputs[0], exponent if exponent is not None else inputs[1]), {}


@op("where", inputs=(2, 3), positional="other", check=_check_same)
def _where(inputs: list[Any], other: float | None = None) -> Call:
    """`from: [condition, x, y]`: x where the condition holds, else y (or the number `other`)."""
    if (len(inputs) == 3) == (other is not None):
        raise GraphError(
            "`where` takes [condition, x, y], or [condition, x] and a number `other`",
            hint="e.g. `where: {other: 0.0}` with `from: [mask, x]`",
        )
    return torch.where, (inputs[0], inputs[1], other if other is not None else inputs[2]), {}


@op("randint_like")
def _randint_like(inputs: list[Any], high: int, low: int = 0) -> Call:
    """Random integers in [low, high) of the input's shape (global RNG)."""
    return torch.randint_like, (inputs[0], low, high), {}


@op("full_like", positional="fill_value")
def _full_like(inputs: list[Any], fill_value: float) -> Call:
    """A tensor of the input's shape and dtype filled with `fill_value`."""
    return torch.full_like, (inputs[0], fill_value), {}


# indexing, gathers, masks, einsum, positions: their own module, registered in the same registry
from . import ops_index as _ops_index  # noqa: E402, F401

# ops whose weights are inputs (conv2d, batch_norm): their own module, in the same registry
from . import ops_weights as _ops_weights  # noqa: E402, F401
