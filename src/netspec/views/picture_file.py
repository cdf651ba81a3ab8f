"""The ``--graph FILE`` file: the format from its suffix, the picture (``picture.py``) written as
DOT or Mermaid text, or as SVG/PNG by graphviz's ``dot`` when installed, else by netspec's own
layout (``picture_svg.py``); written atomically, so a failure never leaves half a picture.

>>> picture_format("net.dot")
'dot'
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..compiler.typed import TypedGraph
from ..errors import SpecError
from ..files.outputs import atomic_file
from .picture import Picture, picture_of, to_dot, to_mermaid
from .picture_svg import write_png, write_svg

FORMATS = {
    ".svg": "svg",
    ".png": "png",
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "markdown",
}


def write_picture(graph: TypedGraph, file: str | Path, *, renderer: str = "auto", depth: int | None = None) -> str:
    """Write the picture of ``graph`` to ``file`` (format by suffix); returns what was written.

    ``renderer`` for svg and png: ``graphviz`` (the ``dot`` binary), ``netspec`` (the built-in
    layout; png through matplotlib) or ``auto`` (graphviz when installed).
    """
    path = Path(file)
    fmt = picture_format(path)
    pic = picture_of(graph, depth)
    with atomic_file(path, option="--graph") as tmp:  # graphviz failing never leaves half a picture
        how = _render(pic, tmp, fmt, renderer)
    n_skip = sum(e.skip for e in pic.edges)
    return (
        f"wrote {file} ({len(pic.boxes)} boxes, {len(pic.clusters)} clusters, {n_skip} skip "
        f"connection{'s' * (n_skip != 1)}{how})"
    )


def picture_format(file: str | Path) -> str:
    """The format a file name asks for: svg, png, dot, mermaid or markdown (a fenced mermaid block).

    >>> picture_format("unet.svg"), picture_format("unet.mmd")
    ('svg', 'mermaid')
    >>> picture_format("unet.jpg")
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: --graph: cannot tell the picture format from `.jpg`; use .svg, .png, .dot (graphviz) or .mmd (mermaid; .md for a fenced block)
    """
    fmt = FORMATS.get(Path(file).suffix.lower())
    if fmt is None:
        raise SpecError(
            f"cannot tell the picture format from `{Path(file).suffix or 'no suffix'}`",
            path=("--graph",),
            hint="use .svg, .png, .dot (graphviz) or .mmd (mermaid; .md for a fenced block)",
        )
    return fmt


def _render(pic: Picture, path: Path, fmt: str, renderer: str) -> str:
    text = {
        "dot": lambda: to_dot(pic) + "\n",
        "mermaid": lambda: to_mermaid(pic) + "\n",
        "markdown": lambda: f"```mermaid\n{to_mermaid(pic)}\n```\n",
    }.get(fmt)
    try:
        if text is not None:
            path.write_text(text(), encoding="utf-8")
            return ""
        dot = shutil.which("dot") if renderer in ("auto", "graphviz") else None
        if renderer == "graphviz" and dot is None:
            raise SpecError(
                "graphviz's `dot` is not installed",
                path=("--graph",),
                hint="install graphviz, or write .svg/.png with netspec's own layout",
            )
        if dot is not None:
            subprocess.run(
                [dot, f"-T{fmt}", "-o", str(path)],
                input=to_dot(pic),
                text=True,
                check=True,
                capture_output=True,
                timeout=120,
            )
            return "; laid out by graphviz"
        (write_svg if fmt == "svg" else write_png)(pic, path)
        return "; laid out by netspec, graphviz's dot not found"
    except OSError as e:
        raise SpecError(f"cannot write {path}: {e.strerror or e}", path=("--graph",)) from None
    except subprocess.SubprocessError as e:
        raise SpecError(
            f"graphviz's dot failed: {e}",
            path=("--graph",),
            hint="write .dot and run dot yourself, or use .svg without graphviz",
        ) from None
