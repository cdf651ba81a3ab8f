"""netspec's own layout of a picture, for svg and png when graphviz is not installed.

Top to bottom, one row (layer) per step of the longest path from the inputs. Each box continues
the column of its first input; a second branch from the same value opens the next free column
to the right, so a chain stays straight and parallel branches sit side by side. Clusters are
rounded rectangles around their boxes (rows are spaced to leave room for their titles), and a
skip connection is a dashed arc on the right of the boxes it jumps over, wider for longer jumps.
The same geometry is written as SVG, or drawn with matplotlib for a PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from .picture import SKIP_COLOR, Picture

CHAR_W = 6.6  # px per character at the 11px font used for labels
BOX_H = 34  # two lines: label, shape
ROW_GAP = 22  # between rows, before room for cluster titles and borders
COL_GAP = 28
PAD = 8  # cluster border around what it holds
TITLE = 16  # room for a cluster's title above its boxes
MARGIN = 16
FILL = {"node": "#eef2f8", "input": "#e3f1e3", "output": "#fbeee0"}


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


@dataclass
class Layout:
    """Where everything goes: box rectangles, cluster rectangles (outermost first), edge paths."""

    width: float
    height: float
    boxes: dict[str, Rect]
    clusters: list[tuple[str, Rect]]
    edges: list[tuple[str, bool]]  # SVG path data, skip?


def _rows(pic: Picture) -> dict[str, int]:
    """Row of each box: the longest path from an input (boxes come in forward order); then each
    box moves down to just above the first box that reads it, which moves only what starts a
    branch (a second input, a projection shortcut), so its edges stay short."""
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for e in pic.edges:
        before.setdefault(e.dst, []).append(e.src)
        after.setdefault(e.src, []).append(e.dst)
    row: dict[str, int] = {}
    for b in pic.boxes:
        row[b.id] = 1 + max((row[s] for s in before.get(b.id, []) if s in row), default=-1)
    for b in reversed(pic.boxes):  # as late as possible: moves side branches only, chains are tight
        readers = after.get(b.id, [])
        if readers:
            row[b.id] = max(row[b.id], min(row[r] for r in readers) - 1)
    return row


def _columns(pic: Picture, row: dict[str, int]) -> dict[str, int]:
    """Each box continues its first input's column; a second branch takes the next free one. A
    second model input is placed last, beside the first box that reads it."""
    first: dict[str, str] = {}
    reader: dict[str, str] = {}
    for e in pic.edges:
        first.setdefault(e.dst, e.src)
        reader.setdefault(e.src, e.dst)
    col: dict[str, int] = {}
    taken: set[tuple[int, int]] = set()
    continued: set[str] = set()
    late = [b for b in pic.boxes if b.kind == "input"][1:]
    for b in [b for b in pic.boxes if b not in late] + late:
        src = first.get(b.id)
        c = col[src] + (src in continued) if src is not None else col[reader[b.id]] + 1 if b in late else 0
        while (c, row[b.id]) in taken:
            c += 1
        continued.add(src) if src is not None else None
        col[b.id] = c
        taken.add((c, row[b.id]))
    return col


def _cluster_spans(pic: Picture, row: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """Per cluster: first row, last row, nesting depth (1: a top-level cluster)."""
    spans: dict[str, tuple[int, int, int]] = {}
    for b in pic.boxes:
        for depth, cid in enumerate(b.clusters, start=1):
            lo, hi, _ = spans.get(cid, (row[b.id], row[b.id], depth))
            spans[cid] = (min(lo, row[b.id]), max(hi, row[b.id]), depth)
    return spans


def layout(pic: Picture) -> Layout:
    """Positions of every box, cluster and edge (see the module docstring)."""
    row, spans = _rows(pic), {}
    col = _columns(pic, row)
    spans = _cluster_spans(pic, row)
    n_rows = max(row.values()) + 1
    deepest = max((d for _, _, d in spans.values()), default=0)
    widths = {b.id: CHAR_W * max(len(b.label), len(b.shape)) + 20 for b in pic.boxes}
    col_w: dict[int, float] = {}
    for b in pic.boxes:
        col_w[col[b.id]] = max(col_w.get(col[b.id], 0), widths[b.id])
    gap = COL_GAP + 2 * PAD * deepest
    col_x: dict[int, float] = {}
    x: float = MARGIN + PAD * deepest
    for c in sorted(col_w):
        col_x[c], x = x, x + col_w[c] + gap
    row_y, y = {}, MARGIN
    for r in range(n_rows):
        opening = sum(1 for lo, _, _ in spans.values() if lo == r)
        closing = sum(1 for _, hi, _ in spans.values() if hi == r - 1)
        y += (ROW_GAP if r else 0) + (TITLE + PAD) * opening + PAD * closing
        row_y[r], y = y, y + BOX_H
    rects = {
        b.id: Rect(col_x[col[b.id]] + (col_w[col[b.id]] - widths[b.id]) / 2, row_y[row[b.id]], widths[b.id], BOX_H)
        for b in pic.boxes
    }
    clusters = _cluster_rects(pic, rects, spans)
    edges, reach = _edges(pic, rects)
    right = max([x - gap + PAD * deepest, *(r.x + r.w + PAD for _, r in clusters)]) + reach
    return Layout(right + MARGIN, y + PAD * deepest + MARGIN, rects, clusters, edges)


def _cluster_rects(
    pic: Picture, rects: dict[str, Rect], spans: dict[str, tuple[int, int, int]]
) -> list[tuple[str, Rect]]:
    """Each cluster's rectangle: around its boxes, plus a border per level of clusters inside."""
    out = []
    for cid, (_, _, depth) in sorted(spans.items(), key=lambda kv: kv[1][2]):
        members = [rects[b.id] for b in pic.boxes if cid in b.clusters]
        inner = max(len(b.clusters) for b in pic.boxes if cid in b.clusters) - depth + 1
        x0, x1 = min(r.x for r in members), max(r.x + r.w for r in members)
        y0, y1 = min(r.y for r in members), max(r.y + r.h for r in members)
        top = _nested_titles(pic, cid)
        out.append((cid, Rect(x0 - PAD * inner, y0 - top, x1 - x0 + 2 * PAD * inner, y1 - y0 + top + PAD * inner)))
    return out


def _nested_titles(pic: Picture, cid: str) -> float:
    """Room above a cluster's first box: its title, and those of clusters that open with it."""
    first = next(b for b in pic.boxes if cid in b.clusters)
    depth = first.clusters.index(cid)
    return (TITLE + PAD) * (len(first.clusters) - depth)


def _edges(pic: Picture, rects: dict[str, Rect]) -> tuple[list[tuple[str, bool]], float]:
    """SVG path data per edge, and how far right the widest skip arc reaches."""
    out, reach = [], 0.0
    for e in pic.edges:
        s, d = rects[e.src], rects[e.dst]
        if e.skip and d.y - s.y > BOX_H + ROW_GAP * 2:
            bend = 30 + min(120.0, (d.y - s.y) / 12)
            x = max(s.x + s.w, d.x + d.w)
            reach = max(reach, x + bend - max(s.x + s.w, d.x + d.w))
            out.append(
                (
                    f"M{s.x + s.w:.1f},{s.y + BOX_H / 2:.1f} C{x + bend:.1f},{s.y + BOX_H / 2:.1f} "
                    f"{x + bend:.1f},{d.y + BOX_H / 2:.1f} {d.x + d.w:.1f},{d.y + BOX_H / 2:.1f}",
                    True,
                )
            )
            continue
        y0, y1 = s.y + s.h, d.y
        mid = (y0 + y1) / 2
        out.append((f"M{s.cx:.1f},{y0:.1f} C{s.cx:.1f},{mid:.1f} {d.cx:.1f},{mid:.1f} {d.cx:.1f},{y1:.1f}", e.skip))
    return out, reach


# ---- writers ------------------------------------------------------------------------------------


def to_svg(pic: Picture) -> str:
    """A self-contained SVG of the picture (no scripts, no external references).

    >>> from netspec.views.picture import Box, Edge
    >>> svg = to_svg(Picture("m", [Box("in:x", "x", "(B, 4)", "input"), Box("fc", "Linear", "(B, 2)")],
    ...                      edges=[Edge("in:x", "fc")]))
    >>> svg.splitlines()[0].startswith('<svg xmlns="http://www.w3.org/2000/svg"'), svg.count("<rect")
    (True, 3)
    """
    lay = layout(pic)
    titles = {c: pic.clusters[c].title for c, _ in lay.clusters}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width:.0f}" height="{lay.height:.0f}" '
        f'viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f"<title>{escape(pic.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#5b6b82"/></marker></defs>',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    for cid, r in lay.clusters:
        out.append(
            f'<g class="cluster" id="{escape(cid)}"><rect x="{r.x:.1f}" y="{r.y:.1f}" width="{r.w:.1f}" '
            f'height="{r.h:.1f}" rx="6" fill="none" stroke="#9aa7b8"/>'
            f'<text x="{r.x + 6:.1f}" y="{r.y + 12:.1f}" fill="#4a5568">{escape(titles[cid])}</text></g>'
        )
    for d, skip in lay.edges:
        style = f'stroke="{SKIP_COLOR}" stroke-dasharray="5,3"' if skip else 'stroke="#5b6b82"'
        out.append(f'<path class="{"skip" if skip else "edge"}" d="{d}" fill="none" {style} marker-end="url(#arrow)"/>')
    for b in pic.boxes:
        r = lay.boxes[b.id]
        out.append(
            f'<g class="node" id="{escape(b.id)}"><rect x="{r.x:.1f}" y="{r.y:.1f}" width="{r.w:.1f}" '
            f'height="{r.h:.1f}" rx="{r.h / 2 if b.kind != "node" else 5:.0f}" fill="{FILL[b.kind]}" '
            f'stroke="#5b6b82"/><text x="{r.cx:.1f}" y="{r.y + 14:.1f}" text-anchor="middle">'
            f'{escape(b.label)}</text><text x="{r.cx:.1f}" y="{r.y + 27:.1f}" text-anchor="middle" '
            f'fill="#4a5568">{escape(b.shape)}</text></g>'
        )
    return "\n".join(out + ["</svg>"]) + "\n"


def write_svg(pic: Picture, path: Path) -> None:
    path.write_text(to_svg(pic), encoding="utf-8")


def write_png(pic: Picture, path: Path) -> None:
    """The same layout drawn with matplotlib (already a dependency) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
    from matplotlib.path import Path as MPath

    lay = layout(pic)
    fig = plt.figure(figsize=(lay.width / 100, lay.height / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, lay.width)
    ax.set_ylim(lay.height, 0)
    ax.axis("off")
    for cid, r in lay.clusters:
        ax.add_patch(
            FancyBboxPatch(
                (r.x, r.y), r.w, r.h, boxstyle="round,pad=0,rounding_size=6", fill=False, edgecolor="#9aa7b8"
            )
        )
        ax.text(r.x + 6, r.y + 12, pic.clusters[cid].title, fontsize=8, color="#4a5568")
    for d, skip in lay.edges:
        color = SKIP_COLOR if skip else "#5b6b82"
        points = _points(d)
        ax.add_patch(
            PathPatch(
                MPath(points, [MPath.MOVETO, *[MPath.CURVE4] * 3]),
                fill=False,
                edgecolor=color,
                linestyle="--" if skip else "-",
            )
        )
        ax.add_patch(Polygon(_arrowhead(points[-2], points[-1]), closed=True, color=color))
    for b in pic.boxes:
        r = lay.boxes[b.id]
        ax.add_patch(
            FancyBboxPatch(
                (r.x, r.y),
                r.w,
                r.h,
                boxstyle="round,pad=0,rounding_size=5",
                facecolor=FILL[b.kind],
                edgecolor="#5b6b82",
            )
        )
        ax.text(r.cx, r.y + 12, b.label, ha="center", va="center", fontsize=8)
        ax.text(r.cx, r.y + 25, b.shape, ha="center", va="center", fontsize=8, color="#4a5568")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _points(d: str) -> list[tuple[float, float]]:
    """The four points of ``M x,y C x,y x,y x,y`` (what _edges writes)."""
    return [(float(x), float(y)) for x, y in (p.split(",") for p in d.replace("M", "").replace("C", "").split())]


def _arrowhead(control: tuple[float, float], end: tuple[float, float], size: float = 7.0) -> list[tuple[float, float]]:
    """A small triangle at ``end``, pointing away from ``control``.

    >>> _arrowhead((0.0, 0.0), (0.0, 10.0))
    [(0.0, 10.0), (-3.5, 3.0), (3.5, 3.0)]
    """
    dx, dy = end[0] - control[0], end[1] - control[1]
    norm = (dx * dx + dy * dy) ** 0.5 or 1.0
    ux, uy = dx / norm, dy / norm
    bx, by = end[0] - ux * size, end[1] - uy * size
    return [end, (bx - uy * size / 2, by + ux * size / 2), (bx + uy * size / 2, by - ux * size / 2)]
