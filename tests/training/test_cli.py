"""`netspec run` / `netspec eval` end to end: real specs, the compiler, the data pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netspec.cli import main

SEED_000 = """\
name: logistic_regression
description: seed 000, two Gaussian clusters; stops at 99% training accuracy
inputs: {{x: [2]}}
nodes:
  - Linear: {{out_features: 1}}
  - Sigmoid: {{}}
data:
  train: {{source: gaussian_clusters}}
  val: {{fraction: 0.2}}
  batch_size: 40
loss: BCELoss
optimizer: {{SGD: {{lr: {lr}, momentum: 0.9}}}}
scheduler: {{StepLR: {{step_size: 30, gamma: 0.1}}}}   # seed 003's lr * 0.1 ** (epoch // 30)
init:
  rules:
    - {{layer: Linear, weight: {{normal_: {{std: 0.1}}}}, bias: zeros_}}
train:
  epochs: {epochs}
  seed: 10
  metrics: [accuracy]
  stop_when: {{monitor: train_accuracy, above: 0.99}}
"""


def write_spec(tmp_path: Path, lr: float | str = 0.01, epochs: int = 3, extra: str = "") -> Path:
    path = tmp_path / "seed000.yaml"
    path.write_text(SEED_000.format(lr=lr, epochs=epochs) + extra)
    return path


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "eval"):
        with pytest.raises(SystemExit) as stop:
            main([command, "--help"])
        assert stop.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and f"netspec {command} specs/" in out


def test_run_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    assert main(["run", str(spec), "--epochs", "2", "--device", "cpu", "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "done: 2 epochs" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert "epochs: 2" in (run_dir / "spec.yaml").read_text()  # --epochs is part of the resolved spec
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert main(["eval", str(spec), "--checkpoint", str(run_dir / "last.pt"), "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["val_accuracy"] == pytest.approx(records[-1]["val_accuracy"])


def test_yaml_exponent_without_dot_is_a_float(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # netspec reads `1e-5` as a number (YAML 1.2 / JSON rules), not as YAML 1.1's string
    assert main(["run", str(write_spec(tmp_path, lr="1e-5")), "--out", str(tmp_path / "runs")]) == 0
    assert "lr 1e-05" in capsys.readouterr().out


def test_quoted_number_string_gets_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(write_spec(tmp_path, lr='"1e-5"')), "--out", str(tmp_path / "runs")]) == 2
    assert '`lr` is the string "1e-5"' in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # found before a run directory was made


def test_spec_errors_point_at_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, extra="")
    text = spec.read_text().replace("SGD: {lr", "SGDD: {lr")
    spec.write_text(text)
    assert main(["run", str(spec), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{spec}:12:") and "unknown optimizer `SGDD`; did you mean `SGD`?" in err
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


def test_nan_loss_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = (
        write_spec(tmp_path, lr="1.0e+30", epochs=5)
        .read_text()
        .replace("BCELoss", "MSELoss")
        .replace("  - Sigmoid: {}\n", "")
    )
    path = tmp_path / "nan.yaml"
    path.write_text(spec)
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 3
    assert "loss is" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, epochs=100000).read_text().replace("stop_when", "#")
    path = tmp_path / "long.yaml"
    path.write_text(spec)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "netspec", "run", str(path), "--out", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.time() + 60
    while not list((tmp_path / "runs").glob("*/metrics.jsonl")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "last.pt").exists()
