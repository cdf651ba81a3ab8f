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


#: init function name -> the in-place function of torch.nn.init (`kaiming_normal_`, `zeros_`, ...).
INIT_FUNCTIONS: Registry[Callable[..., Any]] = Registry("init function", fill=_torch_init_functions, passed=("tensor",))
