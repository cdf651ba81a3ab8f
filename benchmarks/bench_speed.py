"""Training speed, side by side in one run on whatever device is present: `netspec run` vs a
seed-style loop vs a tuned loop, for scikit-learn's digits as a CSV file (an MLP) and as a
folder of PNGs (a small CNN; also vs torchvision's ImageFolder + DataLoader), one thread, fp32
(bench_small.py: where the host's work per step shows), the Fashion-MNIST CNN (seed 003) and
resnet18 at 3x32x32, in fp32 and bf16; the compiled spec's forward+backward against the
hand-written module's; the startup of each command against `import torch`; and compile times at
500 and 5,000 nodes (bench_startup.py, which also runs on its own).

Goals (issue 21): on the CPU, netspec's epoch at most 1.05x the tuned loop's for the MLP and the
PNG CNN (`time/tuned`), and at most 1.0x torchvision's ImageFolder + DataLoader for the PNG folder
(`time/ImageFolder`); on a GPU, at least 0.95x the tuned loop for the CNN and resnet18. The
contenders take turns (a rotating order each round) and medians are reported, so a machine whose
load comes and goes hits them alike; still, read the ratios with the load in mind: the small
cases run the tuned loop twice a round, and its second run's ratio to the first is the noise.

The big cases' contenders, below (the small ones are described in bench_small.py):

The contenders train the same model (built from the spec, the same initial weights) on the same
in-memory data (random Fashion-MNIST-shaped samples, 10 classes) with Adam 1e-3, batch 256, the
same seed and the same batch order, and all compute the training loss and accuracy:

* netspec: ``netspec.training.train`` of a spec whose data is a ``tensors`` file (netspec's own
  data path), with a checkpoint every epoch (and once more with one at the end only, to tell
  the loop's cost from the checkpoints'); timed between its epoch records;
* seed-style loop: a DataLoader over a TensorDataset, copies to the device per batch, ``.item()``
  every step (seed 003's habit);
* tuned loop: the data on the device, no host read per step, fused Adam on CUDA.

samples/s is the median over the timed epochs (the first of each run is a warm-up; with
``--rounds``, over every run, the contenders taking turns in a rotating order). On the CPU every
contender runs the same kernels, so the final losses must agree (printed). Goals (issue 10): on a
GPU, netspec >= 0.95x the tuned loop in fp32 and bf16, and faster than it with `compile`; on
the CPU, within noise of the loops.

    PYTHONPATH=src python benchmarks/bench_speed.py            # full (a GPU: about 5 minutes)
    PYTHONPATH=src python benchmarks/bench_speed.py --quick    # small (2 CPU cores: a few minutes)
    PYTHONPATH=src python benchmarks/bench_speed.py --models cnn --precisions fp32,bf16 --compile-modes default
"""

from __future__ import annotations

import argparse
import io
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, TensorDataset

import netspec
from netspec.training.hardware import set_seed
from netspec.training.loop import train

SEED, LR = 0, 1e-3


class FashionCNN(nn.Module):
    """Seed 003's Fashion-MNIST net, hand-written, with its bugs fixed (582,026 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2),
            nn.Dropout(0.3),
            nn.Conv2d(32, 64, 5),
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2),
            nn.Dropout(0.3),
        )
        self.fc = nn.Sequential(nn.Linear(64 * 4 * 4, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))  # (N, 64*4*4) -> (N, 10)


def _resnet18() -> nn.Module:
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


@dataclass
class Case:
    """A model: its spec (model part), per-sample input shape and hand-written twin."""

    spec: dict[str, Any]
    shape: tuple[int, ...]
    hand: Callable[[], nn.Module]
    quick_samples: int  # --quick: a few seconds an epoch on 2 CPU cores


ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "cnn": Case({"file": ROOT / "specs" / "fashion_cnn.yaml"}, (1, 28, 28), FashionCNN, 2048),
    "resnet18": Case(
        {
            "netspec": 1,
            "name": "resnet18_32",
            "inputs": {"image": [3, 32, 32]},
            "nodes": [{"net": {"resnet18": {"num_classes": 10}}}],
        },
        (3, 32, 32),
        _resnet18,
        512,
    ),
}


@dataclass
class Row:
    model: str
    precision: str
    contender: str
    samples_s: float
    loss: float | None = None


# --------------------------------------------------------------------------- the contenders


def load(
    case: Case,
    data_file: Path | None = None,
    precision: str = "fp32",
    epochs: int = 1,
    device: str = "cpu",
    batch: int = 256,
    compile_mode: str | None = None,
    every: int = 1,
) -> Any:
    """The case's spec with a training section for this benchmark (data: a tensors file;
    a checkpoint every ``every`` epochs, 0: at the end only)."""
    train_section = {
        "epochs": epochs,
        "seed": SEED,
        "device": device,
        "precision": precision,
        "metrics": ["accuracy"],
        "progress": "line",
        "checkpoint": {"every": every},
    }
    if compile_mode:
        train_section["compile"] = compile_mode
    rest = {"loss": "CrossEntropyLoss", "optimizer": {"Adam": {"lr": LR}}, "train": train_section}
    if data_file is not None:
        rest["data"] = {"train": {"source": "tensors", "path": str(data_file)}, "batch_size": batch}
    model = yaml.safe_load(case.spec["file"].read_text()) if "file" in case.spec else dict(case.spec)
    for key in ("data", "loss", "optimizer", "scheduler", "init", "train"):
        model.pop(key, None)
    return netspec.load_spec({**model, **rest})


def model_of(case: Case, device: torch.device) -> nn.Module:
    """The spec's model with the weights netspec's run starts from (seeded, then built)."""
    set_seed(SEED)
    return netspec.build_model(load(case)).to(device)


def run_netspec(
    case: Case,
    data_file: Path,
    args: argparse.Namespace,
    precision: str,
    device: torch.device,
    compile_mode: str | None = None,
    every: int = 1,
) -> tuple[list[float], float]:
    spec = load(case, data_file, precision, args.epochs, str(device), args.batch, compile_mode, every)
    with tempfile.TemporaryDirectory() as out:
        started = time.time()  # the first "epoch" includes the set-up: dropped with the warm-up
        result = train(spec, out=out, stream=io.StringIO(), base_dir=data_file.parent)
    stamps = [started] + [r["t"] for r in result.history]
    return [args.samples / (b - a) for a, b in itertools.pairwise(stamps)], result.history[-1]["train_loss"]


def run_seed_loop(
    case: Case, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace, precision: str, device: torch.device
) -> tuple[list[float], float]:
    """Seed 003's loop: a DataLoader, per-batch copies, .item() every step."""
    model = model_of(case, device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loader = DataLoader(
        TensorDataset(x, y), batch_size=args.batch, shuffle=True, generator=torch.Generator().manual_seed(SEED)
    )
    rates, loss_mean = [], float("nan")
    for _ in range(args.epochs):
        start, total, correct = time.perf_counter(), 0.0, 0
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            with _autocast(device, precision):
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
        rates.append(args.samples / (time.perf_counter() - start))
        loss_mean = total / args.samples
    return rates, loss_mean


def run_tuned_loop(
    case: Case, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace, precision: str, device: torch.device
) -> tuple[list[float], float]:
    """Data on the device, no host read per step, fused Adam on CUDA (as netspec's default)."""
    model = model_of(case, device)
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=device.type == "cuda")
    xd, yd = x.to(device), y.to(device)
    g = torch.Generator().manual_seed(SEED)
    rates, loss_mean = [], float("nan")
    for _ in range(args.epochs):
        _sync(device)
        start = time.perf_counter()
        model.train()
        # the generator calls of a shuffling DataLoader (a worker seed, then RandomSampler's whole
        # permutation and the empty slice of one more): the same order as the other contenders
        torch.empty((), dtype=torch.int64).random_(generator=g)
        order = torch.randperm(args.samples, generator=g).to(device)
        torch.randperm(args.samples, generator=g)
        total = torch.zeros((), device=device, dtype=torch.float64)  # summed as netspec sums: float64
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for i in range(0, args.samples, args.batch):
            idx = order[i : i + args.batch]
            xb, yb = xd.index_select(0, idx), yd.index_select(0, idx)
            with _autocast(device, precision):
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * len(idx)
            correct += (out.argmax(1) == yb).sum()
        loss_mean = total.item() / args.samples  # the epoch's one host read
        rates.append(args.samples / (time.perf_counter() - start))
    return rates, loss_mean


def _autocast(device: torch.device, precision: str) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- forward + backward


def fwd_bwd_ratio(case: Case, device: torch.device, batch: int, reps: int) -> tuple[float, float]:
    """Median seconds of forward+backward, compiled spec and hand-written (eval mode at batch 1:
    BatchNorm cannot train on one sample)."""
    x = torch.randn(batch, *case.shape, device=device)
    times = []
    for model in (model_of(case, device), case.hand().to(device)):
        model.train(batch > 1)
        samples = []
        for i in range(reps + 3):
            _sync(device)
            start = time.perf_counter()
            model(x).float().sum().backward()
            _sync(device)
            if i >= 3:  # warm-up
                samples.append(time.perf_counter() - start)
        times.append(statistics.median(samples))
    return times[0], times[1]


# --------------------------------------------------------------------------- for the startup/compile work


def startup_and_compile(args: argparse.Namespace) -> None:
    """Startup of each command against `import torch` (fresh processes) and in-process compile
    time at 500 and 5,000 nodes: bench_startup.py's measurements, printed in this run."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_startup

    if not args.skip_startup:
        print(f"\nstartup (median of {args.startup_runs} fresh processes each):")
        print(bench_startup.startup_table(bench_startup.startup_times(args.startup_runs)), flush=True)
    if not args.skip_compile:
        print("\ncompile time, in process:")
        print(bench_startup.compile_table(bench_startup.compile_times(1 if args.quick else 3)))


# --------------------------------------------------------------------------- main


def bench_small(name: str, args: argparse.Namespace, device: torch.device, tmp: Path) -> list[Row]:
    """The digits MLP (CSV) or CNN (PNG folder), one thread, fp32 (bench_small.py). Besides the
    medians over every round, each round's median epoch is compared with the tuned loop's of the
    same round (they ran seconds apart), and the median of those paired ratios is printed: on a
    machine whose load drifts, the steadier figure. So is each epoch's CPU time (the process's,
    netspec's writer thread included): where other processes share the cores, time is mostly
    waiting for them, CPU time much less so."""
    import bench_small

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    epochs, rounds = max(args.epochs, 6 if args.quick else 10), max(args.rounds, 5 if args.quick else 9)  # ms epochs
    try:
        folder = tmp / name
        folder.mkdir()
        runs = bench_small.small_contenders(name, folder, epochs, device)
        timed: dict[str, list[list[float]]] = {contender: [] for contender, _ in runs}  # per round
        cpu: dict[str, list[list[float]]] = {contender: [] for contender, _ in runs}  # the same, CPU seconds
        losses: dict[str, float] = {}
        for r in range(rounds):  # each round in another order: a load that comes and goes hits all alike
            for contender, fn in runs[r % len(runs) :] + runs[: r % len(runs)]:
                seconds, cpu_seconds, losses[contender] = fn()
                timed[contender].append(seconds[1:] or seconds)  # the first epoch warms up
                cpu[contender].append(cpu_seconds[1:] or cpu_seconds)
                ms = " ".join(f"{1e3 * t:.1f}" for t in seconds)
                print(f"  {name} fp32 {contender}: {ms} ms/epoch", file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(threads)
    for kind, seconds in (("time", timed), ("CPU", cpu)):  # CPU: steadier than time where others share the cores
        for c, _ in runs:
            paired = [statistics.median(a) / statistics.median(b) for a, b in zip(seconds[c], seconds["tuned loop"])]
            shown = " ".join(f"{p:.2f}" for p in paired)
            PAIRED.append(f"{name:5} {c:28} {kind:>4}/tuned per round: {shown}; median {statistics.median(paired):.2f}")
    n = bench_small.TRAIN
    return [
        Row(name, "fp32", c, n / statistics.median(list(itertools.chain.from_iterable(timed[c]))), losses[c])
        for c, _ in runs
    ]


PAIRED: list[str] = []  # the small cases' paired ratios, printed after the table


def bench_case(name: str, args: argparse.Namespace, device: torch.device, tmp: Path) -> list[Row]:
    if name in ("mlp", "png"):
        return bench_small(name, args, device, tmp)
    case = CASES[name]
    samples = args.samples or (case.quick_samples if args.quick else 61440)
    args = argparse.Namespace(**{**vars(args), "samples": samples})
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.samples, *case.shape, generator=g)
    y = torch.randint(10, (args.samples,), generator=g)
    data_file = tmp / f"{name}.pt"
    torch.save({"image": x, "label": y}, data_file)
    rows = []
    for precision in args.precisions:
        p = precision  # bound as a default below, so each closure keeps this round's precision
        runs = [
            ("netspec run", lambda p=p: run_netspec(case, data_file, args, p, device)),
            ("netspec run, checkpoint at the end", lambda p=p: run_netspec(case, data_file, args, p, device, every=0)),
            ("seed-style loop", lambda p=p: run_seed_loop(case, x, y, args, p, device)),
            ("tuned loop", lambda p=p: run_tuned_loop(case, x, y, args, p, device)),
        ]
        runs += [
            (f"netspec run, compile {m}", lambda m=m, p=p: run_netspec(case, data_file, args, p, device, m))
            for m in args.compile_modes
            if precision in args.compile_precisions
        ]
        timed: dict[str, list[float]] = {contender: [] for contender, _ in runs}
        losses: dict[str, float] = {}
        for r in range(args.rounds):  # each round in another order: a load that comes and goes hits all alike
            for contender, fn in runs[r % len(runs) :] + runs[: r % len(runs)]:
                rates, losses[contender] = fn()
                timed[contender] += rates[1:] or rates  # the first epoch warms up (allocation, autotuning, compiling)
                print(
                    f"  {name} {precision} {contender}: " + " ".join(f"{rate:,.0f}" for rate in rates) + " samples/s",
                    file=sys.stderr,
                    flush=True,
                )
        rows += [Row(name, precision, c, statistics.median(timed[c]), losses[c]) for c, _ in runs]
    return rows


def print_table(rows: list[Row]) -> None:
    """samples/s (median epoch); speed against the tuned loop; epoch time against the tuned loop
    and, for the image folder, against torchvision's ImageFolder + DataLoader (goals: <= 1.05, <= 1.0)."""
    head = f"{'model':10}{'precision':11}{'contender':34}{'samples/s':>12}{'x tuned':>9}{'time/tuned':>12}"
    print(f"\n{head}{'time/ImageFolder':>18}{'final loss':>13}")
    for r in rows:
        same = {t.contender: t for t in rows if (t.model, t.precision) == (r.model, r.precision)}
        tuned, folder = same["tuned loop"], same.get("ImageFolder + DataLoader")
        vs_folder = f"{folder.samples_s / r.samples_s:18.2f}" if folder is not None else " " * 18
        loss = f"{r.loss:13.6f}" if r.loss is not None else ""
        ratio = r.samples_s / tuned.samples_s
        print(
            f"{r.model:10}{r.precision:11}{r.contender:34}{r.samples_s:12,.0f}{ratio:9.2f}{1 / ratio:12.2f}{vs_folder}{loss}"
        )


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: the CNN and resnet18 on 2 CPU cores in minutes")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda")
    p.add_argument("--models", default="mlp,png,cnn,resnet18", help="mlp and png: bench_small.py's digits cases")
    p.add_argument("--precisions", default=None, help="fp32,bf16 (default: bf16 where the device supports it)")
    p.add_argument(
        "--compile-modes",
        default=None,
        help="extra netspec rows with train.compile (default on CUDA: reduce-overhead; none on the CPU)",
    )
    p.add_argument(
        "--compile-precisions",
        default="fp32",
        help="precisions that get the compile rows (each compile takes a minute or two on a GPU)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="training samples (default 61440; quick: 2048 for the CNN, 512 for resnet18)",
    )
    p.add_argument("--batch", type=int, default=256)
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per contender, the first dropped (default 4; quick 3)"
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="runs of every contender, in rotating order (default 1; quick 2)"
    )
    p.add_argument("--reps", type=int, default=None, help="forward+backward repetitions (default 20; quick 5)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--startup-runs", type=int, default=None, help="fresh processes per command (default 5; quick 3)")
    p.add_argument("--skip-startup", action="store_true", help="leave out the startup times")
    p.add_argument("--skip-compile", action="store_true", help="leave out the compile times")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    args.device = torch.device("cuda" if cuda else "cpu")
    args.models = args.models.split(",")
    if args.precisions is None:
        bf16 = (cuda and torch.cuda.is_bf16_supported()) or (not cuda and not args.quick)
        args.precisions = "fp32,bf16" if bf16 else "fp32"
    args.precisions = args.precisions.split(",")
    if args.compile_modes is None:
        args.compile_modes = "reduce-overhead" if cuda else ""
    args.compile_modes = [m for m in args.compile_modes.split(",") if m]
    args.compile_precisions = args.compile_precisions.split(",")
    args.startup_runs = args.startup_runs or (3 if args.quick else 5)
    args.epochs = args.epochs or (3 if args.quick else 4)
    args.reps = args.reps or (5 if args.quick else 20)
    args.rounds = args.rounds or (2 if args.quick else 1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    device = args.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(
        f"device: {name}; torch {torch.__version__}; {args.samples or 'default'} samples, batch {args.batch}, "
        f"{args.epochs} epochs (first dropped) x {args.rounds} rounds; {', '.join(args.precisions)}"
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            rows += bench_case(model, args, device, Path(tmp))
    print_table(rows)
    if PAIRED:
        print(
            "\nsmall cases, each round's median epoch (time, then CPU time) against the tuned loop's in the same round:"
        )
        print("\n".join(PAIRED))
    print(f"\nforward+backward, compiled spec / hand-written (median of {args.reps}):")
    for model in (m for m in args.models if m in CASES):
        for batch in (1, 64 if args.quick else 256):
            spec_s, hand_s = fwd_bwd_ratio(CASES[model], device, batch, args.reps)
            ms = f"{spec_s * 1e3:9.2f} ms / {hand_s * 1e3:9.2f} ms"
            print(f"  {model:10} batch {batch:<4} {ms} = {spec_s / hand_s:.2f}")
    startup_and_compile(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
