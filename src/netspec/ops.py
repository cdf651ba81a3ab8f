"""Registry of tensor operations usable as nodes: merges (cat, add, ...), reshapes, pads.

An op is a small function that, given its input values and validated arguments, returns
``(target, args, kwargs)`` -- the call the generated forward makes. The same description
drives shape inference (the call runs on meta tensors) and code generation (the call
becomes one line of the fx graph), so the two cannot disagree.

Dims count the batch as dim 0, exactly as in torch (``cat`` on channels is ``dim: 1``);
shapes (``reshape``) are per sample, the batch dim is kept.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import torch
import torch.nn.functional as F

from . import functional as nsf
from .errors import ShapeError

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


@dataclass
class OpType:
    """One entry of the op registry."""

    name: str
    emit: Callable[..., Call]          # (inputs, **args) -> (target, args, kwargs)
    min_inputs: int = 1
    max_inputs: int | None = 1
    positional: str | None = None      # the argument a scalar or list value fills
    refs: tuple[str, ...] = ()         # arguments that name other nodes (become inputs)
    check: Callable[..., None] | None = None  # (shapes, **args): nice errors before running
    doc: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # name -> (type, default)


OPS: dict[str, OpType] = {}


def op(name: str, *, inputs: tuple[int, int | None] = (1, 1), positional: str | None = None,
       refs: tuple[str, ...] = (), check: Callable[..., None] | None = None):
    """Decorator registering an op; the function's keyword arguments are the op's arguments."""

    def wrap(fn: Callable[..., Call]) -> Callable[..., Call]:
        import inspect

        sig = inspect.signature(fn)
        params = {n: (p.annotation, p.default) for n, p in list(sig.parameters.items())[1:]}
        OPS[name] = OpType(name, fn, inputs[0], inputs[1], positional, refs, check,
                           (fn.__doc__ or "").strip().split("\n")[0], params)
        return fn

    return wrap


# ---- checks with messages that name the shapes -------------------------------------------

def _fmt(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) if len(shape) else "scalar"


def _check_cat(shapes: list[tuple[int, ...]], dim: int = 1) -> None:
    full = [(-1,) + tuple(s) for s in shapes]  # -1 stands for the batch dim
    ndim = len(full[0])
    if any(len(s) != ndim for s in full):
        raise ShapeError(f"inputs are {' and '.join(_fmt(s) for s in shapes)}; "
                         "they must have the same number of dims")
    d = dim % ndim
    if d == 0:
        raise ShapeError("cannot concatenate along the batch dim 0")
    for s in full[1:]:
        if any(a != b for i, (a, b) in enumerate(zip(full[0], s)) if i != d):
            raise ShapeError(f"inputs are {' and '.join(_fmt(x) for x in shapes)}; "
                             f"they must match outside dim {dim}",
                             hint="pad or crop one side first (e.g. `pad_to: {like: ...}`)")


def _check_same(shapes: list[tuple[int, ...]], **_: Any) -> None:
    try:
        torch.broadcast_shapes(*[(2,) + tuple(s) for s in shapes])
    except RuntimeError:
        raise ShapeError(f"inputs are {' and '.join(_fmt(s) for s in shapes)}; "
                         "they must be equal or broadcastable") from None


def _check_stack(shapes: list[tuple[int, ...]], dim: int = 1) -> None:
    if any(tuple(s) != tuple(shapes[0]) for s in shapes):
        raise ShapeError(f"inputs are {' and '.join(_fmt(s) for s in shapes)}; stack needs equal shapes")


# ---- merges ------------------------------------------------------------------------------

@op("cat", inputs=(2, None), check=_check_cat)
def _cat(inputs: list[Any], dim: int = 1) -> Call:
    """Concatenate the inputs along `dim` (default 1, channels), in the order listed."""
    return torch.cat, (list(inputs),), {"dim": dim}


@op("stack", inputs=(2, None), check=_check_stack)
def _stack(inputs: list[Any], dim: int = 1) -> Call:
    """Stack equal-shaped inputs along a new dim."""
    return torch.stack, (list(inputs),), {"dim": dim}


@op("add", inputs=(2, None), check=_check_same)
def _add(inputs: list[Any]) -> Call:
    """Element-wise sum of the inputs (broadcasting), e.g. a residual connection."""
    if len(inputs) == 2:
        return operator.add, tuple(inputs), {}
    return nsf.add_n, tuple(inputs), {}


@op("mul", inputs=(2, None), check=_check_same)
def _mul(inputs: list[Any]) -> Call:
    """Element-wise product of the inputs (broadcasting), e.g. gating or attention."""
    if len(inputs) == 2:
        return operator.mul, tuple(inputs), {}
    return nsf.mul_n, tuple(inputs), {}


@op("sub", inputs=(2, 2), check=_check_same)
def _sub(inputs: list[Any]) -> Call:
    """First input minus the second."""
    return operator.sub, tuple(inputs), {}


@op("div", inputs=(2, 2), check=_check_same)
def _div(inputs: list[Any]) -> Call:
    """First input divided by the second."""
    return operator.truediv, tuple(inputs), {}


@op("matmul", inputs=(2, 2))
def _matmul(inputs: list[Any]) -> Call:
    """Matrix product of the two inputs (torch.matmul)."""
    return torch.matmul, tuple(inputs), {}


@op("maximum", inputs=(2, 2), check=_check_same)
def _maximum(inputs: list[Any]) -> Call:
    """Element-wise maximum of two inputs."""
    return torch.maximum, tuple(inputs), {}


# ---- reshaping ---------------------------------------------------------------------------

@op("flatten", positional="start_dim")
def _flatten(inputs: list[Any], start_dim: int = 1, end_dim: int = -1) -> Call:
    """Flatten dims start_dim..end_dim (default: everything but the batch)."""
    return torch.flatten, (inputs[0],), {"start_dim": start_dim, "end_dim": end_dim}


@op("reshape", positional="shape")
def _reshape(inputs: list[Any], shape: list[int]) -> Call:
    """Reshape each sample to `shape` (per sample; the batch dim is kept)."""
    if -1 in shape:
        return nsf.reshape_batch, (inputs[0], tuple(shape)), {}
    return torch.reshape, (inputs[0], (-1, *shape)), {}


OPS["view"] = OPS["reshape"]


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
def _pad(inputs: list[Any], pad: list[int], mode: Literal["constant", "reflect", "replicate", "circular"] = "constant",
         value: float = 0.0) -> Call:
    """torch.nn.functional.pad with the same `pad` list (last dim first)."""
    kwargs: dict[str, Any] = {"mode": mode}
    if mode == "constant":
        kwargs["value"] = value
    return F.pad, (inputs[0], list(pad)), kwargs


@op("pad_to", inputs=(2, 2), refs=("like",))
def _pad_to(inputs: list[Any], like: str | None = None) -> Call:
    """Zero-pad dims 2.. to the size of the node `like`, half before, half after (U-Net's Up)."""
    return nsf.pad_to_match, (inputs[0], inputs[1]), {}


@op("interpolate")
def _interpolate(inputs: list[Any], size: int | list[int] | None = None,
                 scale_factor: float | list[float] | None = None,
                 mode: Literal["nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact"] = "nearest",
                 align_corners: bool | None = None) -> Call:
    """Resize with torch.nn.functional.interpolate."""
    return F.interpolate, (inputs[0],), {"size": size, "scale_factor": scale_factor, "mode": mode,
                                         "align_corners": align_corners}


# ---- reductions and activations ----------------------------------------------------------

def _reduction(name: str, fn: Callable[..., Any], doc: str) -> None:
    def emit(inputs: list[Any], dim: int | list[int], keepdim: bool = False) -> Call:
        return fn, (inputs[0],), {"dim": tuple(dim) if isinstance(dim, list) else dim, "keepdim": keepdim}

    emit.__doc__ = doc
    op(name, positional="dim")(emit)


_reduction("mean", torch.mean, "Mean over `dim` (int or list; torch semantics).")
_reduction("sum", torch.sum, "Sum over `dim`.")
_reduction("amax", torch.amax, "Maximum over `dim`.")


@op("softmax", positional="dim")
def _softmax(inputs: list[Any], dim: int = 1) -> Call:
    """Softmax over `dim` (default 1)."""
    return torch.softmax, (inputs[0], dim), {}


@op("log_softmax", positional="dim")
def _log_softmax(inputs: list[Any], dim: int = 1) -> Call:
    """Log-softmax over `dim` (default 1)."""
    return torch.log_softmax, (inputs[0], dim), {}


@op("clamp")
def _clamp(inputs: list[Any], min: float | None = None, max: float | None = None) -> Call:
    """Clamp values into [min, max]."""
    return torch.clamp, (inputs[0],), {"min": min, "max": max}


@op("scale", positional="factor")
def _scale(inputs: list[Any], factor: float) -> Call:
    """Multiply by a constant."""
    return operator.mul, (inputs[0], factor), {}


@op("to", positional="dtype")
def _to(inputs: list[Any], dtype: Literal["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"]) -> Call:
    """Cast to a dtype (e.g. integer features to float32 before a Linear)."""
    return nsf.cast, (inputs[0], dtype), {}


def op_registry() -> dict[str, OpType]:
    """All ops by name."""
    return OPS
