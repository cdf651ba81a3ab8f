"""Every run under a folder in one table: ``netspec runs [FOLDER]``.

A run directory is a folder with a ``spec.yaml`` and a ``metrics.jsonl`` or ``status.json`` (a
sweep's trials are run directories too). Its row: the name (its path under the folder), when it
started, its state (``status.json``: finished, interrupted, pruned, failed, running; a run whose
process is gone while it says running was stopped: interrupted, resumable from last.pt), the
epochs done, the best value of its monitored metric (or of ``--metric``), and its spec hash.

>>> import tempfile, json
>>> root = Path(tempfile.mkdtemp()); run = root / "a" / "20260101-000000"; run.mkdir(parents=True)
>>> _ = (run / "spec.yaml").write_text("name: a\\ntrain: {epochs: 2}\\n")
>>> _ = (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.5}\\n{"epoch": 2, "train_loss": 0.25}\\n')
>>> [(r["name"], r["state"], r["epochs"], r["best"]) for r in table(root)]
[('a/20260101-000000', 'finished', 2, 'train_loss 0.25')]
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["find_runs", "run_row", "table", "read_metrics", "best_of"]

_SKIP = {"tb", "mlartifacts", "trials_tb", "__pycache__"}


def find_runs(folder: Path) -> list[Path]:
    """Run directories under ``folder`` (itself included), never looking inside one."""
    found: list[Path] = []
    for here, dirs, files in os.walk(folder):
        if "spec.yaml" in files and ("metrics.jsonl" in files or "status.json" in files):
            found.append(Path(here))
            dirs.clear()
        else:
            dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
    return sorted(found)


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's records; a line cut short (a run killed mid-write) is left out."""
    records = []
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def best_of(records: list[dict[str, Any]], metric: str) -> float | None:
    """The best value of ``metric`` over the records: lowest for a loss or an error, else highest."""
    values = [r[metric] for r in records if isinstance(r.get(metric), (int, float))]
    if not values:
        return None
    lower = any(w in metric for w in ("loss", "error", "mse", "mae"))
    return min(values) if lower else max(values)


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except OSError:
        return True
    return True


def _state(run: Path, status: dict[str, Any] | None, records: list[dict[str, Any]]) -> str:
    if status is not None:
        state = str(status.get("state", "?"))
        return "interrupted" if state == "running" and not _pid_alive(status.get("pid")) else state
    import yaml

    try:
        epochs = (yaml.safe_load((run / "spec.yaml").read_text()).get("train") or {}).get("epochs", 1)
    except (OSError, yaml.YAMLError, AttributeError):
        epochs = None
    return "finished" if records and records[-1].get("epoch") == epochs else "interrupted"


def run_row(run: Path, root: Path, metric: str | None = None) -> dict[str, Any]:
    """One run's row of the table."""
    from ..training.loggers import read_status

    status = read_status(run)
    records = read_metrics(run)
    started = (status or {}).get("started") or (records[0].get("t") if records else None) or run.stat().st_mtime
    if metric is None:
        keys = records[-1] if records else {}
        metric = ((status or {}).get("best") or {}).get("monitor") or (
            "val_loss" if "val_loss" in keys else "train_loss"
        )
    best = best_of(records, metric)
    try:
        digest = (run / "spec.sha256").read_text().split()[0][:12]
    except (OSError, IndexError):
        digest = "-"
    return {
        "name": str(run.relative_to(root)) if run != root else run.name,
        "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(float(started))),
        "state": _state(run, status, records),
        "epochs": records[-1].get("epoch", len(records)) if records else 0,
        "best": f"{metric} {best:.4g}" if best is not None else "-",
        "best_value": best,
        "spec": digest,
    }


def table(
    folder: Path, *, state: str | None = None, name: str | None = None, sort: str = "when", metric: str | None = None
) -> list[dict[str, Any]]:
    """The rows of every run under ``folder``: only ``state`` ones, names matching the glob
    ``name``; sorted by a column (``best`` sorts by value, the best first)."""
    rows = [run_row(r, folder, metric) for r in find_runs(folder)]
    if state:
        rows = [r for r in rows if r["state"] == state]
    if name:
        rows = [r for r in rows if fnmatch.fnmatch(r["name"], name) or fnmatch.fnmatch(r["name"], f"*{name}*")]
    if sort == "best":
        lower = metric is None or any(w in (metric or "") for w in ("loss", "error", "mse", "mae"))
        known = [r for r in rows if r["best_value"] is not None]
        known.sort(key=lambda r: r["best_value"], reverse=not lower)
        return known + [r for r in rows if r["best_value"] is None]
    return sorted(rows, key=lambda r: _sort_key(r.get(sort)))


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers by value, the rest as text, missing ones last."""
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, "") if value is None else (0, str(value))
