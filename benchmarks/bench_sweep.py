"""A sweep of a small real task with and without pruning, at the same number of trials.

scikit-learn's digits (1,797 8x8 images of handwritten digits, shipped with scikit-learn, offline)
are written to a `.npz` file beside a spec of an MLP; the spec's sweep searches the learning rate,
the width and the weight decay. The same sweep (same seed, same trials) runs twice: once with
`pruner: median`, once with `pruner: none`. Printed side by side: the best validation accuracy,
the epochs trained in all and the total time, with the ratios. Pruning pays when it stops poor
trials early and the best one is still found (or one as good). Run::

    python benchmarks/bench_sweep.py [--trials 16] [--epochs 12] [--jobs 1] [--keep DIR]

``--keep DIR`` leaves the data, the specs and both sweep folders in DIR (``netspec runs DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from netspec.cli import main

SPEC = """\
name: digits
params: {width: 64}
inputs: {x: [64]}
nodes:
  - Linear: {out_features: $width}
  - ReLU
  - Linear: {out_features: 10}
data:
  train: {source: tensors, path: train.npz}
  val: {source: tensors, path: val.npz}
  batch_size: 64
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.01, momentum: 0.9, weight_decay: 0.0}}
train: {epochs: EPOCHS, device: cpu, metrics: [accuracy], progress: line, checkpoint: {every: 0}}
sweep:
  metric: val_accuracy
  trials: TRIALS
  seed: 0
  pruner: PRUNER
  startup_trials: 3
  warmup_epochs: 2
  params:
    optimizer.args.lr: {loguniform: [1.0e-4, 0.3]}
    width: {int: [8, 128], log: true}
    optimizer.args.weight_decay: {loguniform: [1.0e-6, 1.0e-2]}
"""


def write_digits(folder: Path) -> None:
    """train.npz (1,437 samples) and val.npz (360): pixels scaled to [0, 1], int64 labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int64)
    cut = int(0.8 * len(y))
    np.savez(folder / "train.npz", x=x[:cut], y=y[:cut])
    np.savez(folder / "val.npz", x=x[cut:], y=y[cut:])


def sweep(folder: Path, pruner: str, trials: int, epochs: int, jobs: int) -> dict[str, float]:
    spec = folder / f"digits_{pruner}.yaml"
    spec.write_text(SPEC.replace("PRUNER", pruner).replace("TRIALS", str(trials)).replace("EPOCHS", str(epochs)))
    out = folder / f"sweep_{pruner}"
    started = time.perf_counter()
    code = main(["sweep", str(spec), "--out", str(out), "--jobs", str(jobs)])
    seconds = time.perf_counter() - started
    assert code == 0, f"the {pruner} sweep failed ({code})"
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    best = max(float(r["val_accuracy"]) for r in rows if r["state"] == "finished")
    return {
        "best val_accuracy": best,
        "epochs trained": sum(int(r["epochs"] or 0) for r in rows),
        "pruned trials": sum(r["state"] == "pruned" for r in rows),
        "total time (s)": seconds,
    }


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (a new folder) and leave everything there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() if args.keep is None else contextlib.nullcontext(args.keep) as tmp:
        folder = Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        write_digits(folder)
        pruned = sweep(folder, "median", args.trials, args.epochs, args.jobs)
        full = sweep(folder, "none", args.trials, args.epochs, args.jobs)
    print(f"\ndigits, {args.trials} trials of up to {args.epochs} epochs, --jobs {args.jobs}")
    print(f"{'':22}{'pruned (median)':>16}{'unpruned':>12}{'ratio':>8}")
    for key in pruned:
        ratio = pruned[key] / full[key] if full[key] else float("nan")
        print(f"{key:22}{pruned[key]:>16.4g}{full[key]:>12.4g}{ratio:>8.2f}")


if __name__ == "__main__":
    main_()
