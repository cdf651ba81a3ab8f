"""``nn.Sequential`` -> a group (children named 0, 1, ... by position), or a ``repeat``.

A group whose children are all the same block, with arguments that change only at the first
copy (torchvision's stages: stride 2 and a projection in block 0, stride 1 after), is written
as one node with ``repeat: N`` and the argument as an expression of the copy's index ``i``.
"""

from __future__ import annotations

from typing import Any

from ..compiler import keys
from ..compiler.node_forms import NODE_NAME
from ..nodes.kinds import GROUP_OP
from .call import Result
from .errors import ImportFailed
from .ir import Body, Ref, SNode, has_state
from .trace import Traced


def group_node(name: str, body: Body, refs: list[Ref]) -> Result:
    """The group of a Sequential's body; children that are no node (identities in the spec) become
    ``Identity`` nodes, so the others keep their position (their state_dict keys). A child read as
    several nodes (timm's ``BatchNormAct2d``: the norm, then its activation) keeps its place; the
    nodes after its first go after the children, named, and every node's input is written out."""
    if not body.nodes:
        return refs[0]
    children = body.module._modules
    rest, nodes, extras = list(body.nodes), [], []
    previous = body.inputs[0]
    for child in children:
        node = rest.pop(0) if rest and rest[0].name == child else SNode("Identity", child, None, [previous])
        chain = [node]
        while rest and rest[0].name not in children:  # the child's further nodes
            chain.append(rest.pop(0))
        for part in chain:
            if part.inputs != [previous]:
                raise ImportFailed("a Sequential's children do not form a chain in order", where=body.path)
            previous = part.name or ""
        nodes.append(node)
        extras += chain[1:]
    if rest or body.outputs != [previous]:
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
    if not extras:
        chained = [n.copy(name=None if n.name == str(k) else n.name, inputs=None) for k, n in enumerate(nodes)]
        return SNode("Sequential", name, None, [refs[0].name], nodes=chained)
    listed = [*nodes, *extras]
    if listed[-1].name != previous:  # the group's value is its last node
        listed.append(SNode("Identity", _fresh_out({n.name for n in listed}), None, [previous]))
    spelled = [
        n.copy(name=None if n.name == str(k) else n.name, inputs=None if k == 0 else n.inputs)
        for k, n in enumerate(listed)
    ]
    return SNode("Sequential", name, None, [refs[0].name], nodes=spelled)


def numbered_group(name: str, body: Body, refs: list[Ref], sub: Traced) -> Result:
    """A module whose forward calls its children named by number (``for mod in self: x = mod(x)``:
    torchvision's ASPPPooling, IntermediateLayerGetter) -> a group: its children first, unnamed, so
    they keep their keys (``0``, ``1``, ...), then its ops, named, with their inputs written out;
    the group's value is its last node (an ``Identity`` where the value is another's).

    >>> from torch import nn
    >>> pool = Traced("pool", nn.Sequential(nn.ReLU()), "custom")
    >>> body = Body(pool.module, "pool", ["x"], [SNode("ReLU", "0", None, ["x"]), SNode("mul", "mul", None, ["0", "x"])], ["mul"])
    >>> [(n.name, n.op, n.inputs) for n in numbered_group("pool", body, [Ref("x", (None, None))], pool).nodes]
    [(None, 'ReLU', ['x']), ('mul', 'mul', ['0', 'x'])]
    """
    numbered = sorted((n for n in body.nodes if (n.name or "").isdigit()), key=lambda n: int(n.name or 0))
    stateful = [n.name for n in numbered if has_state(sub.module.get_submodule(n.name or ""))]
    first = (stateful or [n.name for n in numbered])[0] or ""
    if [n.name for n in numbered] != [str(k) for k in range(len(numbered))]:
        raise numbered_child(sub, first)
    given = len({r.name for r in refs})
    if given != 1 or body.inputs != [inner_name(refs[0].name)] or len(body.outputs) != 1:
        what = f"returns {len(body.outputs)} values" if given == 1 else f"takes {given} tensors"
        raise ImportFailed(
            f"forward calls its children by number (`{first}`, ...) and {what}: a module that does is "
            "written as a group (its children keep their keys by position), which takes one tensor and gives one",
            where=body.path,
        )
    ops = [n for n in body.nodes if n not in numbered]
    if not ops or ops[-1].name != body.outputs[0]:
        ops.append(SNode("Identity", _fresh_out({n.name for n in body.nodes}), None, [body.outputs[0]]))
    nodes = [n.copy(name=None) for n in numbered] + ops
    return SNode(GROUP_OP, name, None, [refs[0].name], nodes=nodes)


def _fresh_out(taken: set[str | None]) -> str:
    """``out``, or ``out1``, ... where a node has that name: the name of a group's last node."""
    return next(f"out{k or ''}" for k in range(len(taken) + 1) if f"out{k or ''}" not in taken)


def inner_name(source: str) -> str:
    """The name a group's input has inside it (as ``shapes.group`` names it)."""
    return keys.inner_name(source)


def numbered_child(traced: Traced, target: str) -> ImportFailed:
    """The refusal of a child whose name is no node name, called by a module's own forward."""
    return ImportFailed(
        f"forward calls its child `{target}`, whose name is no node name: a block names its nodes "
        f"(a group numbers them, as nn.Sequential's own forward does), so the state_dict key "
        f"`{traced.child_path(target)}` cannot be kept",
        where=traced.path,
        hint="give the child a name, or make it an nn.Sequential's item",
    )


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
        and node.inputs is None  # in the chain: a loop's items read what they read by name
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
