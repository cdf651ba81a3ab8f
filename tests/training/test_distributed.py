"""Data-parallel training (torchrun, DDP) on the CPU: 2 gloo processes against one process.

Every test that starts processes runs them in a session of their own and, whatever happens,
kills every process it started (torchrun's workers too: they start sessions of their own, so
they are found by a marker in their environment) and waits for each with a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import netspec
from netspec.errors import CheckpointError, TrainingError
from netspec.training.distributed import World, check_batch, check_devices
from netspec.training.launch import root_cause, without_nproc
from netspec.training.loop import train

RUN_TIMEOUT = 240  # seconds a 2-process run may take on a loaded 2-core machine before the test fails
MARK = "NETSPEC_TEST_PROCESS"

SPEC = """\
netspec: 1
name: tiny_ddp
imports: [killswitch]
inputs:
  x: [2]
nodes:
  - hidden: {Linear: {out_features: 16}}
  - act: {Tanh: {}}
  - switch: {KillSwitch: {}}
  - out: {Linear: {out_features: 2}}
outputs: {logits: out}
data:
  train: {source: gaussian_clusters, n_per_class: 64, seed: 1}
  val: {fraction: 0.25}
  batch_size: 16
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.05, momentum: 0.9}}
train:
  epochs: 2
  seed: 0
  device: cpu
  metrics: [accuracy]
  progress: line
  distributed: {timeout: 30}
"""

# An identity layer that kills (or fails) its process at a chosen training forward of a chosen
# rank, from NETSPEC_TEST_KILL=<rank>:<forward>:<kill|raise|hang|int>; without it, it does nothing.
# `int` is Ctrl-C at the launcher (the workers' parent), which hands it to every worker.
KILLSWITCH = """\
import os, signal, time
import torch.nn as nn
import netspec

@netspec.register_module
class KillSwitch(nn.Module):
    calls = 0

    def forward(self, x):
        if self.training and x.device.type != "meta":
            KillSwitch.calls += 1
            rank, at, how = (os.environ.get("NETSPEC_TEST_KILL") or "-1:0:kill").split(":")
            if os.environ.get("RANK") == rank and KillSwitch.calls == int(at):
                if how == "raise":
                    raise RuntimeError("KillSwitch raised on purpose")
                if how == "hang":
                    time.sleep(3600)
                if how == "int":
                    os.kill(os.getppid(), signal.SIGINT)
                    return x
                os.kill(os.getpid(), signal.SIGKILL)
        return x
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "killswitch.py").write_text(KILLSWITCH)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def load(workdir: Path, *overrides: str) -> Any:
    return netspec.load_spec(workdir / "spec.yaml", overrides=list(overrides), allow_imports=["killswitch"])


def single(workdir: Path, out: str | None, *overrides: str, resume: Path | None = None) -> Path:
    """A one-process run in this process (``out`` None: a resumed run goes on in its directory)."""
    with open(os.devnull, "w") as quiet:
        return train(load(workdir, *overrides), out=workdir / out if out else None, resume=resume, stream=quiet).run_dir


# ------------------------------------------------------------------------------ processes


def _marked_pids(marker: str) -> list[int]:
    """Every process whose environment holds ``MARK=marker`` (the launcher and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if f"{MARK}={marker}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def started(
    argv: list[str], workdir: Path, env: dict[str, str] | None = None, launcher: tuple[str, ...] = ("-m", "netspec")
) -> Iterator[subprocess.Popen]:
    """``netspec`` + argv in a new session; on the way out every process it started is killed."""
    marker = uuid.uuid4().hex
    full_env = {
        **os.environ,
        MARK: marker,
        "PYTHONPATH": os.pathsep.join([str(workdir), *filter(None, [os.environ.get("PYTHONPATH")]), *sys.path]),
    }
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, *launcher, *argv],
        cwd=workdir,
        env=full_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        for pid in _marked_pids(marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=30)
        assert not _marked_pids(marker), "a process of the test outlived it"


def ddp(
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    expect: int = 0,
    torchrun: bool = False,
    nproc: int = 2,
) -> tuple[str, float]:
    """``netspec run spec.yaml --nproc 2 ...`` (or ``torchrun --nproc-per-node 2 -m netspec run
    spec.yaml ...``) to its end; (its output, its seconds)."""
    argv = ["run", "spec.yaml", "--allow-import", "killswitch", *args]
    launcher: tuple[str, ...] = (
        ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), "-m", "netspec")
        if torchrun
        else ("-m", "netspec")
    )
    if not torchrun:
        argv[2:2] = ["--nproc", str(nproc)]
    t0 = time.monotonic()
    with started(argv, workdir, env, launcher) as proc:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == expect, out
    return out, time.monotonic() - t0


def run_dir_of(out: str, workdir: Path) -> Path:
    line = next(line for line in out.splitlines() if line.startswith("run directory: "))
    return workdir / line.split()[2]  # (relative to the runs' working directory, unless absolute)


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(a: Path, b: Path) -> None:
    """Same final weights (tight) and the same logged epoch values."""
    wa = torch.load(a / "last.pt", weights_only=True)["model"]
    wb = torch.load(b / "last.pt", weights_only=True)["model"]
    assert list(wa) == list(wb)  # no "module." prefix
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)
    ra, rb = records(a), records(b)
    assert [r["epoch"] for r in ra] == [r["epoch"] for r in rb]
    for x, y in zip(ra, rb):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-6), (key, x["epoch"])


# ------------------------------------------------------------------------------ in one process

LOSS_GRAPH = """\
  - aux: {Linear: {out_features: 2}, from: act, training_only: true}
outputs: {logits: out, aux: aux}
loss:
  nodes:
    - h2: {square: {}, from: hidden}
  terms:
    main: {CrossEntropyLoss: {}, from: logits}
    aux: {CrossEntropyLoss: {}, from: aux, weight: 0.3}
    act: {from: h2, reduction: mean, weight: 0.01}
"""


def test_a_loss_graph_with_a_training_only_head_under_ddp_matches_one_process(workdir: Path) -> None:
    """The loss view (a model node the loss reads), a head computed only in training and its 0.3
    term, under DDP on 2 processes: the weights and every logged term equal one process's."""
    spec = SPEC.replace("outputs: {logits: out}\n", LOSS_GRAPH).replace("loss: CrossEntropyLoss\n", "")
    (workdir / "spec.yaml").write_text(spec.replace("metrics: [accuracy]", "metrics: [{accuracy: {}, output: logits}]"))
    one = single(workdir, "one")
    out, _ = ddp(workdir, "--out", "two")
    two = run_dir_of(out, workdir)
    wa, wb = (torch.load(d / "last.pt", weights_only=True)["model"] for d in (one, two))
    assert list(wa) == list(wb) and "aux.weight" in wa
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)
    for x, y in zip(records(one), records(two), strict=True):
        keys = [k for k in x if k.startswith(("train_loss", "val_loss"))]
        assert {"train_loss_aux", "train_loss_act", "val_loss_main"} <= set(keys) and "val_loss_aux" not in keys
        for key in keys:
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-6), (key, x["epoch"])


def test_loaders_deal_out_the_single_process_batches(workdir: Path) -> None:
    """Batch k of rank 0 and rank 1 together are batch k of one process, epoch after epoch."""
    from netspec.data import build_loaders

    def epochs(rank: int | None, in_memory: bool) -> list[list[list[float]]]:
        spec = load(workdir, f"data.loader.in_memory={str(in_memory).lower()}")
        loader = build_loaders(spec.data, base_dir=workdir, input_names=["x"], seed=0).train
        if rank is not None:
            loader.shard(rank, 2)
        out = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            out.append([inputs["x"][:, 0].tolist() for inputs, _ in loader])
        return out

    for in_memory in (True, False):
        one, r0, r1 = epochs(None, in_memory), epochs(0, in_memory), epochs(1, in_memory)
        assert len(one[0]) == len(r0[0]) == len(r1[0]) == 6
        for e in range(2):
            assert [sorted(a + b) for a, b in zip(r0[e], r1[e])] == [sorted(b) for b in one[e]]


def test_refusals_before_training() -> None:
    with pytest.raises(TrainingError, match="10 is the global batch and does not divide among 4 processes"):
        check_batch(10, 4)
    if torch.cuda.device_count() < 64:
        with pytest.raises(TrainingError, match="64 processes on this machine but"):
            check_devices(torch.device("cuda", 0), World(0, 64, 0, 64))
    assert without_nproc(["run", "s.yaml", "--nproc=2", "--nproc", "3", "--epochs", "1"]) == [
        "run",
        "s.yaml",
        "--epochs",
        "1",
    ]


def test_launcher_names_the_process_that_failed_first() -> None:
    """torchrun's failure timestamps are whole seconds: the cause is the process that did not
    stop because of another (PeerLost) and was not stopped by torchrun (SIGTERM)."""

    class Failure:
        def __init__(self, exitcode: int, message: Any) -> None:
            self.exitcode, self.message, self.timestamp = exitcode, message, 100

    failures = {0: Failure(3, {"message": "PeerLost: stopped"}), 1: Failure(-9, "Signal 9"), 2: Failure(-15, "")}
    assert root_cause(failures)[0] == 1


def test_mid_epoch_checkpoint_needs_as_many_processes(workdir: Path) -> None:
    from types import SimpleNamespace

    from netspec.training.checkpoint import _this_rank

    run = SimpleNamespace(hw=SimpleNamespace(world_size=1, rank=0))
    with pytest.raises(CheckpointError, match="saved mid-epoch by 2 process"):
        _this_rank(run, {"batch": 3, "world_size": 2, "path": "last.pt"})
    assert _this_rank(run, {"batch": 0, "world_size": 2, "path": "last.pt"})["batch"] == 0


def test_a_refused_combination_starts_no_process(workdir: Path) -> None:
    with started(["run", "spec.yaml", "--nproc", "3", "--allow-import", "killswitch"], workdir) as proc:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 2
    assert out.strip().splitlines() == [
        (
            "spec.yaml:15:3: data.batch_size: 16 is the global batch and does not divide among 3 processes; make it a "
            "multiple of 3 (each process takes batch_size / 3)"
        )
    ]


# ------------------------------------------------------------------------------ 2 processes


def test_two_processes_match_one_and_checkpoints_cross_over(workdir: Path) -> None:
    """2 ranks x 8 against 1 process x 16, two batches a step (no_sync for the first): the same
    weights and logged values. The DDP checkpoint resumes in one process, and a one-process
    checkpoint resumes under DDP (with DDP's options: they change nothing of the math), each
    matching the run that was never stopped."""
    (workdir / "spec.yaml").write_text(SPEC.replace("  epochs: 2\n", "  epochs: 2\n  grad_accumulation: 2\n"))
    one = single(workdir, "one")
    three = single(workdir, "three", "train.epochs=3")
    out, _ = ddp(workdir, "--out", "two")
    assert "data.batch_size 16 is the global batch, 8 per process" in out
    two = run_dir_of(out, workdir)
    assert_same_run(two, one)
    assert sorted(p.name for p in (workdir / "two").iterdir()) == [two.name]  # rank 0 alone made a directory
    # DDP -> one process, one more epoch
    single(workdir, None, "train.epochs=3", resume=two / "last.pt")
    assert_same_run(two, three)
    # one process -> DDP, one more epoch
    ddp(
        workdir,
        "--epochs",
        "3",
        "--resume",
        str(one / "last.pt"),
        "--set",
        "train.distributed.static_graph=true",
        "--set",
        "train.distributed.gradient_as_bucket_view=true",
        torchrun=True,
    )  # torchrun itself, by hand
    assert_same_run(one, three)


@pytest.mark.slow
def test_a_killed_rank_stops_the_other_and_resume_matches(workdir: Path) -> None:
    """Rank 1 SIGKILLed in epoch 3: rank 0 stops at once with one line, the launcher names rank 1;
    resumed from last.pt (epoch 2), the run ends where an uninterrupted one does."""
    out, seconds = ddp(
        workdir, "--epochs", "4", "--out", "killed", env={"NETSPEC_TEST_KILL": "1:15:kill"}, expect=128 + signal.SIGKILL
    )
    assert "netspec: rank 1 failed first: killed by SIGKILL" in out
    assert "rank 0: stopped: another process of the run failed or is gone" in out, out
    killed = run_dir_of(out, workdir)
    assert [r["epoch"] for r in records(killed)] == [1, 2]
    assert "Traceback" not in out
    assert seconds < 120  # the whole run with its start: a hang would wait for the 30 s timeout and more
    ddp(workdir, "--epochs", "4", "--resume", str(killed / "last.pt"))
    out, _ = ddp(workdir, "--epochs", "4", "--out", "whole")
    assert_same_run(killed, run_dir_of(out, workdir))


@pytest.mark.slow
def test_a_rank_that_raises_stops_the_run(workdir: Path) -> None:
    out, _ = ddp(workdir, "--out", "raised", env={"NETSPEC_TEST_KILL": "1:3:raise"}, expect=1)
    assert "netspec: rank 1 failed first: exit code 1: RuntimeError: KillSwitch raised on purpose" in out
    assert "rank 0: stopped: another process of the run failed or is gone" in out, out


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_under_ddp(workdir: Path, precision: str) -> None:
    """autocast and (fp16) the GradScaler in each process: close to one process (low precision
    rounds each process's share on its own)."""
    one = single(workdir, "one", f"train.precision={precision}")
    out, _ = ddp(workdir, "--out", "two", "--set", f"train.precision={precision}")
    a, b = (torch.load(d / "last.pt", weights_only=True)["model"] for d in (one, run_dir_of(out, workdir)))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=2e-2, atol=2e-3)


@pytest.mark.slow
def test_ctrl_c_saves_mid_epoch_and_resume_is_exact(workdir: Path) -> None:
    """Ctrl-C at the launcher: every process stops at the same step, last.pt holds each rank's
    RNG and meter states, and the resumed run ends exactly where an uninterrupted one does."""
    out, _ = ddp(workdir, "--epochs", "3", "--out", "stopped", env={"NETSPEC_TEST_KILL": "0:9:int"}, expect=130)
    stopped = run_dir_of(out, workdir)
    assert torch.load(stopped / "last.pt", weights_only=True)["batch"] > 0
    ddp(workdir, "--epochs", "3", "--resume", str(stopped / "last.pt"))
    out, _ = ddp(workdir, "--epochs", "3", "--out", "whole")
    assert_same_run(stopped, run_dir_of(out, workdir))


@pytest.mark.slow
def test_a_hung_rank_stops_the_other_after_the_timeout(workdir: Path) -> None:
    """Rank 1 stops answering: rank 0 gives up after train.distributed.timeout with one line,
    torchrun then stops rank 1 (SIGKILL after its 30 s grace: it sleeps through SIGTERM)."""
    out, seconds = ddp(
        workdir,
        "--out",
        "hung",
        "--set",
        "train.distributed.timeout=5",
        env={"NETSPEC_TEST_KILL": "1:3:hang"},
        expect=128 + signal.SIGKILL,
    )
    assert "rank 0: stopped: another process of the run failed or is gone (Timed out waiting 5000ms" in out, out
    assert "netspec: rank 1 failed first: killed by SIGKILL" in out
    assert seconds < 150


@contextlib.contextmanager
def cpu_burner() -> Iterator[None]:
    """One process spinning for the block: a busy machine, where the exit race below was seen
    every time (a thread of gloo is scheduled late)."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        burner.kill()
        burner.wait(timeout=30)


@pytest.mark.slow
def test_finished_runs_exit_cleanly_under_load(workdir: Path) -> None:
    """A finished 2-process run exits 0 in every process, 20 times in a row on a busy machine.
    Before `distributed.leave`, a gloo thread still releasing the last collective's tensors as
    the interpreter finalised aborted the process ("terminate called without an active
    exception", SIGABRT): torchrun then reported the finished run as failed, 1 run in 6."""
    (workdir / "spec.yaml").write_text(SPEC.replace("  epochs: 2\n", "  epochs: 1\n"))
    with cpu_burner():
        for trial in range(20):
            out, _ = ddp(workdir, "--out", f"run{trial}")
            assert "terminate called" not in out and "SIGABRT" not in out, (trial, out)
            assert "done: 1 epochs" in out, (trial, out)


@pytest.mark.gpu
def test_nccl_run_on_cuda_matches_one_process(workdir: Path) -> None:
    """On CUDA the processes (one per GPU, at most 2; a one-GPU machine gives a 1-rank run) talk
    over nccl, and the run ends as a one-process CUDA run does."""
    n = min(2, torch.cuda.device_count())
    one = single(workdir, "one", "train.device=cuda")
    out, _ = ddp(workdir, "--out", "two", "--set", "train.device=cuda", nproc=n)
    assert f"{n} process" in out and "device cuda" in out, out
    assert_same_run(one, run_dir_of(out, workdir))
