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


#: init function name -> the in-place function of torch.nn.init (`kaiming_normal_`, `zeros_`, ...), and
#: netspec's `sinusoidal_` (a positional-encoding table).
INIT_FUNCTIONS: Registry[Callable[..., Any]] = Registry("init function", fill=_torch_init_functions, passed=("tensor",))
