"""The names a node may have that are not a registry entry, and the kinds a node's name can be.

No imports: the registries (``zoo.py``, ``parameters.py``) and the compiler read these, and
``names.py`` resolves a name against the registries.

>>> TIMM_PREFIX + "resnet34"
'timm.resnet34'
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "OpKind",
    "GROUP_OP",
    "PARAM_OP",
    "PARAM_ARGS",
    "BUFFER_OP",
    "BUFFER_ARGS",
    "SHARED_OP",
    "ZOO_EXTRA_ARGS",
    "TIMM_PREFIX",
]

OpKind = Literal["layer", "op", "zoo", "timm", "block", "group", "param", "buffer", "shared"]
GROUP_OP = "Sequential"  # a group of nodes run as a chain: `- downsample: [Conv2d..., BatchNorm2d]`
PARAM_OP = "Parameter"  # a learnable tensor declared in the spec (parameters.py)
PARAM_ARGS = ("shape", "init")  # its arguments
BUFFER_OP = "Buffer"  # a tensor that is not learnt: register_buffer (buffers.py)
BUFFER_ARGS = ("value", "file", "key", "shape", "init", "dtype", "persistent")  # its arguments
SHARED_OP = "same_as"  # `same_as: enc`: call the module of the node `enc` again (its weights shared)
ZOO_EXTRA_ARGS = {"weights", "replace", "truncate", "strict"}  # netspec's own on a torchvision node
TIMM_PREFIX = "timm."  # `timm.resnet34`: a timm model (timm_zoo.py); any other model name is torchvision's
