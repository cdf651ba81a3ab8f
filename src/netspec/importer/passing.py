"""What modules pass each other besides one tensor, as the converter reads it (``convert.py``):
a tuple another module returned, given whole (its items), a dict given whole (its items by key), a number that follows the batch size
(the tensor it was read from), sizes returned beside tensors (numbers the caller keeps).

``conv`` is the :class:`~netspec.importer.convert.Converter` of the calling module.
"""

from __future__ import annotations

import operator
from typing import Any

from torch import fx

from .errors import ImportFailed
from .ir import BatchSize, Pieces, Ref, SNode
from .trace import TensorMeta, Traced


def size_source(args: Any) -> str | None:
    """The tensor a batch-dependent number was read from: `x` in `x.shape[0]`.

    >>> size_source((BatchSize((1, 2), "x"), 3))
    'x'
    """
    for value in args if isinstance(args, (tuple, list)) else [args]:
        if isinstance(value, Ref):
            return value.name
        if isinstance(value, BatchSize):
            return value.source
    return None


def has_tensor(value: Any) -> bool:
    """Whether a recorded value holds a tensor (itself, or in a tuple or dict).

    >>> has_tensor((3, TensorMeta((1, 2), None))), has_tensor((3, 4))
    (True, False)
    """
    if isinstance(value, TensorMeta):
        return True
    if isinstance(value, dict):  # a module's dict of outputs (torchvision's IntermediateLayerGetter)
        return any(has_tensor(v) for v in value.values())
    return isinstance(value, tuple) and any(has_tensor(v) for v in value)


def with_sizes(conv: Any, n: fx.Node, first: tuple, second: tuple) -> tuple:
    """What a module returning tensors and sizes (XCiT's ``x, (Hp, Wp)``) gives its caller: a
    tuple of the sizes as numbers and the tensors, which the block returns (``_output``),
    each an ``item`` of its node where there are several (made where forward reads it)."""
    node = conv.env[n]
    tensors = [k for k, v in enumerate(first) if has_tensor(v)]
    read = {u.args[1] for u in n.users if u.target is operator.getitem and len(u.args) > 1}
    out: list[Any] = []
    for k, (a, b) in enumerate(zip(first, second)):
        if k not in tensors:
            out.append(a)
        elif len(tensors) == 1:
            out.append(Ref(node.name, (a, b)))
        elif k in read:
            item = SNode("item", conv.namer.fresh(f"{node.name}_{k}"), {"index": tensors.index(k)}, [node.name])
            conv.nodes.append(item)
            out.append(Ref(str(item.name), (a, b)))
        else:
            out.append(None)
    return tuple(out)


def batch_source(conv: Any, value: Any, key: str, sub: Traced) -> Ref:
    """The tensor a value that follows the batch size was read from (`x` of `x.shape[0]`),
    which the module is given in its place (it reads the size from it: ``batch_value``)."""
    source = size_source(value if isinstance(value, (tuple, list)) else [value])
    ref = next((v for v in conv.env.values() if isinstance(v, Ref) and v.name == source and v.is_tensor), None)
    if ref is None:
        raise ImportFailed(
            f"`{sub.path}` is given {key}={value!r}, which follows the batch size but is read from no tensor "
            "of this forward: a spec reads a batch size from a tensor",
            where=conv.where,
        )
    return ref


def tuple_items(conv: Any, value: Ref, key: str, sub: Traced) -> list[Ref | None] | Ref:
    """The tensors of a tuple another module returned (``x = module(x)`` over modules that take
    and give ``(x, cls_tokens)``: PiT's, SelecSLS's), read one by one as ``item`` nodes, so the
    module taking it gets each by name; anything but a tuple of tensors stays whole."""
    first, second = value.meta
    if len(first) != sub.flat[key] or not all(isinstance(m, TensorMeta) for m in first):
        return value
    assert sub.graph is not None
    given = {str(p.target): p for p in sub.graph.nodes if p.op == "placeholder"}
    refs: list[Ref | None] = []
    for k in range(len(first)):
        p = given.get(f"{key}_{k + 1}")  # fx names the placeholders of a list `x` x_1, x_2, ...
        if p is not None and not p.users:  # never read (SelecSLS's head reads x[0]): no item, no input
            sub.graph.erase_node(p)
            refs.append(None)
            continue
        item = SNode("item", conv.namer.fresh(f"{value.name}_{k}"), {"index": k}, [value.name])
        conv.nodes.append(item)
        refs.append(Ref(str(item.name), (first[k], second[k])))
    return refs


def dict_items(conv: Any, value: Ref | dict[str, Any], key: str, sub: Traced) -> list[Any] | Ref:
    """The tensors of a dict another module returned (torchvision's backbone features
    ``{"low": .., "high": ..}`` given whole to LRASPP's head), read by key as ``item`` nodes in the
    order the module taking it reads them (its inputs are named by key: ``placeholder_name``);
    a key it never reads is no input. Anything but a dict of the tensors it takes stays whole.
    A dict the caller's forward made is its values, in order."""
    if isinstance(value, dict):
        return list(value.values())
    first, second = value.meta
    keys = sub.keys.get(key, [])
    if not isinstance(first, dict) or not set(keys) <= set(first):
        return value
    assert sub.graph is not None
    given = {str(p.target): p for p in sub.graph.nodes if p.op == "placeholder"}
    refs: list[Ref | None] = []
    for k, name in enumerate(keys):
        p = given.get(f"{key}_{k + 1}")  # fx names the placeholders of a dict `x` x_1, x_2, ... in its order
        if p is not None and not p.users:
            sub.graph.erase_node(p)
            refs.append(None)
        elif len(first) == 1:  # a block returning a dict of one tensor gives that tensor
            refs.append(Ref(value.name, (first[name], second[name])))
        else:
            item = SNode(
                "item", conv.namer.fresh(f"{value.name}_{name}"), {"index": list(first).index(name)}, [value.name]
            )
            conv.nodes.append(item)
            refs.append(Ref(str(item.name), (first[name], second[name])))
    return refs


def placeholder_name(sub: Traced, target: str) -> str:
    """The input name of a forward's placeholder: fx's ``input_2`` of a dict argument traced
    key by key is that key (``high``) where it is a name.

    >>> t = Traced("head", None, "custom", keys={"input": ["low", "high"]})  # type: ignore[arg-type]
    >>> placeholder_name(t, "input_2"), placeholder_name(t, "x")
    ('high', 'x')
    """
    for arg, keys in sub.keys.items():
        for k, name in enumerate(keys):
            if target == f"{arg}_{k + 1}" and isinstance(name, str) and name.isidentifier():
                return name
    return target


def constant(value: Any) -> bool:
    """A value the forward computed that is the same at both batch sizes: a number, a shape, None.

    >>> constant((14, 14)), constant((BatchSize((1, 2), "x"), 14))
    (True, False)
    """
    if isinstance(value, (tuple, list)):
        return all(constant(v) for v in value)
    return not isinstance(value, (Ref, BatchSize, Pieces, dict))


def batch_value(first: Any, second: Any, source: str) -> Any:
    """A module's argument that follows the batch size, as the converter reads it: the batch size
    of ``source`` (or a shape holding it) where it differs between the two runs.

    >>> batch_value((1, 32), (2, 32), "shape")
    (BatchSize(values=(1, 2), source='shape'), 32)
    """
    if isinstance(first, (tuple, list)):
        return tuple(batch_value(a, b, source) for a, b in zip(first, second))
    return first if first == second else BatchSize((first, second), source)
