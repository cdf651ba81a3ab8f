"""``nn.Sequential`` -> a group (children named 0, 1, ... by position), or a ``repeat``.

A group whose children are all the same block, with arguments that change only at the first
copy (torchvision's stages: stride 2 and a projection in block 0, stride 1 after), is written
as one node with ``repeat: N`` and the argument as an expression of the copy's index ``i``.
"""

from __future__ import annotations

from typing import Any

from ..compiler.node_forms import NODE_NAME
from .call import Result
from .errors import ImportFailed
from .ir import Body, Ref, SNode


def group_node(name: str, body: Body, refs: list[Ref]) -> Result:
    """The group of a Sequential's body; children that are no node (identities in the spec) become
    ``Identity`` nodes, so the others keep their position (their state_dict keys)."""
    if not body.nodes:
        return refs[0]
    made = {n.name: n for n in body.nodes}
    nodes: list[SNode] = []
    previous = body.inputs[0]
    for child in body.module._modules:
        node = made.pop(child, None) or SNode("Identity", child, None, [previous])
        if node.inputs != [previous]:
            raise ImportFailed("a Sequential's children do not form a chain in order", where=body.path)
        nodes.append(node)
        previous = child
    if made or body.outputs != [previous]:
        raise ImportFailed("a Sequential whose forward is not the chain of its children", where=body.path)
    for k, node in enumerate(nodes):
        if node.name != str(k) and not NODE_NAME.match(node.name or ""):
            key = f"{body.path}.{node.name}" if body.path else node.name
            raise ImportFailed(
                f"child `{node.name}` of a Sequential is not a node name: a spec names nodes with "
                "identifiers, joined by `-` (`block1-0`), or numbers them by position, so the state_dict key "
                f"`{key}` cannot be kept",
                where=body.path,
            )
    chained = [n.copy(name=None if n.name == str(k) else n.name, inputs=None) for k, n in enumerate(nodes)]
    return SNode("Sequential", name, None, [refs[0].name], nodes=chained)


def as_repeat(node: SNode, blocks: dict[str, Any]) -> SNode:
    """A group of N copies of one block or layer (unnamed, in a chain) -> one node with
    ``repeat: N``, when each argument is the same in every copy or differs only in copy 0;
    otherwise the group.

    >>> uses = [SNode("B", None, {"stride": 2, "down": True}), SNode("B", None, {}), SNode("B", None, {})]
    >>> r = as_repeat(SNode("Sequential", "layer2", None, ["x"], nodes=uses), {"B": {"stride": 1, "down": False}})
    >>> r.op, r.repeat, r.args
    ('B', 3, {'stride': '${2 if i == 0 else 1}', 'down': '${i == 0}'})
    """
    uses = node.nodes or []
    if not uses or (len(uses) == 1 and uses[0].op not in blocks) or not all(_plain_copy(u, uses[0].op) for u in uses):
        return node
    defaults = blocks.get(uses[0].op, {})  # a layer's or op's arguments: all written, or the same
    keys = list(dict.fromkeys(k for u in uses for k in (u.args or {})))
    args: dict[str, Any] = {}
    for key in keys:
        if key not in defaults and any(key not in (u.args or {}) for u in uses):
            return node
        values = [(u.args or {}).get(key, defaults.get(key)) for u in uses]
        expr = _index_expression(values)
        if expr is None:
            return node
        if expr != defaults.get(key) or key not in defaults:
            args[key] = expr
    return node.copy(op=uses[0].op, args=args or None, nodes=None, repeat=len(uses), use=None, comment=uses[0].comment)


def _plain_copy(node: SNode, op: str) -> bool:
    """A copy a repeat can make: unnamed, of ``op``, no group or body of its own, arguments by name."""
    return (
        node.name is None
        and node.op == op
        and node.nodes is None
        and node.use is None
        and (node.args is None or isinstance(node.args, dict))
    )


def _index_expression(values: list[Any]) -> Any:
    """The value of copy ``i`` as an expression: ``v``, ``${i == 0}``, ``${a if i == 0 else b}``.

    >>> _index_expression([64, 64]), _index_expression([False, True, True]), _index_expression([1, 2, 3])
    (64, '${i != 0}', None)
    """
    first, rest = values[0], values[1:]
    if all(v == first and type(v) is type(first) for v in rest):
        return first
    if any(v != rest[0] or type(v) is not type(rest[0]) for v in rest) or isinstance(first, (list, dict)):
        return None
    if isinstance(first, bool) and isinstance(rest[0], bool):
        return "${i == 0}" if first else "${i != 0}"
    return f"${{{_literal(first)} if i == 0 else {_literal(rest[0])}}}"


def _literal(value: Any) -> str:
    """A value as the expression language writes it."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "None"
    return repr(value)
