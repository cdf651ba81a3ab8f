"""Stage 3: spec nodes -> a concrete DAG of named nodes with resolved inputs.

A node list is a *template*: ``when`` conditions and "the previous node" depend on
parameters, so :func:`resolve` turns a template plus an environment into a :class:`Dag`,
checking names, references, cycles and unused values on the way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import GraphError, did_you_mean
from .expr import ShapeInfo, substitute
from .ops import op_registry
from .registry import OpKind, op_kind
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

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs.values()) if isinstance(self.inputs, dict) else list(self.inputs)


@dataclass
class Dag:
    """Nodes in execution order (spec order when the spec is already topological)."""

    inputs: list[str]
    nodes: list[DagNode]
    outputs: list[tuple[str, str]]  # (external name, node name)


def auto_name(op: str, taken: set[str]) -> str:
    """``Conv2d`` -> ``conv2d``, then ``conv2d_1``, ... (like torch.fx)."""
    base = re.sub(r"[^0-9a-zA-Z_]", "_", op).lower()
    name, i = base, 0
    while name in taken or name in RESERVED_NAMES:
        i += 1
        name = f"{base}_{i}"
    return name


def _enabled(node: NodeSpec, env: Mapping[str, Any], path: SpecPath) -> bool:
    if node.when is None:
        return True
    value = substitute(node.when, env, path + ("when",))
    if not isinstance(value, bool):
        raise GraphError(f"`when` must be true or false, got {value!r}", path=path + ("when",))
    return value


def _refs_of(node: NodeSpec, blocks: set[str]) -> dict[str, str]:
    """Op arguments that name other nodes, e.g. pad_to's `like`."""
    if op_kind(node.op, blocks) != "op" or not isinstance(node.args, dict):
        return {}
    entry = op_registry()[node.op]
    return {k: v for k, v in node.args.items() if k in entry.refs}


def resolve(nodes: list[NodeSpec], input_names: list[str], outputs: Any, env: Mapping[str, Any],
            blocks: set[str], path: SpecPath, block_inputs: Mapping[str, list[str]] | None = None) -> Dag:
    """Evaluate ``when``, name every node, fill default inputs, check refs, order topologically.

    ``block_inputs`` maps block names to their input names (a block's first input defaults
    to the previous node).
    """
    block_inputs = block_inputs or {}
    dag_nodes: list[DagNode] = []
    taken = set(input_names)
    explicit = {n.name for n in nodes if n.name}
    previous = input_names[0] if input_names else None
    for i, node in enumerate(nodes):
        npath = path + ("nodes", i)
        if not _enabled(node, env, npath):
            continue
        # auto names skip parameter names too, so `$dropout` still means the parameter
        name = node.name or auto_name(node.op, taken | explicit | set(env))
        if name in RESERVED_NAMES:
            raise GraphError(f"node name `{name}` is reserved (an attribute of torch.nn.Module)", path=npath,
                             hint="pick another name")
        if node.name and node.name in env and not isinstance(env[node.name], ShapeInfo):
            raise GraphError(f"node name `{name}` is also a parameter, so `${name}` would be ambiguous",
                             path=npath, hint="rename the node or the parameter")
        if name in taken:
            what = "an input" if name in input_names else "another node"
            raise GraphError(f"duplicate name `{name}`: {what} has it already", path=npath,
                             hint="node names must be unique (nodes with `when` may share one if only one is enabled)")
        taken.add(name)
        kind = op_kind(node.op, blocks)
        assert kind is not None  # validated in spec.py
        refs = _refs_of(node, blocks)
        inputs = _inputs_of(node, kind, previous, refs, block_inputs.get(node.op), npath)
        args = {k: v for k, v in node.args.items() if k not in refs} if refs else node.args
        dag_nodes.append(DagNode(name, node.op, kind, args, inputs, npath, node, refs))
        previous = name
    if not dag_nodes:
        raise GraphError("no node is enabled", path=path + ("nodes",))
    outs = _outputs(outputs, dag_nodes[-1].name, path)
    _check_refs(dag_nodes, input_names, outs, path, keyed=isinstance(outputs, dict))
    ordered = _toposort(dag_nodes, input_names)
    _check_unused(ordered, input_names, outs, path)
    return Dag(list(input_names), ordered, outs)


def _inputs_of(node: NodeSpec, kind: OpKind, previous: str | None, refs: dict[str, str],
               block_in: list[str] | None, path: SpecPath) -> list[str] | dict[str, str]:
    src = node.from_
    if kind == "block" and block_in is not None:
        if src is None:
            src = {block_in[0]: previous} if previous else {}
        if isinstance(src, str):
            src = [src]
        if isinstance(src, list):
            if len(src) != len(block_in):
                raise GraphError(f"block `{node.op}` takes {len(block_in)} input(s) ({', '.join(block_in)}), "
                                 f"`from` gives {len(src)}", path=path + ("from",))
            return dict(zip(block_in, src))
        unknown = [k for k in src if k not in block_in]
        if unknown:
            raise GraphError(f"block `{node.op}` has no input `{unknown[0]}`", path=path + ("from",),
                             hint=did_you_mean(unknown[0], block_in) or f"its inputs: {', '.join(block_in)}")
        src = dict(src)
        if block_in[0] not in src and previous:
            src = {block_in[0]: previous, **src}  # the first input defaults to the previous node
        missing = [b for b in block_in if b not in src]
        if missing:
            raise GraphError(f"block `{node.op}` needs input `{missing[0]}`", path=path + ("from",),
                             hint=f"add it: from: {{{missing[0]}: <node>}}")
        return {b: src[b] for b in block_in}
    if isinstance(src, dict):
        raise GraphError("`from` as a mapping is only for blocks with named inputs", path=path + ("from",),
                         hint="give a name or a list of names")
    if src is None:
        if previous is None:
            raise GraphError("the first node has no input", path=path)
        src = [previous]
    elif isinstance(src, str):
        src = [src]
    return list(src) + list(refs.values())


def _outputs(outputs: Any, last: str, path: SpecPath) -> list[tuple[str, str]]:
    if outputs is None:
        return [(last, last)]
    if isinstance(outputs, dict):
        return list(outputs.items())
    return [(o, o) for o in outputs]


def _check_refs(nodes: list[DagNode], inputs: list[str], outs: list[tuple[str, str]], path: SpecPath,
                keyed: bool = False) -> None:
    known = set(inputs) | {n.name for n in nodes}
    for node in nodes:
        for ref in node.input_names:
            if ref not in known:
                hint = did_you_mean(ref, known)
                raise GraphError(f"`from` names `{ref}`, which is not defined",
                                 path=node.path + ("from",) if node.spec.from_ is not None else node.path,
                                 node=node.name, hint=hint)
            if ref == node.name:
                raise GraphError(f"node `{ref}` takes itself as input (a cycle)", path=node.path + ("from",))
    for i, (ext, ref) in enumerate(outs):
        if ref not in known:
            what = f"output `{ext}` points to `{ref}`, which" if ext != ref else f"output `{ref}`"
            raise GraphError(f"{what} is not a node or input",
                             path=path + ("outputs", ext if keyed else i),
                             hint=did_you_mean(ref, known) or f"nodes: {', '.join(n.name for n in nodes[-5:])}"
                             + (" (last 5)" if len(nodes) > 5 else ""))


def _toposort(nodes: list[DagNode], inputs: list[str]) -> list[DagNode]:
    """Kahn's algorithm, preferring spec order, so parameters register in node order."""
    done = set(inputs)
    remaining = list(nodes)
    ordered: list[DagNode] = []
    while remaining:
        for idx, node in enumerate(remaining):
            if all(r in done for r in node.input_names):
                ordered.append(node)
                done.add(node.name)
                del remaining[idx]
                break
        else:
            cycle = _find_cycle(remaining)
            raise GraphError(f"the graph has a cycle: {' -> '.join(cycle)}", path=remaining[0].path,
                             node=remaining[0].name, hint="a node cannot depend on its own output")
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
            return seen[seen.index(nxt):] + [nxt]
        seen.append(nxt)
        cur = nxt


def _check_unused(nodes: list[DagNode], inputs: list[str], outs: list[tuple[str, str]], path: SpecPath) -> None:
    used = {r for n in nodes for r in n.input_names} | {ref for _, ref in outs}
    for name in inputs:
        if name not in used:
            raise GraphError(f"input `{name}` is never used", path=path + ("inputs", name) if path == () else path,
                             hint="feed it to a node with `from`, or remove it")
    for node in nodes:
        if node.name not in used:
            raise GraphError(f"node `{node.name}` is computed but never used", path=node.path, node=node.name,
                             hint="list it in `outputs`, feed it to a node, or remove it")
