"""Item assignment and new constant tensors in a traced forward -> the ``put`` op and Buffer nodes.

``t[:, :, 1:, 1:] = v`` reaches the converter as a ``concrete.put`` call (fx records calls, not
statements): the ``put`` op, a copy of ``t`` with ``v`` written at the subscript, which later
reads of ``t`` see (``convert.py`` treats it as an in-place call). A tensor made from sizes alone
(``x.new_zeros((H, W))``, Swin's shifted-window mask before its slices are numbered) does not
depend on the input's values: at the declared input size it is a constant, a Buffer node in no
state_dict.
"""

from __future__ import annotations

from typing import Any

import torch

from .buffers import buffer_node
from .call import Call, Result, const
from .errors import ImportFailed
from .functions import handles
from .ir import Ref
from .tensor_ops import _part


@handles("netspec.importer.concrete.put")
def _put(c: Call, tensor: Ref, index: Any, value: Any) -> Result:
    """``tensor[index] = value``: ``put: "[...]"`` from the tensor and the value (or ``value: 3``)."""
    parts = index if isinstance(index, tuple) else (index,)
    if not isinstance(tensor, Ref) or any(isinstance(p, (Ref, list)) for p in parts):
        raise ImportFailed("item assignment at indices held in a tensor or list has no spec op", where=c.where)
    first = parts[0] if parts else slice(None)
    if tensor.batch_dims and not (tensor.batch_dims == [0] and first in (slice(None), Ellipsis)):
        raise ImportFailed(
            "item assignment into the batch dim has no spec op (it would mix the samples)", where=c.where
        )
    at = "[" + ", ".join(_part(c, p) for p in parts) + "]"
    if isinstance(value, Ref):
        return c.op("put", [tensor, value], at=at)
    number = const(c, value, "a number")
    if not isinstance(number, (int, float)):
        raise ImportFailed(f"item assignment of {value!r} has no spec op", where=c.where)
    return c.op("put", [tensor], at=at, value=float(number))


_FILL = {"zeros": 0, "ones": 1}


@handles(
    "Tensor.new_zeros", "Tensor.new_ones", "Tensor.new_full", "torch.full"
)  # torch.zeros, ones: tensor_ops._filled
def _new(c: Call, *args: Any, **kwargs: Any) -> Result:
    """A tensor of one number with a shape from sizes: a Buffer node (its shape and dtype are the
    traced value's), where the shape does not follow the batch size."""
    first, second = c.result.meta
    kind = c.key.rpartition(".")[2].removeprefix("new_")
    fill = _FILL.get(kind, kwargs.get("fill_value", args[-1] if args else None))
    if first != second:
        raise ImportFailed(
            f"`{c.key}` of a size that follows the batch: a tensor made from sizes is a constant of the spec, "
            "the same for every batch",
            where=c.where,
            hint="make it of the sizes of one sample and let it broadcast over the batch",
        )
    if isinstance(fill, Ref) or not isinstance(fill, (int, float, bool)):
        raise ImportFailed(f"`{c.key}` filled with a tensor's value has no spec op", where=c.where)
    value = torch.full(first.shape, fill, dtype=first.dtype)
    return buffer_node(c.name, value, False, c.where, c.notes if c.notes is not None else [])


@handles("Tensor.clone", "torch.clone")
def _clone(c: Call, input: Ref, memory_format: Any = None) -> Result:
    """``x.clone()``: ``x`` itself, since spec ops never change their inputs (``put`` writes a copy)."""
    return input
