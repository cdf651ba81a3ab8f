"""When a run stops early and which epoch is best: early stopping, ``stop_when`` and the metric
that decides best.pt. Every decision reads the epoch's values (train_* and val_*)."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import NonFiniteLoss
from .evaluate import evaluate_loader
from .metrics import higher_is_better

__all__ = ["improved", "update_best", "check_stopping", "stop_at_step", "nonfinite_loss"]


def improved(value: float, best: float | None, higher: bool, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (NaN never does).

    >>> improved(0.5, 0.6, higher=False), improved(float("nan"), None, higher=True)
    (True, False)
    """
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if higher else value < best - min_delta


def update_best(run: Any, values: dict[str, float]) -> bool:
    """Record the epoch as the best so far if its monitored value improved; True if it did."""
    st, policy = run.state, run.tspec.checkpoint
    value = values[run.best_monitor]
    if improved(value, st.best, _higher(run, run.best_monitor, policy.mode)):
        st.best, st.best_epoch = value, st.epoch
        return True
    return False


def _higher(run: Any, monitor: str, mode: str) -> bool:
    return higher_is_better(monitor, run.meters["train"]) if mode == "auto" else mode == "max"


def check_stopping(run: Any, values: dict[str, float]) -> str:
    """After an epoch: "early_stopping", "stop_when", or "epochs" (go on)."""
    st, t = run.state, run.tspec
    es = t.early_stopping
    if es is not None:
        if improved(values[es.monitor], st.stale_best, _higher(run, es.monitor, es.mode), es.min_delta):
            st.stale_best, st.stale = values[es.monitor], 0
        else:
            st.stale += 1
            if st.stale >= es.patience:
                run.log.info(f"early stopping: {es.monitor} has not improved for {st.stale} epochs "
                             f"(best {st.stale_best:.6g})")
                return "early_stopping"
    stop = t.stop_when
    if stop is not None and stop.check_every == "epoch" and _reached(stop, values[stop.monitor]):
        run.log.info(f"stop_when: {stop.monitor} = {values[stop.monitor]:.4f} after epoch {st.epoch}")
        return "stop_when"
    return "epochs"


def stop_at_step(run: Any) -> bool:
    """After an optimizer step, for ``stop_when: {check_every: step}``: whether the target is met
    (a train_* metric on the step's batches, or a val_* metric over the validation data)."""
    stop = run.tspec.stop_when
    if stop is None or stop.check_every != "step":
        return False
    if run.window_meter is not None:
        value = run.window_meter.compute()[stop.monitor[len("train_"):]]
        run.window_meter.reset()
    else:
        run.model.eval()
        value = evaluate_loader(run, run.loaders.val, run.meters["val"])[stop.monitor[len("val_"):]]
        run.model.train()
    if _reached(stop, value):
        run.log.info(f"stop_when: {stop.monitor} = {value:.4f} after step {run.state.step}")
        return True
    return False


def _reached(stop: Any, value: float) -> bool:
    return value > stop.above if stop.above is not None else value < stop.below


def nonfinite_loss(value: float, where: str, batch: Any, kept: str) -> NonFiniteLoss:
    """The error for a NaN/inf loss: blamed on the data when the batch itself holds NaN or inf
    (a transform dividing by zero, a loader given in Python), else on the training's settings.

    >>> x = {"x": torch.tensor([[float("nan")]])}
    >>> str(nonfinite_loss(float("nan"), "epoch 1, step 1", (x, torch.zeros(1)), "no checkpoint was written yet"))
    "<spec>: train.on_nan: loss is nan at epoch 1, step 1: the batch's input `x` holds NaN or inf; no checkpoint was written yet; check the data and its transforms (a Normalize with std 0?)"
    """
    from ..data.checks import nonfinite_in

    culprit = nonfinite_in(batch)
    if culprit is not None:
        return NonFiniteLoss(f"loss is {value} at {where}: the batch's {culprit} holds NaN or inf; {kept}",
                             path=("train", "on_nan"), hint="check the data and its transforms (a Normalize with std 0?)")
    return NonFiniteLoss(f"loss is {value} at {where}; {kept}", path=("train", "on_nan"),
                         hint="lower the learning rate, set `train.grad_clip`, or `train.on_nan: skip`")
