"""train.loggers: MLflow's own API reads back what a run logged; TensorBoard's hparams view is in
the run's event files; status.json says how a run ended; a logger whose library is missing is one
line with the install command when the spec loads."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import pytest

import netspec
from netspec import SpecError

from sweepspecs import tiny_spec


def _train(tmp_path: Path, loggers: str) -> Any:
    spec = netspec.load_spec(tmp_path / "tiny.yaml", text=tiny_spec(3, loggers))
    return netspec.train(spec, out=tmp_path / "runs", stream=io.StringIO())


def test_every_run_says_how_it_ended(tmp_path: Path) -> None:
    result = _train(tmp_path, "[]")
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["epochs"] == 3 and status["best"]["monitor"] == "val_loss"


def test_mlflow_reads_back_the_params_metrics_and_artifacts(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'netspec[mlflow]')")
    from mlflow.tracking import MlflowClient

    result = _train(tmp_path, "[mlflow]")
    client = MlflowClient(tracking_uri=f"sqlite:///{result.run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["netspec.run_dir"] == str(result.run_dir)
    assert run.data.params["optimizer.args.lr"] == "0.05" and run.data.params["train.epochs"] == "3"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], r["val_loss"]) for r in result.history]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.yaml", "curves.png", "metrics.jsonl"} <= artifacts


def test_tensorboard_gets_the_hparams_view(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'netspec[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    result = _train(tmp_path, "[tensorboard]")
    found = {}
    for events in (result.run_dir / "tb").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        found.update(acc.PluginTagToContent("hparams"))
    start = plugin_data_pb2.HParamsPluginData.FromString(found["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["optimizer.args.lr"].number_value == 0.05
    experiment = plugin_data_pb2.HParamsPluginData.FromString(found["_hparams_/experiment"])
    assert "hparam/best_val_loss" in {m.name.tag for m in experiment.experiment.metric_infos}


def test_a_missing_logger_library_is_one_line_with_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(SpecError, match=r"tiny\.yaml:\d+:\d+: train\.loggers\[0\].*pip install 'netspec\[mlflow\]'"):
        netspec.load_spec(tmp_path / "tiny.yaml", text=tiny_spec(3, "[mlflow]"))


def test_an_unknown_logger_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"train\.loggers\[0\].*wandb"):
        netspec.load_spec(tmp_path / "tiny.yaml", text=tiny_spec(3, "[wandb]"))
