"""The registry of ``torch.nn.init`` functions a spec may name, shared by the two places that
initialise tensors: ``init:`` rules of the training sections (:mod:`netspec.training.init`) and
declared ``Parameter`` nodes (:mod:`netspec.nodes.parameters`).

>>> sorted(n for n in INIT_FUNCTIONS if n.startswith("kaiming"))
['kaiming_normal_', 'kaiming_uniform_']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .registry import Registry

__all__ = ["INIT_FUNCTIONS"]


def _torch_init_functions(registry: Registry[Callable[..., Any]]) -> None:
    from torch import nn

    for name, fn in vars(nn.init).items():
        if name.endswith("_") and not name.startswith("_") and callable(fn):
            registry.add(name, fn)
    registry.add("sinusoidal_", sinusoidal_)
    registry.add("relative_position_index_", relative_position_index_)


def sinusoidal_(tensor: Any, base: float = 10000.0) -> Any:
    """The Transformer's positional-encoding table, in place, over the last two dims (position,
    feature): sin(p / base ** (2i / d)) at feature 2i, cos at 2i + 1 -- the ``pe`` buffer of
    pytorch/examples' word language model, built the same way (so the values are equal).

    >>> import torch; t = sinusoidal_(torch.empty(3, 4)); t[0].tolist(), round(t[1, 0].item(), 4)
    ([0.0, 1.0, 0.0, 1.0], 0.8415)
    """
    import math

    import torch

    if tensor.dim() < 2:
        raise ValueError("sinusoidal_ fills (positions, features): the tensor needs at least 2 dims")
    length, d = tensor.shape[-2:]
    position = torch.arange(0, length, dtype=torch.float).unsqueeze(1)  # (L, 1)
    div_term = torch.exp(torch.arange(0, d, 2).float() * (-math.log(base) / d))  # (ceil(d / 2),)
    pe = torch.zeros(length, d)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d // 2])
    with torch.no_grad():
        return tensor.copy_(pe.expand_as(tensor))


def relative_position_index_(tensor: Any, window: list[int], class_token: bool = False) -> Any:
    """Swin's and BEiT's relative position index, in place: for each pair of positions (p, q) of
    an h x w window (row-major), the row of the bias table for their offset,
    (dy + h - 1) * (2w - 1) + (dx + w - 1); with ``class_token`` a first row and column for the
    class token (table rows (2h-1)(2w-1), +1, and +2 for the token with itself), as BEiT's. The
    table is (h*w [+1])**2 numbers, laid out in the tensor's shape (flat or square).

    >>> import torch; relative_position_index_(torch.empty(2, 2, dtype=torch.long), [1, 2]).tolist()
    [[1, 0], [2, 1]]
    """
    import torch

    h, w = window
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)  # (2, h*w)
    offsets = coords[:, :, None] - coords[:, None, :]  # (2, h*w, h*w): dy, dx of each pair
    index = (offsets[0] + h - 1) * (2 * w - 1) + offsets[1] + w - 1
    if class_token:
        rows = (2 * h - 1) * (2 * w - 1)
        index = torch.nn.functional.pad(index, [1, 0, 1, 0])
        index[0, :], index[:, 0], index[0, 0] = rows, rows + 1, rows + 2
    if index.numel() != tensor.numel():
        raise ValueError(f"a {h}x{w} window{' and a class token' if class_token else ''} has {index.numel()} pairs")
    if tensor.is_meta:
        return tensor
    with torch.no_grad():
        return tensor.copy_(index.reshape(tensor.shape))


#: init function name -> the in-place function of torch.nn.init (`kaiming_normal_`, `zeros_`, ...), and
#: netspec's `sinusoidal_` (a positional-encoding table) and `relative_position_index_` (Swin's, BEiT's).
INIT_FUNCTIONS: Registry[Callable[..., Any]] = Registry("init function", fill=_torch_init_functions, passed=("tensor",))
