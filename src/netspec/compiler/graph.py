"""Stage 3: spec nodes -> a concrete DAG of named nodes with resolved inputs.

A node list is a *template*: ``when`` conditions and "the previous node" depend on
parameters, so :func:`resolve` turns a template plus an environment into a :class:`Dag`,
checking names, references, cycles and unused values on the way.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphError, did_you_mean
from ..nodes.kinds import SHARED_OP, OpKind
from ..nodes.layers import LAYERS
from ..nodes.names import op_kind
from ..nodes.ops import OPS
from .expr import ShapeInfo, substitute
from .keys import check_keys, owner
from .spec import NodeSpec

SpecPath = tuple[str | int, ...]


def _reserved_names() -> frozenset[str]:
    """Names a node cannot have: attributes of the generated GraphModule (``forward``,
    ``training``, ``_modules``, ``to``, ...) -- a submodule of that name cannot be added."""
    import torch
    from torch import fx

    probe = fx.GraphModule(torch.nn.Module(), fx.Graph())
    return frozenset(dir(probe)) | {"self", "netspec_graph"}  # module.py sets gm.netspec_graph


RESERVED_NAMES = _reserved_names()


@dataclass
class DagNode:
    """A node whose inputs are names of other nodes (or graph inputs)."""

    name: str
    op: str
    kind: OpKind
    args: Any
    inputs: list[str] | dict[str, str]
    path: SpecPath
    spec: NodeSpec
    ref_args: dict[str, str] = field(default_factory=dict)  # op args that named nodes (pad_to like)
    kw_inputs: dict[str, str | list[str]] = field(default_factory=dict)  # a layer's keyword inputs
    shares: str | None = None  # `same_as`: the node whose module this one calls (op, args: its)
    ties_to: list[str] = field(default_factory=list)  # the nodes whose parameters `tie` names

    @property
    def input_names(self) -> list[str]:
        """What the node waits for: its inputs, and the node whose module it shares."""
        positional = list(self.inputs.values()) if isinstance(self.inputs, dict) else list(self.inputs)
        keywords = [n for v in self.kw_inputs.values() for n in ([v] if isinstance(v, str) else v)]
        return positional + keywords + ([self.shares] if self.shares else []) + self.ties_to


@dataclass
class Dag:
    """Nodes in execution order (spec order when the spec is already topological)."""

    inputs: list[str]
    nodes: list[DagNode]
    outputs: list[tuple[str, str]]  # (external name, node name)


def auto_name(op: str, taken: Container[str]) -> str:
    """``Conv2d`` -> ``conv2d``, then ``conv2d_1``, ... (like torch.fx).

    >>> auto_name("Conv2d", {"conv2d"})
    'conv2d_1'
    """
    base = _base_name(op)
    return _suffixed(base, _free_suffix(base, taken, 0))


def _base_name(op: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]", "_", op).lower()


def _suffixed(base: str, i: int) -> str:
    return f"{base}_{i}" if i else base


def _free_suffix(base: str, taken: Container[str], start: int) -> int:
    """The first suffix from ``start`` on that makes a name neither taken nor reserved."""
    i = start
    while (name := _suffixed(base, i)) in taken or name in RESERVED_NAMES:
        i += 1
    return i


def _enabled(node: NodeSpec, env: Mapping[str, Any], path: SpecPath) -> bool:
    if node.when is None:
        return True
    value = substitute(node.when, env, path + ("when",))
    if not isinstance(value, bool):
        raise GraphError(f"`when` must be true or false, got {value!r}", path=path + ("when",))
    return value


def _refs_of(node: NodeSpec, blocks: set[str]) -> dict[str, str]:
    """Op arguments that name other nodes, e.g. pad_to's `like`."""
    if op_kind(node.op, blocks) != "op":
        return {}
    entry = OPS[node.op]
    refs = {k: v for k, v in node.args.items() if k in entry.refs} if isinstance(node.args, dict) else {}
    for key, value in refs.items():
        if not isinstance(value, str):  # `like: null`, `like: 3`: no node's name
            raise GraphError(f"`{key}` names a node or input, not {value!r}", hint=f"`{key}: skip`, the node's name")
    if entry.refs_from is not None:  # names an `index` subscript reads: `$0`, `$1`, ... (no argument's key)
        refs.update({f"${i}": name for i, name in enumerate(entry.refs_from(node.args))})
    return refs


@dataclass
class _Scope:
    """Names seen so far while resolving one node list."""

    inputs: list[str]
    taken: set[str]
    explicit: set[str]
    env: Mapping[str, Any]
    numbered: bool  # unnamed nodes are "0", "1", ... (groups)
    aliases: dict[str, tuple[str, SpecPath]] = field(default_factory=dict)  # `else` of disabled nodes
    # base name -> the suffix its last auto name got: names are only ever added, so the first
    # free suffix never goes down, and each auto name costs a few probes however many came before
    suffixes: dict[str, int] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        """Taken for an auto name: a node or input, an explicit name, or a parameter (so
        `$dropout` still means the parameter)."""
        return name in self.taken or name in self.explicit or name in self.env

    def auto(self, op: str) -> str:
        base = _base_name(op)
        self.suffixes[base] = _free_suffix(base, self, self.suffixes.get(base, 0))
        return _suffixed(base, self.suffixes[base])

    def name(self, node: NodeSpec, i: int, path: SpecPath) -> str:
        name = node.name or (str(i) if self.numbered else self.auto(node.op))
        if any(part in RESERVED_NAMES for part in name.split(".")):  # a key's parts are attributes too
            raise GraphError(
                f"node name `{name}` is reserved (an attribute of torch.nn.Module)", path=path, hint="pick another name"
            )
        if node.name and node.name in self.env and not isinstance(self.env[node.name], ShapeInfo):
            raise GraphError(
                f"node name `{name}` is also a parameter, so `${name}` would be ambiguous",
                path=path,
                hint="rename the node or the parameter",
            )
        if name in self.taken:
            what = "an input" if name in self.inputs else "another node"
            raise GraphError(
                f"duplicate name `{name}`: {what} has it already",
                path=path,
                hint="node names must be unique (nodes with `when` may share one if only one is enabled)",
            )
        self.taken.add(name)
        return name


def resolve(
    nodes: list[NodeSpec],
    input_names: list[str],
    outputs: Any,
    env: Mapping[str, Any],
    blocks: set[str],
    path: SpecPath,
    block_inputs: Mapping[str, list[str]] | None = None,
    numbered: bool = False,
    kept: Container[str] = (),
) -> Dag:
    """Evaluate ``when``, name every node, fill default inputs, check refs, order topologically.

    ``block_inputs`` maps block names to their input names (a block's first input defaults
    to the previous node); ``numbered`` names unnamed nodes by position, as nn.Sequential does;
    ``kept`` names nodes that something besides the outputs reads (the loss graph), so they
    count as used.

    >>> from netspec.compiler.spec import NodeSpec
    >>> dag = resolve([NodeSpec(op="ReLU"), NodeSpec(op="Tanh", name="t", when=False, **{"else": "x"}),
    ...                NodeSpec(op="add", from_=["relu", "t"])], ["x"], None, {}, set(), ())
    >>> [(n.name, n.inputs) for n in dag.nodes]
    [('relu', ['x']), ('add', ['relu', 'x'])]
    """
    block_inputs = block_inputs or {}
    dag_nodes: list[DagNode] = []
    scope = _Scope(list(input_names), set(input_names), {n.name for n in nodes if n.name}, env, numbered)
    previous = input_names[0] if input_names else None
    built: dict[str, DagNode] = {}  # the nodes so far by name: what `same_as` may name
    for i, node in enumerate(nodes):
        npath = path + ("nodes", i)
        if not _enabled(node, env, npath):
            if node.else_ is not None:  # the name stands for another value: `else: x`
                scope.aliases[scope.name(node, i, npath)] = (node.else_, npath + ("else",))
                previous = node.name
            continue
        shares = None
        if node.op == SHARED_OP:
            shares, node = shared_node(node, built, npath)
        name = scope.name(node, i, npath)
        kind = op_kind(node.op, blocks)
        assert kind is not None  # validated in spec.py
        try:
            refs = _refs_of(node, blocks)
        except GraphError as e:  # an `index` subscript that does not parse
            e.path, e.node = npath + (node.op,), name
            raise
        inputs, kw_inputs = _inputs_of(node, kind, previous, refs, block_inputs.get(node.op), npath)
        args = {k: v for k, v in node.args.items() if k not in refs} if isinstance(node.args, dict) else node.args
        dag_nodes.append(DagNode(name, node.op, kind, args, inputs, npath, node, refs, kw_inputs, shares))
        built[name] = dag_nodes[-1]
        previous = name
    if not dag_nodes:
        raise GraphError("no node is enabled", path=path + ("nodes",))
    assert previous is not None
    return _checked_dag(dag_nodes, input_names, outputs, previous, scope, path, kept)


def _checked_dag(
    dag_nodes: list[DagNode],
    input_names: list[str],
    outputs: Any,
    last: str,
    scope: _Scope,
    path: SpecPath,
    kept: Container[str],
) -> Dag:
    """The named nodes as a checked DAG: outputs (default: the ``last`` node) and ``else``
    aliases resolved, every reference known, topologically ordered, nothing computed unused."""
    outs = _outputs(outputs, last, path)
    outs = _apply_aliases(dag_nodes, outs, scope, path)
    check_keys(((n.name, "shared" if n.shares else n.kind, n.path) for n in dag_nodes), input_names)
    _tied_nodes(dag_nodes)
    _check_refs(dag_nodes, input_names, outs, path, keyed=isinstance(outputs, dict))
    ordered = _toposort(dag_nodes, input_names)
    _check_unused(ordered, input_names, outs, path, kept)
    _check_training_only(ordered, outs, path)
    return Dag(list(input_names), ordered, outs)


def _tied_nodes(nodes: list[DagNode]) -> None:
    """A node whose parameter is tied to another node's reads that node (it is used, and built first)."""
    names = {n.name for n in nodes}
    for node in nodes:
        for other in (node.spec.tie or {}).values():
            first = owner(other, names)
            if first in names and first != node.name and first not in node.ties_to:
                node.ties_to.append(first)


def shared_node(node: NodeSpec, built: Mapping[str, DagNode], path: SpecPath) -> tuple[str, NodeSpec]:
    """``- b: {same_as: a, from: y}`` -> ("a", node b as a's op and arguments, reading y).

    The node named must come before, in the same node list, and own a module (a layer, block,
    group, repeat or model); a chain of ``same_as`` leads to the first.
    """
    target = node.args
    if not isinstance(target, str) or target not in built:
        raise GraphError(
            f"`same_as` names {f'`{target}`' if isinstance(target, str) else repr(target)}, which is not a node before this one",
            path=path + (SHARED_OP,),
            node=node.name,
            hint=did_you_mean(str(target), built) or "name a layer, block or group above it in the same list",
        )
    first = built[target]
    if first.kind in ("op", "param", "buffer"):
        what = {"op": "an op, which has no module", "param": "a Parameter", "buffer": "a Buffer"}[first.kind]
        raise GraphError(
            f"`same_as: {target}` names {what}",
            path=path + (SHARED_OP,),
            node=node.name,
            hint="write the op again" if first.kind == "op" else f"read `{target}` itself (`from: {target}`)",
        )
    for key in ("repeat", "freeze", "tie"):
        if getattr(node, key) is not None:
            raise GraphError(
                f"a `same_as` node takes no `{key}`: the module is `{target}`'s",
                path=path + (key,),
                node=node.name,
                hint=f"write `{key}` on `{target}`",
            )
    update = {"op": first.spec.op, "args": first.spec.args, "nodes": first.spec.nodes, "repeat": first.spec.repeat}
    shares = first.shares or first.name
    return shares, node.model_copy(update=update)


def _apply_aliases(
    nodes: list[DagNode], outs: list[tuple[str, str]], scope: _Scope, path: SpecPath
) -> list[tuple[str, str]]:
    """Replace the names of disabled nodes that have an `else` by the value they stand for."""
    if not scope.aliases:
        return outs
    known = set(scope.inputs) | {n.name for n in nodes}

    def real(name: str) -> str:
        seen = []
        while name in scope.aliases:
            target, where = scope.aliases[name]
            if target in seen or target == name:
                raise GraphError(f"`else` of `{name}` leads back to itself", path=where)
            seen.append(name)
            if target not in known and target not in scope.aliases:
                raise GraphError(
                    f"`else` names `{target}`, which is not defined",
                    path=where,
                    hint=did_you_mean(target, known) or "name an input or another node",
                )
            name = target
        return name

    for name in scope.aliases:
        real(name)  # report a bad `else` at the `else`, even if nothing reads the name
    for node in nodes:
        if isinstance(node.inputs, dict):
            node.inputs = {k: real(v) for k, v in node.inputs.items()}
        else:
            node.inputs = [real(v) for v in node.inputs]
        node.kw_inputs = {k: real(v) if isinstance(v, str) else [real(x) for x in v] for k, v in node.kw_inputs.items()}
    return [(ext, real(ref)) for ext, ref in outs]


Inputs = tuple[list[str] | dict[str, str], dict[str, str | list[str]]]


def _inputs_of(
    node: NodeSpec, kind: OpKind, previous: str | None, refs: dict[str, str], block_in: list[str] | None, path: SpecPath
) -> Inputs:
    """(positional inputs, keyword inputs) of a node; block inputs are keyed by block input."""
    src = node.from_
    if kind in ("param", "buffer"):
        if src is not None:
            what = "a learnable tensor" if kind == "param" else "a tensor"
            raise GraphError(
                f"a {node.op} takes no input: it is {what} of its own",
                path=path + ("from",),
                hint=f"remove `from`; use the {node.op.lower()} in an op such as `matmul: [x, w]`",
            )
        return [], {}
    if kind == "block" and block_in is not None:
        return _block_inputs(node, src, previous, block_in, path), {}
    if isinstance(src, dict):
        if kind != "layer":
            raise GraphError(
                "`from` as a mapping is only for layers (keyword inputs such as "
                "`src_key_padding_mask`) and blocks with named inputs",
                path=path + ("from",),
                hint="give a name or a list of names",
            )
        return _layer_inputs(node, dict(src), previous, path)
    if src is None:
        if previous is None:
            raise GraphError("the first node has no input", path=path)
        src = [previous]
    elif isinstance(src, str):
        src = [src]
    named = [r for k, r in refs.items() if not (k.startswith("$") and r in src)]  # a subscript may name `from`'s
    return list(src) + list(dict.fromkeys(named)), {}


def _block_inputs(
    node: NodeSpec, src: Any, previous: str | None, block_in: list[str], path: SpecPath
) -> dict[str, str]:
    if src is None:
        src = {block_in[0]: previous} if previous else {}
    if isinstance(src, str):
        src = [src]
    if isinstance(src, list):
        if len(src) != len(block_in):
            raise GraphError(
                f"block `{node.op}` takes {len(block_in)} input(s) ({', '.join(block_in)}), `from` gives {len(src)}",
                path=path + ("from",),
            )
        return dict(zip(block_in, src))
    unknown = [k for k in src if k not in block_in]
    if unknown:
        raise GraphError(
            f"block `{node.op}` has no input `{unknown[0]}`",
            path=path + ("from",),
            hint=did_you_mean(unknown[0], block_in) or f"its inputs: {', '.join(block_in)}",
        )
    lists = [k for k, v in src.items() if not isinstance(v, str)]
    if lists:
        raise GraphError(f"block input `{lists[0]}` takes one name", path=path + ("from", lists[0]))
    src = dict(src)
    if block_in[0] not in src and previous:
        src = {block_in[0]: previous, **src}  # the first input defaults to the previous node
    missing = [b for b in block_in if b not in src]
    if missing:
        raise GraphError(
            f"block `{node.op}` needs input `{missing[0]}`",
            path=path + ("from",),
            hint=f"add it: from: {{{missing[0]}: <node>}}",
        )
    return {b: src[b] for b in block_in}


def _layer_inputs(node: NodeSpec, src: dict[str, Any], previous: str | None, path: SpecPath) -> Inputs:
    """`from: {src_key_padding_mask: mask}`: forward arguments by name; the first defaults to
    the previous node, the required ones are passed by position, the rest by keyword."""
    entry = LAYERS[node.op]
    names = entry.tensor_inputs
    for key in src:
        if key not in names:
            flag = key in entry.forward_params
            raise GraphError(
                f"`{key}` of {node.op} is not a tensor input" if flag else f"{node.op} takes no input `{key}`",
                path=path + ("from", key),
                hint=did_you_mean(key, names) or f"its inputs: {', '.join(names) or 'none'}",
            )
    if names and names[0] not in src:
        if previous is None:
            raise GraphError("the first node has no input", path=path)
        src = {names[0]: previous, **src}
    positional = []
    for key in names[: entry.min_inputs]:
        if key not in src:
            raise GraphError(
                f"{node.op} needs input `{key}`", path=path + ("from",), hint=f"add it: from: {{{key}: <node>}}"
            )
        value = src.pop(key)
        if not isinstance(value, str):
            raise GraphError(f"input `{key}` of {node.op} takes one name", path=path + ("from", key))
        positional.append(value)
    return positional, src


def _outputs(outputs: Any, last: str, path: SpecPath) -> list[tuple[str, str]]:
    if outputs is None:
        return [(last, last)]
    if isinstance(outputs, dict):
        return list(outputs.items())
    return [(o, o) for o in outputs]


def _check_refs(
    nodes: list[DagNode], inputs: list[str], outs: list[tuple[str, str]], path: SpecPath, keyed: bool = False
) -> None:
    known = set(inputs) | {n.name for n in nodes}
    for node in nodes:
        for ref in node.input_names:
            if ref not in known:
                hint = did_you_mean(ref, known)
                raise GraphError(
                    f"`from` names `{ref}`, which is not defined",
                    path=node.path + ("from",) if node.spec.from_ is not None else node.path,
                    node=node.name,
                    hint=hint,
                )
            if ref == node.name:
                raise GraphError(f"node `{ref}` takes itself as input (a cycle)", path=node.path + ("from",))
    for i, (ext, ref) in enumerate(outs):
        if ref not in known:
            what = f"output `{ext}` points to `{ref}`, which" if ext != ref else f"output `{ref}`"
            raise GraphError(
                f"{what} is not a node or input",
                path=path + ("outputs", ext if keyed else i),
                hint=did_you_mean(ref, known)
                or f"nodes: {', '.join(n.name for n in nodes[-5:])}" + (" (last 5)" if len(nodes) > 5 else ""),
            )


def _toposort(nodes: list[DagNode], inputs: list[str]) -> list[DagNode]:
    """Kahn's algorithm, preferring spec order, so parameters register in node order: each
    step takes the first node in spec order whose inputs are all computed (a heap of the
    ready nodes' positions keeps that O(n log n))."""
    position = {n.name: i for i, n in enumerate(nodes)}
    computed = set(inputs)
    waiting = [0] * len(nodes)  # inputs each node still waits for
    readers: dict[str, list[int]] = {}  # node name -> positions of the nodes reading it
    for i, node in enumerate(nodes):
        for ref in dict.fromkeys(node.input_names):
            if ref in position and ref not in computed:
                waiting[i] += 1
                readers.setdefault(ref, []).append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    ordered: list[DagNode] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        ordered.append(node)
        for j in readers.get(node.name, ()):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(ordered) < len(nodes):
        done = {n.name for n in ordered}
        remaining = [n for n in nodes if n.name not in done]
        cycle = _find_cycle(remaining)
        raise GraphError(
            f"the graph has a cycle: {' -> '.join(cycle)}",
            path=remaining[0].path,
            node=remaining[0].name,
            hint="a node cannot depend on its own output",
        )
    return ordered


def _find_cycle(nodes: list[DagNode]) -> list[str]:
    by_name = {n.name: n for n in nodes}
    start = nodes[0].name
    seen: list[str] = [start]
    cur = start
    while True:
        nxt = next((r for r in by_name[cur].input_names if r in by_name), None)
        if nxt is None:
            return seen
        if nxt in seen:
            return seen[seen.index(nxt) :] + [nxt]
        seen.append(nxt)
        cur = nxt


def _check_unused(
    nodes: list[DagNode], inputs: list[str], outs: list[tuple[str, str]], path: SpecPath, kept: Container[str] = ()
) -> None:
    used = (
        {r for n in nodes for r in n.input_names} | {ref for _, ref in outs} | {n.name for n in nodes if n.name in kept}
    )
    for name in inputs:
        if name not in used:
            raise GraphError(
                f"input `{name}` is never used",
                path=path + ("inputs", name) if path == () else path,
                hint="feed it to a node with `from`, or remove it",
            )
    for node in nodes:
        if node.name not in used:
            raise GraphError(
                f"node `{node.name}` is computed but never used",
                path=node.path,
                node=node.name,
                hint="list it in `outputs`, feed it to a node, or remove it",
            )


def _check_training_only(nodes: list[DagNode], outs: list[tuple[str, str]], path: SpecPath) -> None:
    """What runs in eval mode never reads what only training computes, and the outputs of
    training only come after the others (eval returns the first ones, as torchvision's GoogLeNet)."""
    only = {n.name for n in nodes if n.spec.training_only}
    if not only:
        return
    for node in nodes:
        read = next((r for r in node.input_names if r in only), None)
        if read is not None and not node.spec.training_only:
            raise GraphError(
                f"node `{node.name}` runs in eval mode too but reads `{read}`, which is computed only in training",
                path=node.path,
                node=node.name,
                hint="add `training_only: true` to this node as well",
            )
    flags = [ref in only for _, ref in outs]
    if any(flags) and path != ():
        raise GraphError(
            f"output `{outs[flags.index(True)][0]}` of a block or group is computed only in training; "
            "the outputs of a block or group are returned in both modes",
            path=path + ("outputs",),
            hint="write `training_only: true` on the node that uses the block or group instead",
        )
    if all(flags) or flags != sorted(flags):
        first = next(ext for (ext, _), f in zip(outs, flags) if f)
        raise GraphError(
            f"output `{first}` is computed only in training, and eval mode would return "
            + ("nothing" if all(flags) else "the outputs after it in its place"),
            path=path + ("outputs",),
            hint="list the outputs of training only last, after at least one that eval mode returns",
        )
