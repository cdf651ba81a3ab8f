"""Checkpoints: what a run saves, written atomically, and read back with checks.

A checkpoint (``last.pt`` / ``best.pt``) holds everything needed to continue exactly where the
run stopped: model, optimizer, scheduler and scaler states, the loop's counters, the metric
sums of a half-done epoch and every RNG state. Files are written to a temp file in the same
folder, fsynced and renamed, so a crash leaves the previous checkpoint intact; they are read
with ``torch.load(weights_only=True)``.

A run's checkpoint is a snapshot taken at the moment it is saved (after checking that the
losses and weights are finite); a background thread writes it while training goes on
(:data:`netspec.training.rundir.BACKGROUND`), so the device does not wait for the disk. A small
one (:data:`SERIALISE_AT_ONCE`) is serialised in memory at once and the thread only writes the
bytes; a larger one is copied to the host and serialised by the thread. A checkpoint taken at an
epoch's end holds no metric sums (``meters`` is ``{}``): only a half-done epoch needs them.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import CheckpointError, NonFiniteLoss, summarise
from .context import output_shapes
from .hardware import rng_state, set_rng_state
from .rundir import BACKGROUND, fresh_temp, nofollow, writing
from .stopping import update_best
from .watch import all_finite
from .weights import OTHER_SPEC_HINT, check_finite_weights, check_fits, read_weights_file

if TYPE_CHECKING:  # loop.py imports this module: the type alone, never at run time
    from .loop import Run

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "save_checkpoint",
    "write_checkpoint",
    "checkpoint_bytes",
    "load_checkpoint",
    "link_or_copy",
    "capture",
    "restore",
    "save",
    "save_epoch",
    "check_weights",
    "to_host",
    "host_view",
    "SERIALISE_AT_ONCE",
]

logger = logging.getLogger(__name__)

# The version grows when what a checkpoint holds changes, so that a file of another version is
# refused as such rather than as damaged. 2: each metric's state names the sample shapes it was
# configured from (checked on resume).
FORMAT_VERSION = 2
CHECKPOINT_FORMAT = f"netspec-checkpoint-{FORMAT_VERSION}"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` with torch.save atomically: temp file in the same dir, fsync, rename.

    A crash mid-write leaves the previous checkpoint intact (and at worst a hidden
    ``.last.pt.<pid>.tmp``, removed when the run is resumed). A failing write raises its
    OSError (errno ENOSPC for a full disk), not the RuntimeError torch.save would make of it.
    """
    _write_atomically(path, lambda f: _torch_save(state, f))


def write_checkpoint(path: Path, data: bytes | memoryview) -> None:
    """Write a checkpoint already serialised (:func:`checkpoint_bytes`) atomically, as
    :func:`save_checkpoint` does: the write, fsync and rename release the interpreter, so a
    background thread doing this leaves the training thread running."""
    _write_atomically(path, lambda f: f.write(data))


def checkpoint_bytes(state: dict[str, Any]) -> memoryview:
    """``state`` as torch.save writes it, in memory.

    >>> len(checkpoint_bytes({"a": torch.ones(2)})) > 0
    True
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer()


def _write_atomically(path: Path, write: Callable[[Any], Any]) -> None:
    """``write(file)`` into a temp file next to ``path``, fsync, rename over ``path``."""
    path = Path(path)
    tmp = fresh_temp(path)
    try:
        with open(tmp, "xb", opener=nofollow) as f:  # a new file, never through a link
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half
    finally:
        if tmp.exists():
            tmp.unlink()


def _torch_save(state: dict[str, Any], f: Any) -> None:
    sink = _Sink(f)
    try:
        torch.save(state, sink)  # type: ignore[arg-type]  # a file torch.save writes to
    except RuntimeError:
        if sink.error is not None:  # torch.save reports a failed write as "unexpected pos"
            raise sink.error from None
        raise


class _Sink:
    """A file for torch.save that remembers the exception a write raised (torch.save turns any
    exception inside a write, an OSError or a KeyboardInterrupt, into a RuntimeError)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.error: BaseException | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except BaseException as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` hold ``src``'s bytes, atomically; a hard link costs nothing."""
    tmp = fresh_temp(dst)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a netspec checkpoint (``last.pt``, ``best.pt``, or a run directory's last.pt)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "last.pt").is_file():
            raise CheckpointError(
                f"{path} has no last.pt: the run stopped before its first checkpoint",
                path=("--resume",),
                hint="start it again without --resume",
            )
        path = path / "last.pt"
    elif not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found", path=("--resume",))
    state = read_weights_file(path, ("--resume",))
    _check_version(state, path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a netspec checkpoint (last.pt / best.pt)",
            path=("--resume",),
            hint="to start from plain weights use `init: {weights: ...}`",
        )
    problem = structure_problem(state)
    if problem is not None:
        raise CheckpointError(
            f"{path} is damaged or was not written by netspec: {problem}", path=("--resume",), hint=DAMAGED_HINT
        )
    state["path"] = path
    return state


DAMAGED_HINT = "resume from another checkpoint, or start again without --resume"


def _check_version(state: Any, path: Path) -> None:
    """A netspec checkpoint of another format version is refused as older or newer, not as damaged.

    >>> _check_version({"format": "netspec-checkpoint-1"}, Path("last.pt"))
    Traceback (most recent call last):
    netspec.errors.CheckpointError: <spec>: --resume: last.pt was written by an older netspec, format 1; this one reads 2; continue it with the netspec that wrote it, or start again without --resume (`init: {weights: last.pt}` starts from its weights)
    """
    found = state.get("format") if isinstance(state, dict) else None
    prefix = CHECKPOINT_FORMAT.rsplit("-", 1)[0] + "-"
    if not isinstance(found, str) or not found.startswith(prefix) or not found[len(prefix) :].isdigit():
        return
    version = int(found[len(prefix) :])
    if version == FORMAT_VERSION:
        return
    age = "an older" if version < FORMAT_VERSION else "a newer"
    raise CheckpointError(
        f"{path} was written by {age} netspec, format {version}; this one reads {FORMAT_VERSION}",
        path=("--resume",),
        hint=f"continue it with the netspec that wrote it, or start again "
        f"without --resume (`init: {{weights: {path}}}` starts from its weights)",
    )


_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "best": (float, int, type(None)),
    "best_epoch": (int, type(None)),
    "stale": (int,),
    "stale_best": (float, int, type(None)),
    "skipped": (int,),
}


def structure_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's parts, before any of them is used (None: nothing).

    A forged or foreign file must give one line, not a traceback from deep inside a restore.

    >>> structure_problem({"format": CHECKPOINT_FORMAT})
    '`model` is missing or not a state_dict'
    """
    model, optimizer = state.get("model"), state.get("optimizer")
    if not isinstance(model, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
    ):
        return "`model` is missing or not a state_dict"
    if (
        not isinstance(optimizer, dict)
        or not isinstance(optimizer.get("state"), dict)
        or not isinstance(optimizer.get("param_groups"), list)
    ):
        return "`optimizer` is missing or not an optimizer's state_dict"
    for key in ("epoch", "batch", "step"):
        if not isinstance(state.get(key), int) or isinstance(state[key], bool) or state[key] < 0:
            return f"`{key}` is {type(state.get(key)).__name__}, not a count"
    loop_state = state.get("state")
    if not isinstance(loop_state, dict) or not all(
        k in _STATE_TYPES and isinstance(v, _STATE_TYPES[k]) for k, v in loop_state.items()
    ):
        return "`state` is missing or holds unknown entries"
    for key, kinds in (
        ("standardize", (dict, type(None))),
        ("class_counts", (list, type(None))),
        ("scheduler", (dict, type(None))),
        ("scaler", (dict, type(None))),
        ("meters", (dict,)),
        ("window_meter", (dict, type(None))),
        ("spec_hash", (str,)),
        ("rng", (dict,)),
    ):
        if not isinstance(state.get(key), kinds):
            return f"`{key}` is missing or a {type(state.get(key)).__name__}"
    if (
        not isinstance(state.get("world_size", 1), int)
        or not isinstance(state.get("ranks", []), list)
        or not all(isinstance(r, dict) and isinstance(r.get("rng"), dict) for r in state.get("ranks", []))
    ):
        return "`world_size` or `ranks` (the other processes' states) is malformed"
    return None if _rng_usable(state["rng"]) else "`rng` is not a set of random number generator states"


def _rng_usable(rng: dict[str, Any]) -> bool:
    """Whether the RNG states can be restored (tried, then the current ones put back)."""
    current = rng_state()
    try:
        set_rng_state(rng)
        return True
    except Exception:  # any shape of garbage: the states are unusable
        return False
    finally:
        set_rng_state(current)


def capture(run: Run) -> dict[str, Any]:
    """Everything of a run (a :class:`netspec.training.loop.Run`) that a checkpoint holds."""
    st = run.state
    return {
        "format": CHECKPOINT_FORMAT,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.schedule.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "epoch": st.epoch,
        "batch": st.batch,
        "step": st.step,
        "state": {k: getattr(st, k) for k in ("best", "best_epoch", "stale", "stale_best", "skipped")},
        "meters": _half_done(run),
        "window_meter": run.window_meter.state_dict() if run.window_meter is not None else None,
        "rng": rng_state(),
        "spec_hash": run.spec_hash,
        "best": {"monitor": run.best_monitor, "value": st.best, "epoch": st.best_epoch},
        "torch": str(torch.__version__),
        # the Standardize transform's statistics, fitted on the training split (eval, predict and
        # export apply them; a resumed run keeps them)
        "standardize": getattr(run.loaders, "info", {}).get("standardize"),
        "class_counts": getattr(run.loaders, "info", {}).get("class_counts"),  # weight: balanced's
    }


def _half_done(run: Run) -> dict[str, Any]:
    """The train metrics' sums of a half-done epoch; nothing at an epoch's end (a resumed run
    starts the next epoch with fresh sums, so the finished epoch's would never be read, and
    each of their tensors costs the write about 20 us)."""
    return run.meters["train"].state_dict() if run.state.batch else {}


def restore(run: Run, ckpt: dict[str, Any]) -> None:
    """Put model, optimizer, scheduler, scaler, counters and meters back as saved.

    The RNG state is set later, at the point of the epoch where it was captured (the loop does
    it through ``run.resume_rng``); the metrics history is cut back by the caller, once the run
    directory is known.
    """
    ckpt = _this_rank(run, ckpt)
    check_fits(
        run.model.state_dict(),
        ckpt["model"],
        str(ckpt["path"]),
        ("--resume",),
        strict=True,
        hint=OTHER_SPEC_HINT["--resume"],
    )
    check_finite_weights(run.model, ckpt["model"], str(ckpt["path"]), ("--resume",))
    run.model.load_state_dict(ckpt["model"])
    try:
        run.optimizer.load_state_dict(ckpt["optimizer"])
    except ValueError as err:
        raise CheckpointError(
            f"the optimizer in {ckpt['path']} does not fit this spec's optimizer: {err}", path=("optimizer",)
        ) from None
    except Exception:  # a forged state: any error torch raises means the same
        raise _damaged(ckpt, "optimizer") from None
    if not _optimizer_state_fits(run.optimizer):
        raise _damaged(ckpt, "optimizer")
    _restore_parts(run, ckpt)
    st = run.state
    st.epoch, st.batch, st.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
    for k, v in ckpt["state"].items():
        setattr(st, k, v)
    run.resume_rng = ckpt["rng"]
    logger.info(f"resumed from {ckpt['path']}: epoch {st.epoch} done, batch {st.batch}, step {st.step}")


def _this_rank(run: Run, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint as this process resumes it: rank 0 reads the top level; rank r of a run
    with as many processes as the one that saved it reads its own RNG and meter states from
    ``ranks``; a rank the saving run did not have keeps its fresh seed. Across a change in the
    number of processes only an epoch's end can be resumed: mid-epoch, each process's share
    of the epoch and its half-done sums belong to the split that was."""
    saved, world, rank = ckpt.get("world_size", 1), run.hw.world_size, run.hw.rank
    if ckpt["batch"] and saved != world:
        raise CheckpointError(
            f"{ckpt['path']} was saved mid-epoch by {saved} process(es) and this run has {world}",
            path=("--resume",),
            hint=f"resume it with {saved} (`netspec run --nproc {saved}`), or resume a "
            "checkpoint taken at the end of an epoch",
        )
    if rank == 0:
        return ckpt
    ranks = ckpt.get("ranks", [])
    if saved == world and rank - 1 < len(ranks):
        return {**ckpt, **ranks[rank - 1]}
    return {**ckpt, "rng": None}


def _damaged(ckpt: dict[str, Any], part: str) -> CheckpointError:
    return CheckpointError(
        f"{ckpt['path']} is damaged or was not written by netspec: its `{part}` cannot be restored",
        path=("--resume",),
        hint=DAMAGED_HINT,
    )


def _restore_parts(run: Run, ckpt: dict[str, Any]) -> None:
    """Scheduler, scaler and the metric sums of a half-done epoch; a part that does not match
    what this run made is damaged. Meters say which entry and what is wrong with it (each loss
    and metric state against a fresh one's type, shape and dtype): a wrong one would otherwise
    be taken and fail only when the epoch's values are computed."""
    parts: list[tuple[str, Any, Any]] = [("scheduler", run.schedule, ckpt["scheduler"])]
    if run.scaler is not None and ckpt["scaler"] is not None:
        parts.append(("scaler", run.scaler, ckpt["scaler"]))
    if ckpt["batch"]:
        parts.append(("meters", run.meters["train"], ckpt["meters"]))
    if run.window_meter is not None and ckpt.get("window_meter"):
        parts.append(("window_meter", run.window_meter, ckpt["window_meter"]))
    for name, target, saved in parts:
        try:
            if name in ("meters", "window_meter"):
                target.load_state_dict(saved, output_shapes(run.model))
            else:
                target.load_state_dict(saved)
        except ValueError as err:
            if name not in ("meters", "window_meter"):
                raise _damaged(ckpt, name) from None
            raise CheckpointError(
                f"{ckpt['path']} is damaged or was not written by netspec: its `{name}`: {err}",
                path=("--resume",),
                hint=DAMAGED_HINT,
            ) from None
        except Exception:  # a forged state: any error torch raises means the same
            raise _damaged(ckpt, name) from None


def _optimizer_state_fits(optimizer: torch.optim.Optimizer) -> bool:
    """Every tensor of a parameter's optimizer state broadcasts to the parameter (momentum and
    moments have its shape, step counts are scalars, Adafactor's factors a row or a column):
    otherwise the first step would fail in the middle of training."""
    for param, state in optimizer.state.items():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                shape = value.shape
                if len(shape) > param.dim() or any(
                    a not in (1, b) for a, b in zip(reversed(shape), reversed(param.shape))
                ):
                    return False
    return True


def save_epoch(run: Run, values: dict[str, float], final: bool) -> bool:
    """Every `checkpoint.every` epochs and at the end: last.pt, and best.pt when the monitored
    metric beats the best checkpoint so far. True if last.pt was written."""
    every = run.tspec.checkpoint.every
    if not (final or (every and run.state.epoch % every == 0)):
        return False  # (every process decides alike: under DDP all take part in a save)
    if update_best(run, values):
        # best.pt first, then last.pt as a hard link to it (no second write): killed in between,
        # last.pt is the previous epoch's and the resumed run redoes this epoch and this save.
        # (The other order would leave a last.pt whose `best` names an epoch best.pt lacks.)
        save(run, run.run_dir.best, link_last=True)
    else:
        save(run, run.run_dir.last)
    return True


#: a checkpoint whose tensors hold at most this many bytes is serialised at once, in the training
#: thread, and the writer thread only writes the bytes. Pickling is Python work that holds the
#: interpreter: in the writer it would stall the training thread anyway, and on small models it
#: costs more than copying the tensors (about 20 us a tensor); past this size the memory copies
#: dominate and the writer serialises a snapshot while training goes on (issue 21).
SERIALISE_AT_ONCE = 8 << 20


def save(run: Run, path: Path, link_last: bool = False) -> None:
    """Checkpoint the run to ``path`` (and hard-link last.pt to it), unless its losses or
    weights are no longer finite. The state is copied to the host now (a small one serialised)
    and written in the background; ``run.run_dir.saved`` says what last.pt holds once it is
    written."""
    watch = getattr(run, "watch", None)
    bad = watch.check() if watch is not None else None
    if bad is not None:
        raise bad.error(run.run_dir.kept())
    check_weights(run)
    ranks = _rank_states(run)
    if not run.hw.is_main:
        return  # rank 0 writes
    state, run_dir, done = capture(run), run.run_dir, (run.state.epoch, run.state.step)
    if ranks is not None:
        state["world_size"], state["ranks"] = len(ranks), ranks[1:]
    data = checkpoint_bytes(host_view(state)) if _tensor_bytes(state) <= SERIALISE_AT_ONCE else None
    if data is None:
        state = to_host(state)  # a snapshot the next steps cannot change, serialised by the writer

    def write() -> None:
        with writing(path):
            if data is not None:
                write_checkpoint(path, data)
            else:
                save_checkpoint(path, state)
        if link_last:
            with writing(run_dir.last):
                link_or_copy(path, run_dir.last)
        if link_last or path == run_dir.last:
            run_dir.saved = done

    BACKGROUND.submit(write)


def _rank_states(run: Run) -> list[dict[str, Any]] | None:
    """Under DDP, every process's RNG and train-meter states (rank 0 gets them all; every
    process takes part); None in one process."""
    if not run.hw.distributed:
        return None
    from .distributed import gather

    mine = {
        "rng": rng_state(),
        "meters": _half_done(run),
        "window_meter": run.window_meter.state_dict() if run.window_meter is not None else None,
    }
    return gather(to_host(mine))


def to_host(value: Any) -> Any:
    """A deep copy with every tensor on the host: a snapshot the training step cannot change
    while it is written (containers copied too; other values are immutable).

    >>> w = torch.ones(2); snap = to_host({"w": w, "lr": [0.1]}); w += 1; snap["w"].tolist()
    [1.0, 1.0]
    """
    return _map_tensors(value, lambda t: t.clone() if t.device.type == "cpu" else t.to("cpu"))


def host_view(value: Any) -> Any:
    """``value`` with every tensor on the host, for serialising at once: a CPU tensor is itself
    (detached), not a copy, unless it views a larger storage (torch.save would write all of it).
    Containers are new; other values are shared.

    >>> w = torch.ones(4); view = host_view({"w": w, "half": (w[:2],)})
    >>> view["w"].data_ptr() == w.data_ptr(), view["half"][0].untyped_storage().nbytes()
    (True, 8)
    """
    return _map_tensors(value, _host_tensor)


def _host_tensor(t: torch.Tensor) -> torch.Tensor:
    """:func:`host_view`'s tensor: itself on the host unless it views a larger storage."""
    if t.device.type != "cpu":
        return t.to("cpu")
    return t if t.untyped_storage().nbytes() == t.nbytes else t.clone()


def _map_tensors(value: Any, leaf: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``value`` with ``leaf`` of each (detached) tensor in it; dicts, lists and tuples are new
    (named tuples and other values are shared)."""
    if isinstance(value, torch.Tensor):
        return leaf(value.detach())
    if isinstance(value, dict):
        return {k: _map_tensors(v, leaf) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_map_tensors(v, leaf) for v in value)
    return value


def _tensor_bytes(value: Any) -> int:
    """Bytes held by the tensors in ``value`` (dicts, lists and tuples searched).

    >>> _tensor_bytes({"w": torch.ones(2), "rng": (1, [torch.zeros(3, dtype=torch.uint8)])})
    11
    """
    if isinstance(value, torch.Tensor):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def check_weights(run: Run) -> None:
    """NonFiniteLoss if a trained parameter is NaN/inf: a finite loss whose gradient overflowed.

    Checked before every checkpoint (one pass over the parameters, one device sync), so a saved
    checkpoint is always good. Buffers are not checked: -inf attention masks are legitimate.
    """
    if not run.params or all_finite([p.detach() for p in run.params]):  # one fused kernel, not one per parameter
        return
    trained = {id(p) for p in run.params}  # the names, only now: building them every epoch shows on small models
    st = run.state
    bad = [k for k, v in run.model.named_parameters() if id(v) in trained and not bool(torch.isfinite(v).all())]
    where = f"after epoch {st.epoch}, step {st.step}" if st.batch == 0 else f"at epoch {st.epoch + 1}, step {st.step}"
    raise NonFiniteLoss(
        f"parameters are not finite {where} ({summarise(bad, 3)}): a gradient overflowed; "
        f"not saved, {run.run_dir.kept()}",
        path=("train", "on_nan"),
        hint="lower the learning rate, set `train.grad_clip`, or `train.on_nan: skip` (skips such steps)",
    )
