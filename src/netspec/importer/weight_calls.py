"""Functional ``conv2d`` and ``batch_norm`` on a module's own tensors -> the ops of
``nodes/ops_weights.py``.

timm convolves with tensors it holds or computes rather than through a ``Conv2d`` layer:
``StdConv2d`` and ``ScaledStdConv2d`` standardise their weight with
``F.batch_norm(self.weight.reshape(1, out, -1), None, None, training=True)`` first; ``BlurPool2d``
convolves each channel with a fixed filter (a buffer); a hand-written TensorFlow-SAME convolution
pads for the input size and calls ``F.conv2d(x, self.weight, ...)`` (timm's own ``Conv2dSame``
is read as a ``Conv2d``: ``same_pad.py``). The weight reads as a ``Parameter`` node (or ``Buffer``) under its own key, so
the keys stay, and the call as the op with that node as an input.
"""

from __future__ import annotations

from typing import Any

from .call import Call, Result, const
from .errors import ImportFailed
from .functions import affine_inputs, handles
from .ir import Ref


@handles("torch.conv2d")
def _conv2d(
    c: Call,
    input: Ref,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
) -> Result:
    """``F.conv2d(x, w, b, stride, padding, dilation, groups)``: the conv2d op, the kernel (and the
    bias) as inputs."""
    if not isinstance(weight, Ref) or not (bias is None or isinstance(bias, Ref)):
        raise ImportFailed("`conv2d` with a kernel that is no tensor has no spec op", where=c.where)
    if weight.batch_dims or (bias is not None and bias.batch_dims):
        raise ImportFailed("`conv2d` with a kernel computed from the batch has no spec op", where=c.where)
    inputs: list[Ref | str] = [input, weight, *([bias] if bias is not None else [])]
    return c.op(
        "conv2d",
        inputs,
        stride=_single(const(c, stride, "a stride")),
        padding=_single(const(c, padding, "a padding")),
        dilation=_single(const(c, dilation, "a dilation")),
        groups=const(c, groups, "a number of groups"),
    )


def _single(value: Any) -> Any:
    """``[2, 2]`` as ``2`` (what a spec writes for a square kernel's stride).

    >>> _single([2, 2]), _single([1, 2]), _single(3)
    (2, [1, 2], 3)
    """
    if isinstance(value, list) and value and all(v == value[0] for v in value):
        return value[0]
    return value


@handles("F.batch_norm")
def _batch_norm(
    c: Call,
    input: Ref,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Result:
    """By the input's own statistics without running ones (weight standardisation: the op with
    ``use_input_stats``), or by the running statistics in eval mode; a call that would update
    running statistics is a ``BatchNorm`` layer's work and refused."""
    stats = [t for t in (running_mean, running_var) if t is not None]
    if training and stats:
        raise ImportFailed(
            "`batch_norm` in training mode with running statistics updates them: a spec writes a BatchNorm layer",
            where=c.where,
        )
    if not training and len(stats) != 2:
        raise ImportFailed("`batch_norm` in eval mode without running statistics fails in torch", where=c.where)
    if training and input.batch_dims:
        raise ImportFailed(
            "`batch_norm` by the statistics of a batch has no spec op (a spec writes a BatchNorm layer)",
            where=c.where,
        )
    inputs = [input, *stats, *affine_inputs(c, "batch_norm", input, weight, bias)[1:]]
    return c.op("batch_norm", inputs, use_input_stats=bool(training), eps=const(c, eps, "a number"))
