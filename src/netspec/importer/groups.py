"""``nn.Sequential`` -> a group (children named 0, 1, ... by position), or a ``repeat``; a module
calling its numbered children, or holding one of its own class (timm's DlaTree), -> a group too,
taking the tensors it is given by their outer names and giving one value or its ``outputs``.

A group whose children are all the same block, with arguments that change only at the first
copy (torchvision's stages: stride 2 and a projection in block 0, stride 1 after), is written
as one node with ``repeat: N`` and the argument as an expression of the copy's index ``i``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import fx, nn

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
    the group's value is its last node (an ``Identity`` where the value is another's), or the
    tuple of its ``outputs`` where forward returns several; the tensors it is given are its inputs.

    >>> from torch import fx, nn
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
    ops = [n for n in body.nodes if n not in numbered]
    return _group_of(
        name, body, refs, [n.copy(name=None) for n in numbered], ops, f"calls its children by number (`{first}`, ...)"
    )


def recursive_group(name: str, body: Body, refs: list[Ref]) -> SNode:
    """A call of a module whose class holds one of its own (timm's DlaTree, a tree of trees) -> a
    group: a block cannot hold itself, so each level is written out where it is used, its nodes
    named as forward names them (its children keep their keys); the innermost level, which holds
    none of its class, is a block as usual.

    >>> from torch import fx, nn
    >>> body = Body(nn.ReLU(), "tree", ["x"], [SNode("ReLU", "relu", None, ["x"])], ["relu"])
    >>> g = recursive_group("tree", body, [Ref("x", (None, None))])
    >>> g.op, g.inputs, [n.name for n in g.nodes or []]
    ('Sequential', ['x'], ['relu'])
    """
    return _group_of(name, body, refs, [], list(body.nodes), "holds a module of its own class")


def _group_of(name: str, body: Body, refs: list[Ref], children: list[SNode], ops: list[SNode], what: str) -> SNode:
    """The group of a body: ``children`` (unnamed), then ``ops`` (named, inputs written out); its
    value is its last node (an ``Identity`` where the value is another's), or the tuple of its
    ``outputs`` where forward returns several; the tensors it is given are its inputs."""
    sources = list(dict.fromkeys(r.name for r in refs))  # each tensor given once, in order
    if body.inputs != [inner_name(r) for r in sources]:
        raise ImportFailed(
            f"forward {what} and reads its {len(sources)} tensors other than one input each: such a module "
            "is written as a group, whose inputs keep their outer names",
            where=body.path,
        )
    if len(body.outputs) == 1 and (not ops or ops[-1].name != body.outputs[0]):
        ops = [*ops, SNode("Identity", _fresh_out({n.name for n in body.nodes}), None, [body.outputs[0]])]
    several = body.outputs if len(body.outputs) > 1 else None  # a tuple, read by `item`
    return SNode(GROUP_OP, name, None, sources, nodes=children + ops, outputs=several)


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


def unread(sub: Traced) -> set[str]:
    """The tensor arguments a module's forward never reads (timm's DlaTree sets `shortcut` anew):
    a block or group is not given them, since a spec input must be used."""
    assert sub.graph is not None
    lists = {f"{k}_{i + 1}" for k, n in sub.flat.items() for i in range(n)}  # fx's names of a list's items
    return {
        str(n.target)
        for n in sub.graph.nodes
        if n.op == "placeholder" and _no_values_read(n) and str(n.target) not in lists and n.target not in sub.flat
    }


def _no_values_read(n: fx.Node) -> bool:
    """Nothing reads the tensor's values: no use, or only its ``.device`` and ``.dtype`` (Gemma4's
    rotary table reads ``x`` for those alone), which the trace folded."""
    return all(u.target is getattr and u.args[1:] in (("device",), ("dtype",)) for u in n.users)


def unclashed(refs: list[Ref], module: nn.Module, nodes: list[SNode], fresh: Callable[[str], str]) -> list[Ref]:
    """The tensors a group is given, each under a name none of its nodes has: inside, an input keeps
    its outer name, so one named like a child (a tree's `tree1` given to its `tree2`) is given under
    a new one, an ``Identity`` added to ``nodes`` (the caller's).

    >>> nodes = []
    >>> [r.name for r in unclashed([Ref("tree1", (None, None))], nn.Module(), nodes, lambda w: w)]
    ['tree1']
    """
    own = {*module._modules, *module._parameters, *module._buffers}
    renamed: dict[str, str] = {}
    for ref in refs:
        if inner_name(ref.name) in own and ref.name not in renamed:  # a tensor given twice: one node
            renamed[ref.name] = fresh(f"{ref.name}_given")
            nodes.append(SNode("Identity", renamed[ref.name], None, [ref.name]))
    return [Ref(renamed[r.name], r.meta) if r.name in renamed else r for r in refs]


def given_before(traced: Traced, n: fx.Node) -> int:
    """How many placeholders of tensors the caller gives come before ``n`` in ``traced``'s graph."""
    assert traced.graph is not None
    skip = {*traced.literal, *unread(traced)}
    given = [m for m in traced.graph.nodes if m.op == "placeholder" and str(m.target) not in skip]
    return given.index(n)


def contains_itself(module: nn.Module) -> bool:
    """Whether a module holds another of its own class (timm's DlaTree): no block can be it."""
    return any(type(m) is type(module) for m in module.modules() if m is not module)


def without_unread(nodes: list[SNode], given: set[str], outputs: list[str]) -> list[SNode]:
    """``nodes`` less the stateless ones (an ``Identity``, an op) that were computed only for an
    argument forward never reads (DlaTree's ``project`` given as ``shortcut``), so none is left unused.

    >>> nodes = [SNode("Identity", "project", None, ["x"]), SNode("ReLU", "relu", None, ["x"])]
    >>> [n.name for n in without_unread(nodes, {"project"}, ["relu"])]
    ['relu']
    """
    from ..nodes.ops import OPS

    def read(name: str) -> bool:
        return name in outputs or any(name in _reads(n) or name in repr(n.args) for n in nodes if n.name != name)

    dead = {
        n.name
        for n in nodes
        if n.name in given and n.use is None and n.nodes is None and (n.op == "Identity" or n.op in OPS)
    }
    dead = {name for name in dead if name is not None and not read(name)}
    return [n for n in nodes if n.name not in dead]


def _reads(node: SNode) -> list[str]:
    """The names a node reads."""
    if isinstance(node.inputs, dict):
        return [v for value in node.inputs.values() for v in ([value] if isinstance(value, str) else value)]
    return list(node.inputs or [])
