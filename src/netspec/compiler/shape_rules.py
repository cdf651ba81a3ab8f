"""Output shapes by formula for the most common layers: a fast path beside the meta run.

Shape inference runs every layer on meta tensors (``dims.py``). For convolutions, pooling,
batch norm, linear and several activations that run goes through torch's Python meta functions,
whose first ``torch._check`` imports sympy and whose wrappers import ``torch._dynamo``: about
2 s of a ``netspec validate`` that otherwise costs little more than ``import torch``. For these
layers (and, through ``OpType.shape``, the ops ``cat`` and ``pad_to``) the output size is a
formula, so a rule computes it instead.

A rule only answers where it is sure: the usual argument forms, the input rank and channels the
layer expects, a positive output size. Anything else (an unbatched input, a reflect padding, a
dtype that differs from the weights') gets ``None``, and the layer runs on meta as before, so
torch's own error message still reaches the user (a convolution's kernel larger than its padded
input is refused by the rule, in torch's words: torch 2.11's meta run returns an empty output).

Arguments that torch refuses whatever the input (a stride of 0, a negative padding, a dilation
below one, a kernel of size 0) are a rule's ``check``: ``argument_refusal`` names the argument
and says why, before any shape is computed. The meta run cannot be left to find them: torch's
meta kernels accept several that its CPU and CUDA kernels refuse (a negative padding, a zero
dilation or kernel), and divide by a zero stride. The registry-wide test
(``tests/compiler/test_shape_rules.py``) runs every rule and check against real CPU forwards over a grid
of arguments and sizes that includes each refused value.

>>> from torch import nn
>>> output_shape(nn.Conv2d(3, 8, kernel_size=3, stride=2), (2, 3, 32, 32))
(2, 8, 15, 15)
>>> output_shape(nn.Conv2d(3, 8, kernel_size=3), (2, 4, 32, 32))  # torch refuses: the rule says why
Refusal(arg='', message='expected input with 3 channels, got 4')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ..errors import ShapeError
from ..nodes.registry import Registry
from .dims import Probe, per_sample

if TYPE_CHECKING:
    from ..nodes.ops import OpType

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Refusal:
    """What torch refuses: an argument whatever the input (``arg`` names it), or an input
    (``arg`` is empty), and why."""

    arg: str
    message: str


RuleFn = Callable[[nn.Module, Shape], "Shape | Refusal | None"]


CheckFn = Callable[[nn.Module], "Refusal | None"]


@dataclass(frozen=True)
class ShapeRule:
    """A layer class, the function giving its output shape for an input shape (or None), and
    the check of the arguments torch refuses for any input (or None)."""

    cls: type[nn.Module]
    fn: RuleFn
    check: CheckFn | None = None


SHAPE_RULES: Registry[ShapeRule] = Registry("shape rule")


def shape_rule(*classes: type[nn.Module], check: CheckFn | None = None) -> Callable[[RuleFn], RuleFn]:
    """Register ``fn`` as the shape rule of each of ``classes`` (under the class name), with
    ``check`` as its argument check."""

    def deco(fn: RuleFn) -> RuleFn:
        for cls in classes:
            SHAPE_RULES.add(cls.__name__, ShapeRule(cls, fn, check))
        return fn

    return deco


def _rule_of(module: nn.Module) -> ShapeRule | None:
    rule = SHAPE_RULES.get(type(module).__name__)
    return rule if rule is not None and type(module) is rule.cls else None  # a custom layer may share a torch name


def argument_refusal(module: nn.Module) -> Refusal | None:
    """Why torch refuses ``module``'s arguments for every input, or None.

    >>> argument_refusal(nn.Conv2d(3, 8, kernel_size=3, stride=0))
    Refusal(arg='stride', message='stride must be positive, got 0')
    >>> argument_refusal(nn.Conv2d(3, 8, kernel_size=3)) is None
    True
    """
    rule = _rule_of(module)
    return rule.check(module) if rule is not None and rule.check is not None else None


def output_shape(module: nn.Module, shape: Shape) -> Shape | Refusal | None:
    """The output shape of ``module`` for a batched input of ``shape``; a Refusal where torch
    refuses that input (and its meta run would not say so); None where there is no rule, the
    arguments are refused, or the rule is not sure (the caller runs the module on meta).

    >>> output_shape(nn.ConvTranspose2d(4, 2, kernel_size=2), (2, 3, 8, 8))
    Refusal(arg='', message='expected input with 4 channels, got 3')
    """
    rule = _rule_of(module)
    if rule is None or (rule.check is not None and rule.check(module) is not None):
        return None
    out = rule.fn(module, tuple(shape))
    return None if isinstance(out, tuple) and min(out, default=0) < 0 else out


def probe_by_rule(module: nn.Module, ins: list[Probe], kw: dict[str, Probe]) -> Probe | None:
    """The output probe of a one-tensor call from the layer's shape rule, or None; a ShapeError
    (without a location: the caller adds it) where the rule refuses the input.

    >>> from netspec.compiler.dims import input_probe
    >>> out = probe_by_rule(nn.MaxPool2d(2), [input_probe((4, 8, 8), torch.float32)], {})
    >>> tuple(out.value.shape), tuple(out.twin.shape)
    ((2, 4, 4, 4), (3, 4, 4, 4))
    """
    if kw or len(ins) != 1 or not _all_tensors(ins):
        return None
    dtype = ins[0].value.dtype
    # torch refuses integer input and weights of another dtype: let it say so
    if not dtype.is_floating_point or any(
        t.dtype != dtype for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()
    ):
        return None
    return _probe(lambda shapes: output_shape(module, shapes[0]), ins)


def op_probe_by_rule(entry: OpType, ins: list[Probe], kwargs: dict[str, Any]) -> Probe | None:
    """An op's output probe from its shape rule (``OpType.shape``), or None (no rule, or unsure:
    the caller runs it on meta).

    >>> from netspec.compiler.dims import input_probe
    >>> from netspec.nodes.ops import OPS
    >>> x = input_probe((4, 8), torch.float32)
    >>> tuple(op_probe_by_rule(OPS["cat"], [x, x], {}).twin.shape)
    (3, 8, 8)
    """
    rule = entry.shape
    if rule is None or not _all_tensors(ins) or len({p.value.dtype for p in ins}) > 1:  # mixed: torch promotes
        return None
    return _probe(lambda shapes: rule(shapes, **kwargs), ins)


def _all_tensors(ins: list[Probe]) -> bool:
    return all(isinstance(p.value, torch.Tensor) and isinstance(p.twin, torch.Tensor) for p in ins)


def _probe(rule: Callable[[list[Shape]], Shape | Refusal | None], ins: list[Probe]) -> Probe | None:
    """``rule`` (the input shapes -> the output's) at both batch sizes, as meta tensors of the
    first input's dtype; None where it declines at either, a ShapeError where it refuses."""
    value = rule([tuple(p.value.shape) for p in ins])
    twin = rule([tuple(p.twin.shape) for p in ins])
    for out in (value, twin):
        if isinstance(out, Refusal):
            shown = " and ".join(per_sample(p.value, p.twin) for p in ins)
            raise ShapeError(f"cannot take input {shown}: {out.message}")
    if value is None or twin is None or isinstance(value, Refusal) or isinstance(twin, Refusal):
        return None  # declined (a Refusal was raised above)
    if min((*value, *twin), default=0) < 0:  # never a tensor of size < 0
        return None
    dtype = ins[0].value.dtype
    return Probe(torch.empty(value, dtype=dtype, device="meta"), torch.empty(twin, dtype=dtype, device="meta"))


def _per_dim(value: object, n: int) -> tuple[int, ...] | None:
    """An int or n-sequence argument as n ints (None for any other form)."""
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None


def _refuse(module: nn.Module, rules: list[tuple[str, Callable[[int], bool], str]]) -> Refusal | None:
    """The first argument ``(name, ok, what it must be)`` with a value that is not ``ok``, or not
    a whole number (torch's kernels take ints only: a stride of 1.0 is refused for any input).

    >>> _refuse(nn.Conv2d(3, 4, 3, stride=1.0), [("stride", _positive, "positive")])
    Refusal(arg='stride', message='stride must be a whole number, got 1.0')
    """
    for arg, ok, must in rules:
        value = getattr(module, arg, None)
        if value is None or isinstance(value, str):  # absent, or padding="same"/"valid"
            continue
        shown = value[0] if isinstance(value, tuple) and len(set(value)) == 1 else value
        items = value if isinstance(value, (tuple, list)) else (value,)
        if not all(isinstance(v, int) for v in items):
            return Refusal(arg, f"{arg} must be a whole number, got {shown}")
        if not all(ok(v) for v in items):
            return Refusal(arg, f"{arg} must be {must}, got {shown}")
    return None


def _positive(v: int) -> bool:
    return v >= 1


def _non_negative(v: int) -> bool:
    return v >= 0


def _conv_input_refusal(m: nn.modules.conv._ConvNd, shape: Shape) -> Refusal | None:
    """The inputs a convolution refuses on the CPU and CUDA that its meta run may accept:
    other channels (a transposed convolution's meta kernel does not look), an empty spatial dim."""
    n = len(m.kernel_size)
    if len(shape) in (n + 1, n + 2):  # unbatched or batched
        if shape[-n - 1] != m.in_channels:
            return Refusal("", f"expected input with {m.in_channels} channels, got {shape[-n - 1]}")
        if len(shape) == n + 2 and min(shape[2:]) == 0 < min(shape[:2]):
            return Refusal("", "an input of size 0 along a spatial dim cannot be convolved")
    return None


def _spatial(module: nn.Module, shape: Shape, n: int, channels: int | None) -> Shape | None:
    """The n spatial sizes of a batched (B, C, *spatial) input, or None for another rank,
    other channels or an empty dim."""
    if len(shape) != n + 2 or (channels is not None and shape[1] != channels) or min(shape) < 1:
        return None
    return shape[2:]


# ---- linear ----------------------------------------------------------------------------------


@shape_rule(nn.Linear)
def linear(m: nn.Module, shape: Shape) -> Shape | None:
    """(*, in_features) -> (*, out_features).

    >>> linear(nn.Linear(8, 3), (2, 5, 8)), linear(nn.Linear(8, 3), (2, 5))
    ((2, 5, 3), None)
    """
    assert isinstance(m, nn.Linear)
    if not shape or shape[-1] != m.in_features:
        return None
    return (*shape[:-1], m.out_features)


# ---- convolutions ----------------------------------------------------------------------------


def _conv_refusal(m: nn.Module) -> Refusal | None:
    """torch's convolutions refuse these for any input (on the CPU and CUDA; the meta kernels
    accept some of them, and divide by a zero stride).

    >>> _conv_refusal(nn.ConvTranspose1d(2, 2, 3, stride=2, output_padding=2))
    Refusal(arg='output_padding', message='output_padding must be smaller than stride or dilation, got 2')
    """
    assert isinstance(m, nn.modules.conv._ConvNd)
    # dilation 0: torch's transposed convolutions take it in a few cases (a kernel of size 1, on
    # some ranks) and refuse it in the rest; it means nothing, and netspec refuses it always
    refusal = _refuse(
        m,
        [
            ("kernel_size", _positive, "positive"),
            ("stride", _positive, "positive"),
            ("dilation", _positive, "positive"),
            ("padding", _non_negative, "0 or more"),
            ("output_padding", _non_negative, "0 or more"),
        ],
    )
    if (
        refusal is None
        and m.transposed
        and any(op >= s and op >= d for op, s, d in zip(m.output_padding, m.stride, m.dilation))
    ):
        shown = m.output_padding[0] if len(set(m.output_padding)) == 1 else m.output_padding
        refusal = Refusal("output_padding", f"output_padding must be smaller than stride or dilation, got {shown}")
    return refusal


@shape_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d, check=_conv_refusal)
def conv(m: nn.Module, shape: Shape) -> Shape | Refusal | None:
    """(B, C_in, *L) -> (B, C_out, *L'), L' = (L + 2p - d(k - 1) - 1) // s + 1, for zero padding.

    >>> conv(nn.Conv1d(2, 4, kernel_size=5, padding="same"), (2, 2, 9))
    (2, 4, 9)
    """
    assert isinstance(m, nn.modules.conv._ConvNd)
    n = len(m.kernel_size)
    sizes = _spatial(m, shape, n, m.in_channels)
    if (refusal := _conv_input_refusal(m, shape)) is not None:
        return refusal
    if sizes is None:
        return None
    if m.padding == "same":
        return (shape[0], m.out_channels, *sizes) if m.padding_mode == "zeros" else None
    padding = (0,) * n if m.padding == "valid" else _per_dim(m.padding, n)
    if padding is None:
        return None
    padded = [size + 2 * p for size, p in zip(sizes, padding)]
    reach = [d * (k - 1) + 1 for k, d in zip(m.kernel_size, m.dilation)]
    if any(size < k for size, k in zip(padded, reach)):  # the kernel is larger than the padded input
        # torch's own words; said here because torch 2.11's meta kernels (Conv2d, Conv3d) return
        # an empty output where the CPU refuses
        return Refusal(
            "",
            f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). Kernel size: "
            f"({' x '.join(map(str, reach))}). Kernel size can't be greater than actual input size",
        )
    if m.padding_mode != "zeros" and any(padding):  # reflect/circular have limits of their own
        return None
    out = [(size - k) // s + 1 for size, k, s in zip(padded, reach, m.stride)]
    return (shape[0], m.out_channels, *out)


@shape_rule(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, check=_conv_refusal)
def conv_transpose(m: nn.Module, shape: Shape) -> Shape | Refusal | None:
    """(B, C_in, *L) -> (B, C_out, *L'), L' = (L - 1)s - 2p + d(k - 1) + output_padding + 1.

    >>> conv_transpose(nn.ConvTranspose2d(8, 4, kernel_size=2, stride=2), (2, 8, 5, 7))
    (2, 4, 10, 14)
    """
    assert isinstance(m, nn.modules.conv._ConvTransposeNd)
    n = len(m.kernel_size)
    sizes = _spatial(m, shape, n, m.in_channels)
    padding = _per_dim(m.padding, n)
    if (refusal := _conv_input_refusal(m, shape)) is not None:
        return refusal
    if sizes is None or padding is None:
        return None
    out = []
    for size, k, s, p, d, op in zip(sizes, m.kernel_size, m.stride, padding, m.dilation, m.output_padding):
        if not (op < s or op < d):  # torch: "output padding must be smaller than either stride or dilation"
            return None
        length = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
        if length < 1:
            return None
        out.append(length)
    return (shape[0], m.out_channels, *out)


# ---- pooling ---------------------------------------------------------------------------------

_POOL_DIMS = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3}


def _pooled(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool, kernel_fits: bool) -> int | None:
    """torch's pooling output size (pooling_output_shape), or None where torch refuses;
    ``kernel_fits``: torch also refuses an input smaller than the kernel, padding or not."""
    # 2p > k: torch's "pad should be at most half of kernel size"
    if k < 1 or s < 1 or d < 1 or 2 * p > k or (kernel_fits and size < k):
        return None
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    return out if out >= 1 else None


def _pool_refusal(m: nn.Module) -> Refusal | None:
    """torch's pooling refuses these for any input: a kernel, stride or dilation below one, a
    negative padding, or a padding over half the kernel.

    >>> _pool_refusal(nn.MaxPool2d(2, padding=2))
    Refusal(arg='padding', message='padding must be at most half of kernel_size (2), got 2')
    """
    n = _POOL_DIMS[type(m)]
    refusal = _refuse(
        m,
        [
            ("kernel_size", _positive, "positive"),
            ("stride", _positive, "positive"),
            ("dilation", _positive, "positive"),
            ("padding", _non_negative, "0 or more"),
        ],
    )
    k, p = _per_dim(m.kernel_size, n), _per_dim(m.padding, n)
    if refusal is None and k is not None and p is not None and any(2 * pi > ki for pi, ki in zip(p, k)):
        refusal = Refusal("padding", f"padding must be at most half of kernel_size ({m.kernel_size}), got {m.padding}")
    return refusal


def _pool(m: nn.Module, shape: Shape, dilation: int | Sequence[int], kernel_fits: bool = False) -> Shape | None:
    n = _POOL_DIMS[type(m)]
    sizes = _spatial(m, shape, n, None)
    k = _per_dim(m.kernel_size, n)
    s = _per_dim(m.stride if m.stride is not None else m.kernel_size, n)
    p, d = _per_dim(m.padding, n), _per_dim(dilation, n)
    if sizes is None or k is None or s is None or p is None or d is None:
        return None
    out = [_pooled(*dims, bool(m.ceil_mode), kernel_fits) for dims in zip(sizes, k, s, p, d)]
    known = [o for o in out if o is not None]
    if len(known) < len(out):
        return None
    return (*shape[:2], *known)


@shape_rule(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, check=_pool_refusal)
def max_pool(m: nn.Module, shape: Shape) -> Shape | None:
    """(B, C, *L) -> (B, C, *L'); with ``return_indices`` the output is a pair: no rule.

    >>> max_pool(nn.MaxPool2d(3, stride=2, ceil_mode=True), (2, 4, 8, 8))
    (2, 4, 4, 4)
    """
    assert isinstance(m, nn.modules.pooling._MaxPoolNd)
    if m.return_indices:
        return None
    return _pool(m, shape, m.dilation)


@shape_rule(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, check=_pool_refusal)
def avg_pool(m: nn.Module, shape: Shape) -> Shape | None:
    """(B, C, *L) -> (B, C, *L'); avg_pool3d refuses an input smaller than its kernel.

    >>> avg_pool(nn.AvgPool2d(2), (2, 4, 7, 8)), avg_pool(nn.AvgPool3d(2, padding=1), (2, 4, 1, 4, 4))
    ((2, 4, 3, 4), None)
    """
    assert isinstance(m, nn.modules.pooling._AvgPoolNd)
    return _pool(m, shape, 1, kernel_fits=type(m) is nn.AvgPool3d)


# ---- normalisation ---------------------------------------------------------------------------

_BATCH_NORM_RANKS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


@shape_rule(*_BATCH_NORM_RANKS)
def batch_norm(m: nn.Module, shape: Shape) -> Shape | None:
    """The input's shape, for the ranks the class takes and ``num_features`` channels.

    >>> batch_norm(nn.BatchNorm1d(4), (2, 4)), batch_norm(nn.BatchNorm2d(4), (2, 4, 3))
    ((2, 4), None)
    """
    assert isinstance(m, nn.modules.batchnorm._BatchNorm)
    if len(shape) not in _BATCH_NORM_RANKS[type(m)] or shape[1] != m.num_features or min(shape) < 1:
        return None
    return shape


# ---- element-wise ----------------------------------------------------------------------------

_ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardshrink,
    nn.Softshrink,
    nn.Tanhshrink,
    nn.Softsign,
    nn.Softplus,
    nn.LogSigmoid,
    nn.Threshold,
    nn.Identity,
    nn.Dropout,
    nn.AlphaDropout,
)


@shape_rule(*_ELEMENTWISE)
def elementwise(m: nn.Module, shape: Shape) -> Shape | None:
    """The input's shape: activations and dropout act on each element alone.

    >>> elementwise(nn.ReLU(), (2, 3, 4))
    (2, 3, 4)
    """
    return shape


@shape_rule(nn.GELU)
def gelu(m: nn.Module, shape: Shape) -> Shape | None:
    """The input's shape; an ``approximate`` torch does not know is left to torch to refuse."""
    assert isinstance(m, nn.GELU)
    return shape if m.approximate in ("none", "tanh") else None


@shape_rule(nn.Softmax, nn.LogSoftmax, nn.Softmin)
def softmax(m: nn.Module, shape: Shape) -> Shape | Refusal | None:
    """The input's shape, for a ``dim`` inside it (torch's meta run does not check that).

    >>> softmax(nn.Softmax(dim=1), (2, 10)), softmax(nn.Softmax(dim=2), (2, 10))
    ((2, 10), Refusal(arg='', message='dim 2 is out of range for an input of 2 dims (the batch included)'))
    """
    dim = cast("int | None", m.dim)  # Softmax's (LogSoftmax's) dim; torch types module attributes as Tensor | Module
    if dim is None:  # torch picks one (with a warning): let it
        return None
    rank = max(len(shape), 1)  # torch takes dim 0 and -1 of a 0-dim tensor
    if -rank <= dim < rank:
        return shape
    return Refusal("", f"dim {dim} is out of range for an input of {len(shape)} dims (the batch included)")


@shape_rule(nn.PReLU)
def prelu(m: nn.Module, shape: Shape) -> Shape | None:
    """The input's shape; one slope per channel needs dim 1 to be the channels.

    >>> prelu(nn.PReLU(4), (2, 4, 5)), prelu(nn.PReLU(4), (2, 5))
    ((2, 4, 5), None)
    """
    assert isinstance(m, nn.PReLU)
    if m.num_parameters == 1:
        return shape
    return shape if len(shape) >= 2 and shape[1] == m.num_parameters else None
