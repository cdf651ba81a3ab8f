"""Ops whose weights are inputs: a convolution with a kernel another node gives (``conv2d``) and a
batch norm with its statistics and affine tensors as inputs (``batch_norm``).

A ``Conv2d`` layer holds its own kernel; these ops take it from a node, so a module that changes
its weight before convolving reads as the spec's nodes do it. timm's weight-standardised
convolution (``StdConv2d``, used by BiT and NFNet) is::

    - weight: {Parameter: {shape: [64, 3, 7, 7]}}
    - rows_whole: {reshape: [1, 64, 147], from: weight}         # reshape keeps dim 0: (1, 1, 64, 147)
    - rows: {squeeze: 0}                                        # (1, 64, 147): a row per filter
    - standard: {batch_norm: {use_input_stats: true, eps: 1.0e-6}}   # each to mean 0, variance 1
    - kernel_whole: {reshape: [64, 3, 7, 7]}
    - kernel: {squeeze: 0}                                      # (64, 3, 7, 7) again
    - conv: {conv2d: {stride: 2, padding: 3}, from: [x, kernel]}

and a blur-pool's fixed filter (a ``Buffer``) convolves each channel with ``groups``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch.nn.functional as F

from ..errors import GraphError, ShapeError
from .op_registry import Call, Dims, _fmt, op


def _check_conv(shapes: list[Dims], groups: int = 1, **_: Any) -> None:
    """The kernel is (out, in / groups, kh, kw) for an input of ``in`` channels (dim 1)."""
    x, kernel = shapes[0], shapes[1]
    if len(x) != 4 or len(kernel) != 4:
        raise ShapeError(
            f"`conv2d` takes a (B, C, H, W) input and an (out, C / groups, kh, kw) kernel, "
            f"got {_fmt(x)} and {_fmt(kernel)}"
        )
    if isinstance(x[1], int) and isinstance(kernel[1], int) and x[1] != kernel[1] * groups:
        raise ShapeError(
            f"the input has {x[1]} channels and the kernel {_fmt(kernel)} takes {kernel[1]} per group "
            f"with groups={groups}: they must agree (C = kernel.shape[1] * groups)"
        )


@op("conv2d", inputs=(2, 3), check=_check_conv)
def _conv2d(
    inputs: list[Any],
    stride: int | list[int] = 1,
    padding: int | list[int] | Literal["same", "valid"] = 0,
    dilation: int | list[int] = 1,
    groups: int = 1,
) -> Call:
    """2-D convolution of the 1st input by the kernel the 2nd gives, plus the optional 3rd (a bias): F.conv2d."""
    bias = inputs[2] if len(inputs) > 2 else None
    return F.conv2d, (inputs[0], inputs[1], bias, _pair(stride), _padding(padding), _pair(dilation), groups), {}


def _pair(value: int | list[int]) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _padding(value: int | list[int] | str) -> Any:
    return value if isinstance(value, str) else _pair(value)


@op("batch_norm", inputs=(1, 5))
def _batch_norm(inputs: list[Any], use_input_stats: bool = False, eps: float = 1e-5) -> Call:
    """Batch norm over dim 1 (F.batch_norm) by [x, mean, var, weight, bias], or by x's own statistics.

    With ``use_input_stats`` the inputs are [x], [x, weight] or [x, weight, bias]; else the 2nd
    and 3rd are the running mean and variance, the optional 4th and 5th the weight and bias.
    Running statistics are never updated."""
    if use_input_stats:
        if len(inputs) > 3:
            raise GraphError("`batch_norm` with use_input_stats takes [x], [x, weight] or [x, weight, bias]")
        mean = var = None
        weight, bias = (list(inputs[1:]) + [None, None])[:2]
    else:
        if len(inputs) < 3:
            raise GraphError(
                "`batch_norm` without use_input_stats takes [x, running_mean, running_var] (and weight, bias)"
            )
        mean, var = inputs[1], inputs[2]
        weight, bias = (list(inputs[3:]) + [None, None])[:2]
    return F.batch_norm, (inputs[0], mean, var, weight, bias, use_input_stats, 0.0, eps), {}
