"""A picture of the network: ``netspec compile SPEC --graph FILE`` (svg, png, dot or mermaid).

The picture is drawn from the typed graph (``compile_spec(...).graph``): one box per node with
its op and output shape, blocks, groups and repeats as clusters around their nodes, and skip
connections (an edge whose target its source also reaches through other nodes: a residual
shortcut, a U-Net skip) drawn dashed. DOT and Mermaid are text written here; SVG and PNG come
from graphviz's ``dot`` when it is installed, else from netspec's own layered layout
(``picture_svg.py``), so no binary is needed; ``picture_file.py`` writes the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..compiler.typed import TypedGraph, TypedNode

SKIP_COLOR = "#c0392b"


@dataclass
class Box:
    """One drawn node: a model input or output, or a node of the graph (inside its clusters)."""

    id: str  # "x2.doubleconv.conv2d", "in:image", "out:logits"
    label: str  # "Conv2d", "fc1: Linear", "image"
    shape: str  # "(B, 64, 286, 286)"
    kind: str = "node"  # node | input | output
    clusters: tuple[str, ...] = ()  # ids of the clusters around it, outermost first


@dataclass
class Cluster:
    id: str  # the block, group or repeat node's dotted name
    title: str  # "x2: Down", "stage1: Residual x 2"
    parent: str | None


@dataclass
class Edge:
    src: str
    dst: str
    skip: bool = False


@dataclass
class Picture:
    """The boxes, clusters and edges of a network, in the order the forward computes them."""

    name: str
    boxes: list[Box] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)


def picture_of(graph: TypedGraph, depth: int | None = None) -> Picture:
    """Boxes, clusters and edges of a typed graph; clusters deeper than ``depth`` become one box.

    >>> from netspec.api import compile_spec
    >>> g = compile_spec({"name": "m", "inputs": {"x": [4]}, "nodes": [{"fc": {"Linear": {"out_features": 4}}},
    ...                   "ReLU", {"add": ["relu", "x"]}]}).graph
    >>> p = picture_of(g)
    >>> [(b.id, b.label, b.shape) for b in p.boxes]
    [('in:x', 'x', '(B, 4)'), ('fc', 'fc: Linear', '(B, 4)'), ('relu', 'ReLU', '(B, 4)'), ('add', 'add', '(B, 4)'), ('out:add', 'add', '(B, 4)')]
    >>> [(e.src, e.dst) for e in p.edges if e.skip]
    [('in:x', 'add')]
    """
    pic = Picture(graph.name)
    env: dict[str, list[str]] = {}
    for name in graph.inputs:
        probe = graph.input_probe(name)
        pic.boxes.append(Box(f"in:{name}", name, _shape(probe.value, probe.twin), "input"))
        env[name] = [f"in:{name}"]
    values = _add_graph(pic, graph, env, "", (), depth)
    for ext, ref in graph.outputs:
        probe = graph.probe_of(ref)
        pic.boxes.append(Box(f"out:{ext}", ext, _shape(probe.value, probe.twin), "output"))
        pic.edges += [Edge(src, f"out:{ext}") for src in values[ref]]
    _mark_skips(pic)
    return pic


def _shape(value: Any, twin: Any) -> str:
    from ..compiler.dims import shape_str

    return shape_str(value, twin)


def _add_graph(
    pic: Picture,
    graph: TypedGraph,
    env: dict[str, list[str]],
    prefix: str,
    clusters: tuple[str, ...],
    depth: int | None,
) -> dict[str, list[str]]:
    """Add a (sub)graph's nodes; ``env`` maps names in scope to the boxes that produce them."""
    env = dict(env)
    for node in graph.nodes:
        nid = prefix + node.name
        if node.sub is not None and (depth is None or len(clusters) < depth):
            # the cluster's own nodes read its inputs: edges go to them, not to the cluster
            pic.clusters[nid] = Cluster(nid, _title(node, prefix), clusters[-1] if clusters else None)
            outs = _add_graph(pic, node.sub, _inner_env(node, env), nid + ".", (*clusters, nid), depth)
            env[node.name] = [src for _, ref in node.sub.outputs for src in outs[ref]]
        else:
            sources = [src for ref in _refs(node) for src in env[ref]]
            pic.boxes.append(Box(nid, _label(node), node.shape, "node", clusters))
            pic.edges += [Edge(src, nid) for src in dict.fromkeys(sources)]
            env[node.name] = [nid]
    return env


def _refs(node: TypedNode) -> list[str]:
    keyword = [r for v in node.kw_inputs.values() for r in ([v] if isinstance(v, str) else v)]
    return [*node.inputs, *keyword]


def _inner_env(node: TypedNode, env: dict[str, list[str]]) -> dict[str, list[str]]:
    """A block's, group's or repeat's input names bound to the boxes that feed them."""
    assert node.sub is not None
    inner = {name: env[ref] for name, ref in zip(node.sub.inputs, node.inputs)}
    for key, ref in node.kw_inputs.items():
        if key in node.sub.inputs:
            inner[key] = [src for r in ([ref] if isinstance(ref, str) else ref) for src in env[r]]
    return inner


def _label(node: TypedNode) -> str:
    """``fc1: Linear`` for a name a person gave; ``Conv2d`` for an automatic or numbered one."""
    auto = re.sub(r"[^0-9a-zA-Z_]", "_", node.op).lower()
    if node.name.isdigit() or re.fullmatch(re.escape(auto) + r"(_\d+)?", node.name):
        return node.op
    return f"{node.name}: {node.op}"


def _title(node: TypedNode, prefix: str) -> str:
    name = node.name if not node.name.isdigit() else f"{prefix.rstrip('.').rsplit('.', 1)[-1]}[{node.name}]"
    if node.kind == "repeat":
        assert node.sub is not None
        return f"{name}: {node.op} x {len(node.sub.nodes)}"
    return name if node.kind == "group" else f"{name}: {node.op}"


def _mark_skips(pic: Picture) -> None:
    """An edge is a skip connection when its target is also reachable from its source through
    other boxes (a residual's identity, a U-Net's encoder-to-decoder link)."""
    after: dict[str, list[str]] = {}
    for e in pic.edges:
        after.setdefault(e.src, []).append(e.dst)
    for e in pic.edges:
        seen, todo = set(), [d for d in after.get(e.src, []) if d != e.dst]
        while todo and e.dst not in seen:
            box = todo.pop()
            if box not in seen:
                seen.add(box)
                todo += after.get(box, [])
        e.skip = e.dst in seen


# ---- text formats ---------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(pic: Picture) -> str:
    """Graphviz DOT: clusters as ``subgraph cluster_...``, skip connections dashed.

    >>> print(to_dot(Picture("m", [Box("in:x", "x", "(B, 4)", "input"), Box("fc", "Linear", "(B, 2)")],
    ...                          edges=[Edge("in:x", "fc")])))  # doctest: +NORMALIZE_WHITESPACE
    digraph "m" {
      graph [rankdir=TB, fontname="Helvetica", fontsize=11, labeljust=l, nodesep=0.3, ranksep=0.3];
      node [shape=box, style="rounded,filled", fillcolor="#eef2f8", color="#5b6b82", fontname="Helvetica", fontsize=10];
      edge [color="#5b6b82", arrowsize=0.7];
    <BLANKLINE>
      "in:x" [label="x\\n(B, 4)", shape=oval, fillcolor="#e3f1e3"];
      "fc" [label="Linear\\n(B, 2)"];
    <BLANKLINE>
      "in:x" -> "fc";
    }
    """
    lines = [
        f"digraph {_quote(pic.name)} {{",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, labeljust=l, nodesep=0.3, ranksep=0.3];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef2f8", color="#5b6b82", '
        'fontname="Helvetica", fontsize=10];',
        '  edge [color="#5b6b82", arrowsize=0.7];',
        "",
    ]
    lines += _dot_cluster(pic, (), "  ")
    lines.append("")
    for e in pic.edges:
        style = f' [style=dashed, color="{SKIP_COLOR}"]' if e.skip else ""
        lines.append(f"  {_quote(e.src)} -> {_quote(e.dst)}{style};" + ("  // skip" if e.skip else ""))
    return "\n".join(lines + ["}"])


def _dot_box(box: Box) -> str:
    extra = {"input": ', shape=oval, fillcolor="#e3f1e3"', "output": ', shape=oval, fillcolor="#fbeee0"'}
    label = _quote(f"{box.label}\n{box.shape}" if box.shape else box.label).replace("\n", "\\n")
    return f"{_quote(box.id)} [label={label}{extra.get(box.kind, '')}];"


def level(pic: Picture, path: tuple[str, ...]) -> list[Box | Cluster]:
    """The boxes and clusters directly inside the cluster at ``path`` (``()``: the top), in
    forward order: a cluster comes where its first box does.

    >>> pic = Picture("m", [Box("a", "A", ""), Box("b.c", "C", "", clusters=("b",)), Box("d", "D", "")],
    ...               {"b": Cluster("b", "b: B", None)})
    >>> [x.id for x in level(pic, ())], [x.id for x in level(pic, ("b",))]
    (['a', 'b', 'd'], ['b.c'])
    """
    items: list[Box | Cluster] = []
    for box in pic.boxes:
        if box.clusters[: len(path)] != path:
            continue
        if len(box.clusters) == len(path):
            items.append(box)
        elif pic.clusters[box.clusters[len(path)]] not in items:
            items.append(pic.clusters[box.clusters[len(path)]])
    return items


def _dot_cluster(pic: Picture, path: tuple[str, ...], indent: str) -> list[str]:
    lines = []
    for item in level(pic, path):
        if isinstance(item, Box):
            lines.append(indent + _dot_box(item))
            continue
        lines.append(f"{indent}subgraph {_quote('cluster_' + item.id)} {{")
        lines.append(f'{indent}  label={_quote(item.title)}; style=rounded; color="#9aa7b8";')
        lines += _dot_cluster(pic, (*path, item.id), indent + "  ")
        lines.append(f"{indent}}}")
    return lines


def to_mermaid(pic: Picture) -> str:
    """A Mermaid flowchart: clusters as ``subgraph``, skip connections dotted (``-.->``).

    >>> print(to_mermaid(Picture("m", [Box("in:x", "x", "(B, 4)", "input"), Box("fc", "Linear", "(B, 2)")],
    ...                              edges=[Edge("in:x", "fc")])))
    flowchart TB
      in_x(["x<br>(B, 4)"])
      fc["Linear<br>(B, 2)"]
      in_x --> fc
    """
    ids = _mermaid_ids(pic)
    lines = ["flowchart TB", *_mermaid_cluster(pic, (), ids, "  ")]
    for e in pic.edges:
        lines.append(f"  {ids[e.src]} {'-.->' if e.skip else '-->'} {ids[e.dst]}")
    return "\n".join(lines)


_MERMAID_WORDS = {
    "end",
    "graph",
    "subgraph",
    "flowchart",
    "style",
    "class",
    "classDef",
    "click",
    "linkStyle",
    "default",
    "direction",
}


def _mermaid_ids(pic: Picture) -> dict[str, str]:
    """Mermaid ids are plain words: dots and colons become underscores, kept unique, never a
    keyword of Mermaid's (a node named `end` would close a subgraph)."""
    ids: dict[str, str] = {}
    for key in [*(b.id for b in pic.boxes), *pic.clusters]:
        base = re.sub(r"\W", "_", key)
        base = base + "_" if base in _MERMAID_WORDS else base
        word, i = base, 1
        while word in ids.values():
            word, i = f"{base}_{i}", i + 1
        ids[key] = word
    return ids


def _mermaid_cluster(pic: Picture, path: tuple[str, ...], ids: dict[str, str], indent: str) -> list[str]:
    lines = []
    for item in level(pic, path):
        if isinstance(item, Cluster):
            lines.append(f'{indent}subgraph {ids[item.id]} ["{item.title}"]')
            lines += _mermaid_cluster(pic, (*path, item.id), ids, indent + "  ")
            lines.append(f"{indent}end")
            continue
        text = (f"{item.label}<br>{item.shape}" if item.shape else item.label).replace('"', "#quot;")
        lines.append(
            f'{indent}{ids[item.id]}(["{text}"])' if item.kind != "node" else f'{indent}{ids[item.id]}["{text}"]'
        )
    return lines
