"""One training step of :mod:`netspec.training.loop`: the forward, the loss and the backward of a
batch (weighted within a `grad_accumulation` window, under DDP's ``no_sync`` before the
window's last batch), the batch's metrics, and the optimizer step (clipping, the fp16 scaler,
`on_nan: skip`). Nothing here reads the device unless `on_nan: skip` needs an answer now.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from . import distributed
from .evaluate import batch_size, forward
from .watch import BadLoss, all_finite

if TYPE_CHECKING:
    from .loop import Run

__all__ = ["forward_backward", "optimizer_step"]

logger = logging.getLogger(__name__)


def forward_backward(
    run: Run, inputs: dict[str, Tensor], target: Any, i: int, n_batches: int
) -> tuple[Tensor, int, bool]:
    """Forward, loss and backward of batch ``i``; returns the loss, the batch's samples and
    whether it was kept (`on_nan: skip` drops a non-finite one).

    Gradients are summed over `grad_accumulation` batches, each weighted 1/window. Under DDP
    the batches before a window's last run under ``no_sync``: gradients stay in each process
    until the last one's backward all-reduces their sum. Not with ``static_graph``: torch's
    no_sync breaks it (pytorch/pytorch#143580), so each batch all-reduces (the same sum, slower).
    """
    accum = run.tspec.grad_accumulation
    window = 1 if accum == 1 else min(accum, n_batches - (i // accum) * accum)
    before_last = accum > 1 and (i + 1) % accum and i + 1 != n_batches  # a batch before its window's last
    if run.ddp is not None and before_last and not run.tspec.distributed.static_graph:
        # the DDP wrapper's no_sync (through torch.compile's wrapper); torch types module attributes as Tensor | Module
        with run.ddp.no_sync():  # type: ignore[operator]
            return _forward_backward_now(run, inputs, target, i, n_batches, window)
    return _forward_backward_now(run, inputs, target, i, n_batches, window)


def _forward_backward_now(
    run: Run, inputs: dict[str, Tensor], target: Any, i: int, n_batches: int, window: int
) -> tuple[Tensor, int, bool]:
    """:func:`forward_backward`'s work, the loss weighted 1/window."""
    # ---- forward: the model under autocast, the loss in float32
    outputs = forward(run, inputs, run.ddp)
    loss = run.criterion(outputs, target)
    n = batch_size(inputs)
    if run.tspec.on_nan == "skip" and not _keep(run, loss, i, n_batches):
        return loss, n, False
    # ---- backward
    scaled = loss if window == 1 else loss / window
    (run.scaler.scale(scaled) if run.scaler else scaled).backward()
    # ---- the batch's loss and metrics (kept on the device), and where its loss came from
    run.meters["train"].update(outputs, target, loss, n, run.criterion.last)
    if run.window_meter is not None:
        run.window_meter.update(outputs, target, loss, n, run.criterion.last)
    run.watch.record(i, run.state.step, (inputs, target))
    return loss, n, True


def optimizer_step(run: Run, pending: int, i: int, n_batches: int) -> bool:
    """Clip, step and zero the gradients; False when `on_nan: skip` drops a step whose
    gradient overflowed (the step would make the weights NaN/inf)."""
    st, clip, scaler, opt = run.state, run.tspec.grad_clip, run.scaler, run.optimizer
    if run.tspec.on_nan == "skip" and scaler is None and not _grads_finite(run):
        st.skipped += pending
        logger.warning(
            f"gradients are not finite at epoch {st.epoch + 1}, step {st.step + 1} "
            f"(batch {i + 1} of {n_batches}); step skipped (train.on_nan: skip)"
        )
        opt.zero_grad(set_to_none=True)
        return False
    if clip is not None:
        if scaler is not None:
            scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(run.params, clip.max_norm, norm_type=clip.norm_type)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)
    return True


def _grads_finite(run: Run) -> bool:
    """Whether every gradient is finite (one device sync). Used by `on_nan: skip` only: fp16
    runs have the GradScaler, which already skips such steps."""
    grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad for p in run.params if p.grad is not None]
    return not grads or all_finite(grads)


def _keep(run: Run, loss: Tensor, i: int, n_batches: int) -> bool:
    """`on_nan: skip`: False (skip the batch) when the loss is NaN/inf; this needs the answer
    now, so it is the one mode that reads the loss every batch. `on_nan: error`: True; the
    watch finds a non-finite loss on the device (:mod:`netspec.training.watch`)."""
    if run.tspec.on_nan != "skip":
        return True
    finite = bool(torch.isfinite(loss))
    if run.hw.distributed:  # every process skips the batch, or none: DDP's backward is collective
        finite = not distributed.agree(not finite)
    if finite:
        return True
    st = run.state
    st.skipped += 1
    bad = BadLoss(st.epoch, i, n_batches, st.step, float(loss.detach()))
    logger.warning(f"{bad}; batch skipped (train.on_nan: skip)")
    return False
