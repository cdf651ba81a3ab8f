"""Fault injection: what survives SIGKILL, a full disk, an unwritable directory, NaN/inf, Ctrl-C.

Training processes here are real processes killed by real signals. Starting ``python -m netspec``
costs 3-8 s of imports (torch, torchvision, matplotlib), so most tests fork them from a *zygote*:
one helper process that imports everything once and then ``fork()``s a child per command; each
child runs ``netspec.cli.main(argv)`` exactly as the ``netspec`` command would, with its stdout and
stderr in a log file. The zygote never computes anything (so forking is safe with torch's thread
pools) and only reaps a child when asked, so a pid cannot be reused before the test has killed it.
The slow variants also kill freshly exec'd ``python -m netspec run`` processes.

The reference for "nothing was lost" is an uninterrupted run of the same spec in a child of the
same zygote: on CPU the killed-and-resumed run must end with a bit-identical last.pt (model,
optimizer, scheduler, counters, meters, RNG states), the same best.pt and the same metrics.jsonl.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import math
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml

import netspec.training.checkpoint as checkpoint_module
import netspec.training.loop as runner
import netspec.training.rundir as rundir
from netspec.cli import main
from netspec.errors import NonFiniteLoss
from netspec.training.checkpoint import CHECKPOINT_FORMAT

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

# --------------------------------------------------------------------------- the zygote

ZYGOTE = r"""
import json, os, signal, sys, time, traceback
signal.signal(signal.SIGINT, signal.SIG_IGN)   # a Ctrl-C at the terminal is for pytest, not for us
import torch
import netspec.cli, netspec.training.loop, netspec.data.build, netspec.compiler.spec, netspec.api
import tqdm
import torchmetrics.classification                         # metrics: import once, not per child
from matplotlib.figure import Figure                       # curves.png: import once, not per child
from matplotlib.backends.backend_agg import FigureCanvasAgg

out = sys.stdout
children = set()

def reply(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()

def arm(fault):
    # SIGKILL ourselves just before / just after the n-th call of one write primitive.
    owner, attr = {"save": (torch, "save"), "fsync": (os, "fsync"), "replace": (os, "replace"),
                   "link": (os, "link")}[fault["op"]]
    real, calls = getattr(owner, attr), [0]
    def wrapper(*args, **kwargs):
        calls[0] += 1
        hit = calls[0] == fault["n"]
        if hit and fault["when"] == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if hit and fault["when"] == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, attr, wrapper)

def child(cmd):
    code = 70
    try:
        fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        torch.set_num_threads(1)   # the same in every child: identical float reductions
        os.chdir(cmd["cwd"])
        if cmd.get("fault"):
            arm(cmd["fault"])
        code = netspec.cli.main(cmd["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)

reply({"ready": os.getpid()})
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "run":
        pid = os.fork()
        if pid == 0:
            child(cmd)
        children.add(pid)
        reply({"pid": pid})
    elif cmd["op"] == "wait":
        pid, deadline, timed_out = cmd["pid"], time.monotonic() + cmd["timeout"], False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.002)
        children.discard(pid)
        reply({"code": os.waitstatus_to_exitcode(status), "timed_out": timed_out})
for pid in children:   # stdin closed: the test is over
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
"""


class Zygote:
    """Forks ``netspec`` CLI processes from one pre-imported Python; see the module docstring."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the zygote process
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        self._read(timeout=300)

    def _read(self, timeout: float) -> dict[str, Any]:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.stderr.seek(0)
            raise RuntimeError(
                f"the zygote did not answer within {timeout} s (exit code {self.proc.poll()}):\n"
                + self.stderr.read()[-3000:]
            )
        return json.loads(line)

    def _call(self, cmd: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def spawn(self, argv: list[str], log: Path, cwd: Path, fault: dict[str, Any] | None = None) -> int:
        """Start ``netspec <argv>`` in a forked child; returns its pid at once."""
        return self._call(
            {"op": "run", "argv": [str(a) for a in argv], "log": str(log), "cwd": str(cwd), "fault": fault}
        )["pid"]

    def wait(self, pid: int, timeout: float = 120) -> int:
        """The child's exit code (negative: killed by that signal); fails if it outlives ``timeout``."""
        answer = self._call({"op": "wait", "pid": pid, "timeout": timeout}, timeout=timeout + 30)
        assert not answer["timed_out"], f"child {pid} still running after {timeout} s"
        return answer["code"]

    def run(self, argv: list[str], log: Path, cwd: Path, timeout: float = 120, **kw: Any) -> int:
        return self.wait(self.spawn(argv, log, cwd, **kw), timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


# --------------------------------------------------------------------------- specs and checks


def spec_dict(epochs: int = 30, **train: Any) -> dict[str, Any]:
    """A tiny classifier on generated data: 4 batches per epoch, dropout, shuffling, a per-step
    scheduler, AdamW and a checkpoint after every epoch, so that every piece of resumable state
    matters and a kill can land anywhere."""
    return {
        "netspec": 1,
        "name": "faults",
        "inputs": {"x": [8]},
        "nodes": [{"Linear": {"out_features": 16}}, {"ReLU": {}}, {"Dropout": 0.2}, {"Linear": {"out_features": 2}}],
        "data": {
            "train": {"source": "gaussian_clusters", "n_per_class": 40, "dim": 8, "std": 2.5, "label_dtype": "int64"},
            "val": {"fraction": 0.25},
            "batch_size": 16,
        },
        "loss": "CrossEntropyLoss",
        "optimizer": {"AdamW": {"lr": 0.01}},
        "scheduler": {"StepLR": {"step_size": 7, "gamma": 0.8}, "interval": "step"},
        "train": {
            "epochs": epochs,
            "seed": 5,
            "device": "cpu",
            "metrics": ["accuracy"],
            "checkpoint": {"every": 1},
            "progress": "line",
            "log_every": 1000,
            **train,
        },
    }


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def only_run_dir(out: Path) -> Path | None:
    dirs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    assert len(dirs) <= 1, dirs
    return dirs[0] if dirs else None


def load_ckpt(path: Path) -> dict[str, Any]:
    """torch.load(weights_only=True): it must never find a partial or foreign file."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT, path
    for key, value in ckpt["model"].items():
        assert torch.isfinite(value).all(), f"{path}: {key} is not finite"
    return ckpt


def check_run_dir(run_dir: Path, spec_text: str | None = None) -> dict[str, Any] | None:
    """The invariants after any fault: every *.pt loads, temp files cannot pass for checkpoints,
    metrics.jsonl has no partial line, spec.yaml is whole. Returns last.pt (None if none yet)."""
    for p in run_dir.iterdir():
        if p.name.endswith(".pt"):
            load_ckpt(p)
        elif p.name.endswith(".tmp"):
            assert p.name.startswith("."), p  # hidden, and never *.pt: no glob or resume picks it up
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        text = metrics.read_text()
        assert not text or text.endswith("\n"), "metrics.jsonl ends in a partial line"
        for line in text.splitlines():
            json.loads(line)
    spec = run_dir / "spec.yaml"
    if spec.exists() and spec_text is not None:
        assert spec.read_text() == spec_text, "spec.yaml was left partly written"
    last = run_dir / "last.pt"
    return load_ckpt(last) if last.exists() else None


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    drop = ("t", "time_s", "samples_per_s")
    return [
        {k: v for k, v in json.loads(line).items() if k not in drop}
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of checkpoint contents: tensors bit for bit, floats equal (or both NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
        ), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_run(run_dir: Path, ref_dir: Path) -> None:
    """The resumed run ended exactly where the uninterrupted one did."""
    assert_same(load_ckpt(run_dir / "last.pt"), load_ckpt(ref_dir / "last.pt"), "last.pt")
    assert_same(load_ckpt(run_dir / "best.pt"), load_ckpt(ref_dir / "best.pt"), "best.pt")
    assert metrics(run_dir) == metrics(ref_dir)
    leftovers = [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".write")]
    assert not leftovers, f"temporary files left after the final resume: {leftovers}"


class Forked:
    """Starts `netspec` as a child of the zygote (cheap); `handle` is the pid."""

    def __init__(self, z: Zygote) -> None:
        self.z = z

    def start(self, argv: list[Any], log: Path, cwd: Path) -> int:
        return self.z.spawn(argv, log, cwd)

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)  # a zombie until the zygote reaps it: the pid cannot be reused

    def wait(self, pid: int) -> int:
        return self.z.wait(pid, timeout=300)


class Exec:
    """Starts `python -m netspec` anew each time (full fidelity, seconds of imports)."""

    env: ClassVar[dict[str, str]] = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}

    def start(self, argv: list[Any], log: Path, cwd: Path) -> subprocess.Popen:
        with log.open("w") as f:
            return subprocess.Popen(
                [sys.executable, "-m", "netspec", *map(str, argv)],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=cwd,
            )

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)

    def wait(self, proc: subprocess.Popen) -> int:
        return proc.wait(timeout=600)


class Reference:
    """An uninterrupted run, and how long its start-up and epochs took (to aim the kills)."""

    def __init__(self, launcher: Forked | Exec, spec: Path, tmp: Path) -> None:
        out, log = tmp / "reference", tmp / "reference.log"
        started = time.time()
        code = launcher.wait(launcher.start(["run", spec, "--out", out], log, tmp))
        assert code == 0, log.read_text()
        self.dir = only_run_dir(out)
        self.spec_text = (self.dir / "spec.yaml").read_text()
        stamps = [json.loads(line)["t"] for line in (self.dir / "metrics.jsonl").read_text().splitlines()]
        self.startup = max(stamps[0] - started, 0.05)
        self.epoch_time = max((stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1), 0.002)
        self.epochs = len(stamps)

    def aim(self, rng: random.Random) -> tuple[bool, float]:
        """(wait for training to start?, then sleep this long). A quarter of the kills land at a
        random moment of start-up (imports, spec, data, checkpoint loading), the rest within
        8 epochs of the start of training: mid-step, mid-validation, mid-write."""
        if rng.random() < 0.25:
            return False, rng.uniform(0, self.startup)
        return True, rng.uniform(0, 8 * self.epoch_time)


# --------------------------------------------------------------------------- 1. SIGKILL at random moments


class KillStats:
    def __init__(self) -> None:
        self.kills = 0
        self.startup = 0  # killed before training began (imports, spec, data, checkpoint loading)
        self.resumes = 0
        self.restarts = 0  # killed before the first checkpoint: started again
        self.mid_write = 0  # a temp file was left: the kill landed inside a write
        self.lost_epochs = 0  # epochs recorded in metrics.jsonl but not yet in last.pt
        self.runs = 0

    def __str__(self) -> str:
        return (
            f"{self.kills} kills in {self.runs} runs: {self.startup} during start-up, {self.resumes} resumes, "
            f"{self.restarts} restarts before a first checkpoint, {self.mid_write} inside a write, "
            f"{self.lost_epochs} recorded-but-unsaved epochs redone"
        )


def kill_resume_until_done(
    launcher: Forked | Exec,
    spec: Path,
    ref: Reference,
    work: Path,
    rng: random.Random,
    stats: KillStats,
    max_kills: int,
    every: int = 1,
) -> None:
    """Start a run, SIGKILL it after a random delay, check the directory, resume, repeat until
    the run finishes; then compare it with the uninterrupted reference."""
    out, logs = work / "runs", work / "logs"
    logs.mkdir(parents=True)
    run_dir: Path | None = None
    saved: dict[str, Any] | None = None  # last.pt as found after the previous kill
    attempt = 0
    stats.runs += 1
    while True:
        attempt += 1
        log = logs / f"{attempt}.log"
        if saved is not None:
            argv = ["run", spec, "--resume", run_dir]
        else:
            if run_dir is not None:
                shutil.rmtree(run_dir)  # killed before its first checkpoint: nothing to resume
            argv = ["run", spec, "--out", out]
        # once last.pt holds the final epoch only the exit is left: let that resume finish
        killing = stats.kills < max_kills and (saved is None or saved["epoch"] < ref.epochs)
        handle = launcher.start(argv, log, work)
        if killing:
            after_start, delay = ref.aim(rng)
            if after_start:  # the "model: ..." line comes just before the first batch
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not (log.exists() and "model:" in log.read_text()):
                    time.sleep(0.002)
            time.sleep(delay)
            launcher.kill(handle)
        code = launcher.wait(handle)
        text = log.read_text() if log.exists() else ""  # killed before it opened its log
        if saved is not None and "resumed from" in text:
            assert f"resumed from {run_dir / 'last.pt'}: epoch {saved['epoch']} done" in text, text
            assert "spec changed" not in text, text
        run_dir = only_run_dir(out)
        if code == 0:
            assert any(line.startswith("done: ") for line in text.splitlines()), text
            break
        assert code == -signal.SIGKILL, f"exit code {code}:\n{text}"
        stats.kills += 1
        stats.startup += "model:" not in text
        if run_dir is None:
            continue
        last = check_run_dir(run_dir, ref.spec_text)
        if any(p.name.endswith(".tmp") for p in run_dir.iterdir()):
            stats.mid_write += 1
        if last is None:
            assert saved is None, "last.pt disappeared"
            stats.restarts += 1
            continue
        # counters never go backwards; at most the epochs since the last checkpoint are lost
        if saved is not None:
            assert (last["epoch"], last["step"]) >= (saved["epoch"], saved["step"])
        recorded = max((r["epoch"] for r in metrics(run_dir)), default=0)
        assert last["epoch"] <= recorded <= last["epoch"] + every, (last["epoch"], recorded)
        stats.lost_epochs += recorded - last["epoch"]
        saved = last
        stats.resumes += 1
    assert_same_run(run_dir, ref.dir)


def kill_trials(launcher: Forked | Exec, tmp: Path, kills: int, seed: int, epochs: int = 30, **train: Any) -> KillStats:
    """Runs killed and resumed until ``kills`` kills; each run must end like the reference."""
    spec = write_spec(tmp / "spec.yaml", spec_dict(epochs=epochs, **train))
    ref = Reference(launcher, spec, tmp)
    rng, stats = random.Random(seed), KillStats()
    every = train.get("checkpoint", {}).get("every", 1)
    while stats.kills < kills:
        kill_resume_until_done(launcher, spec, ref, tmp / f"run{stats.runs + 1}", rng, stats, kills, every)
    print(f"\nSIGKILL trials: {stats}")
    return stats


def test_sigkill_at_random_moments_then_resume_is_exact(zygote: Zygote, tmp_path: Path) -> None:
    """22 SIGKILLs at seeded random moments; each time the directory holds only loadable
    checkpoints, resuming continues from last.pt, and the end is bit-identical to a run never killed."""
    stats = kill_trials(Forked(zygote), tmp_path, kills=22, seed=20250101, epochs=20)
    assert stats.kills >= 22 and stats.resumes >= 5


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"grad_accumulation": 3, "checkpoint": {"every": 2}},
    ],
    ids=["every-epoch", "accumulation-every-2"],
)
def test_sigkill_many_random_moments(zygote: Zygote, tmp_path: Path, variant: dict[str, Any]) -> None:
    """The long variant: 120 kills per configuration (accumulation windows, sparser checkpoints)."""
    stats = kill_trials(Forked(zygote), tmp_path, kills=120, seed=7 + len(variant), **variant)
    assert stats.kills >= 120


@pytest.mark.slow
def test_sigkill_fresh_interpreters(tmp_path: Path) -> None:
    """Full fidelity: `python -m netspec run` exec'd anew each time (imports included), killed
    12 times, resumed, compared with an uninterrupted exec'd run."""
    stats = kill_trials(Exec(), tmp_path, kills=12, seed=12, epochs=40)
    assert stats.kills >= 12


# --------------------------------------------------------------------------- 1b. SIGKILL at every write


def _kill_points(quick: bool) -> list[dict[str, Any]]:
    ops = [("replace", "before")]  # the state just after commit n-1: every commit boundary
    if not quick:
        ops += [("replace", "after"), ("save", "before"), ("fsync", "before"), ("link", "before"), ("link", "after")]
    return [{"op": op, "when": when} for op, when in ops]


def sweep_kill_points(z: Zygote, tmp: Path, quick: bool) -> int:
    """SIGKILL a run just before / after the n-th call of each write primitive, for every n the
    run reaches; then resume (again and again if needed) and compare with the reference."""
    spec = write_spec(tmp / "spec.yaml", spec_dict(epochs=2 if quick else 4))
    ref = Reference(Forked(z), spec, tmp)
    trials = 0
    for point in _kill_points(quick):
        for n in range(1, 100):
            work = tmp / f"{point['op']}-{point['when']}-{n}"
            out = work / "runs"
            work.mkdir()
            code = z.run(["run", spec, "--out", out], work / "0.log", work, fault={**point, "n": n})
            if code == 0:
                break  # the run makes fewer than n such calls
            assert code == -signal.SIGKILL, (work / "0.log").read_text()
            trials += 1
            run_dir = only_run_dir(out)
            last = check_run_dir(run_dir, ref.spec_text) if run_dir else None
            if last is None:
                if run_dir is not None:
                    shutil.rmtree(run_dir)
                argv = ["run", spec, "--out", out]
            else:
                argv = ["run", spec, "--resume", run_dir]
            assert z.run(argv, work / "1.log", work) == 0, (work / "1.log").read_text()
            assert_same_run(only_run_dir(out), ref.dir)
    return trials


def test_sigkill_at_each_commit_point(zygote: Zygote, tmp_path: Path) -> None:
    """Kill just before each os.replace of a 2-epoch run (the commits of spec.yaml, spec.sha256,
    best.pt and last.pt): every state between two commits, including the one between best.pt
    and last.pt."""
    trials = sweep_kill_points(zygote, tmp_path, quick=True)
    print(f"\nkill-point trials: {trials}")
    assert trials >= 5


@pytest.mark.slow
def test_sigkill_at_every_write_primitive(zygote: Zygote, tmp_path: Path) -> None:
    """A 4-epoch run, killed before / after every os.replace, before every torch.save and fsync,
    before / after every os.link."""
    trials = sweep_kill_points(zygote, tmp_path, quick=False)
    print(f"\nkill-point trials: {trials}")
    assert trials >= 30


# --------------------------------------------------------------------------- 2. unwritable output, full disk


def test_unwritable_out_dir_is_one_line_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(epochs=2))
    (tmp_path / "file").write_text("")
    assert main(["run", str(spec), "--out", str(tmp_path / "file" / "runs")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # not even the run-directory line: nothing started
    (line,) = captured.err.strip().splitlines()
    assert "cannot write the run directory under" in line and str(tmp_path / "file" / "runs") in line


@pytest.mark.skipif(IS_ROOT, reason="root can write into a read-only directory")
def test_read_only_out_dir_and_read_only_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(epochs=2))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["run", str(spec), "--out", str(locked / "runs")]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
        assert "Permission denied" in captured.err
    finally:
        locked.chmod(0o755)
    assert main(["run", str(spec), "--epochs", "1", "--out", str(tmp_path / "runs")]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    capsys.readouterr()
    run_dir.chmod(0o555)
    try:
        assert main(["run", str(spec), "--resume", str(run_dir)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
        assert "cannot write" in captured.err and str(run_dir) in captured.err
    finally:
        run_dir.chmod(0o755)


def test_enospc_at_a_checkpoint_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 3rd checkpoint write (epoch 3's last.pt) fails with ENOSPC at its fsync (a small
    checkpoint is serialised in memory, so the disk is first touched by the writer thread): one
    line naming the file, exit 3, last.pt of epoch 2 intact, no temp file; resuming after
    freeing space ends exactly where an undisturbed run does."""
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(epochs=4))
    assert main(["run", str(spec), "--out", str(tmp_path / "ref")]) == 0
    ref_dir = only_run_dir(tmp_path / "ref")
    capsys.readouterr()

    real_fsync, calls = os.fsync, []

    def full_disk(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(["run", str(spec), "--out", str(tmp_path / "runs")]) == 3
    monkeypatch.setattr(os, "fsync", real_fsync)
    captured = capsys.readouterr()
    run_dir = only_run_dir(tmp_path / "runs")
    (line,) = captured.err.strip().splitlines()
    assert f"cannot write {run_dir / 'last.pt'}" in line or f"cannot write {run_dir / 'best.pt'}" in line, line
    assert "No space left on device" in line and "--resume" in line
    assert "epoch 3/4" not in captured.out  # reported at the failing write, not later
    last = check_run_dir(run_dir)
    assert last["epoch"] == 2
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert main(["run", str(spec), "--resume", str(run_dir)]) == 0
    assert_same_run(run_dir, ref_dir)


def patch_open(monkeypatch: Any, disk: FullDisk) -> None:
    """Make every file the run writes (run directory files, checkpoints) go through ``disk``."""
    for module in (rundir, checkpoint_module):
        monkeypatch.setattr(module, "open", disk, raising=False)


class FullDisk:
    """Stands in for `open` inside netspec.training's writing modules: writes succeed until ``budget`` bytes have been
    written through it, then every write fails with ENOSPC (as a full disk does). ``writes``
    lists (file, bytes) of each write, temp files under the name they will be renamed to."""

    def __init__(self, budget: float) -> None:
        self.left, self.written = budget, 0
        self.writes: list[tuple[str, int]] = []

    def __call__(self, file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        f = builtins.open(file, mode, *args, **kw)  # noqa: SIM115 - handed back to the caller, who closes it
        if mode.startswith("r") and "+" not in mode:
            return f
        temp = re.fullmatch(r"\.(.+)\.\d+\.tmp", Path(file).name)
        return _Limited(f, self, temp.group(1) if temp else Path(file).name)


class _Limited:
    def __init__(self, f: Any, disk: FullDisk, name: str) -> None:
        self._f, self._disk, self._name = f, disk, name

    def write(self, data: Any) -> int:
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size > self._disk.left:
            self._disk.left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.left -= size
        self._disk.written += size
        self._disk.writes.append((self._name, size))
        return self._f.write(data)

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._f.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _fill_points(writes: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """(file, budget) pairs: the disk fills in the middle of the first write of each file, and of
    the first write of train.log and metrics.jsonl after a checkpoint exists."""
    points, seen, offset, checkpointed = [], set(), 0, False
    for k, (name, size) in enumerate(writes):
        first_of_group = k == 0 or writes[k - 1][0] != name
        if first_of_group:
            group = 0
            for other, n in writes[k:]:
                if other != name:
                    break
                group += n
            key = (name, checkpointed and name in ("train.log", "metrics.jsonl"))
            if key not in seen:
                seen.add(key)
                points.append((name, offset + group // 2))
        checkpointed = checkpointed or name.endswith(".pt")
        offset += size
    return points


def test_disk_fills_up_at_any_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up in the middle of each kind of write of a run (spec.yaml, spec.sha256,
    train.log, metrics.jsonl, best.pt, last.pt; the log and metrics also after a checkpoint):
    each time exit 3 with one line naming that file and the checkpoint left intact, no temp file;
    after making room, --resume (or a new run if no checkpoint was written) ends like the reference."""
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(epochs=4, checkpoint={"every": 1, "monitor": "val_accuracy"}))
    disk = FullDisk(math.inf)
    patch_open(monkeypatch, disk)
    assert main(["run", str(spec), "--out", str(tmp_path / "ref")]) == 0
    ref_dir = only_run_dir(tmp_path / "ref")
    capsys.readouterr()
    points = [p for p in _fill_points(disk.writes) if p[0] != "curves.png"]  # best effort: see the next test
    assert {"spec.yaml", "spec.sha256", "train.log", "metrics.jsonl", "best.pt", "last.pt"} <= {n for n, _ in points}
    for k, (name, budget) in enumerate(points):
        out = tmp_path / f"runs{k}"
        patch_open(monkeypatch, FullDisk(budget))
        assert main(["run", str(spec), "--out", str(out)]) == 3, name
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        run_dir = only_run_dir(out)
        assert line.startswith(f"cannot write {run_dir / name}: No space left on device; "), line
        last = check_run_dir(run_dir)
        assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
        patch_open(monkeypatch, FullDisk(math.inf))
        if last is None:
            assert "no checkpoint was written yet" in line and "start again" in line, line
            continue
        assert f"the last good checkpoint is {run_dir / 'last.pt'}; it holds epoch {last['epoch']}, step" in line
        assert f"continue with --resume {run_dir}" in line
        assert main(["run", str(spec), "--resume", str(run_dir)]) == 0
        capsys.readouterr()
        assert_same_run(run_dir, ref_dir)


def test_plot_failure_neither_fails_the_run_nor_hides_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """curves.png is written last, in a `finally`: on a full disk it must not replace the real error."""
    from matplotlib.figure import Figure

    def no_space(*args: Any, **kw: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", no_space)
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(epochs=2))
    assert main(["run", str(spec), "--out", str(tmp_path / "a")]) == 0
    assert "curves.png" in capsys.readouterr().out  # a warning
    patch_open(monkeypatch, FullDisk(3000))
    assert main(["run", str(spec), "--out", str(tmp_path / "b")]) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in line and "cannot write" in line


def test_truncated_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A last.pt damaged outside netspec (a partial copy): exit 2, one line, no traceback."""
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(epochs=1))
    assert main(["run", str(spec), "--out", str(tmp_path / "runs")]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    data = (run_dir / "last.pt").read_bytes()
    (run_dir / "last.pt").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["run", str(spec), "--resume", str(run_dir)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "last.pt cannot be read (truncated" in line
    (run_dir / "last.pt").unlink()
    assert main(["run", str(spec), "--resume", str(run_dir)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no last.pt" in line and "without --resume" in line


# --------------------------------------------------------------------------- 3. NaN and inf


def test_diverging_run_stops_with_epoch_and_step_and_keeps_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real divergence (the lr multiplied by 1e12 every epoch): exit 3, one line naming the
    epoch and step; last.pt is loadable, finite and from an epoch before the one that failed."""
    spec = spec_dict(epochs=10)
    spec["optimizer"] = {"SGD": {"lr": 0.1}}
    spec["scheduler"] = {"StepLR": {"step_size": 1, "gamma": 1.0e12}}
    path = write_spec(tmp_path / "spec.yaml", spec)
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    found = re.search(r"(loss is (nan|inf|-inf)|parameters are not finite) (at|after) epoch (\d+), step (\d+)", line)
    assert found, line
    run_dir = only_run_dir(tmp_path / "runs")
    last = check_run_dir(run_dir)  # loadable, finite
    assert last["epoch"] == int(found.group(4)) - 1
    assert f"the last good checkpoint is {run_dir / 'last.pt'}" in line


class _GradBomb(torch.autograd.Function):
    """Identity forward; the gradient comes back infinite (the loss itself stays finite)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * math.inf


class Poison(torch.nn.Module):
    """A stand-in model that goes bad on chosen (epoch, batch) pairs, both 1-based. Trained with
    NLLLoss (loss = -output[target]): ``"nan"`` makes the loss NaN, ``"inf"`` +inf, ``"-inf"``
    -inf; ``"grad"`` keeps the loss finite but makes its gradient overflow."""

    def __init__(self, at: set[tuple[int, int]], how: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        self.at, self.how, self.where = at, how, (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if not self.training or self.where not in self.at:
            return out
        if self.how == "grad":
            return _GradBomb.apply(out)
        return out * math.nan if self.how == "nan" else out - float(self.how)  # -out[y] = how


class Tracking:
    """The training loader, telling the model which (epoch, batch) comes next."""

    def __init__(self, loader: Any, model: Poison) -> None:
        self.loader, self.model, self.epoch = loader, model, 0

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        for b, batch in enumerate(self.loader):
            self.model.where = (self.epoch + 1, b + 1)
            yield batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


def _poison_run(tmp: Path, at: set[tuple[int, int]], how: str, epochs: int = 4, **train: Any) -> tuple[Any, Poison]:
    """runner.train() of the fault spec with a Poison model: (RunResult or NonFiniteLoss, model)."""
    from netspec.api import load_spec
    from netspec.data import build_loaders

    spec = spec_dict(epochs=epochs, **train)
    spec["loss"] = "NLLLoss"
    spec = load_spec(write_spec(tmp / "spec.yaml", spec))
    model = Poison(at, how)
    loaders = build_loaders(spec.data, base_dir=tmp, input_names=["x"], seed=5, device=torch.device("cpu"))
    loaders.train = Tracking(loaders.train, model)
    try:
        return runner.train(spec, model=model, loaders=loaders, out=tmp / "runs", stream=io.StringIO()), model
    except NonFiniteLoss as err:
        return err, model


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nonfinite_loss_names_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path: Path, value: str) -> None:
    """NaN, inf or -inf on batch 2 of epoch 3: the error names epoch 3, step 10 (4 steps an epoch);
    last.pt holds epoch 2, bit-identical to a 2-epoch run's, and loads with weights_only=True."""
    err, _ = _poison_run(tmp_path / "bad", {(3, 2)}, value)
    assert isinstance(err, NonFiniteLoss)
    message = str(err)
    assert f"loss is {value} at epoch 3, step 10 (batch 2 of 4)" in message, message
    assert len(message.splitlines()) == 1
    run_dir = only_run_dir(tmp_path / "bad" / "runs")
    assert f"the last good checkpoint is {run_dir / 'last.pt'}; it holds epoch 2" in message
    last = check_run_dir(run_dir)
    good, _ = _poison_run(tmp_path / "good", set(), "nan", epochs=2)
    assert last["epoch"] == 2 and last["step"] == 8
    assert_same(last["model"], load_ckpt(good.run_dir / "last.pt")["model"])


def test_overflowing_step_at_epoch_end_does_not_overwrite_the_good_checkpoint(tmp_path: Path) -> None:
    """The loss is finite but its gradient overflows on the last batch of epoch 2, so the weights
    become inf just before the epoch-2 checkpoint: that checkpoint must not replace epoch 1's."""
    err, _ = _poison_run(tmp_path, {(2, 4)}, "grad")
    assert isinstance(err, NonFiniteLoss), err
    message = str(err)
    assert re.search(r"parameters are not finite after epoch 2, step 8", message), message
    last = check_run_dir(only_run_dir(tmp_path / "runs"))
    assert last["epoch"] == 1


def test_on_nan_skip_skips_the_step_and_goes_on(tmp_path: Path) -> None:
    """`train.on_nan: skip`: NaN losses on two batches and an overflowing gradient on a third
    are skipped; the run finishes, every weight stays finite, the skips are counted and logged."""
    result, model = _poison_run(tmp_path / "nan", {(1, 2), (2, 3), (3, 4)}, "nan", on_nan="skip")
    assert isinstance(result, runner.RunResult), result
    assert result.epochs == 4 and result.steps == 16 - 3
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert result.history[-1]["skipped_batches"] == 3
    log = (result.run_dir / "train.log").read_text()
    assert "at epoch 1, step 2 (batch 2 of 4); batch skipped" in log
    result, model = _poison_run(tmp_path / "overflow", {(2, 4)}, "grad", on_nan="skip")
    assert isinstance(result, runner.RunResult), result
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert result.steps == 16 - 1 and "step skipped" in (result.run_dir / "train.log").read_text()
    check_run_dir(result.run_dir)


# --------------------------------------------------------------------------- 4. Ctrl-C


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize(
    "signum, code, word",
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["ctrl_c-130", "sigterm-143"],
)
def test_stop_signal_saves_exits_and_resume_is_exact(
    zygote: Zygote, tmp_path: Path, signum: int, code: int, word: str
) -> None:
    """SIGINT (Ctrl-C), or SIGTERM (what a cluster scheduler sends before it kills a job), to a
    training process mid-run: last.pt saved after the current step, exit 130 or 143, the resume
    command printed; resuming ends bit-identical to an uninterrupted run."""
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(epochs=100))
    ref = Reference(Forked(zygote), spec, tmp_path)
    out, log = tmp_path / "runs", tmp_path / "a.log"
    pid = zygote.spawn(["run", spec, "--out", out], log, tmp_path)
    _wait_for(lambda: any(p.read_text().count("\n") >= 2 for p in out.glob("*/metrics.jsonl")), 60, "two epochs")
    os.kill(pid, signum)
    assert zygote.wait(pid) == code
    run_dir = only_run_dir(out)
    last_line = log.read_text().strip().splitlines()[-1]
    assert last_line == f"{word}; continue with: netspec run {spec} --resume {run_dir / 'last.pt'}"
    assert 2 <= check_run_dir(run_dir)["epoch"] < 100
    assert zygote.run(["run", spec, "--resume", run_dir], tmp_path / "b.log", tmp_path) == 0
    assert "spec changed" not in (tmp_path / "b.log").read_text()
    assert_same_run(run_dir, ref.dir)


def _slow_validation_spec(tmp: Path) -> Path:
    """Two quick training steps, then a validation pass of 100 000 one-sample batches (seconds of
    Python-level work even on a fast machine, so a signal is handled within milliseconds)."""
    spec = spec_dict(epochs=3)
    spec["data"] = {
        "train": {"source": "random", "n": 2, "shapes": {"x": [8]}, "n_classes": 2},
        "val": {"source": "random", "n": 100_000, "shapes": {"x": [8]}, "n_classes": 2},
        "batch_size": 1,
    }
    return write_spec(tmp / "slow.yaml", spec)


def test_second_ctrl_c_exits_at_once(zygote: Zygote, tmp_path: Path) -> None:
    """Ctrl-C during the (long) validation pass asks for a checkpoint at the end of the epoch; a
    second Ctrl-C quits at once: exit 130 within a second or two, no checkpoint, no temp file."""
    spec = _slow_validation_spec(tmp_path)
    out, log = tmp_path / "runs", tmp_path / "a.log"
    pid = zygote.spawn(["run", spec, "--out", out], log, tmp_path)
    _wait_for(lambda: log.exists() and "model:" in log.read_text(), 60, "training to start")
    time.sleep(0.3)  # the two training steps are done; validation takes seconds
    os.kill(pid, signal.SIGINT)
    _wait_for(lambda: "Ctrl-C again" in log.read_text(), 10, "the first Ctrl-C to be acknowledged")
    os.kill(pid, signal.SIGINT)
    second = time.monotonic()
    assert zygote.wait(pid, timeout=30) == 130
    elapsed = time.monotonic() - second
    run_dir = only_run_dir(out)
    assert not (run_dir / "metrics.jsonl").exists(), "the epoch finished: the test did not hit validation"
    assert elapsed < 3, f"the second Ctrl-C took {elapsed:.1f} s"
    assert log.read_text().strip().splitlines()[-1] == "interrupted"
    assert not [p for p in run_dir.iterdir() if p.suffix in (".pt", ".tmp")]


@pytest.mark.slow
def test_double_ctrl_c_fresh_interpreter(tmp_path: Path) -> None:
    """The same with an exec'd `python -m netspec run` (its own signal set-up, no zygote)."""
    spec = _slow_validation_spec(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    log = tmp_path / "a.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "netspec", "run", str(spec), "--out", str(tmp_path / "runs")],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    _wait_for(lambda: "model:" in log.read_text(), 300, "training to start")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _wait_for(lambda: "Ctrl-C again" in log.read_text(), 10, "the first Ctrl-C to be acknowledged")
    proc.send_signal(signal.SIGINT)
    second = time.monotonic()
    assert proc.wait(timeout=30) == 130
    assert time.monotonic() - second < 3
    assert log.read_text().strip().splitlines()[-1] == "interrupted"


# --------------------------------------------------------------------------- 5. changed spec


def test_resume_warns_when_the_spec_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(epochs=2))
    assert main(["run", str(spec), "--out", str(tmp_path / "runs")]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    capsys.readouterr()
    assert main(["run", str(spec), "--resume", str(run_dir)]) == 0  # unchanged: no warning
    assert "spec changed" not in capsys.readouterr().out
    original = (run_dir / "spec.yaml").read_text()
    assert main(["run", str(spec), "--resume", str(run_dir), "--epochs", "3", "--set", "optimizer.AdamW.lr=0.005"]) == 0
    out = capsys.readouterr().out
    (warning,) = [line for line in out.splitlines() if "spec changed" in line]
    old = (run_dir / "spec.sha256").read_text().split()[0]
    assert warning.startswith("warning: the spec changed since") and f"sha256 {old[:12]} -> " in warning
    assert "resuming anyway" in warning
    assert "spec changed" in (run_dir / "train.log").read_text()
    changed = [p.name for p in run_dir.glob("spec.*.yaml")]
    assert len(changed) == 1 and changed[0] != "spec.yaml"  # both versions kept
    assert (run_dir / "spec.yaml").read_text() == original  # the first one untouched
