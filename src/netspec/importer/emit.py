"""Spec nodes and blocks -> YAML text a person can read: one line per node, comments saying
where each block came from.

Names are left out where netspec would give the same one (``- ReLU: {inplace: true}`` is named
``relu``), and ``from`` where the input is the previous node, as in hand-written specs.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..compiler.graph import auto_name
from ..compiler.node_forms import NODE_KEYS
from ..nodes.kinds import GROUP_OP
from ..nodes.layers import LAYERS
from ..nodes.ops import OPS
from .blocks import Block
from .ir import SNode


def flow(value: Any) -> str:
    """One-line YAML (flow style) of a value.

    >>> flow({"conv1": {"Conv2d": {"out_channels": 64, "bias": False}}, "from": "x"})
    '{conv1: {Conv2d: {out_channels: 64, bias: false}}, from: x}'
    """
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def short_names(nodes: list[SNode], inputs: list[str], env: set[str]) -> list[str | None]:
    """The names to write: None where netspec's automatic name is the node's name anyway.

    >>> short_names([SNode("ReLU", "relu"), SNode("ReLU", "act"), SNode("flatten", "flatten")], ["x"], set())
    [None, 'act', None]
    """
    names = [n.name for n in nodes]
    omitted: set[int] = set()
    for k, node in enumerate(nodes):
        if node.name is None or node.when is not None or not (node.op in LAYERS or node.op in OPS):
            continue
        if _named_as(nodes, omitted | {k}, inputs, env) == names:
            omitted.add(k)
    return [None if k in omitted else name for k, name in enumerate(names)]


def _named_as(nodes: list[SNode], omitted: set[int], inputs: list[str], env: set[str]) -> list[str | None]:
    """The names netspec gives (graph.resolve's rule) when the names at ``omitted`` are left out."""
    explicit = {n.name for k, n in enumerate(nodes) if k not in omitted and n.name}
    taken = set(inputs)
    out: list[str | None] = []
    for k, node in enumerate(nodes):
        name = auto_name(node.op, taken | explicit | env) if k in omitted else node.name
        if name is not None:
            taken.add(name)
        out.append(name)
    return out


def node_lines(nodes: list[SNode], inputs: list[str], env: set[str], indent: int, numbered: bool = False) -> list[str]:
    """YAML lines of a node list (``- ...`` items at ``indent`` spaces); in a group (``numbered``)
    unnamed nodes are named by position, so names are written as they are.

    >>> print("\\n".join(node_lines([SNode("Linear", "fc", {"out_features": 2}, ["x"]),
    ...                              SNode("add", "add", None, ["fc", "x"])], ["x"], set(), 2)))
      - fc: {Linear: {out_features: 2}}
      - add: [fc, x]
    """
    names = [n.name for n in nodes] if numbered else short_names(nodes, inputs, env)
    lines: list[str] = []
    previous = inputs[0] if inputs else None
    for k, (node, name) in enumerate(zip(nodes, names)):
        lines += _node(node, name, previous, indent)
        previous = node.name if node.name is not None or not numbered else str(k)  # a group numbers its unnamed
    return lines


def _node(node: SNode, name: str | None, previous: str | None, indent: int) -> list[str]:
    pad = " " * indent
    extra = _extra_keys(node, previous)
    comment = f"  # {node.comment}" if node.comment else ""
    if node.nodes is None and name in NODE_KEYS:  # `self.repeat = nn.Sequential(...)`: the explicit form
        head = [f"{pad}- name: {name}{comment}", f"{pad}  op: {node.op}", f"{pad}  args: {flow(_args(node, extra))}"]
        return head + [f"{pad}  {k}: {flow(v)}" for k, v in extra.items()]
    if node.nodes is None:
        body = {node.op: _args(node, extra)}
        first = f"{name}: {flow(body)}" if name else f"{node.op}: {flow(body[node.op])}"
        return [f"{pad}- {first}{comment}"] + [f"{pad}  {k}: {flow(v)}" for k, v in extra.items()]
    source = node.inputs[0] if isinstance(node.inputs, list) and node.inputs else None
    reads = [source if source.isidentifier() else f"x_{source}"] if source else []  # as shapes.group names it
    inner = node_lines(node.nodes, reads, set(), indent + 4, numbered=True)
    if node.name is None:  # an unnamed group inside a group: the explicit form
        head = [f"{pad}- op: {GROUP_OP}{comment}", f"{pad}  nodes:"]
    elif node.name in NODE_KEYS:  # a group named like a node key: the explicit form, named
        head = [f"{pad}- name: {node.name}{comment}", f"{pad}  op: {GROUP_OP}", f"{pad}  nodes:"]
    else:
        head = [f"{pad}- {node.name}:{comment}"]
    return head + inner + [f"{pad}  {k}: {flow(v)}" for k, v in extra.items()]


def _extra_keys(node: SNode, previous: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if node.inputs is not None and node.inputs != [previous]:
        extra["from"] = node.inputs[0] if isinstance(node.inputs, list) and len(node.inputs) == 1 else node.inputs
    for key, value in (
        ("repeat", node.repeat),
        ("when", node.when),
        ("else", node.else_),
        ("training_only", node.training_only),
        ("outputs", node.outputs),
        ("tie", node.tie),
    ):
        if value is not None:
            extra[key] = value
    return extra


def _args(node: SNode, extra: dict[str, Any]) -> Any:
    """The arguments as written: a multi-input op without arguments takes its inputs as a list
    (`add: [bn2, x]`)."""
    multi = node.op in OPS and (OPS[node.op].max_inputs or 2) > 1
    if multi and node.args is None and isinstance(extra.get("from"), list):
        return extra.pop("from")
    if node.op in OPS and isinstance(node.args, dict) and list(node.args) == [OPS[node.op].positional]:
        value = node.args[OPS[node.op].positional]
        if not (multi and isinstance(value, list)):  # a list there would read as the inputs
            return value  # `softmax: -1`, `mul: 0.5`, `reshape: [768, 49]`
    return node.args if node.args is not None else {}


def block_lines(block: Block, env: set[str]) -> list[str]:
    """YAML lines of one block definition (under ``blocks:``)."""
    uses = ", ".join(block.uses[:4]) + (f", ... ({len(block.uses)} uses)" if len(block.uses) > 4 else "")
    lines = [f"  {block.name}:  # {block.comment}: {uses}"]
    if block.inputs != ["x"]:
        lines.append(f"    inputs: {flow(block.inputs)}")
    if block.params:
        lines.append(f"    params: {flow(block.params)}")
    lines.append("    nodes:")
    lines += node_lines(block.nodes, block.inputs, set(block.params) | set(block.inputs) | env, 6)
    last = block.nodes[-1].name if block.nodes else None
    if block.outputs != [last]:
        lines.append(f"    outputs: {flow(block.outputs)}")
    return lines


def spec_text(
    name: str,
    header: list[str],
    description: str,
    inputs: dict[str, list[int] | dict[str, Any]],
    blocks: dict[str, Block],
    nodes: list[SNode],
    outputs: list[str] | dict[str, str],
    aliases: dict[str, str] | None = None,
) -> str:
    """The whole spec document; ``outputs`` as a mapping makes the model return a dict;
    ``aliases``: modules under a second name (``again.shared_modules``)."""
    lines = [f"# {h}" for h in header]
    lines += ["netspec: 1", f"name: {flow(name)}", f"description: {flow(description)}", "inputs:"]
    lines += [f"  {k}: {flow(v)}" for k, v in inputs.items()]
    if blocks:
        lines.append("blocks:")
        for block in blocks.values():
            lines += block_lines(block, set())
    lines.append("nodes:")
    lines += node_lines(nodes, list(inputs), set(inputs), 2)
    lines.append(f"outputs: {flow(outputs)}")
    if isinstance(outputs, dict):
        lines.append("output_type: dict")
    if aliases:
        lines.append(f"aliases: {flow(aliases)}")
    return "\n".join(lines) + "\n"
