"""Pictures of the network (``netspec compile SPEC --graph FILE``): every format is parsed back and
checked for the nodes, their shapes, the clusters of blocks and repeats, and the skip connections
of the U-Net and the small ResNet. graphviz is not needed; where it is installed it is used, which
a stand-in ``dot`` on PATH checks here."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import netspec
from netspec.cli import main
from netspec.errors import SpecError
from netspec.views.picture import picture_of, to_dot, to_mermaid
from netspec.views.picture_file import write_picture
from netspec.views.picture_svg import to_svg

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"

# The skip connections each spec has, as (source box, target box).
UNET_SKIPS = {
    (f"{enc}.doubleconv.relu_1" if enc != "x1" else "x1.relu_1", f"{dec}.{op}")
    for enc, dec in (("x4", "up"), ("x3", "up_1"), ("x2", "up_2"), ("x1", "up_3"))
    for op in ("pad_to", "cat")
}
RESNET_SKIPS = {
    ("relu", "stage1.0.add"),
    ("stage1.0.relu_1", "stage1.1.add"),
    ("stage2.0.relu_1", "stage2.1.add"),
    ("stage3.0.relu_1", "stage3.1.add"),
}


@pytest.fixture(scope="module")
def graphs() -> dict[str, netspec.api.TypedGraph]:
    return {name: netspec.compile_spec(ROOT / "specs" / f"{name}.yaml").graph for name in ("unet", "small_resnet")}


# ---- the picture itself -----------------------------------------------------------------------


def test_unet_boxes_clusters_and_skips(graphs) -> None:
    pic = picture_of(graphs["unet"])
    boxes = {b.id: b for b in pic.boxes}
    assert boxes["in:image"].shape == "(B, 3, 572, 572)" and boxes["out:logits"].shape == "(B, 2, 572, 572)"
    assert boxes["x2.doubleconv.conv2d"].clusters == ("x2", "x2.doubleconv")
    assert boxes["up.up"].label == "up: ConvTranspose2d" and boxes["up.up"].shape == "(B, 512, 70, 70)"
    assert pic.clusters["x2"].title == "x2: Down" and pic.clusters["x2.doubleconv"].parent == "x2"
    assert len(pic.clusters) == 17  # x1, x2..x5 (+ their DoubleConv), up..up_3 (+ theirs)
    assert {(e.src, e.dst) for e in pic.edges if e.skip} == UNET_SKIPS


def test_small_resnet_repeats_are_clusters_of_blocks(graphs) -> None:
    pic = picture_of(graphs["small_resnet"])
    assert pic.clusters["stage2"].title == "stage2: Residual x 2"
    assert pic.clusters["stage2.0"].title == "stage2[0]: Residual" and pic.clusters["stage2.0"].parent == "stage2"
    assert {(e.src, e.dst) for e in pic.edges if e.skip} == RESNET_SKIPS
    # the projection shortcut is a branch, not a skip: it computes something
    assert ("stage1.1.relu_1", "stage2.0.project") in {(e.src, e.dst) for e in pic.edges if not e.skip}


def test_depth_collapses_inner_clusters(graphs) -> None:
    pic = picture_of(graphs["unet"], depth=1)
    assert "x2.doubleconv" not in pic.clusters and "x2" in pic.clusters
    box = next(b for b in pic.boxes if b.id == "x2.doubleconv")
    assert (box.label, box.shape) == ("DoubleConv", "(B, 128, 286, 286)")


# ---- DOT ----------------------------------------------------------------------------------------

_DOT_LINE = re.compile(
    r'^\s*(?:digraph "[^"]+" \{|(?:graph|node|edge) \[.*\];|subgraph "cluster_[^"]+" \{'
    r'|label="[^"]*"; style=rounded; color="#[0-9a-f]+";|}|"[^"]+" \[label=".*"\];'
    r'|"[^"]+" -> "[^"]+"(?: \[style=dashed, color="#[0-9a-f]+"\])?;(?:  // skip)?|)$'
)


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str, bool]], list[str]]:
    """Nodes (id -> label), edges and cluster names; fails on any line it does not know."""
    depth = 0
    for line in text.splitlines():
        assert _DOT_LINE.match(line), f"not DOT as written here: {line!r}"
        depth += line.count("{") - line.count("}")
        assert depth >= 0
    assert depth == 0, "unbalanced braces"
    nodes = dict(re.findall(r'^\s*"([^"]+)" \[label="((?:[^"\\]|\\.)*)"', text, re.M))
    edges = [(a, b, bool(s)) for a, b, s in re.findall(r'^\s*"([^"]+)" -> "([^"]+)"( \[style=dashed)?', text, re.M)]
    clusters = re.findall(r'subgraph "cluster_([^"]+)"', text)
    assert {x for a, b, _ in edges for x in (a, b)} <= set(nodes), "an edge names an undeclared node"
    return nodes, edges, clusters


def test_dot_of_the_unet(graphs) -> None:
    nodes, edges, clusters = parse_dot(to_dot(picture_of(graphs["unet"])))
    assert nodes["x1.conv2d"] == "Conv2d\\n(B, 64, 572, 572)"
    assert nodes["in:image"] == "image\\n(B, 3, 572, 572)"
    assert {"x1", "x2", "x2.doubleconv", "up_3", "up_3.doubleconv"} <= set(clusters)
    assert {(a, b) for a, b, skip in edges if skip} == UNET_SKIPS


def test_dot_of_the_small_resnet(graphs) -> None:
    nodes, edges, clusters = parse_dot(to_dot(picture_of(graphs["small_resnet"])))
    assert nodes["stage2.0.project"] == "project: Conv2d\\n(B, 32, 16, 16)"
    assert clusters[:3] == ["stage1", "stage1.0", "stage1.1"]  # in forward order, nested
    assert {(a, b) for a, b, skip in edges if skip} == RESNET_SKIPS


# ---- Mermaid --------------------------------------------------------------------------------------


def parse_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str, bool]], list[str]]:
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    nodes, edges, clusters, depth = {}, [], [], 0
    for line in lines[1:]:
        if m := re.fullmatch(r'\s*subgraph (\w+) \["([^"]+)"\]', line):
            clusters.append(m.group(2))
            depth += 1
        elif line.strip() == "end":
            depth -= 1
        elif m := re.fullmatch(r'\s*(\w+)(?:\["([^"]+)"\]|\(\["([^"]+)"\]\))', line):
            nodes[m.group(1)] = m.group(2) or m.group(3)
        elif m := re.fullmatch(r"\s*(\w+) (-->|-\.->) (\w+)", line):
            edges.append((m.group(1), m.group(3), m.group(2) == "-.->"))
        else:
            raise AssertionError(f"not Mermaid as written here: {line!r}")
        assert depth >= 0
    assert depth == 0, "unbalanced subgraph/end"
    assert {x for a, b, _ in edges for x in (a, b)} <= set(nodes)
    return nodes, edges, clusters


def test_mermaid_of_both(graphs) -> None:
    nodes, edges, clusters = parse_mermaid(to_mermaid(picture_of(graphs["unet"])))
    assert nodes["x2_doubleconv_conv2d"] == "Conv2d<br>(B, 128, 286, 286)"
    assert "x2: Down" in clusters and "doubleconv: DoubleConv" in clusters
    assert ("x4_doubleconv_relu_1", "up_cat", True) in edges and sum(s for *_, s in edges) == 8
    nodes, edges, clusters = parse_mermaid(to_mermaid(picture_of(graphs["small_resnet"])))
    assert "stage3: Residual x 2" in clusters and ("relu", "stage1_0_add", True) in edges


# ---- SVG and PNG without graphviz -------------------------------------------------------------------


def test_svg_of_the_unet_is_xml_with_every_box(graphs) -> None:
    pic = picture_of(graphs["unet"])
    root = ET.fromstring(to_svg(pic))
    assert root.tag == f"{SVG}svg" and float(root.get("width")) > 0
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    nodes = [g for g in groups.values() if g.get("class") == "node"]
    assert len(nodes) == len(pic.boxes) == 73
    assert [t.text for t in groups["x1.conv2d"].iter(f"{SVG}text")] == ["Conv2d", "(B, 64, 572, 572)"]
    titles = [g.find(f"{SVG}text").text for g in groups.values() if g.get("class") == "cluster"]
    assert "x2: Down" in titles and len(titles) == 17
    assert len([p for p in root.iter(f"{SVG}path") if p.get("class") == "skip"]) == 8


def test_svg_boxes_do_not_overlap(graphs) -> None:
    root = ET.fromstring(to_svg(picture_of(graphs["small_resnet"])))
    rects = [
        tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "node"
        for r in g.iter(f"{SVG}rect")
    ]
    for i, (x, y, w, h) in enumerate(rects):
        for x2, y2, w2, h2 in rects[i + 1 :]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, "two boxes overlap"


def test_png_without_graphviz(graphs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot
    line = write_picture(graphs["small_resnet"], tmp_path / "net.png")
    assert line.endswith("laid out by netspec, graphviz's dot not found)")
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graphviz_is_used_when_installed(graphs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `dot` that keeps the DOT it is given: the picture goes through graphviz."""
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\ncat > {tmp_path / "given.dot"}\necho "$@" > {tmp_path / "args"}\n: > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    line = write_picture(graphs["unet"], tmp_path / "unet.svg")
    assert line.endswith("; laid out by graphviz)")
    fmt, o, written = (tmp_path / "args").read_text().split()  # a temp file beside it, renamed into place
    assert (fmt, o, Path(written).parent, Path(written).suffix) == ("-Tsvg", "-o", tmp_path, ".svg")
    assert sorted(p.name for p in tmp_path.glob("*.svg")) == ["unet.svg"]
    parse_dot((tmp_path / "given.dot").read_text())
    with pytest.raises(SpecError, match="graphviz's `dot` is not installed"):
        monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
        write_picture(graphs["unet"], tmp_path / "u.svg", renderer="graphviz")


# ---- the command ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix,check", [(".dot", parse_dot), (".mmd", parse_mermaid), (".svg", ET.fromstring)])
def test_compile_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, suffix: str, check
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # the same output whether graphviz is installed or not
    out = tmp_path / f"net{suffix}"
    assert main(["compile", str(ROOT / "specs" / "small_resnet.yaml"), "--graph", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "small_resnet: 1 input (image 3x32x32) -> 1 output (logits 10)"
    assert lines[1].startswith(f"wrote {out} (54 boxes, 9 clusters, 4 skip connections")
    check(out.read_text())


def test_markdown_is_a_fenced_mermaid_block(graphs, tmp_path: Path) -> None:
    write_picture(graphs["small_resnet"], tmp_path / "net.md")
    text = (tmp_path / "net.md").read_text()
    assert text.startswith("```mermaid\nflowchart TB\n") and text.endswith("\n```\n")
    parse_mermaid(text.split("\n", 1)[1].rsplit("```", 1)[0].strip())


def test_unknown_suffix_is_one_line_before_compiling(capsys: pytest.CaptureFixture[str]) -> None:
    spec = ROOT / "specs" / "small_resnet.yaml"
    assert main(["compile", str(spec), "--graph", "net.jpg"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before compiling
    assert captured.err.splitlines() == [
        f"{spec}: --graph: cannot tell the picture format from `.jpg`; use .svg, "
        ".png, .dot (graphviz) or .mmd (mermaid; .md for a fenced block)"
    ]


def test_docs_unet_svg_is_current(graphs) -> None:
    """docs/command-line.md shows docs/unet.svg: what `netspec compile specs/unet.yaml --graph docs/unet.svg` writes
    without graphviz."""
    assert (ROOT / "docs" / "unet.svg").read_text() == to_svg(picture_of(graphs["unet"])), (
        "docs/unet.svg is stale: run `PATH=/usr/bin/false netspec compile specs/unet.yaml --graph docs/unet.svg` "
        "(without graphviz) and commit it"
    )
