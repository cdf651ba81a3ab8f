"""Stage 6: spec + module -> trained module in a run directory.

:func:`train` reads top to bottom: pick the hardware, set everything up (model, data, loss,
optimizer, schedule, and the checkpoint when resuming) before the run directory exists, then
loop over epochs. Everything the loop needs lives in one :class:`Run`; hardware choices live in
:class:`~netspec.training.hardware.Hardware`. The spec was checked when it was loaded; what only
the run can know (the model's parameter names, whether there is validation data) is checked
once, here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch
from torch import nn

from ..errors import Interrupted, NetspecError, WriteFailed
from . import distributed, report
from .checkpoint import load_checkpoint, restore, save, save_epoch
from .context import located, output_shapes, require_sections, spec_base_dir, spec_roots
from .criterion import Criterion
from .evaluate import evaluate_loader, spec_loaders
from .hardware import Hardware, deterministic, set_rng_state, set_seed
from .init import init_model
from .loggers import Loggers
from .loss_graph import build_loss, training_module
from .meters import MetricSet
from .optimizers import build_optimizer
from .options import TrainSpec
from .rules import check_monitors, static_has_val
from .rundir import BACKGROUND, RunDir, RunLogging, resolved_spec, resume_dir
from .schedulers import Schedule, build_scheduler
from .signals import SigintGuard
from .speed import compile_module, cudnn_autotuning, optimizer_defaults, prepare_model
from .step import forward_backward, optimizer_step
from .stopping import check_stopping, stop_at_step, stops_at_steps
from .watch import BadLoss, NanWatch

if TYPE_CHECKING:  # the spec module imports the training package's spec models: the types alone here
    from ..compiler.spec import Spec
    from ..data.build import Loaders

__all__ = ["train", "RunResult", "Run"]

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    model: nn.Module
    history: list[dict[str, Any]]  # the metrics.jsonl records
    stop_reason: str  # "epochs" | "early_stopping" | "stop_when"
    epochs: int  # completed epochs
    steps: int  # optimizer steps
    best: dict[str, Any] | None  # {"monitor", "value", "epoch"}

    def __repr__(self) -> str:
        """Where the run went and how it ended, not the model and every epoch's record."""
        return (
            f"RunResult(run_dir={str(self.run_dir)!r}, stop_reason={self.stop_reason!r}, "
            f"epochs={self.epochs}, steps={self.steps}, best={self.best!r})"
        )


@dataclass
class State:
    """Where training is; all of it goes into the checkpoint."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # optimizer steps done
    best: float | None = None  # best.pt's monitored value
    best_epoch: int | None = None
    stale: int = 0  # epochs without improvement (early stopping)
    stale_best: float | None = None
    skipped: int = 0  # non-finite losses skipped


@dataclass
class Run:
    """Everything the loop touches, built once by :func:`train`."""

    spec: Spec
    tspec: TrainSpec
    hw: Hardware
    model: nn.Module
    loaders: Any
    criterion: Criterion
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler | None
    meters: dict[str, MetricSet]
    window_meter: MetricSet | None  # stop_when on a train metric, checked every step
    input_names: list[str]
    output_names: list[str]
    params: list[nn.Parameter]
    best_monitor: str
    run_dir: RunDir = None  # type: ignore[assignment]  # made once everything is set up
    logs: RunLogging | None = None  # the run's loggers: hold their lines until run_dir exists
    spec_hash: str = ""
    state: State = field(default_factory=State)
    history: list[dict[str, Any]] = field(default_factory=list)
    resume_rng: dict[str, Any] | None = None  # set at the point of the epoch where it was saved
    tb: Any = None
    compiled: nn.Module | None = None  # train.compile: what the training forward calls
    ddp: nn.Module | None = None  # data-parallel: the DDP wrapper (compiled with train.compile) the step calls
    watch: NanWatch = field(default_factory=NanWatch)  # non-finite losses, found without a sync per step
    on_epoch: Callable[[dict[str, Any]], None] | None = None  # train(on_epoch=): a sweep's pruner
    loggers: Loggers | None = None  # status.json, train.loggers


def train(
    spec: Spec,
    *,
    model: nn.Module | None = None,
    loaders: Loaders | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    base_dir: str | Path | None = None,
    allow_download: bool = False,
    stream: TextIO | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train a spec's model as its training sections say; return where it went.

    ``model`` and ``loaders`` default to ``build_model(spec)`` and ``build_loaders(spec.data)``;
    ``resume`` is a checkpoint or run directory to continue exactly where it stopped. The run logs
    through the ``netspec`` loggers (:mod:`logging`: silence, route or filter them as any library's;
    docs/training.md) and to train.log; ``stream``, when given, gets the same lines as the command
    line prints them. The spec's files are read only under ``base_dir`` (default: the spec file's
    folder, or the working directory) and the data roots given to ``load_spec``
    (:mod:`netspec.files.access`). ``on_epoch`` is called with each epoch's metrics.jsonl record
    once its checkpoint is on its way (a sweep's pruner reads it, and may stop the run by raising).

    >>> import io, tempfile, netspec  # two generated Gaussian clusters (seed 000), three epochs
    >>> spec = netspec.load_spec({"netspec": 1, "name": "clusters", "inputs": {"x": [2]},
    ...     "nodes": [{"Linear": {"out_features": 2}}], "loss": "CrossEntropyLoss", "optimizer": {"SGD": {"lr": 0.1}},
    ...     "data": {"train": {"source": "gaussian_clusters", "label_dtype": "int64"}, "batch_size": 50},
    ...     "train": {"epochs": 3, "seed": 0, "device": "cpu", "metrics": ["accuracy"]}})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     result = train(spec, out=out, stream=io.StringIO())
    >>> result.stop_reason, result.epochs, result.steps, result.history[-1]["train_accuracy"] > 0.9
    ('epochs', 3, 12, True)
    """
    with located(spec):
        require_sections(spec, "loss", "optimizer", *(("data",) if loaders is None else ()))
        tspec = spec.train or TrainSpec()
        hw = _hardware(spec, tspec, loaders)  # under torchrun: joins the process group
        try:
            # Everything is set up before the run directory is made, so a mistake in any of it leaves
            # no directory behind; train.log holds its lines until then (rank 0 alone logs).
            with RunLogging(hw.is_main, stream) as logs:
                ckpt = load_checkpoint(resume) if resume is not None else None
                with deterministic(tspec.deterministic), cudnn_autotuning(tspec, hw):
                    set_seed(tspec.seed)
                    run = _setup(spec, tspec, hw, model, loaders, spec_base_dir(spec, base_dir), allow_download, ckpt)
                    run.logs = logs
                    run.on_epoch = on_epoch
                    try:
                        _place(run, ckpt, out)
                        return _start(run, ckpt)
                    finally:
                        if loaders is None:  # ours: their worker processes end with the run
                            run.loaders.close()
        except Exception as err:
            if hw.distributed and distributed.is_peer_failure(err):  # one line, not a collective's traceback
                raise distributed.peer_lost(err) from None
            raise
        finally:
            if hw.distributed:
                distributed.stop()


def _place(run: Run, ckpt: dict[str, Any] | None, out: str | Path | None) -> None:
    """The run's directory (rank 0 makes it, or it is the resumed one's); other ranks' seeds."""
    run.run_dir = distributed.from_main(
        lambda: resume_dir(ckpt, out) if ckpt is not None else RunDir.create(out, run.spec.name)
    )
    if run.hw.rank:  # other ranks draw other random numbers (dropout, augmentation); the model is rank 0's
        set_seed(run.tspec.seed + 1_000_003 * run.hw.rank)


def _hardware(spec: Any, tspec: TrainSpec, loaders: Any) -> Hardware:
    """The device; under torchrun (its environment says so), this process's device and its
    place in the process group, after the checks every process makes alike."""
    where = distributed.World.from_env()
    try:
        hw = Hardware.pick(
            tspec.device,
            tspec.precision,
            channels_last=tspec.channels_last,
            local_rank=where.local_rank if where is not None else None,
        )
    except NetspecError as err:  # no such device (a TrainingError) or a bad setting
        if where is not None:
            distributed.everywhere(err)  # marks it: every process raises it alike, rank 0 prints it
        raise
    if where is None:
        return hw
    distributed.check_devices(hw.device, where)
    if loaders is None:
        distributed.check_batch(spec.data.batch_size, where.world_size)
    distributed.start(hw.device, tspec.distributed.backend, tspec.distributed.timeout)
    hw.rank, hw.world_size, hw.distributed = where.rank, where.world_size, True
    return hw


def _model(
    spec: Any,
    tspec: TrainSpec,
    hw: Hardware,
    model: nn.Module | None,
    base: Path,
    ckpt: dict[str, Any] | None,
) -> tuple[nn.Module, nn.Module | None]:
    """The model built, initialised (unless resuming: the checkpoint has the weights) and moved,
    with the module a training step calls: torch.compile'd, or the loss view of a model whose
    loss reads nodes that are no output (:func:`~netspec.training.loss_graph.training_module`),
    or None (the model itself)."""
    if model is None:
        from ..api import build_model

        model = build_model(spec)
    if ckpt is None:
        init_model(model, spec.init, base_dir=base, roots=spec_roots(spec))
    model.to(hw.device)
    if hw.distributed and tspec.distributed.sync_batchnorm:
        model = distributed.sync_batchnorm(model, hw.device)
    trained = training_module(model)  # the same weights
    compiled = prepare_model(trained, tspec, hw)  # channels_last, torch.compile
    return model, compiled if compiled is not None or trained is model else trained


def _loaders(
    spec: Any,
    tspec: TrainSpec,
    hw: Hardware,
    model: nn.Module,
    loaders: Any,
    base: Path,
    allow_download: bool,
    ckpt: dict[str, Any] | None = None,
) -> Any:
    """The loaders, built unless given: every label checked against the model's output size, and
    each split's first sample against the declared inputs, once, here (every process checks the
    same samples alike); under several processes, each one's share of every epoch. A resumed
    run standardises with the statistics fitted when it started."""
    if loaders is None:
        stats = ckpt.get("standardize") if ckpt is not None else None
        if stats is not None:
            from ..data.standardize import check_statistics, input_shapes

            check_statistics(stats, input_shapes(model), str(ckpt["path"]))  # type: ignore[index]
        counts = ckpt.get("class_counts") if ckpt is not None else None  # weight: balanced's, counted then
        loaders = spec_loaders(spec, tspec, hw, model, base, allow_download, stats, counts)
        from ..data.preprocessing import default_note  # torchvision: imported by the loaders already

        note = default_note(spec)  # the transforms came from the model's weights: say so
        if note:
            logger.info(note)
    if hw.distributed:
        distributed.shard_loaders(loaders, hw.rank, hw.world_size)
    return loaders


def _setup(
    spec: Any,
    tspec: TrainSpec,
    hw: Hardware,
    model: nn.Module | None,
    loaders: Any,
    base: Path,
    allow_download: bool,
    ckpt: dict[str, Any] | None,
) -> Run:
    """Everything a run needs but its directory."""
    input_names, output_names = list(spec.inputs), list(spec.output_names)
    model, compiled = _model(spec, tspec, hw, model, base, ckpt)
    loaders = _loaders(spec, tspec, hw, model, loaders, base, allow_download, ckpt)
    has_val = getattr(loaders, "val", None) is not None
    if has_val != static_has_val(spec):  # loaders given in Python: val_* monitors judged now
        check_monitors(spec, has_val)
    # ---- loss, metrics, optimizer, schedule
    optimizer = build_optimizer(
        spec.optimizer, model, defaults=optimizer_defaults(spec.optimizer.name, spec.optimizer.args, tspec, hw)
    )
    steps_per_epoch = math.ceil(len(loaders.train) / tspec.grad_accumulation)
    schedule = build_scheduler(
        spec.scheduler, optimizer, epochs=tspec.epochs, steps_per_epoch=steps_per_epoch, has_val=has_val
    )
    stop = tspec.stop_when
    per_step = stop is not None and stop.check_every == "step" and stop.monitor.startswith("train_")
    meters = {split: MetricSet(tspec.metrics, output_names, spec.loss) for split in ("train", "val")}
    window = MetricSet(tspec.metrics, output_names, spec.loss) if per_step else None
    run = Run(
        spec,
        tspec,
        hw,
        model,
        loaders,
        build_loss(spec, model, getattr(loaders, "info", {}).get("class_counts"), output_shapes(model)).to(hw.device),
        optimizer,
        schedule,
        hw.make_scaler(),
        meters,
        window,
        input_names,
        output_names,
        [p for g in optimizer.param_groups for p in g["params"]],
        tspec.checkpoint.monitor or ("val_loss" if has_val else "train_loss"),
        compiled=compiled,
    )
    report.report_model(run)
    if ckpt is not None:
        restore(run, ckpt)
    if hw.distributed:  # wrapped last: DDP starts from rank 0's (restored) weights
        run.ddp = distributed.wrap(training_module(model), hw.device, tspec.distributed)
        if tspec.compile is not False:  # torch.compile over DDP, as torch documents it (`compiled`
            # is also the loss view of a model whose loss reads nodes that are no output)
            run.ddp = compile_module(run.ddp, tspec)
    return run


def _start(run: Run, ckpt: dict[str, Any] | None) -> RunResult:
    """Write the spec and start train.log in the run directory (rank 0), then train."""
    run_dir, hw = run.run_dir, run.hw
    try:
        if hw.is_main:
            digest = run.spec_hash = run_dir.write_spec(resolved_spec(run.spec))
            if run.logs is not None:
                run.logs.release(run_dir.path / "train.log")
            processes = f", {hw.world_size} process{'es' if hw.world_size > 1 else ''}" if hw.distributed else ""
            logger.info(f"run directory: {run_dir.path}  (device {hw.device}{processes}, precision {hw.precision})")
            if ckpt is not None and ckpt["spec_hash"] != digest:
                logger.warning(
                    f"the spec changed since {ckpt['path']} was saved "
                    f"(sha256 {ckpt['spec_hash'][:12]} -> {digest[:12]}); resuming anyway"
                )
        # TensorBoard (an import and a traced graph) before the setup's lines are said: the
        # "model: ..." line comes just before the first batch
        run.tb = report.tensorboard(run)
        if hw.is_main:
            if run.logs is not None:
                run.logs.say_held()  # the setup's lines, after where the run is
            if ckpt is not None:
                run.history = run_dir.keep_metrics_before(run.state.epoch)
        run.loggers = Loggers(run)
        run.loggers.start()
        return _fit(run)
    except WriteFailed as err:
        # Said at the failing write, with what is left to continue from.
        err.message += f"; {run_dir.kept()}"
        if err.hint is None:
            err.hint = (
                f"make room, then continue with --resume {run_dir.path}"
                if run_dir.last.exists()
                else "make room (or choose another --out), then start again"
            )
        raise


def _fit(run: Run) -> RunResult:
    """The epoch loop: train, validate, record, checkpoint, stop."""
    t, st = run.tspec, run.state
    reason = "epochs"
    try:
        with SigintGuard(quiet=not run.hw.is_main, echoes=run.hw.distributed) as interrupt:
            while st.epoch < t.epochs and reason == "epochs":
                # ---- train one epoch, then validate
                started = time.perf_counter()
                reason = _train_epoch(run, interrupt) or reason
                train_time = time.perf_counter() - started
                values = _epoch_values(run)
                lrs = run.schedule.trained_with(run.optimizer)  # before the scheduler moves it
                run.schedule.after_epoch(values)
                st.epoch, st.batch = st.epoch + 1, 0
                # ---- record, decide whether to stop, checkpoint (written while the next epoch runs)
                BACKGROUND.wait()  # the last epoch's writes are done (or their failure said) before this one is
                record = report.record_epoch(run, values, lrs, train_time, time.perf_counter() - started)
                reason, why = check_stopping(run, values) if reason == "epochs" else (reason, "")
                final = st.epoch == t.epochs or reason != "epochs"
                report.log_epoch(run, record, final)
                if why:
                    logger.info(why)  # after the epoch's line: lines in the order things happened
                report.write_record(run, record)  # metrics.jsonl and TensorBoard, in the background
                saved = save_epoch(run, values, final)
                if run.loggers is not None:
                    run.loggers.epoch(record)
                if run.on_epoch is not None:
                    run.on_epoch(record)
                # ---- Ctrl-C during the epoch: stop here, with last.pt written
                if _stop_asked(run, interrupt) and reason == "epochs" and not final:
                    raise _interrupted(run, saved, interrupt.signum)
        BACKGROUND.wait()  # the last checkpoint is on disk (or its write failed) before the run returns
        best = {"monitor": run.best_monitor, "value": st.best, "epoch": st.best_epoch} if st.best is not None else None
        return RunResult(run.run_dir.path, run.model, run.history, reason, st.epoch, st.step, best)
    except Exception as err:  # said here, before the curves are drawn: torchrun's SIGTERM is on its way
        if run.hw.distributed and distributed.is_peer_failure(err):
            raise distributed.peer_lost(err) from None
        raise
    finally:
        if sys.exc_info()[0] not in (None, KeyboardInterrupt):  # a second Ctrl-C exits at once
            with contextlib.suppress(Exception):  # the error on its way says more than the write's
                BACKGROUND.wait()
        report.finish(run)
        if run.loggers is not None:
            run.loggers.end(sys.exc_info()[1])


def _train_epoch(run: Run, interrupt: SigintGuard) -> str | None:
    """One pass over the training data; returns "stop_when" if a step-level target is met.

    Nothing here waits for the device (unless `on_nan: skip` or a per-step `stop_when` needs
    an answer now): losses and metrics stay on it, so the host queues steps ahead of the GPU.
    """
    st, accum = run.state, run.tspec.grad_accumulation
    batches = _epoch_batches(run)
    n_batches = len(run.loaders.train)
    bar = report.progress(run, n_batches)
    watch = run.watch
    watch.start(run.meters["train"].loss, st.epoch, n_batches)
    # what is checked after every step, decided once: a step-based stop_when, and whether a
    # Ctrl-C must be agreed on by every process (one flag read otherwise)
    steps_stop, agree = stops_at_steps(run), run.hw.distributed
    pending = 0  # batches whose gradients were accumulated since the last optimizer step
    try:
        for i, (inputs, target) in enumerate(batches, start=st.batch):
            loss, n, kept = forward_backward(run, inputs, target, i, n_batches)
            pending += kept
            st.batch = i + 1
            if bar is not None:
                bar.update(n, loss)
            bad = watch.poll()  # a check queued batches ago, if its answer is in
            if bad is not None:
                raise bad.error(run.run_dir.kept())
            if (accum > 1 and st.batch % accum and st.batch != n_batches) or not pending:
                continue  # mid-window, or every batch of the window was skipped
            # ---- optimizer step, then the step-level stops
            stepped, pending = optimizer_step(run, pending, i, n_batches), 0
            if not stepped:
                continue
            st.step += 1
            run.schedule.after_step()
            if steps_stop and stop_at_step(run):
                return "stop_when"
            if (agree or interrupt.requested) and _stop_asked(run, interrupt):
                raise _interrupted(run, saved=False, signum=interrupt.signum)
        return None
    finally:
        report.close(bar)
        close = getattr(batches, "close", None)  # a generator: stops a prefetching thread when the epoch ends early
        if close is not None:
            close()
        if sys.exc_info()[0] is None:  # leaving normally (an error is on its way otherwise)
            _raise_if_bad(run, watch.check())  # every loss of the epoch, before it counts


def _stop_asked(run: Run, interrupt: SigintGuard) -> bool:
    """Whether a Ctrl-C or SIGTERM asks the run to stop now; under DDP, whether it asked any
    process (so all save and stop at the same step, whichever process the signal reached)."""
    return distributed.agree(interrupt.requested) if run.hw.distributed else interrupt.requested


def _interrupted(run: Run, saved: bool, signum: int) -> Interrupted:
    """Ctrl-C or SIGTERM: last.pt written (unless it just was) and on disk, then the run stops."""
    if not saved:
        save(run, run.run_dir.last)  # checks the losses first
    BACKGROUND.wait()  # a failed write is the error to report, not the interruption
    return Interrupted(run.run_dir.last, signum)


def _epoch_batches(run: Run) -> Iterator[Any]:
    """The training loader's iterator for this epoch, positioned where a resumed run left off."""
    st, loader = run.state, run.loaders.train
    run.model.train()
    set_epoch = getattr(loader, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(st.epoch)
    if st.batch == 0:
        run.meters["train"].reset()
        _restore_rng_once(run)  # resumed at an epoch boundary: before the loader draws
    batches = iter(loader)
    for _ in range(st.batch):  # resumed mid-epoch: replay the order, skip what was done
        next(batches)
    _restore_rng_once(run)
    return run.hw.batches(loader, batches)  # on the device, ahead of the step where that is safe


def _raise_if_bad(run: Run, bad: BadLoss | None) -> None:
    if bad is not None:
        raise bad.error(run.run_dir.kept())


def _epoch_values(run: Run) -> dict[str, float]:
    """train_* from the epoch's running sums, val_* from a pass over the validation data."""
    values = {f"train_{k}": v for k, v in run.meters["train"].compute().items()}
    if getattr(run.loaders, "val", None) is not None:
        run.model.eval()
        values.update({f"val_{k}": v for k, v in evaluate_loader(run, run.loaders.val, run.meters["val"]).items()})
        run.model.train()
    return values


def _restore_rng_once(run: Run) -> None:
    if run.resume_rng is not None:
        set_rng_state(run.resume_rng)
        run.resume_rng = None
