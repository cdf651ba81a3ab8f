"""The compiler's name resolution: which registry the name a node writes is in (a layer, an op,
a torchvision or timm model), or whether it is a block, a group or a declared parameter.

The registries are imported inside the functions so that importing the spec models stays cheap
(torch is imported only when a name is resolved); no registry imports this module.
"""

from __future__ import annotations

from collections.abc import Collection

from .kinds import BUFFER_OP, GROUP_OP, PARAM_OP, SHARED_OP, TIMM_PREFIX, OpKind

__all__ = ["op_kind", "all_op_names"]


def op_kind(name: str, blocks: Collection[str] = frozenset()) -> OpKind | None:
    """What ``name`` refers to in a node: a spec block, a layer, an op, a torchvision model, a
    timm model (``timm.resnet34``: timm is imported only for such names), a group of nodes
    (``Sequential``) or a declared ``Parameter``.

    >>> op_kind("Conv2d"), op_kind("cat"), op_kind("resnet18"), op_kind("Sequential"), op_kind("nope")
    ('layer', 'op', 'zoo', 'group', None)
    """
    from .layers import LAYERS
    from .ops import OPS
    from .zoo import ZOO

    if name.startswith(TIMM_PREFIX):
        from .timm_zoo import TIMM

        return "timm" if name in TIMM else None
    if name in blocks:
        return "block"
    if name == GROUP_OP:
        return "group"
    if name == PARAM_OP:
        return "param"
    if name == BUFFER_OP:
        return "buffer"
    if name == SHARED_OP:
        return "shared"
    if name in LAYERS:
        return "layer"
    if name in OPS:
        return "op"
    if name in ZOO:
        return "zoo"
    return None


def all_op_names(blocks: Collection[str] = frozenset()) -> list[str]:
    """Every name a node may use, for did-you-mean suggestions.

    >>> names = all_op_names({"Down"}); names[0], "Conv2d" in names, "cat" in names, "resnet18" in names
    ('Down', True, True, True)
    """
    from .layers import LAYERS
    from .ops import OPS
    from .zoo import ZOO

    return [*blocks, *LAYERS, *OPS, *ZOO, GROUP_OP, PARAM_OP, BUFFER_OP, SHARED_OP]
