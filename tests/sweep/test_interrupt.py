"""The issue's test: a 12-trial sweep with --jobs 2, stopped by Ctrl-C (SIGINT to the sweep's
process) and run again, finishes without repeating a finished trial, and its best spec reruns to
the same metric. Slow: two processes train tiny models for about a minute."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import netspec

from sweepspecs import write_sweep_spec

pytest.importorskip("optuna", reason="optuna is not installed (pip install 'netspec[sweep]')")
ROOT = Path(__file__).resolve().parents[2]


def _sweep(spec: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "netspec", "sweep", str(spec), "--jobs", "2", "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.slow
def test_ctrl_c_then_resume_repeats_no_finished_trial(tmp_path: Path) -> None:
    spec, out = write_sweep_spec(tmp_path, trials=12, pruner="median"), tmp_path / "sweep"
    spec.write_text(spec.read_text().replace("epochs: 3,", "epochs: 6,"))
    proc = _sweep(spec, out)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while sum(" finished:" in x or " pruned " in x for x in lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "".join(lines)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(120) == 130, "".join(lines)
    reader.join(10)
    with open(out / "trials.csv") as f:
        before = {r["trial"]: r for r in csv.DictReader(f) if r["state"] in ("finished", "pruned", "failed")}
    assert 3 <= len(before) < 12

    again = _sweep(spec, out)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    done = [r for r in rows if r["state"] in ("finished", "pruned", "failed")]
    assert len(done) == 12, output
    for number, row in before.items():  # kept as they were: the same run, not run again
        assert next(r for r in rows if r["trial"] == number) == row
    assert all(r["state"] != "running" for r in rows)
    best = min((r for r in rows if r["state"] == "finished"), key=lambda r: float(r["val_loss"]))
    rerun = netspec.train(netspec.load_spec(out / "best.yaml"), out=tmp_path / "rerun", stream=io.StringIO())
    assert min(r["val_loss"] for r in rerun.history) == float(best["val_loss"])
