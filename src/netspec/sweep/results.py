"""What a sweep leaves in its folder besides the trials' run directories: ``trials.csv`` and the
table printed at the end (parameters, metric, state, epochs, time), ``best.yaml`` (the best
trial's spec, a plain spec that ``netspec run`` takes as it is) and the pictures
(``history.png``, ``importances.png``, ``parallel.png``) drawn by Optuna's matplotlib plots.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import first_line
from ..files.outputs import write_file

__all__ = ["trial_rows", "format_table", "write_results", "best_spec_text", "PICTURES"]

# picture file -> the optuna.visualization.matplotlib function that draws it
PICTURES = {
    "history.png": "plot_optimization_history",
    "importances.png": "plot_param_importances",
    "parallel.png": "plot_parallel_coordinate",
}


def state_of(trial: Any) -> str:
    """finished / pruned / failed / interrupted / running / waiting."""
    name = trial.state.name
    if name == "FAIL" and trial.user_attrs.get("interrupted"):
        return "interrupted"
    return {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed"}.get(name, name.lower())


def trial_rows(study: Any, metric: str) -> list[dict[str, Any]]:
    """One dict per trial: number, state, the metric, each parameter, epochs, time, run folder."""
    names = sorted({k for t in study.trials for k in t.params})
    rows = []
    for t in study.trials:
        value = (
            t.value
            if t.value is not None
            else (max(t.intermediate_values.items())[1] if t.intermediate_values else None)
        )
        row: dict[str, Any] = {"trial": t.number, "state": state_of(t), metric: value}
        row.update({k: t.params.get(k) for k in names})
        row["epochs"] = t.user_attrs.get("epochs")
        row["time_s"] = t.user_attrs.get("time_s")
        row["run"] = t.user_attrs.get("run_dir") or t.user_attrs.get("run_folder")
        row["error"] = t.user_attrs.get("error", "")
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]], skip: tuple[str, ...] = ("run", "error")) -> str:
    """A plain text table of dicts (columns from the first row), numbers to 4 significant digits.

    >>> print(format_table([{"trial": 0, "state": "finished", "val_loss": 0.123456}]))
    trial  state     val_loss
    0      finished  0.1235
    """
    if not rows:
        return "(no trials)"
    cols = [c for c in rows[0] if c not in skip]
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def best_spec_text(setup: Any, study: Any, metric: str) -> str | None:
    """The best trial's spec as YAML: the spec as written, the trial's values set, no sweep."""
    from ..api import load_spec
    from .trial import trial_overrides

    try:
        best = study.best_trial
    except ValueError:  # no finished trial
        return None
    spec = load_spec(
        setup.spec_path,
        overrides=trial_overrides(setup.overrides, best.params),
        allow_imports=setup.allow_imports,
        data_roots=setup.data_roots,
    )
    head = (
        f"# the best trial ({best.number}) of sweep {setup.study_name}: {metric} {best.value:.6g}\n"
        f"# its values: {json.dumps(best.params)}; its run: {best.user_attrs.get('run_dir')}\n"
    )
    return head + spec.to_yaml()


def write_results(setup: Any, study: Any, metric: str) -> list[str]:
    """trials.csv, best.yaml and the pictures in the sweep folder; returns what was written, and
    a warning for each picture Optuna could not draw (too few finished trials)."""
    folder: Path = setup.folder
    rows = trial_rows(study, metric)
    write_file(folder / "trials.csv", csv_text(rows))
    written = ["trials.csv"]
    best = best_spec_text(setup, study, metric)
    if best is not None:
        write_file(folder / "best.yaml", best)
        written.append("best.yaml")
    return written + draw_pictures(study, folder)


def draw_pictures(study: Any, folder: Path) -> list[str]:
    """The PNG pictures; each one Optuna cannot draw is named with the reason instead."""
    import matplotlib

    matplotlib.use("Agg")  # no display, whatever the environment says
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as oplots

    done = []
    for name, fn in PICTURES.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = getattr(oplots, fn)(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(8, 5)
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=90, bbox_inches="tight")
            plt.close(fig)
            write_file(folder / name, png.getvalue())
            done.append(name)
        except Exception as err:  # too few trials, one parameter: a note, never a failed sweep
            done.append(f"({name} not drawn: {first_line(err)})")
    return done
