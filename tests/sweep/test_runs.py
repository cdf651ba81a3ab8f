"""`netspec runs`: every run under a folder in one table (filter, sort, --csv); `runs diff A B`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import netspec
from netspec.cli import main

from sweepspecs import TINY as SPEC


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for lr in ("0.05", "0.5"):
        spec = netspec.load_spec(root / "tiny.yaml", text=SPEC, overrides=[f"optimizer.args.lr={lr}"])
        runs.append(netspec.train(spec, out=root / "runs" / f"lr{lr}", stream=io.StringIO()).run_dir)
    return root / "runs", runs[0], runs[1]


def test_every_run_is_a_row(two_runs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    folder, a, b = two_runs
    assert main(["runs", str(folder), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == [str(a.relative_to(folder)), str(b.relative_to(folder))]
    assert all(r["state"] == "finished" and r["epochs"] == "2" and r["best"].startswith("val_loss ") for r in rows)
    best_a = min(json.loads(x)["val_loss"] for x in (a / "metrics.jsonl").read_text().splitlines())
    assert float(rows[0]["best"].split()[1]) == pytest.approx(best_a, rel=1e-3)
    assert rows[0]["spec"] == (a / "spec.sha256").read_text().split()[0][:12]


def test_filter_and_sort(two_runs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    folder, _, b = two_runs
    status = json.loads((b / "status.json").read_text())
    (b / "status.json").write_text(
        json.dumps({**status, "state": "running", "pid": 2**22 + 12345})
    )  # its process is gone
    try:
        assert main(["runs", str(folder), "--state", "interrupted", "--csv"]) == 0
        assert [r["name"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))] == [str(b.relative_to(folder))]
    finally:
        (b / "status.json").write_text(json.dumps(status))
    assert main(["runs", str(folder), "--name", "lr0.5", "--csv"]) == 0
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == 1
    assert main(["runs", str(folder), "--sort", "best", "--metric", "val_accuracy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    values = [float(line.split("val_accuracy")[1].split()[0]) for line in lines[1:]]
    assert values == sorted(values, reverse=True)


def test_a_sweeps_trials_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna", reason="optuna is not installed")
    from sweepspecs import write_sweep_spec

    out = tmp_path / "sweep"
    assert main(["sweep", str(write_sweep_spec(tmp_path, trials=2)), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["runs", str(out), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"].split("/")[:2] for r in rows] == [["trials", "0000"], ["trials", "0001"]]


def test_diff_shows_the_spec_difference_metrics_and_curves(
    two_runs: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, a, b = two_runs
    png = tmp_path / "d.png"
    assert main(["runs", "diff", str(a), str(b), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "optimizer.args.lr  0.05  0.5" in out
    last_a = json.loads((a / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"]
    assert f"{last_a:.4g}" in out.split("val_loss (last)")[1].splitlines()[0]
    assert png.read_bytes().startswith(b"\x89PNG")
    assert main(["runs", "diff", str(a), str(b), "--out", str(png)]) == 2  # no --force: kept


def test_a_folder_that_is_not_there_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"netspec runs: {tmp_path / 'nope'} is not a folder; give the folder your runs are in (--out of run)"


def test_diff_of_what_is_not_a_run_names_the_command_not_a_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "diff", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "netspec runs: `runs diff` compares two run directories; netspec runs diff A B"
    )
    assert main(["runs", "diff", str(tmp_path), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"netspec runs: {tmp_path} is not a run directory: no readable spec.yaml") and "\n" not in err
