"""What shape inference needs to know about sharing: whether a `same_as` node would build the
same module as the node it names, and how many values a tied parameter holds (counted once)."""

from __future__ import annotations

import torch

from .dims import Probe, construct_meta, per_sample
from .typed import TypedNode


def first_difference(a: TypedNode, b: TypedNode) -> str | None:
    """How the module two nodes would build differs (``in_features=5, not 4``), or None.

    >>> a = TypedNode("a", "layer", "Linear", (), [], {"out_features": 2, "in_features": 4}, None)
    >>> b = TypedNode("b", "layer", "Linear", (), [], {"out_features": 2, "in_features": 5}, None)
    >>> first_difference(b, a), first_difference(a, a)
    ('in_features=5, not 4', None)
    """
    if (a.kind, a.op) != (b.kind, b.op):
        return f"{a.op}, not {b.op}"
    if a.kind in ("layer", "block"):
        for key in dict.fromkeys([*a.args, *b.args]):
            if repr(a.args.get(key)) != repr(b.args.get(key)):
                return f"{key}={a.args.get(key)!r}, not {b.args.get(key)!r}"
    if a.sub is not None and b.sub is not None:
        for x, y in zip(a.sub.nodes, b.sub.nodes):
            if (why := first_difference(x, y)) is not None:
                return f"{x.name}: {why}"
    own_a, own_b = a.params + _tied(a), b.params + _tied(b)  # a tied parameter is counted at the other node
    if own_a != own_b:
        return f"{own_a:,} parameters, not {own_b:,}"
    return None


def _tied(t: TypedNode) -> int:
    return sum(param_count(t, own) for own in t.tie or {})


def param_count(t: TypedNode, name: str) -> int:
    """How many values the parameter ``name`` (a dotted path inside the node) holds; 0 when
    there is none (building the module says so, in one line).

    >>> from torch import nn
    >>> param_count(TypedNode("fc", "layer", "Linear", (), [], {"in_features": 3, "out_features": 2}, None, layer_cls=nn.Linear), "weight")
    6
    """
    first, _, rest = name.partition(".")
    if t.kind == "layer" and t.layer_cls is not None:
        module = construct_meta(t.layer_cls, t.args, t.op, t.path, t.name)
        try:
            return module.get_parameter(name).numel()
        except AttributeError:
            return 0
    if t.sub is not None and rest and any(n.name == first for n in t.sub.nodes):
        return param_count(t.sub.node(first), rest)
    return 0


def shapes_of(ins: list[Probe]) -> str:
    """The inputs' per-sample shapes as messages show them.

    >>> from netspec.compiler.dims import input_probe
    >>> shapes_of([input_probe((6,), torch.float32), input_probe((2, 3), torch.float32)])
    '6 and 2x3'
    """
    return " and ".join(per_sample(p.value, p.twin) if isinstance(p.value, torch.Tensor) else "a tuple" for p in ins)
