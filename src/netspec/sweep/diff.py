"""Two runs compared: ``netspec runs diff A B``: the spec keys that differ, the metrics side by
side (the last epoch's and the best), and both runs' curves on one picture.

>>> spec_differences({"optimizer": {"args": {"lr": 0.1}}, "name": "m"}, {"optimizer": {"args": {"lr": 0.2}}, "name": "m"})
[('optimizer.args.lr', 0.1, 0.2)]
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from ..training.loggers import flatten
from .runs import best_of, read_metrics

__all__ = ["spec_differences", "metric_rows", "draw_curves", "read_spec"]

_MISSING = "(absent)"


def read_spec(run: Path) -> dict[str, Any]:
    """A run's resolved spec (spec.yaml) as plain data."""
    import yaml

    from ..errors import UsageError

    try:
        data = yaml.safe_load((run / "spec.yaml").read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(f"{run} is not a run directory: no readable spec.yaml ({err})", path=("runs",)) from None
    return data if isinstance(data, dict) else {}


def spec_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, A's value, B's value) for every key whose values differ."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k, _MISSING), fb.get(k, _MISSING)) for k in keys if fa.get(k, _MISSING) != fb.get(k, _MISSING)]


def metric_rows(ra: list[dict[str, Any]], rb: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """(what, A, B): epochs, then each metric's last and best value."""
    skip = {"epoch", "step", "t", "lr_groups", "time_s", "samples_per_s"}
    keys = [k for k in dict.fromkeys([*(ra[-1] if ra else {}), *(rb[-1] if rb else {})]) if k not in skip]
    rows: list[tuple[str, Any, Any]] = [("epochs", len(ra), len(rb))]
    for k in keys:
        rows.append((f"{k} (last)", ra[-1].get(k) if ra else None, rb[-1].get(k) if rb else None))
        if k != "lr":
            rows.append((f"{k} (best)", best_of(ra, k), best_of(rb, k)))
    return rows


def draw_curves(ra: list[dict[str, Any]], rb: list[dict[str, Any]], names: tuple[str, str]) -> bytes:
    """One panel per metric (train and val in it), run A solid, run B dashed; PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = sorted({k.split("_", 1)[1] for r in (*ra, *rb) for k in r if k.startswith(("train_", "val_"))})
    fig = Figure(figsize=(4.5 * max(1, len(keys)), 3.4))
    FigureCanvasAgg(fig)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for records, name, style in ((ra, names[0], "-"), (rb, names[1], "--")):
            for split in ("train", "val"):
                ys = [r.get(f"{split}_{key}") for r in records]
                if any(y is not None for y in ys):
                    xs = [r["epoch"] for r in records]
                    ax.plot(xs, [math.nan if y is None else y for y in ys], style, marker="o", label=f"{name} {split}")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80)
    return png.getvalue()


def diff_runs(a: Path, b: Path) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]], bytes]:
    """The spec differences, the metric rows and the curves' PNG of two run directories."""
    ra, rb = read_metrics(a), read_metrics(b)
    return spec_differences(read_spec(a), read_spec(b)), metric_rows(ra, rb), draw_curves(ra, rb, ("A", "B"))
