"""Data-parallel training on torch.distributed: one process per device, launched by torchrun.

netspec reads what torchrun puts in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group with
``init_process_group`` (nccl on CUDA, gloo on the CPU). ``netspec run SPEC --nproc N`` is
``torchrun --standalone --nproc-per-node N -m netspec run SPEC`` made through
``torch.distributed.run`` itself (:func:`launch`).

What changes for the loop, each in one place:

* the model is wrapped in ``DistributedDataParallel`` (:func:`wrap`); gradients are averaged
  over the processes, so a step over ``B/N`` samples in each of ``N`` processes is the step one
  process takes over ``B``;
* each loader deals out its share of every epoch (``_EpochLoader.shard``);
* losses are summed across processes before they are read (:func:`all_sum`); torchmetrics
  reduces the metrics' states itself when they are computed;
* rank 0 alone writes the run directory; a checkpoint holds every rank's RNG and meter states
  (:func:`gather`); decisions a signal may start (stop and save) are agreed (:func:`agree`).

Small control messages (the stop flag, the run directory's path, checkpoint pieces) travel in
a gloo group on the CPU, so under nccl they cost no device sync.

torchrun's variables are checked before anything connects (:mod:`.launchenv`), a rendezvous
that does not happen within ``train.distributed.timeout`` is one line (:func:`rendezvous_failed`),
and a process that took part leaves without finalising the interpreter under gloo's threads
(:func:`leave`).

>>> World.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
...                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
World(rank=1, world_size=2, local_rank=1, local_world_size=2)
>>> World.from_env({}) is None
True
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import IO, Any, ClassVar, NoReturn, TypeVar

import torch
from torch import Tensor, nn

from ..errors import EXIT_TRAINING_FAILED, NetspecError, TrainingError, first_line
from .launchenv import LaunchError, World, resolve_master

__all__ = [
    "LaunchError",
    "PeerLost",
    "RendezvousFailed",
    "World",
    "agree",
    "all_sum",
    "check_batch",
    "check_devices",
    "from_main",
    "gather",
    "is_peer_failure",
    "leave",
    "peer_lost",
    "rendezvous_failed",
    "shard_loaders",
    "start",
    "stop",
    "sync_batchnorm",
    "world",
    "wrap",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=NetspecError)


class PeerLost(TrainingError):
    """Another process of the run failed or vanished: this one stopped (never hung).

    >>> str(PeerLost("stopped: another process is gone (Connection closed by peer)"))
    'stopped: another process is gone (Connection closed by peer)'
    """

    exit_code: ClassVar[int] = EXIT_TRAINING_FAILED  # the run failed on the way, as a NaN loss does

    def __str__(self) -> str:  # no spec location: the cause is elsewhere
        return " ".join((self.message + (f"; {self.hint}" if self.hint else "")).split("\n"))


_control: Any = None  # the gloo group for control messages (None outside a distributed run)
_owned = False  # whether this module made the process group (and so destroys it)


def world() -> World | None:
    """This run's world once :func:`start` has joined it; None in one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    return World.from_env() or World(dist.get_rank(), dist.get_world_size(), 0, 1)


def start(device: torch.device, backend: str, timeout: float) -> None:
    """Join the process group torchrun's environment describes (unless the caller has already)
    and make the control group.

    ``timeout`` bounds every wait for another process: a process that stops answering makes
    the others raise instead of hanging (gloo at the collective; nccl through its watchdog).

    Example (in each process torchrun started)::

        start(torch.device("cpu"), "auto", timeout=120)   # gloo
        ...
        stop()
    """
    import torch.distributed as dist

    global _control, _owned
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise everywhere(
            TrainingError(
                "`backend: nccl` needs CUDA devices, and this run trains on the CPU",
                path=("train", "distributed", "backend"),
                hint="use `backend: gloo` or `auto`",
            )
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        _join(backend, device, timeout, World.from_env())
        _owned = True
    _control = (
        dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout))
        if dist.get_backend() != "gloo"
        else dist.group.WORLD
    )


class RendezvousFailed(LaunchError):
    """The processes of the run did not meet (a peer never came, the port is taken): one line
    when ``train.distributed.timeout`` ends, never torch's store traceback."""


def _join(backend: str, device: torch.device, timeout: float, here: World | None) -> None:
    """``init_process_group`` with its failures as one line. A lone process (WORLD_SIZE=1 and
    no MASTER_ADDR) meets nobody: its store is in memory. c10d's C++ log lines (connection
    retries with stack frames, written straight to stderr) are held back while it waits."""
    import torch.distributed as dist

    options: dict[str, Any] = {
        "timeout": timedelta(seconds=timeout),
        "device_id": device if device.type == "cuda" else None,
    }
    if here is not None:
        resolve_master(here)
        if here.master_addr is None:
            options.update(store=dist.HashStore(), rank=here.rank, world_size=here.world_size)
    with _held_stderr() as held:
        try:
            dist.init_process_group(backend, **options)
        except (RuntimeError, ValueError, OSError) as err:  # DistError is a RuntimeError
            held.drop()
            raise rendezvous_failed(err, here, timeout) from None  # each process says its own


def rendezvous_failed(err: BaseException, here: World | None, timeout: float) -> RendezvousFailed:
    """The line for a process group that did not form.

    >>> w = World(0, 2, 0, 2, "127.0.0.1", 29511)
    >>> str(rendezvous_failed(RuntimeError("Timed out after 6 seconds waiting for clients. 1/2 clients joined."), w, 5))
    'launch environment: the 2 processes did not meet at 127.0.0.1:29511 within train.distributed.timeout (5 s): Timed out after 6 seconds waiting for clients. 1/2 clients joined; start every rank 0 to 1 with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE (torchrun does), or raise train.distributed.timeout'
    >>> print(rendezvous_failed(RuntimeError("The server socket has failed to listen ... EADDRINUSE"), w, 5))
    launch environment: MASTER_PORT=29511 is in use on this machine, so rank 0 cannot listen on it; choose a free port
    """
    size = here.world_size if here is not None else "all"
    where = f"{here.master_addr}:{here.master_port}" if here is not None and here.master_addr else "their rendezvous"
    text = str(err)
    if here is not None and ("EADDRINUSE" in text or "ddress already in use" in text):
        return RendezvousFailed(
            f"MASTER_PORT={here.master_port} is in use on this machine, so rank {here.rank} cannot listen on it",
            hint="choose a free port",
        )
    reason = _without_source(first_line(err)).rstrip(".")
    if not _is_store_failure(err):  # not about meeting (a device, a backend): say it as it is
        return RendezvousFailed(f"the process group could not start: {reason}")
    ranks = f"every rank 0 to {here.world_size - 1}" if here is not None else "every process"
    return RendezvousFailed(
        f"the {size} processes did not meet at {where} within train.distributed.timeout ({timeout:g} s): {reason}",
        hint=f"start {ranks} with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE (torchrun does), "
        "or raise train.distributed.timeout",
    )


def _is_store_failure(err: BaseException) -> bool:
    """Whether ``err`` is the rendezvous's: c10d's store and network errors, or a timeout.

    >>> _is_store_failure(RuntimeError("Timed out after 6 s waiting for clients")), _is_store_failure(ValueError())
    (True, False)
    """
    import torch.distributed as dist

    return isinstance(err, dist.DistError) or "timed out" in str(err).lower()


class _Held:
    """What was written to file descriptor 2 while held (see :func:`_held_stderr`)."""

    def __init__(self, file: IO[bytes] | None) -> None:
        self.file, self.dropped = file, False

    def drop(self) -> None:
        self.dropped = True

    def replay(self) -> None:
        """Write back what was not c10d's own log (a library's warning still reaches the user)."""
        if self.file is None or self.dropped:
            return
        self.file.seek(0)
        lines = self.file.read().decode(errors="replace").splitlines(keepends=True)
        kept = "".join(line for line in lines if not _C10D_LOG.match(line))
        if kept:
            sys.stderr.write(kept)
            sys.stderr.flush()


#: a c10d C++ log line, or the stack frames its message carries
_C10D_LOG = re.compile(r"(\[rank\d+\]:)?\[[WEI]\d{4} |Exception raised from |frame #\d+: ")


@contextlib.contextmanager
def _held_stderr() -> Iterator[_Held]:
    """File descriptor 2 into a temporary file for the block, then put back (and replayed
    without c10d's log lines, unless dropped). Where fd 2 cannot be duplicated, nothing is held."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield _Held(None)
        return
    with tempfile.TemporaryFile() as file:
        held = _Held(file)
        os.dup2(file.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.replay()


def stop() -> None:
    """Leave the process group this module joined (a caller's own group is left alone).

    >>> stop()  # outside a distributed run: nothing to leave
    """
    import torch.distributed as dist

    global _control, _owned
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _control, _owned = None, False


def leave(code: int) -> NoReturn:
    """End a process of a data-parallel run with ``code``: the exit hooks run and the output is
    flushed while the interpreter is whole, then the process ends without finalising it.

    Why: gloo's worker threads (``pt_gloo_runloop``) outlive ``destroy_process_group`` (torch
    keeps the group's backend), and after the last collective one of them may still be
    releasing that collective's tensors, whose Python objects need the GIL. A thread that asks
    for the GIL while the interpreter finalises is ended with ``pthread_exit``; its unwinding
    through gloo's ``noexcept`` loop calls ``std::terminate``: "terminate called without an
    active exception", SIGABRT, and torchrun reports a finished run as failed (more often the
    busier the machine, as the thread is scheduled later). The exit hooks (logging, the
    loaders' worker processes, multiprocessing's children) run here, as a normal exit would.

    Example (the last statement of a torchrun worker)::

        leave(run_command(args))
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream: nothing left to say
            stream.flush()
    os._exit(code)


def wrap(model: nn.Module, device: torch.device, options: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` with the spec's ``train.distributed`` options.

    Its state_dict keys carry a ``module.`` prefix, so checkpoints are taken from ``model``
    itself, never from the wrapper. Called after SyncBatchNorm conversion (:func:`sync_batchnorm`).

    Example (after :func:`start`)::

        ddp = wrap(model, torch.device("cpu"), DistributedSpec(static_graph=True))
        loss = criterion(ddp(x), y); loss.backward()   # gradients averaged over the processes
    """
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model,
        device_ids=[device] if device.type == "cuda" else None,
        find_unused_parameters=options.find_unused_parameters,
        gradient_as_bucket_view=options.gradient_as_bucket_view,
        static_graph=options.static_graph,
    )


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm as a SyncBatchNorm (statistics over the global batch). The parameters
    stay the same objects, so optimizers and state_dict keys are unchanged.

    >>> sync_batchnorm(nn.BatchNorm1d(3), torch.device("cpu"))
    Traceback (most recent call last):
    netspec.errors.TrainingError: <spec>: train.distributed.sync_batchnorm: `sync_batchnorm` needs CUDA devices (torch's SyncBatchNorm has no CPU kernel)
    """
    if device.type != "cuda":
        raise everywhere(
            TrainingError(
                "`sync_batchnorm` needs CUDA devices (torch's SyncBatchNorm has no CPU kernel)",
                path=("train", "distributed", "sync_batchnorm"),
            )
        )
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    logger.info("sync_batchnorm: BatchNorm statistics over the global batch")
    return converted


def all_sum(values: Tensor) -> Tensor:
    """``values`` summed over every process (a CPU float64 tensor in, the same out); itself
    outside a distributed run.

    >>> all_sum(torch.tensor([1.0, 2.0], dtype=torch.float64)).tolist()
    [1.0, 2.0]
    """
    import torch.distributed as dist

    if world() is None:
        return values
    total = values.clone()
    dist.all_reduce(total, group=_control)
    return total


def agree(flag: bool) -> bool:
    """True on every process when it is True on any: a stop asked of one is taken by all at
    the same step. One small message on the control group; no device sync.

    >>> agree(True)
    True
    """
    import torch.distributed as dist

    if world() is None:
        return flag
    value = torch.tensor([int(flag)], dtype=torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_control)
    return bool(value.item())


def gather(obj: T) -> list[T]:
    """Every process's ``obj`` (picklable, on the CPU), in rank order, on every process.

    >>> gather({"rank": 0})
    [{'rank': 0}]
    """
    import torch.distributed as dist

    here = world()
    if here is None:
        return [obj]
    out: list[Any] = [None] * here.world_size
    dist.all_gather_object(out, obj, group=_control)
    return out


def from_main(make: Callable[[], T]) -> T:
    """``make()`` run on rank 0 alone, its result (or its NetspecError) given to every process.

    The run directory is made this way: one directory, one name, on every rank; a mistake in
    making it is raised everywhere (printed by rank 0 only).

    >>> from_main(lambda: 42)
    42
    """
    import torch.distributed as dist

    here = world()
    if here is None:
        return make()
    box: list[Any] = [None]
    if here.rank == 0:
        try:
            box[0] = ("ok", make())
        except NetspecError as err:  # a spec mistake or a run directory that cannot be made
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0, group=_control)
    kind, value = box[0]
    if kind == "error":
        raise everywhere(value)
    return value


def everywhere(err: E) -> E:
    """Mark an error every process raises alike: rank 0 alone prints it (``rank 0: ...``).

    >>> from netspec.errors import SpecError
    >>> everywhere(SpecError("x")).every_rank
    True
    """
    err.every_rank = True  # type: ignore[attr-defined]
    return err


def check_batch(global_batch: int, world_size: int, path: tuple[str, ...] = ("data", "batch_size")) -> None:
    """Refuse a global batch the processes cannot share equally, before any data is read.

    >>> check_batch(32, 4)
    >>> check_batch(10, 4)
    Traceback (most recent call last):
    netspec.errors.TrainingError: <spec>: data.batch_size: 10 is the global batch and does not divide among 4 processes; make it a multiple of 4 (each process takes batch_size / 4)
    """
    if global_batch % world_size:
        raise everywhere(
            TrainingError(
                f"{global_batch} is the global batch and does not divide among {world_size} processes",
                path=path,
                hint=f"make it a multiple of {world_size} (each process takes batch_size / {world_size})",
            )
        )


def check_devices(device: torch.device, world_: World) -> None:
    """Refuse more processes on this machine than it has CUDA devices (each takes its own).

    >>> check_devices(torch.device("cpu"), World(0, 64, 0, 64))  # on the CPU any number
    """
    count = torch.cuda.device_count()
    if device.type == "cuda" and world_.local_world_size > count:
        raise everywhere(
            TrainingError(
                f"{world_.local_world_size} processes on this machine but {count} CUDA device(s): each process "
                "trains on its own device",
                path=("--nproc",),
                hint=f"start at most {count} per machine (`--nproc {count}`, or torchrun --nproc-per-node {count})",
            )
        )


def shard_loaders(loaders: Any, rank: int, world_size: int) -> None:
    """Give each loader this process's share (see ``_EpochLoader.shard``) and say what the
    batch size means now. Loaders given from Python must be netspec's to be sharded.

    Example::

        shard_loaders(build_loaders(spec.data, ...), rank=1, world_size=2)
        # data-parallel: data.batch_size 32 is the global batch, 16 per process; ...
    """
    train = loaders.train
    if not hasattr(train, "shard"):
        raise everywhere(
            TrainingError(
                "loaders given from Python cannot be dealt out among processes",
                path=("data",),
                hint="let netspec build them from the spec's data section",
            )
        )
    check_batch(train.global_batch_size, world_size)
    for split in ("train", "val", "test"):
        loader = getattr(loaders, split, None)
        if loader is not None:
            loader.shard(rank, world_size)
    logger.info(
        f"data-parallel: data.batch_size {train.global_batch_size} is the global batch, "
        f"{train.batch_size} per process; {len(train)} batches per epoch in each process"
    )


def is_peer_failure(err: BaseException) -> bool:
    """Whether ``err`` is a collective failing because another process failed or vanished
    (gloo's closed connections, nccl's watchdog, a timeout of either).

    >>> is_peer_failure(RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer"))
    True
    """
    import torch.distributed as dist

    if isinstance(err, dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("gloo", "Connection closed by peer", "Connection reset by peer", "NCCL", "Timed out")
    )


def peer_lost(err: BaseException) -> PeerLost:
    """The one line a surviving process prints when a collective failed under it.

    >>> str(peer_lost(RuntimeError("[pair.cc:561] Connection closed by peer [127.0.0.1]:45768. This is ...")))
    "stopped: another process of the run failed or is gone (Connection closed by peer [127.0.0.1]:45768); the launcher's report names it; continue from the last checkpoint with --resume"

    From here on this process is on its way out, and torchrun's SIGTERM (sent to every process
    once one has failed) says nothing new: under torchrun it is ignored, so it cannot replace
    this line with a bare "terminated" while the process group is taken down.
    """
    if World.from_env() is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return PeerLost(
        f"stopped: another process of the run failed or is gone ({_first_sentence(err)})",
        hint="the launcher's report names it; continue from the last checkpoint with --resume",
    )


def _without_source(text: str) -> str:
    """A message without the ``[file.cc:123]`` prefix gloo and c10d put first.

    >>> _without_source("[gloo/pair.cc:545] Read error")
    'Read error'
    """
    return re.sub(r"^\[[^\]]*\]\s*", "", text)


def _first_sentence(err: BaseException) -> str:
    """gloo's and nccl's messages without their source location and advice.

    >>> _first_sentence(RuntimeError("[gloo/pair.cc:545] Read error [127.0.0.1]:10148: Connection reset by peer. "
    ...                              "This is typically caused by a remote worker hanging"))
    'Read error [127.0.0.1]:10148: Connection reset by peer'
    """
    return _without_source(first_line(err)).split(". ")[0].rstrip(".")
