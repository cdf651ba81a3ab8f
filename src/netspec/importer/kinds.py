"""What a module is to the importer: a torch.nn layer kept whole, a chain, or a module traced
into; and the timm layers read as the torch.nn layer they compute (norm-and-activation layers,
``Conv2dSame``), which ``norm_act.py`` and ``same_pad.py`` write out.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from .errors import class_path

Kind = Literal["layer", "sequential", "custom"]


def is_layer(module: nn.Module) -> bool:
    """A torch.nn layer netspec has as a layer type: kept whole, never traced into.

    >>> is_layer(nn.Conv2d(1, 1, 1)), is_layer(nn.Sequential())
    (True, False)
    """
    from ..nodes.layers import LAYERS

    name = type(module).__name__
    return name in LAYERS and LAYERS[name].cls is type(module)


def kind_of(module: nn.Module) -> Kind:
    """``layer`` (a torch.nn layer), ``sequential`` (nn.Sequential's own forward: a chain) or ``custom``.

    >>> kind_of(nn.ReLU()), kind_of(nn.Sequential(nn.ReLU())), kind_of(nn.Identity())
    ('layer', 'sequential', 'layer')
    """
    if is_layer(module) or _norm_act(module) or same_padded(module) is not None:
        return "layer"
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return "sequential"
    return "custom"


# class -> the torch.nn layer its forward computes before `drop` and `act` (timm.layers.norm_act)
_BASES = {
    "timm.layers.norm_act.BatchNormAct2d": "BatchNorm2d",
    "timm.layers.norm_act.GroupNormAct": "GroupNorm",
    "timm.layers.norm_act.GroupNorm1Act": "GroupNorm",
    "timm.layers.norm_act.LayerNormAct": "LayerNorm",
    "timm.layers.norm.LayerNorm": "LayerNorm",  # F.layer_norm with its own tensors; no children
    "timm.layers.linear.Linear": "Linear",  # F.linear with its own weight, for torchscript; no children
}


def norm_base(module: nn.Module) -> type[nn.Module] | None:
    """The torch.nn norm layer a timm norm-and-activation layer computes first, or None.

    >>> norm_base(nn.BatchNorm2d(4)) is None
    True
    """
    from ..nodes.layers import LAYERS

    base = _BASES.get(class_path(module))
    if base is None or base not in LAYERS or not isinstance(module, LAYERS[base].cls):
        return None
    if getattr(module, "_fast_norm", False):  # timm's fused kernels compute it otherwise
        return None
    return LAYERS[base].cls


def _norm_act(module: nn.Module) -> bool:
    """timm's norm-and-activation layers, read as a torch.nn norm layer and its children (``norm_act.py``)."""
    return norm_base(module) is not None


def same_padded(module: nn.Module) -> str | None:
    """timm's ``Conv2dSame``, read as a Conv2d (``same_pad.py``): the pin its padding makes where
    it depends on the input size (a stride over 1), else ``""``; None for any other module.

    >>> same_padded(nn.Conv2d(1, 1, 3)) is None
    True
    """
    if class_path(module) != "timm.layers.conv2d_same.Conv2dSame" or not isinstance(module, nn.Conv2d):
        return None
    if all(s == 1 for s in module.stride):
        return ""
    return f"{class_path(module)}: its SAME padding at stride {tuple(module.stride)} follows the input size"
