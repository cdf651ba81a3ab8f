"""Where an epoch of ``netspec run`` goes besides the steps: the digits MLP of bench_small.py
(one thread, a checkpoint every epoch), each per-epoch part of the loop timed as it runs, in
the thread's CPU time (steadier than time where other processes share the cores), as a table
item -> ms/epoch (issue 21).

The parts are the loop's own functions, wrapped: the epoch's training pass (the steps and the
epoch's set-up), the epoch's values, the log line, the metrics.jsonl record, the checkpoint
(its checks, the state captured, serialised in memory) and, in the writer thread, the writes.
A part run inside another is indented under it. ``--epochs`` epochs, the first dropped.

    PYTHONPATH=src python benchmarks/profile_epoch.py --epochs 40
"""

from __future__ import annotations

import argparse
import collections
import io
import itertools
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_small  # the case's data and spec

from netspec.training import checkpoint, loop, report

# (module, function, depth in the table): depth 1 runs inside the depth-0 part above it
PARTS: list[tuple[Any, str, int]] = [
    (loop, "_train_epoch", 0),
    (loop, "_epoch_batches", 1),
    (loop, "_epoch_values", 0),
    (loop.report, "record_epoch", 0),
    (loop.report, "log_epoch", 0),
    (loop.report, "write_record", 0),
    (loop, "save_epoch", 0),
    (checkpoint, "check_weights", 1),
    (checkpoint, "capture", 1),
    (checkpoint, "rng_state", 2),
    (checkpoint, "to_host", 1),  # netspec before issue 21's checkpoint change: the snapshot
    (checkpoint, "checkpoint_bytes", 1),
    (report, "_write_record", 0),
    (checkpoint, "save_checkpoint", 0),  # before: serialised and written by the writer
    (checkpoint, "write_checkpoint", 0),
    (checkpoint, "link_or_copy", 0),
]


WRITER = ("_write_record", "save_checkpoint", "write_checkpoint", "link_or_copy")


def wrap(owner: Any, name: str, times: dict[str, list[float]]) -> Callable[[], None]:
    """Time every outermost call of ``owner.name`` (thread CPU, ms; a recursive call is part of
    the one around it) into ``times[name]``; returns the undo. A name the code lacks: nothing."""
    real = getattr(owner, name, None)
    if real is None:
        return lambda: None
    inside = threading.local()

    def timed(*args: Any, **kw: Any) -> Any:
        if getattr(inside, "busy", False):
            return real(*args, **kw)
        inside.busy, start = True, time.thread_time_ns()
        try:
            return real(*args, **kw)
        finally:
            inside.busy = False
            times[name].append((time.thread_time_ns() - start) / 1e6)

    setattr(owner, name, timed)
    return lambda: setattr(owner, name, real)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp())
    bench_small.write_digits(folder)
    spec = bench_small.small_spec("mlp", folder, args.epochs, "cpu")
    with tempfile.TemporaryDirectory() as out:  # a first run: imports and caches warm
        loop.train(bench_small.small_spec("mlp", folder, 2, "cpu"), out=out, stream=io.StringIO(), base_dir=folder)
    times: dict[str, list[float]] = collections.defaultdict(list)
    undo = [wrap(owner, name, times) for owner, name, _ in PARTS]
    stamps: list[tuple[int, int]] = []
    try:
        with tempfile.TemporaryDirectory() as out:
            loop.train(
                spec,
                out=out,
                stream=io.StringIO(),
                base_dir=folder,
                on_epoch=lambda _: stamps.append((time.process_time_ns(), time.thread_time_ns())),
            )
    finally:
        for u in undo:
            u()
    per_epoch = [(b[0] - a[0]) / 1e6 for a, b in itertools.pairwise(stamps)]
    main_thread = [(b[1] - a[1]) / 1e6 for a, b in itertools.pairwise(stamps)]
    print(f"digits MLP, {args.epochs} epochs (first dropped), CPU ms per epoch (median over epochs)")
    print(f"{'process (every thread)':40} {statistics.median(per_epoch):8.3f}")
    print(f"{'training thread':40} {statistics.median(main_thread):8.3f}")
    for _, name, depth in PARTS:
        calls = times.get(name, [])[1:]
        if not calls:
            continue
        where = " (writer thread)" if name in WRITER else ""
        total = sum(calls) / max(len(per_epoch), 1)  # per epoch, whichever epochs called it
        print(
            f"{'  ' * (depth + 1)}{name + where:{38 - 2 * depth}} {total:8.3f}   (median call {statistics.median(calls):.3f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
