"""Startup and compile cost: each ``netspec`` command against ``python -c "import torch"``, and
in-process compile times of long generated networks.

Startup: every command runs as a fresh process, ``runs`` times, round-robin with ``import torch``
(so a busy machine slows all of them alike); the table gives the median wall time, its ratio to
``import torch`` in the same run, and the peak resident memory. The catalog cache
(``netspec.nodes.catalog``) is warmed first, as it is after the first command on a machine.

Compile: ``compile_spec`` in this process (imports and registries warmed by a small compile
first) on a Linear/ReLU chain and on a ladder of concat skips, at two sizes each, with the
ratio of the two times: about 10 for a 10x bigger network when the cost is linear.

Goals (issue 10): ``--help`` under 0.5 s; ``validate specs/unet.yaml`` at most 1.2x
``import torch``; ``compile --summary`` of unet without an extra gigabyte; a 5,000-node chain
in under 5 s, at most about 12x the 500-node time. Run::

    python benchmarks/bench_startup.py [--runs 5] [--skip-startup] [--skip-compile]

Importable: :func:`startup_times`, :func:`compile_times`, :func:`chain_spec`,
:func:`skips_spec` and the two ``*_table`` printers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UNET = str(ROOT / "specs" / "unet.yaml")

#: label -> the arguments after ``python``; the first is the yardstick.
COMMANDS: dict[str, list[str]] = {
    "import torch": ["-c", "import torch"],
    "netspec --help": ["-m", "netspec", "--help"],
    "netspec schema": ["-m", "netspec", "schema"],
    "netspec layers": ["-m", "netspec", "layers"],
    "netspec validate unet": ["-m", "netspec", "validate", UNET],
    "netspec compile unet --summary": ["-m", "netspec", "compile", UNET, "--summary"],
}


# Runs a command (``-c CODE`` or ``-m MODULE ARGS``) and, at exit, writes the process's own peak
# RSS (VmHWM, in KiB) to the file named by argv[1]. The rusage a parent gets for a child is no
# use here: on Linux it carries the parent's peak at fork (the benchmark's, torch included) over
# exec, so every command would show at least the benchmark's own size.
_MEASURED = """
import atexit, runpy, sys
def _peak(path=sys.argv[1]):
    with open("/proc/self/status") as f:
        kib = next((line.split()[1] for line in f if line.startswith("VmHWM:")), "0")
    with open(path, "w") as out:
        out.write(kib)
atexit.register(_peak)
flag, what, *rest = sys.argv[2:]
if flag == "-c":
    sys.argv = ["-c", *rest]
    exec(compile(what, "<string>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = [what, *rest]
    runpy.run_module(what, run_name="__main__", alter_sys=True)
"""


def run_once(args: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of ``python *args``; raises if it fails.

    >>> seconds, rss = run_once(["-c", "pass"])
    >>> seconds > 0 and rss > 0
    True
    """
    linux = sys.platform.startswith("linux")
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as peak:
        argv = [sys.executable, "-c", _MEASURED, peak.name, *args] if linux else [sys.executable, *args]
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"python {' '.join(args)} exited {proc.returncode}: {err.read().decode()[-500:]}")
        if linux:
            return seconds, int(peak.read() or 0) * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # elsewhere: ru_maxrss, an upper bound
    return seconds, usage.ru_maxrss * scale


def startup_times(runs: int = 5, commands: dict[str, list[str]] | None = None) -> dict[str, dict[str, float]]:
    """Median wall time and peak RSS of each command over ``runs`` round-robin runs."""
    commands = commands or COMMANDS
    run_once(["-m", "netspec", "layers"])  # writes the catalog cache, as any first command does
    seconds: dict[str, list[float]] = {k: [] for k in commands}
    rss: dict[str, list[int]] = {k: [] for k in commands}
    for _ in range(runs):
        for label, args in commands.items():
            s, r = run_once(args)
            seconds[label].append(s)
            rss[label].append(r)
    return {k: {"seconds": statistics.median(seconds[k]), "rss": max(rss[k])} for k in commands}


def startup_table(times: dict[str, dict[str, float]]) -> str:
    """The startup figures as a table, each against the first row (``import torch``)."""
    base = next(iter(times.values()))["seconds"]
    rows = [f"{'command':<34}{'median s':>10}{'x import torch':>16}{'peak RSS MiB':>14}"]
    for label, t in times.items():
        rows.append(f"{label:<34}{t['seconds']:>10.2f}{t['seconds'] / base:>16.2f}{t['rss'] / 2**20:>14.0f}")
    return "\n".join(rows)


# ---- compile cost ----------------------------------------------------------------------------


def chain_spec(n: int) -> dict[str, Any]:
    """``n`` unnamed nodes alternating Linear(16) and ReLU (auto-named linear, relu, linear_1, ...).

    >>> [list(x)[0] if isinstance(x, dict) else x for x in chain_spec(4)["nodes"]]
    ['Linear', 'ReLU', 'Linear', 'ReLU']
    """
    nodes = [{"Linear": {"out_features": 16}} if i % 2 == 0 else "ReLU" for i in range(n)]
    return {"name": f"chain{n}", "inputs": {"x": [16]}, "nodes": nodes}


def skips_spec(n: int) -> dict[str, Any]:
    """``n`` concat skips: each a named Linear(8) concatenated with the input, 2n nodes.

    >>> skips_spec(2)["nodes"]
    [{'h0': {'Linear': {'out_features': 8}}}, {'cat': ['h0', 'x']}, {'h1': {'Linear': {'out_features': 8}}}, {'cat': ['h1', 'x']}]
    """
    nodes: list[Any] = []
    for i in range(n):
        nodes += [{f"h{i}": {"Linear": {"out_features": 8}}}, {"cat": [f"h{i}", "x"]}]
    return {"name": f"skips{n}", "inputs": {"x": [8]}, "nodes": nodes}


def time_compile(spec: dict[str, Any], repeats: int = 1) -> float:
    """Median seconds of ``compile_spec(spec)`` in this process."""
    from netspec.api import compile_spec

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compile_spec(spec)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


#: label -> (spec maker, small size, big size): what `compile_times` measures.
NETWORKS: dict[str, tuple[Callable[[int], dict[str, Any]], int, int]] = {
    "Linear/ReLU chain (nodes)": (chain_spec, 500, 5000),
    "concat skips (skips, 2 nodes each)": (skips_spec, 100, 1000),
}


def compile_times(repeats: int = 3) -> dict[str, tuple[int, float, int, float]]:
    """label -> (small size, seconds, big size, seconds), warmed up by a small compile first."""
    time_compile(chain_spec(4))  # imports, registries
    out = {}
    for label, (make, small, big) in NETWORKS.items():
        out[label] = (small, time_compile(make(small), repeats), big, time_compile(make(big), max(1, repeats // 2)))
    return out


def compile_table(times: dict[str, tuple[int, float, int, float]]) -> str:
    """The compile figures as a table, with the big/small ratio."""
    rows = [f"{'in-process compile_spec':<38}{'size':>6}{'s':>8}{'size':>7}{'s':>8}{'ratio':>8}"]
    for label, (small, t_small, big, t_big) in times.items():
        rows.append(f"{label:<38}{small:>6}{t_small:>8.2f}{big:>7}{t_big:>8.2f}{t_big / t_small:>8.1f}")
    return "\n".join(rows)


def machine() -> str:
    """One line: Python, torch, CPU count and accelerator (imports torch)."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"Python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs "
        f"({platform.machine()}), {device}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (the median is reported)")
    parser.add_argument("--repeats", type=int, default=3, help="compiles of each small network (big: half)")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    if not args.skip_startup:
        print(startup_table(startup_times(args.runs)), flush=True)
    if not args.skip_compile:
        print(compile_table(compile_times(args.repeats)))
    print(machine())


if __name__ == "__main__":
    main()
