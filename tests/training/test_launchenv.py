"""torchrun's variables checked before the process group starts (netspec.training.launchenv),
and a rendezvous that fails, as one line.

Each class of wrong variable is a case of :func:`read_world`; two subprocess runs check the
command's side: a wrong variable is one line and exit 2 within seconds, and a peer that never
comes is one line once ``train.distributed.timeout`` ends (no torch traceback, no C++ log).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netspec.training.launch import nested, root_cause
from netspec.training.launchenv import VARIABLES, LaunchError, World, read_world, resolve_master

GOOD = {
    "RANK": "1",
    "WORLD_SIZE": "2",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}


def env(**changes: str | None) -> dict[str, str]:
    """GOOD with ``changes`` (None: unset)."""
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not None}


def test_a_good_environment_and_none() -> None:
    assert read_world(GOOD) == World(1, 2, 1, 2)
    assert read_world(GOOD).master_addr == "127.0.0.1" and read_world(GOOD).master_port == 29500
    assert read_world({"PATH": "/bin"}) is None
    # LOCAL_* default to the whole world (one machine); one process needs no address
    assert read_world(env(LOCAL_RANK=None, LOCAL_WORLD_SIZE=None)) == World(1, 2, 1, 2)
    assert read_world({"RANK": "0", "WORLD_SIZE": "1"}) == World(0, 1, 0, 1)


@pytest.mark.parametrize(
    "changes, fragments",
    [
        # malformed numbers
        ({"RANK": "abc"}, ["RANK='abc' is not a whole number"]),
        ({"RANK": "1.0"}, ["RANK='1.0' is not a whole number"]),
        ({"RANK": "1_0"}, ["RANK='1_0' is not a whole number"]),
        ({"WORLD_SIZE": ""}, ["WORLD_SIZE='' is not a whole number"]),
        ({"LOCAL_RANK": "x"}, ["LOCAL_RANK='x' is not a whole number"]),
        # out of range
        ({"WORLD_SIZE": "-1"}, ["WORLD_SIZE=-1 must be at least 1"]),
        ({"WORLD_SIZE": "0"}, ["WORLD_SIZE=0 must be at least 1"]),
        ({"WORLD_SIZE": str(2**40)}, [f"WORLD_SIZE={2**40} is too large"]),
        ({"RANK": "-1"}, ["RANK=-1 must be at least 0"]),
        ({"RANK": "2"}, ["RANK=2 must be below WORLD_SIZE=2 (ranks are 0 to 1)"]),
        ({"LOCAL_RANK": "-1"}, ["LOCAL_RANK=-1 must be at least 0"]),
        ({"LOCAL_RANK": "2"}, ["LOCAL_RANK=2 must be below LOCAL_WORLD_SIZE=2"]),
        ({"LOCAL_WORLD_SIZE": "0"}, ["LOCAL_WORLD_SIZE=0 must be at least 1"]),
        ({"LOCAL_WORLD_SIZE": "3", "LOCAL_RANK": "0"}, ["LOCAL_WORLD_SIZE=3 must not exceed WORLD_SIZE=2"]),
        ({"LOCAL_WORLD_SIZE": None, "LOCAL_RANK": "5"}, ["LOCAL_RANK=5 must be below WORLD_SIZE=2"]),
        # the rendezvous address
        ({"MASTER_ADDR": None}, ["MASTER_ADDR is not set"]),
        ({"MASTER_ADDR": " "}, ["MASTER_ADDR is empty"]),
        ({"MASTER_PORT": None}, ["MASTER_PORT is not set"]),
        ({"MASTER_PORT": "abc"}, ["MASTER_PORT='abc' is not a port (a whole number from 1 to 65535)"]),
        ({"MASTER_PORT": "0"}, ["MASTER_PORT='0' is not a port"]),
        ({"MASTER_PORT": "65536"}, ["MASTER_PORT='65536' is not a port"]),
        ({"MASTER_PORT": "-5"}, ["MASTER_PORT='-5' is not a port"]),
        # all or none
        ({"RANK": None}, ["RANK is not set"]),
        ({"WORLD_SIZE": None}, ["WORLD_SIZE is not set"]),
        # several at once: each named, in one line
        (
            {"RANK": "abc", "WORLD_SIZE": "-1", "MASTER_PORT": "99999"},
            [
                "WORLD_SIZE=-1 must be at least 1",
                "RANK='abc' is not a whole number",
                "MASTER_PORT='99999' is not a port",
            ],
        ),
    ],
)
def test_each_wrong_variable_is_named_with_its_value_and_the_fix(changes: dict, fragments: list[str]) -> None:
    with pytest.raises(LaunchError) as info:
        read_world(env(**changes))
    line = str(info.value)
    assert "\n" not in line and line.startswith("launch environment: ")
    for fragment in fragments:
        assert fragment in line
    assert "torchrun sets these variables" in line and "for one process, unset" in line


@pytest.mark.parametrize(
    "partial",
    [
        {"RANK": "1"},
        {"LOCAL_RANK": "0"},
        {"MASTER_ADDR": "127.0.0.1"},
        {"WORLD_SIZE": "1", "RANK": "0", "MASTER_PORT": "29500"},
    ],
)
def test_some_variables_without_the_others_are_refused(partial: dict[str, str]) -> None:
    """All or none: a lone variable is a launch gone wrong, not a one-process run (a lone process
    may leave out both MASTER_ADDR and MASTER_PORT, not one of them)."""
    with pytest.raises(LaunchError, match="is not set") as info:
        read_world(partial)
    assert f"unset {', '.join(name for name in VARIABLES if name in partial)}" in str(info.value)


def test_master_addr_must_resolve() -> None:
    resolve_master(World(0, 2, 0, 2, "127.0.0.1", 29500))
    resolve_master(World(0, 1, 0, 1))  # no address: nothing to resolve
    with pytest.raises(LaunchError, match=r"MASTER_ADDR='no-such-host\.invalid' cannot be resolved \(.+\); set it"):
        resolve_master(World(0, 2, 0, 2, "no-such-host.invalid", 29500))


def test_nproc_inside_torchrun_and_secondary_rendezvous_failures() -> None:
    assert "--nproc 2 starts a data-parallel run, but this process already is one" in str(nested(2))

    class Failure:
        def __init__(self, exitcode: int, message: str) -> None:
            self.exitcode, self.message, self.timestamp = exitcode, message, 100

    failures = {0: Failure(2, "RendezvousFailed: the 2 processes did not meet"), 1: Failure(1, "RuntimeError: x")}
    assert root_cause(failures)[0] == 1


# ------------------------------------------------------------------------------ the command

SPEC = """\
name: tiny
inputs: {x: [2]}
nodes:
  - Linear: {out_features: 2}
data: {train: {source: gaussian_clusters, n_per_class: 8}, batch_size: 4}
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.1}}
train: {epochs: 1, device: cpu, distributed: {timeout: 2}}
"""


def netspec_run(tmp_path: Path, variables: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    (tmp_path / "spec.yaml").write_text(SPEC)
    environ = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    environ.update(variables, PYTHONPATH=os.pathsep.join(sys.path))
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "netspec", "run", "spec.yaml", "--out", "runs"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, time.monotonic() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_wrong_variable_is_one_line_before_anything_connects(tmp_path: Path) -> None:
    """RANK >= WORLD_SIZE used to wait out the whole rendezvous timeout, then a traceback."""
    done, seconds = netspec_run(tmp_path, env(RANK="2", MASTER_PORT=str(free_port())))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()] and "RANK=2 must be below WORLD_SIZE=2" in done.stderr
    assert done.stdout == "" and not (tmp_path / "runs").exists()
    assert seconds < 60  # the spec's timeout is 2 s; a rendezvous would also fail, but later and as a traceback


@pytest.mark.parametrize("rank, reason", [("0", "1/2 clients joined"), ("1", "timed out")])
def test_a_peer_that_never_comes_is_one_line_after_the_timeout(tmp_path: Path, rank: str, reason: str) -> None:
    """Rank 0 waits for the others at its store; rank 1 retries connecting to a store nobody
    opened (c10d logs each retry with C++ stack frames: held back)."""
    done, seconds = netspec_run(tmp_path, env(RANK=rank, LOCAL_RANK=rank, MASTER_PORT=str(free_port())))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no traceback, no c10d log lines
    assert lines[0].startswith(f"rank {rank}: launch environment: the 2 processes did not meet at 127.0.0.1:")
    assert "within train.distributed.timeout (2 s)" in lines[0] and reason in lines[0]
    assert not (tmp_path / "runs").exists()
    assert seconds < 60
