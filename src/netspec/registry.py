"""One front door to the node registries: which kind of thing a node's op name is."""

from __future__ import annotations

from typing import Literal

from .layers import layer_registry
from .ops import op_registry
from .zoo import zoo_names

OpKind = Literal["layer", "op", "zoo", "block"]


def op_kind(name: str, blocks: set[str] | frozenset[str] = frozenset()) -> OpKind | None:
    """What ``name`` refers to in a node: a spec block, a layer, an op or a torchvision model.

    >>> op_kind("Conv2d"), op_kind("cat"), op_kind("resnet18"), op_kind("nope")
    ('layer', 'op', 'zoo', None)
    """
    if name in blocks:
        return "block"
    if name in layer_registry():
        return "layer"
    if name in op_registry():
        return "op"
    if name in zoo_names():
        return "zoo"
    return None


def all_op_names(blocks: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Every name a node may use, for did-you-mean suggestions."""
    return [*blocks, *layer_registry(), *op_registry(), *zoo_names()]
