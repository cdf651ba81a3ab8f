"""``netspec run SPEC --nproc N``: torchrun on this machine, through ``torch.distributed.run``.

The command starts ``torchrun --standalone --nproc-per-node N -m netspec run SPEC ...`` (the
same launcher, parser and rendezvous torchrun uses; nothing of netspec's own), after checking
what can be checked before any process starts: the spec, the global batch against ``N``, and
``N`` against the CUDA devices. When a process fails, torchrun stops the others (SIGTERM, then
SIGKILL after its grace period) and this command prints one line naming the process that
failed first and why, instead of torchrun's report.

Each process reports its own failure in its line of the log and in torchrun's error file
(:func:`record_failure`), which is how this command, and torchrun's own report, know the cause.

>>> without_nproc(["run", "x.yaml", "--nproc", "2", "--epochs", "1"])
['run', 'x.yaml', '--epochs', '1']
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any

from ..errors import EXIT_INTERRUPTED, NetspecError, TrainingError
from .distributed import World, check_batch, check_devices, everywhere
from .launchenv import VARIABLES, LaunchError

__all__ = ["PEER_LOST", "launch", "nested", "record_failure", "root_cause", "without_nproc"]

#: how a process that stopped because another failed names its error (see ``distributed.PeerLost``);
#: one whose peers never came (``distributed.RendezvousFailed``) is as secondary
PEER_LOST = "PeerLost"
RENDEZVOUS_FAILED = "RendezvousFailed"


def without_nproc(argv: list[str]) -> list[str]:
    """The command line each process runs: this one without ``--nproc N``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def nested(nproc: int) -> LaunchError:
    """``--nproc`` given to a process that torchrun started already (its variables are set).

    >>> print(nested(2))
    launch environment: --nproc 2 starts a data-parallel run, but this process already is one of a run (torchrun's variables are set); under torchrun leave out --nproc, or unset RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT to start one with --nproc
    """
    return everywhere(
        LaunchError(
            f"--nproc {nproc} starts a data-parallel run, but this process already is one of a run (torchrun's "
            "variables are set)",
            path=("--nproc",),
            hint=f"under torchrun leave out --nproc, or unset {', '.join(VARIABLES)} to start one with --nproc",
        )
    )


def precheck(spec: Any, nproc: int) -> None:
    """The refusals every process would make alike, made once before any starts."""
    from .hardware import Hardware
    from .options import TrainSpec

    if nproc < 1:
        raise TrainingError(f"--nproc {nproc}: a run needs at least one process", path=("--nproc",))
    tspec = spec.train or TrainSpec()
    hw = Hardware.pick(tspec.device, tspec.precision, local_rank=0)
    check_devices(hw.device, World(0, nproc, 0, nproc))
    if getattr(spec, "data", None) is not None:
        check_batch(spec.data.batch_size, nproc)


def launch(spec: Any, nproc: int, argv: list[str]) -> int:
    """Run ``netspec`` + ``argv`` (without ``--nproc``) in ``nproc`` processes; the exit code.

    Example::

        launch(spec, 2, ["run", "specs/fashion_cnn.yaml", "--nproc", "2"])  # as torchrun would
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from .context import located

    with located(spec):
        precheck(spec, nproc)
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "-m", "netspec", *without_nproc(argv)]
    )
    try:
        run(args)
    except ChildFailedError as err:
        rank, failure = root_cause(err.failures)
        print(
            f"netspec: rank {rank} failed first: {_describe(failure)}; the other processes were stopped",
            file=sys.stderr,
        )
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    except SignalException as err:  # Ctrl-C or SIGTERM: the processes got it and saved (see their lines)
        return 128 + int(err.sigval) if err.sigval != signal.SIGINT else EXIT_INTERRUPTED
    return 0


def root_cause(failures: dict[int, Any]) -> tuple[int, Any]:
    """The process that failed first: torchrun orders failures by a timestamp in whole seconds,
    so a process that stopped because another failed (its error file says ``PeerLost``) or was
    stopped by torchrun (SIGTERM) comes after one that failed on its own."""

    def secondary(rank: int) -> tuple[bool, bool, int, int]:
        failure = failures[rank]
        return (
            _message(failure).startswith((PEER_LOST, RENDEZVOUS_FAILED)),
            failure.exitcode == -signal.SIGTERM,
            failure.timestamp,
            rank,
        )

    rank = min(failures, key=secondary)
    return rank, failures[rank]


def _message(failure: Any) -> str:
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    return str(message)


def _describe(failure: Any) -> str:
    """``killed by SIGKILL (pid 123)`` or ``exit code 3: NonFiniteLoss: ...``."""
    if failure.exitcode < 0:
        return f"killed by {failure.signal_name()} (pid {failure.pid})"
    message = _message(failure)
    if failure.error_file_data and message:
        return f"exit code {failure.exitcode}: {message.strip().splitlines()[0]}"
    return f"exit code {failure.exitcode} (pid {failure.pid}; its own lines above say why)"


def record_failure(err: BaseException) -> None:
    """Write ``err`` to the error file torchrun gave this process (``TORCHELASTIC_ERROR_FILE``),
    which its report and :func:`launch` read; nothing outside torchrun."""
    if not os.environ.get("TORCHELASTIC_ERROR_FILE"):
        return
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    with contextlib.suppress(OSError):  # the report is a courtesy; the process's own line was printed already
        ErrorHandler().record_exception(err)


def report_failure(err: NetspecError, world: World) -> None:
    """Print a process's error as one line naming its rank (an error every process raises
    alike only on rank 0), and record it for torchrun."""
    record_failure(err)
    if world.rank == 0 or not getattr(err, "every_rank", False):
        print(f"rank {world.rank}: {err}", file=sys.stderr)
