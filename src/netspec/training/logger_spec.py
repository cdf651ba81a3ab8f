"""The ``train.loggers`` entries of a spec (MLflow, TensorBoard's hparams view), checked when the
spec loads: a logger whose library is not installed is refused with its install line. The
loggers themselves are :mod:`netspec.training.loggers`.

>>> LoggerSpec.model_validate("mlflow").mlflow.tracking_uri is None
True
"""

from __future__ import annotations

import importlib.util
from typing import Any

from pydantic import Field, model_validator

from ..compiler.spec_base import SpecModel

__all__ = ["LoggerSpec", "MlflowSpec", "TensorBoardSpec", "INSTALL"]

# logger -> (the module it needs, the install line when it is missing)
INSTALL = {
    "mlflow": ("mlflow", "pip install 'netspec[mlflow]'  (mlflow-skinny)"),
    "tensorboard": ("tensorboard", "pip install 'netspec[tensorboard]'"),
}


class MlflowSpec(SpecModel):
    """MLflow: parameters from the resolved spec, metrics per epoch, spec and curves as artifacts."""

    tracking_uri: str | None = Field(
        None,
        description="Where runs go: an MLflow server (`http://host:5000`) or store (`sqlite:///mlflow.db`); "
        "default: `mlflow.db` in the run directory, artifacts in its `mlartifacts/`.",
    )
    experiment: str | None = Field(None, description="The MLflow experiment; default: the spec's name.")


class TensorBoardSpec(SpecModel):
    """TensorBoard's hparams view: the run's settings beside its best and final metrics."""


class LoggerSpec(SpecModel):
    """One logger: `mlflow` or `tensorboard`, or a mapping with its settings (`mlflow: {experiment: x}`)."""

    mlflow: MlflowSpec | None = Field(None, description="Log to MLflow.")
    tensorboard: TensorBoardSpec | None = Field(None, description="Add the hparams view to the run's TensorBoard log.")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {data: {}} if isinstance(data, str) and data in INSTALL else data

    @model_validator(mode="after")
    def _one_installed(self) -> LoggerSpec:
        given = [k for k in INSTALL if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a logger is one of {', '.join(INSTALL)}; got {' and '.join(given) or 'none'}")
        module, line = INSTALL[given[0]]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"the {given[0]} logger needs {module}, which is not installed: {line}")
        return self

    @property
    def name(self) -> str:
        return next(k for k in INSTALL if getattr(self, k) is not None)
