"""What a run tells its user: the progress bar, the epoch lines, metrics.jsonl, curves.png and
TensorBoard. Everything here reads the run; nothing changes it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import time
import warnings
from functools import partial
from typing import TYPE_CHECKING, Any

from torch import Tensor

from ..errors import first_line
from .rundir import BACKGROUND, RunDir, write_bytes
from .watch import Lagged

if TYPE_CHECKING:  # loop.py imports this module: the type alone, never at run time
    from .loop import Run

__all__ = ["Bar", "progress", "record_epoch", "write_record", "log_epoch", "report_model", "finish", "tensorboard"]

logger = logging.getLogger(__name__)


class Bar:
    """tqdm bar with loss and samples/s, refreshed every :attr:`EVERY` seconds. The loss shown is
    one copied to the host without waiting (:class:`~netspec.training.watch.Lagged`) at the
    previous refresh: reading the current one would stall the GPU."""

    EVERY = 0.5  # seconds between two refreshes of the loss and rate

    def __init__(self, total: int, initial: int, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, initial=initial, desc=desc, unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True
        )
        self.samples, self.start = 0, time.perf_counter()
        self.shown = self.start - self.EVERY  # the first batch refreshes
        self.loss: Lagged | None = None  # on its way to the host
        self.loss_text = "..."

    def update(self, n: int, loss: Tensor) -> None:
        self.samples += n
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.shown < self.EVERY:
            return
        self.shown = now
        if self.loss is not None and self.loss.ready():
            self.loss_text = f"{float(self.loss.get()):.4f}"
        self.loss = Lagged(loss.detach())
        rate = self.samples / max(now - self.start, 1e-9)
        self.bar.set_postfix(loss=self.loss_text, samples_s=f"{rate:.0f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def progress(run: Run, total: int) -> Bar | None:
    mode = run.tspec.progress
    if mode == "line" or (mode == "auto" and not sys.stderr.isatty()) or not run.hw.is_main:
        return None
    return Bar(total, run.state.batch, f"epoch {run.state.epoch + 1}/{run.tspec.epochs}")


def close(bar: Bar | None) -> None:
    if bar is not None:
        bar.close()


def log_epoch(run: Run, record: dict[str, Any], final: bool) -> None:
    if not final and record["epoch"] % run.tspec.log_every and record["epoch"] != 1:
        return
    skip = {"epoch", "step", "t", "lr_groups", "time_s", "samples_per_s", "lr"}
    parts = [f"epoch {record['epoch']}/{run.tspec.epochs}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items() if k not in skip and isinstance(v, float)]
    parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record['time_s']:.1f}s")
    if record.get("samples_per_s"):
        parts.append(f"{record['samples_per_s']:.0f} samples/s")
    logger.info("  ".join(parts))


def plot_curves(run: Run) -> None:
    """curves.png: one panel per metric, train and val; Agg canvas, no pyplot state."""
    if not run.history or not run.hw.is_main:
        return
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return
    keys = run.meters["train"].keys()
    fig = Figure(figsize=(4 * len(keys), 3.2))
    FigureCanvasAgg(fig)
    epochs = [r["epoch"] for r in run.history]
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for split in ("train", "val"):
            ys = [r.get(f"{split}_{key}") for r in run.history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [math.nan if y is None else y for y in ys], marker="o", label=split)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80)
    write_bytes(run.run_dir.path / "curves.png", png.getvalue())  # atomic, never through a link


def tensorboard(run: Run) -> Any:
    if not run.hw.is_main:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    writer = SummaryWriter(log_dir=str(run.run_dir.path / "tb"))
    if run.state.epoch == 0 and run.state.step == 0:  # a resumed run wrote its graph already
        add_graph(writer, run)
    return writer


def add_graph(writer: Any, run: Run) -> None:
    """The model's graph in TensorBoard's Graphs tab (seed 001's ``writer.add_graph(model, input)``).

    Traced once on zeros of the declared input shapes (eval mode, as add_graph does), with the
    random state put back afterwards, so the run trains exactly as it would without TensorBoard.
    A model that cannot be traced gets a warning, never a failed run.
    """
    import torch

    graph = getattr(run.model, "netspec_graph", None)
    if graph is None:  # a model given from Python: no declared input shapes
        return
    device = run.hw.device
    inputs = tuple(torch.zeros((2, *v.shape[1:]), dtype=v.dtype, device=device) for v in graph.inputs.values())
    try:
        with (
            torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []),
            warnings.catch_warnings(),
        ):
            # add_graph traces with torch.jit, which newer torch calls deprecated: not the user's concern
            warnings.filterwarnings("ignore", message=r".*torch\.jit.*")
            writer.add_graph(run.model, inputs[0] if len(inputs) == 1 else inputs)
        logger.info("TensorBoard: model graph written to tb/")
    except Exception as err:  # tracing refuses some models (dict outputs, data-dependent control flow)
        logger.warning(f"TensorBoard graph not written: {first_line(err)}")


def record_epoch(
    run: Run, values: dict[str, float], lrs: list[float], train_time: float, epoch_time: float
) -> dict[str, Any]:
    """The epoch's record in the history (:func:`write_record` writes it); ``lrs``: the rate of
    each parameter group the epoch trained with
    (:meth:`~netspec.training.schedulers.Schedule.trained_with`)."""
    st = run.state
    samples = getattr(run.loaders.train, "dataset_size", None)
    record: dict[str, Any] = {"epoch": st.epoch, "step": st.step, **values, "lr": lrs[0]}
    if len(lrs) > 1:
        record["lr_groups"] = lrs
    record["time_s"] = round(epoch_time, 4)
    if samples:
        record["samples_per_s"] = round(samples / train_time, 1) if train_time > 0 else None
    if st.skipped:
        record["skipped_batches"] = st.skipped
    record["t"] = time.time()
    run.history.append(record)
    return record


def write_record(run: Run, record: dict[str, Any]) -> None:
    """The epoch's record to metrics.jsonl and TensorBoard, by the background writer (queued
    before the epoch's checkpoint, so it reaches the disk first); the training thread goes on."""
    if run.hw.is_main:
        BACKGROUND.post(partial(_write_record, run.run_dir, run.tb, dict(record)))


def _write_record(run_dir: RunDir, tb: Any, record: dict[str, Any]) -> None:
    """An epoch's line in metrics.jsonl and its scalars in TensorBoard (in the writer thread)."""
    run_dir.append_metrics(record)
    if tb is not None and getattr(tb, "file_writer", True) is not None:  # not closed (a second Ctrl-C)
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("epoch", "step", "t"):
                tb.add_scalar(k, v, record["epoch"])


def report_model(run: Run) -> None:
    total = sum(p.numel() for p in run.model.parameters())
    trained = sum(p.numel() for p in run.params)
    logger.info(f"model: {total:,} parameters, {trained:,} trained; {len(run.loaders.train)} batches per epoch")


def finish(run: Run) -> None:
    """curves.png and TensorBoard: best effort. This runs in a `finally`, so an error here (a
    full disk) must not replace the one that ended the run, nor fail a finished one."""
    try:
        plot_curves(run)
    except Exception as err:
        with contextlib.suppress(Exception):
            logger.warning(f"curves.png not written: {first_line(err)}")
    if run.tb is not None:
        with contextlib.suppress(Exception):
            run.tb.close()
