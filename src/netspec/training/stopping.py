"""When a run stops early and which epoch is best: early stopping, ``stop_when`` and the metric
that decides best.pt. Every decision reads the epoch's values (train_* and val_*)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from .evaluate import evaluate_loader
from .meters import higher_is_better

if TYPE_CHECKING:  # loop.py imports this module: the type alone, never at run time
    from .loop import Run

__all__ = ["improved", "update_best", "check_stopping", "stop_at_step", "stops_at_steps"]

logger = logging.getLogger(__name__)


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


def update_best(run: Run, values: dict[str, float]) -> bool:
    """Record the epoch as the best so far if its monitored value improved; True if it did."""
    st, policy = run.state, run.tspec.checkpoint
    value = values[run.best_monitor]
    if improved(value, st.best, _higher(run, run.best_monitor, policy.mode)):
        st.best, st.best_epoch = value, st.epoch
        return True
    return False


def _higher(run: Run, monitor: str, mode: str) -> bool:
    return higher_is_better(monitor, run.meters["train"]) if mode == "auto" else mode == "max"


def check_stopping(run: Run, values: dict[str, float]) -> tuple[str, str]:
    """After an epoch: "early_stopping", "stop_when", or "epochs" (go on), with the line that
    says why it stops (logged by the loop after the epoch's own line; "" to go on)."""
    st, t = run.state, run.tspec
    es = t.early_stopping
    if es is not None:
        if improved(values[es.monitor], st.stale_best, _higher(run, es.monitor, es.mode), es.min_delta):
            st.stale_best, st.stale = values[es.monitor], 0
        else:
            st.stale += 1
            if st.stale >= es.patience:
                why = f"early stopping: {es.monitor} has not improved for {st.stale} epochs (best {st.stale_best:.6g})"
                return "early_stopping", why
    stop = t.stop_when
    if stop is not None and stop.check_every == "epoch" and _reached(stop, values[stop.monitor]):
        return "stop_when", f"stop_when: {stop.monitor} = {values[stop.monitor]:.4f} after epoch {st.epoch}"
    return "epochs", ""


def stops_at_steps(run: Run) -> bool:
    """Whether :func:`stop_at_step` has anything to check (``stop_when: {check_every: step}``):
    the loop asks once an epoch, not after every step."""
    stop = run.tspec.stop_when
    return stop is not None and stop.check_every == "step"


def stop_at_step(run: Run) -> bool:
    """After an optimizer step, for ``stop_when: {check_every: step}``: whether the target is met
    (a train_* metric on the step's batches, or a val_* metric over the validation data)."""
    stop = run.tspec.stop_when
    if stop is None or stop.check_every != "step":
        return False
    if run.window_meter is not None:
        value = run.window_meter.compute()[stop.monitor[len("train_") :]]
        run.window_meter.reset()
    else:
        run.model.eval()
        value = evaluate_loader(run, run.loaders.val, run.meters["val"])[stop.monitor[len("val_") :]]
        run.model.train()
    if _reached(stop, value):
        logger.info(f"stop_when: {stop.monitor} = {value:.4f} after step {run.state.step}")
        return True
    return False


def _reached(stop: Any, value: float) -> bool:
    return value > stop.above if stop.above is not None else value < stop.below
