"""What the importer builds before it writes YAML: spec nodes, module bodies, traced values.

A :class:`Body` is one module's forward as spec nodes; a custom module used in it is a node
whose ``use`` holds that module's own body until ``blocks.py`` turns the bodies of each class
into a block and the uses into block nodes with parameters.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..compiler.graph import RESERVED_NAMES
from .trace import TensorMeta


@dataclass
class SNode:
    """A spec node: a layer, op, block, group (``Sequential``) or ``Parameter``."""

    op: str
    name: str | None = None  # None: named by position, in a group
    args: Any = None
    inputs: list[str] | dict[str, str] | None = None  # None: the previous node
    nodes: list[SNode] | None = None  # a group's nodes
    repeat: int | None = None
    use: Body | None = None  # a custom module's body, until blocks are made
    comment: str | None = None
    when: str | None = None  # in a block: kept only when this parameter is true
    else_: str | None = None  # ... and otherwise its name stands for this input
    training_only: bool | None = None  # called only in training mode (`if self.training:`, an aux head)
    outputs: list[str] | None = None  # a group's several values (a tuple), by its nodes' names
    tie: dict[str, str] | None = None  # own parameter -> the parameter it is (one module under two names: again.py)

    def copy(self, **changes: Any) -> SNode:
        fields = {**self.__dict__, **changes}
        return SNode(**fields)


@dataclass
class Body:
    """A custom module's forward (or the whole model's) as spec nodes."""

    module: nn.Module
    path: str
    inputs: list[str]
    nodes: list[SNode]
    outputs: list[str]
    notes: list[tuple[str, str]] = field(default_factory=list)  # (place, what was left out and why)
    output_keys: list[str] | None = None  # the model's forward returns a dict with these keys

    @property
    def stateful(self) -> bool:
        return has_state(self.module)


def has_state(module: nn.Module) -> bool:
    """Whether a module has anything in its state_dict (parameters or persistent buffers).

    >>> has_state(nn.ReLU()), has_state(nn.BatchNorm2d(3))
    (False, True)
    """
    return bool(module.state_dict(keep_vars=True))


@dataclass(frozen=True)
class Ref:
    """A tensor-valued name in a body (an input or a node), with its values at both batch sizes."""

    name: str
    meta: tuple[Any, Any]

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.meta[0], TensorMeta)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.meta[0].shape

    @property
    def batch_dims(self) -> list[int]:
        """Dims whose size changes with the batch (empty for a parameter)."""
        a, b = self.meta
        return [i for i, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape without the batch dim."""
        batch = set(self.batch_dims)
        return tuple(s for i, s in enumerate(self.shape) if i not in batch)


@dataclass(frozen=True)
class BatchSize:
    """A number the forward computed that depends on the batch (``x.size(0)``)."""

    values: tuple[Any, Any]
    source: str | None = None  # the tensor whose size it is: `x` in `x.size(0)`


@dataclass(frozen=True)
class Pieces:
    """The tuple ``x.unbind(dim)`` or ``torch.split(x, n, dim)`` gives: nothing is computed until
    an item is read (``q = qkv[0]``), which becomes a ``select`` or ``narrow`` node, so a piece
    never read is no node (a spec refuses a node nothing uses)."""

    source: Ref
    dim: int
    spans: tuple[tuple[int, int], ...]  # (start, length) of each piece along `dim`
    drop_dim: bool  # unbind: the pieces lose `dim` (select); split: they keep it (narrow)
    made: tuple[SNode, ...] = ()  # nodes the call makes for the source (meshgrid's grid), before any piece


class Namer:
    """Unique identifiers in one body: wishes are kept when free, else numbered."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)

    def fresh(self, wish: str) -> str:
        """``relu`` -> ``relu`` or ``relu_1``; never a Python keyword or a module attribute.

        >>> Namer({"relu"}).fresh("relu"), Namer(set()).fresh("to"), Namer(set()).fresh("layer1.0")
        ('relu_1', 'to_1', 'layer1_0')
        """
        base = re.sub(r"\W", "_", wish) or "node"
        base = base if not base[0].isdigit() else f"n{base}"
        name, i = base, 0
        while name in self.taken or name in RESERVED_NAMES or keyword.iskeyword(name):
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name
