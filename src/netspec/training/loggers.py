"""Where a run is recorded besides its own directory: ``train.loggers`` (MLflow, TensorBoard's
hparams view), and ``status.json``, which every run writes so that ``netspec runs`` can tell a
finished run from an interrupted, failed or running one.

The loop calls three hooks: :meth:`Loggers.start` once the run directory exists,
:meth:`Loggers.epoch` with each epoch's metrics.jsonl record, :meth:`Loggers.end` after curves.png
is drawn, with what ended the run. Each logger's library is an optional extra; a spec that names
one that is not installed is refused when it loads, with the install line.

>>> LoggerSpec.model_validate("mlflow").mlflow.tracking_uri is None
True
>>> flatten({"optimizer": {"name": "SGD", "args": {"lr": 0.1}}, "train": {"metrics": [{"name": "accuracy"}]}})
{'optimizer.name': 'SGD', 'optimizer.args.lr': 0.1, 'train.metrics': '[{"name": "accuracy"}]'}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import TrainingError, first_line
from .logger_spec import INSTALL, LoggerSpec, MlflowSpec, TensorBoardSpec

__all__ = ["LoggerSpec", "MlflowSpec", "TensorBoardSpec", "Loggers", "flatten", "INSTALL", "read_status"]

logger = logging.getLogger(__name__)

# the spec's sections a logger's parameters come from (nodes and blocks are the model, not settings)
_PARAM_SECTIONS = ("params", "data", "loss", "optimizer", "scheduler", "init", "train")


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to scalars; lists (and what is in them) as JSON text."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    value = json.dumps(data) if isinstance(data, list) else data
    return {prefix[:-1]: value}


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """status.json of a run directory, or None (a run from before it existed)."""
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return None


class Loggers:
    """The run's loggers; the loop calls :meth:`start`, :meth:`epoch` and :meth:`end`."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.status: dict[str, Any] = {}
        self.mlflow: Any = None  # (client, run id)
        self.specs = list(run.tspec.loggers) if run.hw.is_main else []

    def start(self) -> None:
        run = self.run
        if not run.hw.is_main:
            return
        self.status = {"state": "running", "pid": os.getpid(), "started": time.time(), "spec_hash": run.spec_hash}
        self._write_status()
        resolved = run.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        params = {k: v for k, v in flatten({s: resolved.get(s) for s in _PARAM_SECTIONS if s in resolved}).items()}
        for i, spec in enumerate(self.specs):
            if spec.mlflow is not None:
                try:
                    self.mlflow = _mlflow_start(run, spec.mlflow, params)
                except Exception as err:  # before the first epoch: one line, nothing trained yet
                    raise TrainingError(
                        f"MLflow: {first_line(err)}",
                        path=("train", "loggers", i, "mlflow"),
                        hint="check `tracking_uri` (or leave it out: a store in the run directory)",
                    ) from None

    def epoch(self, record: dict[str, Any]) -> None:
        self.status["epochs"] = record["epoch"]
        if self.mlflow is None:
            return
        from mlflow.entities import Metric

        client, run_id = self.mlflow
        now = int(time.time() * 1000)
        try:
            client.log_batch(
                run_id, metrics=[Metric(k, float(v), now, record["epoch"]) for k, v in _numbers(record).items()]
            )
        except Exception as err:  # a tracking server gone mid-run: the run goes on, its directory has it all
            logger.warning(f"MLflow: {first_line(err)}; no more metrics logged there")
            self.mlflow = None

    def end(self, error: BaseException | None) -> None:
        """Say how the run ended: finished, interrupted (Ctrl-C), pruned (a sweep) or failed."""
        run = self.run
        if not run.hw.is_main or not self.status:
            return
        state = _state_of(error)
        self.status.update(state=state, ended=time.time(), best=_best(run))
        if error is not None:
            self.status["error"] = first_line(error)
        try:  # in the loop's `finally`: a failure here is a warning, never the run's error
            self._write_status()
            if any(spec.tensorboard is not None for spec in self.specs):
                _hparams(run)
            if self.mlflow is not None:
                _mlflow_end(run, self.mlflow, state)
        except Exception as err:
            with contextlib.suppress(Exception):
                logger.warning(f"loggers: {first_line(err)}")

    def _write_status(self) -> None:
        from .rundir import write_bytes

        write_bytes(self.run.run_dir.path / "status.json", json.dumps(self.status, indent=1).encode())


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    skip = ("epoch", "step", "t")
    return {k: v for k, v in record.items() if k not in skip and isinstance(v, (int, float)) and v is not None}


def _state_of(error: BaseException | None) -> str:
    if error is None:
        return "finished"
    if type(error).__name__ == "TrialPruned":  # a sweep's pruner stopped it
        return "pruned"
    return "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"


def _best(run: Any) -> dict[str, Any] | None:
    st = run.state
    return {"monitor": run.best_monitor, "value": st.best, "epoch": st.best_epoch} if st.best is not None else None


def _mlflow_start(run: Any, spec: MlflowSpec, params: dict[str, Any]) -> tuple[Any, str]:
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    folder = run.run_dir.path
    uri = spec.tracking_uri or f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri)
    name = spec.experiment or run.spec.name
    found = client.get_experiment_by_name(name)
    if found is not None:
        experiment = found.experiment_id
    else:
        where = None if spec.tracking_uri else (folder / "mlartifacts").resolve().as_uri()
        experiment = client.create_experiment(name, artifact_location=where)
    tags = {"netspec.run_dir": str(folder), "netspec.spec_hash": run.spec_hash}
    created = client.create_run(experiment, run_name=folder.name, tags=tags)
    items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow takes 100 parameters a call
        client.log_batch(created.info.run_id, params=items[i : i + 100])
    return client, created.info.run_id


def _mlflow_end(run: Any, mlflow: tuple[Any, str], state: str) -> None:
    client, run_id = mlflow
    folder = run.run_dir.path
    for name in ("spec.yaml", "curves.png", "metrics.jsonl"):
        if (folder / name).exists():
            client.log_artifact(run_id, str(folder / name))
    client.set_terminated(run_id, status={"finished": "FINISHED", "failed": "FAILED"}.get(state, "KILLED"))


def _hparams(run: Any) -> None:
    """TensorBoard's HPARAMS tab: the settings (scalars only) beside the best and last metrics."""
    from torch.utils.tensorboard import SummaryWriter

    resolved = run.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    flat = flatten({s: resolved.get(s) for s in _PARAM_SECTIONS if s in resolved})
    hparams = {k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}
    metrics = {f"hparam/{k}": v for k, v in _numbers(run.history[-1] if run.history else {}).items()}
    best = _best(run)
    if best is not None:
        metrics[f"hparam/best_{best['monitor']}"] = best["value"]
    writer = run.tb or SummaryWriter(log_dir=str(run.run_dir.path / "tb"))
    writer.add_hparams(hparams, metrics, run_name=".")
    writer.flush()
