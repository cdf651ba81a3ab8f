"""The training half: spec + module -> trained module in a run directory.

One module per job (``docs/DESIGN.md`` has the map): the spec models of the training sections
(:mod:`.spec`, :mod:`.options`) and the rules across them (:mod:`.rules`); one registry per kind
of thing, each with its check and builder (:mod:`.losses`, :mod:`.metrics`, :mod:`.optimizers`,
:mod:`.schedulers`, :mod:`.init`); what a run measures (:mod:`.meters`, :mod:`.overlap`);
weights and checkpoints (:mod:`.weights`, :mod:`.checkpoint`); the run directory and log
(:mod:`.rundir`); hardware and seeds (:mod:`.hardware`) and the speed switches (:mod:`.speed`);
the loop (:mod:`.loop`), its reads of the device (:mod:`.watch`), its stopping rules
(:mod:`.stopping`), evaluation (:mod:`.evaluate`), what the user sees (:mod:`.report`) and
signals (:mod:`.signals`); data-parallel runs under torchrun (:mod:`.distributed`, :mod:`.launch`);
the ``run`` and ``eval`` commands (:mod:`.cli`).

Names are imported on first use, so ``import netspec.training`` costs nothing until a run starts.

>>> from netspec.training import OPTIMIZERS
>>> "SGD" in OPTIMIZERS
True
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    "train": "loop",
    "RunResult": "loop",
    "evaluate": "evaluate",
    "Hardware": "hardware",
    "set_seed": "hardware",
    "init_model": "init",
    "load_weights": "weights",
    "build_optimizer": "optimizers",
    "OPTIMIZERS": "optimizers",
    "build_scheduler": "schedulers",
    "Schedule": "schedulers",
    "SCHEDULERS": "schedulers",
    "build_criterion": "losses",
    "LOSSES": "losses",
    "register_loss": "losses",
    "MetricSet": "meters",
    "METRICS": "metrics",
    "register_metric": "metrics",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "CHECKPOINT_FORMAT": "checkpoint",
    "spec_hash": "rundir",
    "TrainSpec": "options",
    "TrainingSections": "options",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'netspec.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
