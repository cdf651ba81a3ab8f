"""Time per epoch: netspec's runner vs the plain PyTorch loop of seed 003, side by side.

Same model class, same in-memory data, same optimizer (Adam 1e-3), same batch size; both
compute the train loss and the validation loss and accuracy every epoch (the seed's loop),
the runner also writes metrics.jsonl and last.pt/best.pt every epoch. The first epoch of
every run is a warm-up and is dropped; repetitions alternate which side goes first.

    PYTHONPATH=src python benchmarks/bench_loop.py                 # 003 Fashion-MNIST CNN
    PYTHONPATH=src python benchmarks/bench_loop.py --model lenet --batch 256

Goal: runner / plain <= 1.05.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from netspec.training.hardware import set_seed
from netspec.training.loop import train
from netspec.training.options import TrainingSections


class FashionCNN(nn.Module):
    """Seed 003's Fashion-MNIST net with its bugs fixed (582,026 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2, stride=2), nn.Dropout(0.3),
            nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2, stride=2), nn.Dropout(0.3),
        )
        self.fc = nn.Sequential(nn.Linear(64 * 4 * 4, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))  # (N, 64*4*4) -> (N, 10)


class LeNet(nn.Module):
    """Seed 003's LeNet on 32x32 inputs (61,706 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc3(F.relu(self.fc2(x)))


MODELS = {"cnn": (FashionCNN, 28), "lenet": (LeNet, 32)}


class Batches:
    """In-memory batches, shuffled per epoch by a seeded generator (like data.py's TensorLoader)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, shuffle: bool) -> None:
        self.x, self.y, self.batch, self.shuffle, self.epoch = x, y, batch, shuffle, 0
        self.dataset_size = len(x)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch)

    def __iter__(self):
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.epoch)) if self.shuffle else None
        for i in range(0, len(self.x), self.batch):
            idx = order[i : i + self.batch] if order is not None else slice(i, i + self.batch)
            yield {"image": self.x[idx]}, self.y[idx]


@dataclass
class Loaders:
    train: Batches
    val: Batches
    test: Any = None
    info: dict = field(default_factory=dict)


class Spec(TrainingSections):
    name: str = "bench"
    inputs: dict[str, Any] = {"image": {}}
    data: Any = None

    @property
    def output_names(self) -> list[str]:
        return ["logits"]


def make_data(size: int, n_train: int, n_val: int, batch: int) -> Loaders:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n_train + n_val, 1, size, size, generator=g)
    y = torch.randint(10, (n_train + n_val,), generator=g)
    return Loaders(Batches(x[:n_train], y[:n_train], batch, True), Batches(x[n_train:], y[n_train:], batch, False))


def runner_epochs(model: nn.Module, data: Loaders, epochs: int, out: Path) -> tuple[list[float], list[float]]:
    """Per-epoch wall time between consecutive epoch ends (all the runner does), and the
    runner's own epoch time (train + val, without writing the checkpoint)."""
    spec = Spec.model_validate({"loss": "CrossEntropyLoss", "optimizer": {"Adam": {"lr": 1e-3}},
                                "train": {"epochs": epochs, "metrics": ["accuracy"], "progress": "line", "device": "cpu"}})
    wall0 = time.time()
    result = train(spec, model=model, loaders=data, out=out, stream=io.StringIO())
    ends = [wall0] + [r["t"] for r in result.history]
    return [b - a for a, b in zip(ends, ends[1:])], [r["time_s"] for r in result.history]


def plain_epochs(model: nn.Module, data: Loaders, epochs: int) -> list[float]:
    """Seed 003's train(epoch) + val(epoch), timed per epoch."""
    set_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        data.train.set_epoch(epoch)
        train_loss = 0.0
        for inputs, label in data.train:
            output = model(inputs["image"])
            loss = F.cross_entropy(output, label)
            loss.backward()
            opt.step()
            opt.zero_grad()
            train_loss += loss.item() * label.size(0)
        train_loss /= data.train.dataset_size
        model.eval()
        val_loss, correct = 0.0, 0
        with torch.no_grad():
            for inputs, label in data.val:
                output = model(inputs["image"])
                val_loss += F.cross_entropy(output, label).item() * label.size(0)
                correct += (output.argmax(1) == label).sum().item()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--train", type=int, default=2048, help="training samples")
    parser.add_argument("--val", type=int, default=512, help="validation samples")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is dropped)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions, alternating which side runs first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cls, size = MODELS[args.model]
    data = make_data(size, args.train, args.val, args.batch)
    print(f"{args.model}: {sum(p.numel() for p in cls().parameters()):,} parameters, {len(data.train)} train + "
          f"{len(data.val)} val batches of {args.batch}, {args.epochs} epochs x {args.reps} reps, "
          f"{args.threads} threads, torch {torch.__version__}")
    runner, runner_compute, plain = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for side in (("runner", "plain") if rep % 2 == 0 else ("plain", "runner")):
                torch.manual_seed(rep)
                model = cls()
                if side == "runner":
                    wall, compute = runner_epochs(model, data, args.epochs, Path(tmp) / f"r{rep}")
                    runner += wall[1:]
                    runner_compute += compute[1:]
                    print(f"  rep {rep} runner: " + " ".join(f"{t:.3f}" for t in wall) + "  (first dropped)")
                else:
                    times = plain_epochs(model, data, args.epochs)
                    plain += times[1:]
                    print(f"  rep {rep} plain:  " + " ".join(f"{t:.3f}" for t in times) + "  (first dropped)")
    r, rc, p = statistics.median(runner), statistics.median(runner_compute), statistics.median(plain)
    print(f"\n{'':28}{'median s/epoch':>16}{'mean s/epoch':>14}{'ratio':>8}")
    print(f"{'plain PyTorch loop':28}{p:16.4f}{statistics.mean(plain):14.4f}{1.0:8.3f}")
    print(f"{'runner (all, incl. ckpt)':28}{r:16.4f}{statistics.mean(runner):14.4f}{r / p:8.3f}")
    print(f"{'runner (train+val only)':28}{rc:16.4f}{statistics.mean(runner_compute):14.4f}{rc / p:8.3f}")
    print(f"goal <= 1.05: {'met' if r / p <= 1.05 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
