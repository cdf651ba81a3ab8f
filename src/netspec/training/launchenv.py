"""The launch environment of a data-parallel process, checked before the process group starts.

torchrun gives every process ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``. Set by hand (a cluster script, a typo), a value that cannot
work would otherwise surface late: ``RANK=2`` with ``WORLD_SIZE=2`` waits out the whole
rendezvous timeout, ``RANK=abc`` is a ``ValueError`` traceback, a missing ``MASTER_ADDR`` is
torch's multi-line error. :func:`read_world` checks them all at once, before anything connects,
and names every wrong one in one line (:class:`LaunchError`, exit code 2).

>>> read_world({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
World(rank=1, world_size=2, local_rank=1, local_world_size=2)
>>> read_world({}) is None
True
>>> read_world({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
Traceback (most recent call last):
netspec.training.launchenv.LaunchError: launch environment: RANK=2 must be below WORLD_SIZE=2 (ranks are 0 to 1); torchrun sets these variables for every process it starts (so does `netspec run SPEC --nproc N`); for one process, unset RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import TrainingError

__all__ = ["LaunchError", "VARIABLES", "World", "read_world", "resolve_master"]

#: the variables netspec reads; a process with any of them set is one of a data-parallel run
VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: ranks and sizes are C ints in torch.distributed
_MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class World:
    """This process's place among the processes torchrun started (and where they meet)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str | None = field(default=None, repr=False, compare=False)
    master_port: int | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World | None:
        """The world torchrun describes in ``env`` (default ``os.environ``); None outside
        torchrun; :class:`LaunchError` for variables that cannot make a run.

        >>> World.from_env({"RANK": "0", "WORLD_SIZE": "1"})
        World(rank=0, world_size=1, local_rank=0, local_world_size=1)
        """
        return read_world(os.environ if env is None else env)


class LaunchError(TrainingError):
    """torchrun's variables in this process's environment cannot make a run, or its processes
    did not meet: one line without a spec location (the cause is the launch), exit code 2.

    >>> str(LaunchError("RANK='x' is not a whole number", hint="set it"))
    "launch environment: RANK='x' is not a whole number; set it"
    """

    def __str__(self) -> str:
        return " ".join(f"launch environment: {self.message}{f'; {self.hint}' if self.hint else ''}".split("\n"))


def read_world(env: Mapping[str, str]) -> World | None:
    """The checked world ``env`` describes; None when none of :data:`VARIABLES` is set.

    >>> read_world({"RANK": "abc", "WORLD_SIZE": "-1"})
    Traceback (most recent call last):
    netspec.training.launchenv.LaunchError: launch environment: WORLD_SIZE=-1 must be at least 1 (the number of processes); RANK='abc' is not a whole number; MASTER_ADDR is not set; MASTER_PORT is not set; torchrun sets these variables for every process it starts (so does `netspec run SPEC --nproc N`); for one process, unset RANK, WORLD_SIZE
    """
    present = [name for name in VARIABLES if name in env]
    if not present:
        return None
    problems: list[str] = []
    size = _integer(env, "WORLD_SIZE", 1, problems, "the number of processes")
    rank = _integer(env, "RANK", 0, problems)
    local_size = _integer(env, "LOCAL_WORLD_SIZE", 1, problems, "the processes on this machine")
    local_rank = _integer(env, "LOCAL_RANK", 0, problems)
    problems += _order(rank, size, local_rank, local_size)
    addr, port = _master(env, size, problems)
    if problems:
        raise LaunchError(
            "; ".join(problems),
            hint=(
                "torchrun sets these variables for every process it starts (so does `netspec run SPEC --nproc N`); "
                f"for one process, unset {', '.join(present)}"
            ),
        )
    assert rank is not None and size is not None  # both required above
    local_rank = rank if local_rank is None else local_rank
    return World(rank, size, local_rank, size if local_size is None else local_size, addr, port)


def _integer(env: Mapping[str, str], name: str, least: int, problems: list[str], what: str = "") -> int | None:
    """``env[name]`` as a whole number of at least ``least``; RANK and WORLD_SIZE must be set."""
    text = env.get(name)
    if text is None:
        if name in ("RANK", "WORLD_SIZE"):
            problems.append(f"{name} is not set")
        return None
    if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):  # not int(): it takes "1_0" and other digits
        problems.append(f"{name}={text!r} is not a whole number")
        return None
    value = int(text)
    if value < least:
        problems.append(f"{name}={value} must be at least {least}{f' ({what})' if what else ''}")
    elif value > _MAX_INT:
        problems.append(f"{name}={value} is too large (at most {_MAX_INT})")
    else:
        return value
    return None


def _order(rank: int | None, size: int | None, local_rank: int | None, local_size: int | None) -> list[str]:
    """Ranks below their sizes, and a machine's share within the whole.

    >>> _order(3, 2, 3, 4)
    ['RANK=3 must be below WORLD_SIZE=2 (ranks are 0 to 1)', 'LOCAL_WORLD_SIZE=4 must not exceed WORLD_SIZE=2']
    """
    out = []
    if rank is not None and size is not None and rank >= size:
        out.append(f"RANK={rank} must be below WORLD_SIZE={size} (ranks are 0 to {size - 1})")
    if local_size is not None and size is not None and local_size > size:
        out.append(f"LOCAL_WORLD_SIZE={local_size} must not exceed WORLD_SIZE={size}")
    bound = local_size if local_size is not None else size
    if local_rank is not None and bound is not None and local_rank >= bound:
        name = "LOCAL_WORLD_SIZE" if local_size is not None else "WORLD_SIZE"
        out.append(f"LOCAL_RANK={local_rank} must be below {name}={bound}")
    return out


def _master(env: Mapping[str, str], size: int | None, problems: list[str]) -> tuple[str | None, int | None]:
    """MASTER_ADDR and MASTER_PORT: both needed by several processes to meet; one process may
    leave out both (it meets nobody)."""
    addr, port_text = env.get("MASTER_ADDR"), env.get("MASTER_PORT")
    if (size is None or size > 1) or (addr is None) != (port_text is None):
        problems += [
            f"{name} is not set" for name, value in (("MASTER_ADDR", addr), ("MASTER_PORT", port_text)) if value is None
        ]
    if addr is not None and not addr.strip():
        problems.append("MASTER_ADDR is empty (the host name or IP address of rank 0's machine)")
    port = None
    if port_text is not None:
        if re.fullmatch(r"\s*[0-9]+\s*", port_text) and 1 <= int(port_text) <= 65535:
            port = int(port_text)
        else:
            problems.append(f"MASTER_PORT={port_text!r} is not a port (a whole number from 1 to 65535)")
    return (addr.strip() if addr else None), port


def resolve_master(world: World) -> None:
    """Refuse a MASTER_ADDR that names no host, before anything waits to connect to it.

    >>> resolve_master(World(0, 2, 0, 2, "localhost", 29500))
    >>> resolve_master(World(0, 2, 0, 2, "no-such-host.invalid", 29500))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    netspec.training.launchenv.LaunchError: launch environment: MASTER_ADDR='no-such-host.invalid' cannot be resolved (...); set it to the host name or IP address of the machine that runs rank 0
    """
    if world.master_addr is None:
        return
    try:
        socket.getaddrinfo(world.master_addr, world.master_port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise LaunchError(
            f"MASTER_ADDR={world.master_addr!r} cannot be resolved ({reason})",
            hint="set it to the host name or IP address of the machine that runs rank 0",
        ) from None
