"""`netspec sweep`: trials run and recorded, the best spec reruns to the same metric, a failed trial
does not stop the others, pruning stops hopeless trials, a resumed sweep repeats nothing."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

import netspec
from netspec.cli import main

from sweepspecs import write_sweep_spec

pytest.importorskip("optuna", reason="optuna is not installed (pip install 'netspec[sweep]')")


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_a_sweep_records_its_trials_and_its_best_spec_reruns_to_the_same_metric(tmp_path: Path) -> None:
    spec, out = write_sweep_spec(tmp_path, trials=3), tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["finished"] * 3
    assert all(r["width"] in ("4", "8", "16") and 0.001 <= float(r["optimizer.args.lr"]) <= 0.5 for r in rows)
    for r in rows:  # each trial is an ordinary run directory holding its resolved spec, without the sweep
        run = Path(r["run"])
        assert (run / "metrics.jsonl").exists() and "sweep" not in (run / "spec.yaml").read_text()
    assert {p.name for p in out.glob("*.png")} >= {"history.png", "parallel.png"}
    best = min(rows, key=lambda r: float(r["val_loss"]))
    # best.yaml is a plain spec: rerun it from Python, as `netspec run` would
    rerun = netspec.train(netspec.load_spec(out / "best.yaml"), out=tmp_path / "rerun", stream=io.StringIO())
    assert min(r["val_loss"] for r in rerun.history) == float(best["val_loss"])


def test_a_failed_trial_is_recorded_and_the_others_go_on(tmp_path: Path) -> None:
    params = "    optimizer.args.lr: {grid: [0.01, 1.0e+30]}"  # the second one's loss becomes inf/NaN
    spec, out = write_sweep_spec(tmp_path, trials=2, params=params), tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    by_lr = {float(r["optimizer.args.lr"]): r for r in _rows(out)}
    assert by_lr[0.01]["state"] == "finished"
    assert by_lr[1e30]["state"] == "failed" and by_lr[1e30]["error"]
    assert "1e+30" not in (out / "best.yaml").read_text()


def test_pruning_stops_trials_worse_than_the_median(tmp_path: Path) -> None:
    params = "    optimizer.args.lr: {grid: [0.3, 0.2, 0.25, 1.0e-7, 2.0e-7, 3.0e-7]}"
    spec = write_sweep_spec(tmp_path, trials=6, pruner="median", params=params)
    spec.write_text(spec.read_text().replace("epochs: 3,", "epochs: 4,"))
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    rows = _rows(out)
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned and all(float(r["optimizer.args.lr"]) < 1e-6 for r in pruned)
    assert all(int(r["epochs"]) < 4 for r in pruned)


def test_a_resumed_sweep_repeats_no_finished_trial(tmp_path: Path) -> None:
    spec, out = write_sweep_spec(tmp_path, trials=2), tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    first = _rows(out)
    assert main(["sweep", str(spec), "--out", str(out), "--trials", "3"]) == 0
    rows = _rows(out)
    assert len(rows) == 3 and rows[:2] == first
    assert main(["sweep", str(spec), "--out", str(out), "--trials", "3"]) == 0  # nothing left to do
    assert _rows(out) == rows


def test_a_spec_without_a_sweep_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_sweep_spec(tmp_path)
    spec.write_text(spec.read_text().split("sweep:")[0])
    assert main(["sweep", str(spec), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("add one: see docs/sweeps.md") and "\n" not in err and "clf.yaml" in err


def test_ctrl_c_between_a_runs_epochs_is_noted_not_raised() -> None:
    """Outside a run's epochs the sweep's handler keeps the first Ctrl-C for the trial loop (the
    trial stops at its next epoch, queued again); a second one raises at once."""
    import os
    import signal

    from netspec.sweep.runner import stop_on_sigint

    with stop_on_sigint() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(5)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0.5) if hasattr(signal, "sigtimedwait") else None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
