"""Instructions per epoch, counted by callgrind: `netspec run` against bench_small.py's tuned loop
(and that loop with a resumable checkpoint: the scheduler's and the RNG states besides the
weights) on the digits MLP (one thread, a checkpoint every epoch). A count does not wander with the
machine's load as a time does (issue 21), so a change to the step or the epoch's end shows here
even where bench_speed.py's ratios are lost in the noise; the count is not the time, though:
Python work (pickling, dict walks) runs fewer instructions a second than the step's kernels, so
a ratio of counts understates a ratio of times.

One warm epoch of each contender is counted (collection is turned on and off by callgrind's
client requests, from a small C helper built here), in parts: the training pass (netspec's
includes its writer thread finishing the previous checkpoint, which runs meanwhile), and the
epoch's end, netspec's split into its values, its log line, its checkpoint and the rest.

Needs valgrind (with its headers: valgrind/callgrind.h) and a C compiler; each contender takes
a minute or two under valgrind.

    PYTHONPATH=src python benchmarks/count_instructions.py
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

HELPER = r"""
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void cg_dump(const char *part) { CALLGRIND_DUMP_STATS_AT(part); }
void cg_stop(const char *part) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS_AT(part); CALLGRIND_STOP_INSTRUMENTATION; }
"""
MEASURED = 3  # the epoch counted (0-based): the ones before warm the caches and imports up
CONTENDERS = ("tuned loop", "tuned, resumable", "netspec run")  # the first is the yardstick


def build_helper(folder: Path) -> Path | str:
    """The client-request helper as a shared library, or why it cannot be built."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return "no C compiler (cc) to build the callgrind helper"
    source, library = folder / "cg.c", folder / "libcg.so"
    source.write_text(HELPER)
    built = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source)], capture_output=True)
    if built.returncode:
        return f"the callgrind helper did not build (valgrind/callgrind.h missing?): {built.stderr.decode()[:200]}"
    return library


# --------------------------------------------------------------------------- in valgrind


def count_tuned(cg: Any, folder: Path, resumable: bool) -> None:
    import bench_small
    import numpy as np
    import torch

    table = np.loadtxt(folder / "digits.csv", delimiter=",", skiprows=1, dtype=np.float32)
    x, y = torch.from_numpy(table[:, 1:] / 16), torch.from_numpy(table[:, 0]).long()

    def mark(epoch: int, where: str) -> None:
        if epoch != MEASURED:
            return
        if where == "start":
            cg.cg_start()
        elif where == "steps":
            cg.cg_dump(b"training pass")
        else:  # "end"
            cg.cg_stop(b"epoch end")

    spec = bench_small.small_spec("mlp", folder, MEASURED + 2, "cpu")
    bench_small.run_tuned_loop(spec, x, y, MEASURED + 2, torch.device("cpu"), folder / "tuned.pt", mark, resumable)


def count_netspec(cg: Any, folder: Path) -> None:
    import bench_small

    from netspec.training import loop

    calls, counting = [0], [False]

    def around(owner: Any, name: str, part: bytes) -> None:
        real = getattr(owner, name)

        def counted(*args: Any, **kw: Any) -> Any:
            if name == "_train_epoch":
                calls[0] += 1
                if calls[0] == MEASURED + 1:
                    cg.cg_start()
                    counting[0] = True
                elif calls[0] == MEASURED + 2 and counting[0]:
                    cg.cg_stop(b"epoch end: the rest")
                    counting[0] = False
            elif counting[0]:
                cg.cg_dump(b"epoch end: the rest")
            try:
                return real(*args, **kw)
            finally:
                if counting[0]:
                    cg.cg_dump(part)

        setattr(owner, name, counted)

    around(loop, "_train_epoch", b"training pass")
    around(loop, "_epoch_values", b"epoch end: values")
    around(loop.report, "log_epoch", b"epoch end: log line")
    around(loop, "save_epoch", b"epoch end: checkpoint")
    spec = bench_small.small_spec("mlp", folder, MEASURED + 2, "cpu")
    with tempfile.TemporaryDirectory() as out:
        loop.train(spec, out=out, stream=io.StringIO(), base_dir=folder)


def child(contender: str, folder: Path, library: Path) -> None:
    import torch

    torch.set_num_threads(1)
    cg = ctypes.CDLL(str(library))
    if contender.startswith("tuned"):
        count_tuned(cg, folder, resumable="resumable" in contender)
    else:
        count_netspec(cg, folder)


# --------------------------------------------------------------------------- the parent


def counts(outputs: Path, contender: str) -> dict[str, int]:
    """Instructions by part from the dumps callgrind wrote for ``contender``."""
    parts: dict[str, int] = defaultdict(int)
    for dump in outputs.glob(f"{_slug(contender)}.*.*"):
        text = dump.read_text(errors="replace")
        part = re.search(r"^desc: Trigger: Client Request: (.+)$", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if part and total:
            parts[part.group(1).strip()] += int(total.group(1))
    return dict(parts)


def _slug(contender: str) -> str:
    """The contender's name as callgrind's file names begin: "tuned, resumable" -> "tuned-resumable"."""
    return re.sub(r"\W+", "-", contender)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", nargs=3, metavar=("CONTENDER", "FOLDER", "LIBRARY"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return 0
    import bench_small

    work = Path(tempfile.mkdtemp(prefix="count_instructions-"))
    try:
        library = build_helper(work)
        if isinstance(library, str):
            print(f"count_instructions: {library}; nothing counted", file=sys.stderr)
            return 2
        bench_small.write_digits(work)
        outputs = work / "callgrind"
        outputs.mkdir()
        table: dict[str, dict[str, int]] = {}
        for contender in CONTENDERS:
            print(f"counting {contender} (a minute or two under valgrind) ...", flush=True)
            command = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--collect-atstart=no",
                f"--callgrind-out-file={outputs}/{_slug(contender)}.%p",
                sys.executable,
                __file__,
                "--child",
                contender,
                str(work),
                str(library),
            ]
            ran = subprocess.run(
                command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
            )
            if ran.returncode:
                print(f"{contender} failed under valgrind:\n{ran.stderr[-2000:]}", file=sys.stderr)
                return 1
            table[contender] = counts(outputs, contender)
        report(table)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(table: dict[str, dict[str, int]]) -> None:
    """A row per part, its sums, and each against the tuned loop's."""

    def rows(parts: dict[str, int]) -> list[tuple[str, int]]:
        end = sum(n for part, n in parts.items() if part.startswith("epoch end"))
        details = sorted((part, n) for part, n in parts.items() if part.startswith("epoch end:"))
        steps = parts.get("training pass", 0)
        return [("training pass", steps), *details, ("epoch end", end), ("whole epoch", steps + end)]

    tuned = dict(rows(table[CONTENDERS[0]]))
    print(f"\ndigits MLP, epoch {MEASURED + 1} (warm), millions of instructions (callgrind):")
    print(f"{'contender':17} {'part':28} {'Minstr':>9} {'x tuned':>8}")
    for contender, parts in table.items():
        for part, n in rows(parts):
            ratio = f"{n / tuned[part]:.3f}" if tuned.get(part) else ""
            print(f"{contender:17} {part:28} {n / 1e6:9.2f} {ratio:>8}")


if __name__ == "__main__":
    raise SystemExit(main())
