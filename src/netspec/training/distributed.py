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

>>> World.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
World(rank=1, world_size=2, local_rank=1, local_world_size=2)
>>> World.from_env({}) is None
True
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ..errors import SpecError, TrainingError, first_line

__all__ = [
    "PeerLost",
    "World",
    "agree",
    "all_sum",
    "check_batch",
    "check_devices",
    "from_main",
    "gather",
    "is_peer_failure",
    "peer_lost",
    "shard_loaders",
    "start",
    "stop",
    "sync_batchnorm",
    "world",
    "wrap",
]

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the processes torchrun started."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World | None:
        """The world torchrun describes in ``env`` (default ``os.environ``); None outside torchrun."""
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env or "RANK" not in env:
            return None
        world_size = int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_WORLD_SIZE", world_size))
        return cls(int(env["RANK"]), world_size, int(env.get("LOCAL_RANK", env["RANK"])), local)


class PeerLost(TrainingError):
    """Another process of the run failed or vanished: this one stopped (never hung).

    >>> str(PeerLost("stopped: another process is gone (Connection closed by peer)"))
    'stopped: another process is gone (Connection closed by peer)'
    """

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
        raise everywhere(TrainingError("`backend: nccl` needs CUDA devices, and this run trains on the CPU",
                                        path=("train", "distributed", "backend"), hint="use `backend: gloo` or `auto`"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout),
                                device_id=device if device.type == "cuda" else None)
        _owned = True
    _control = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout)) \
        if dist.get_backend() != "gloo" else dist.group.WORLD


def stop() -> None:
    """Leave the process group this module joined (a caller's own group is left alone).

    >>> stop()  # outside a distributed run: nothing to leave
    """
    import torch.distributed as dist

    global _control, _owned
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _control, _owned = None, False


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
        model, device_ids=[device] if device.type == "cuda" else None,
        find_unused_parameters=options.find_unused_parameters,
        gradient_as_bucket_view=options.gradient_as_bucket_view, static_graph=options.static_graph)


def sync_batchnorm(model: nn.Module, device: torch.device, log: Any) -> nn.Module:
    """Every BatchNorm as a SyncBatchNorm (statistics over the global batch). The parameters
    stay the same objects, so optimizers and state_dict keys are unchanged.

    >>> sync_batchnorm(nn.BatchNorm1d(3), torch.device("cpu"), None)
    Traceback (most recent call last):
    netspec.errors.TrainingError: <spec>: train.distributed.sync_batchnorm: `sync_batchnorm` needs CUDA devices (torch's SyncBatchNorm has no CPU kernel)
    """
    if device.type != "cuda":
        raise everywhere(TrainingError("`sync_batchnorm` needs CUDA devices (torch's SyncBatchNorm has no CPU "
                                        "kernel)", path=("train", "distributed", "sync_batchnorm")))
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    log.info("sync_batchnorm: BatchNorm statistics over the global batch")
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
    """``make()`` run on rank 0 alone, its result (or its SpecError) given to every process.

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
        except SpecError as err:
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0, group=_control)
    kind, value = box[0]
    if kind == "error":
        raise everywhere(value)
    return value


def everywhere(err: SpecError) -> SpecError:
    """Mark an error every process raises alike: rank 0 alone prints it (``rank 0: ...``).

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
        raise everywhere(TrainingError(
            f"{global_batch} is the global batch and does not divide among {world_size} processes", path=path,
            hint=f"make it a multiple of {world_size} (each process takes batch_size / {world_size})"))


def check_devices(device: torch.device, world_: World) -> None:
    """Refuse more processes on this machine than it has CUDA devices (each takes its own).

    >>> check_devices(torch.device("cpu"), World(0, 64, 0, 64))  # on the CPU any number
    """
    count = torch.cuda.device_count()
    if device.type == "cuda" and world_.local_world_size > count:
        raise everywhere(TrainingError(
            f"{world_.local_world_size} processes on this machine but {count} CUDA device(s): each process "
            "trains on its own device", path=("--nproc",),
            hint=f"start at most {count} per machine (`--nproc {count}`, or torchrun --nproc-per-node {count})"))


def shard_loaders(loaders: Any, rank: int, world_size: int, log: Any) -> None:
    """Give each loader this process's share (see ``_EpochLoader.shard``) and say what the
    batch size means now. Loaders given from Python must be netspec's to be sharded.

    Example::

        shard_loaders(build_loaders(spec.data, ...), rank=1, world_size=2, log=log)
        # data-parallel: data.batch_size 32 is the global batch, 16 per process; ...
    """
    train = loaders.train
    if not hasattr(train, "shard"):
        raise everywhere(TrainingError("loaders given from Python cannot be dealt out among processes",
                                        path=("data",), hint="let netspec build them from the spec's data section"))
    check_batch(train.global_batch_size, world_size)
    for split in ("train", "val", "test"):
        loader = getattr(loaders, split, None)
        if loader is not None:
            loader.shard(rank, world_size)
    log.info(f"data-parallel: data.batch_size {train.global_batch_size} is the global batch, "
             f"{train.batch_size} per process; {len(train)} batches per epoch in each process")


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
        s in text for s in ("gloo", "Connection closed by peer", "Connection reset by peer", "NCCL", "Timed out"))


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
    return PeerLost(f"stopped: another process of the run failed or is gone ({_first_sentence(err)})",
                    hint="the launcher's report names it; continue from the last checkpoint with --resume")


def _first_sentence(err: BaseException) -> str:
    """gloo's and nccl's messages without their source location and advice.

    >>> _first_sentence(RuntimeError("[gloo/pair.cc:545] Read error [127.0.0.1]:10148: Connection reset by peer. "
    ...                              "This is typically caused by a remote worker hanging"))
    'Read error [127.0.0.1]:10148: Connection reset by peer'
    """
    text = re.sub(r"^\[[^\]]*\]\s*", "", first_line(err))
    return text.split(". ")[0].rstrip(".")
