"""The small cases of bench_speed.py, where the host's work per step shows: scikit-learn's digits
(1,437 training samples of the 1,797, seeded) as a CSV file for a 64-128-64-10 MLP with dropout,
and as a folder of 8x8 grayscale PNGs for a small CNN; batch 32, SGD with momentum, StepLR, the
accuracy metric, one thread (issue 21).

Contenders, each training the same model from the same initial weights on the same batches in
the same order, and each computing the loss and accuracy and saving a checkpoint every epoch:

* ``netspec run``: ``netspec.training.train`` of the spec (its data path: the CSV file, or the
  image folder decoded once into memory); an epoch is the time between two epoch records;
* ``seed-style loop``: a DataLoader over a TensorDataset, ``.item()`` every step;
* ``tuned loop``: the data pre-batched by indexing one tensor, the loss and accuracy summed on
  the device, no host read per step, the fused optimizer where the device has one;
* for the PNG folder, ``ImageFolder + DataLoader``: torchvision's ImageFolder (PIL, ``L``) and
  ToTensor per sample through a DataLoader, with the tuned loop's step;
* ``tuned loop, again``: the tuned loop once more, in its own turn of each round. Its ratio to
  the tuned loop is the same code against itself: the machine's noise, the yardstick for every
  other ratio (on a shared machine a few percent either way);
* ``tuned, resumable checkpoint``: the tuned loop whose checkpoint also holds what netspec's
  holds for an exact resume (the scheduler's state, the Python, numpy and torch RNG states),
  saved as a hand-written loop would: the cost of a resumable checkpoint, apart from the loop's.

Run through bench_speed.py (``--models mlp,png``); on its own, ``python benchmarks/bench_small.py``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import netspec
from netspec.training.hardware import set_seed
from netspec.training.loop import train

SEED, BATCH, LR, MOMENTUM, STEP, GAMMA, TRAIN = 0, 32, 0.05, 0.9, 10, 0.5, 1437

MLP = {
    "netspec": 1,
    "name": "digits_mlp",
    "inputs": {"x": [64]},
    "nodes": [
        {"Linear": {"out_features": 128}},
        {"ReLU": {}},
        {"Dropout": 0.2},
        {"Linear": {"out_features": 64}},
        {"ReLU": {}},
        {"logits": {"Linear": {"out_features": 10}}},
    ],
    "outputs": ["logits"],
}
CNN = {
    "netspec": 1,
    "name": "digits_cnn",
    "inputs": {"image": [1, 8, 8]},
    "nodes": [
        {"Conv2d": {"out_channels": 16, "kernel_size": 3, "padding": 1}},
        {"ReLU": {}},
        {"MaxPool2d": 2},
        {"Conv2d": {"out_channels": 32, "kernel_size": 3, "padding": 1}},
        {"ReLU": {}},
        {"flatten": {}},
        {"logits": {"Linear": {"out_features": 10}}},
    ],
    "outputs": ["logits"],
}


def write_digits(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """digits.csv (label, 64 pixels of 0..16) and png/<class>/<i>.png (8x8, L, pixel * 255 // 16)
    for the training samples; returns the PNG pixels as the ImageFolder order reads them,
    (N, 1, 8, 8) uint8, and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.random.default_rng(SEED).permutation(len(digits.target))[:TRAIN]
    pixels, labels = digits.data[keep].astype(np.int64), digits.target[keep]
    header = "label," + ",".join(f"p{i}" for i in range(64))
    table = np.column_stack([labels, pixels])
    np.savetxt(folder / "digits.csv", table, fmt="%d", delimiter=",", header=header, comments="")
    images = (pixels * 255 // 16).astype(np.uint8).reshape(-1, 8, 8)
    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / "png" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / "png" / str(label) / f"{i:04d}.png")
    order = sorted(range(TRAIN), key=lambda i: (str(labels[i]), f"{i:04d}.png"))  # ImageFolder's order
    return torch.from_numpy(images[order]).unsqueeze(1), torch.from_numpy(labels[order])


def small_spec(name: str, folder: Path, epochs: int, device: str) -> Any:
    """The case's spec with its data and training sections."""
    model = MLP if name == "mlp" else CNN
    source = (
        {"source": "csv", "path": str(folder / "digits.csv"), "scale": "1/16"}
        if name == "mlp"
        else {"source": "ImageFolder", "root": str(folder / "png")}
    )
    return netspec.load_spec(
        {
            **model,
            "data": {"train": source, "batch_size": BATCH},
            "loss": "CrossEntropyLoss",
            "optimizer": {"SGD": {"lr": LR, "momentum": MOMENTUM}},
            "scheduler": {"StepLR": {"step_size": STEP, "gamma": GAMMA}},
            "train": {"epochs": epochs, "seed": SEED, "device": device, "metrics": ["accuracy"], "progress": "line"},
        }
    )


# --------------------------------------------------------------------------- the contenders


def run_netspec(spec: Any, folder: Path) -> tuple[list[float], list[float], float]:
    """Seconds of each epoch (the first includes the set-up), the process's CPU seconds of each
    (stamped as each epoch's record is handed over: the writer thread's work included) and the
    last epoch's loss."""
    cpu = [time.process_time()]
    with tempfile.TemporaryDirectory() as out:
        started = time.time()
        result = train(
            spec, out=out, stream=io.StringIO(), base_dir=folder, on_epoch=lambda _: cpu.append(time.process_time())
        )
    stamps = [started] + [r["t"] for r in result.history]
    wall = [b - a for a, b in itertools.pairwise(stamps)]
    return wall, [b - a for a, b in itertools.pairwise(cpu)], result.history[-1]["train_loss"]


def _setup(spec: Any, device: torch.device, fused: bool) -> tuple[Any, Any, Any]:
    set_seed(SEED)
    model = netspec.build_model(spec).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, fused=fused or None)
    return model, opt, torch.optim.lr_scheduler.StepLR(opt, STEP, GAMMA)


def _checkpoint(model: Any, opt: Any, epoch: int, path: Path, sched: Any = None) -> None:
    """The weights and the optimizer's state; with ``sched``, also what an exact resume needs
    besides (the scheduler's state and the RNG states), as a hand-written loop would save them."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}
    if sched is not None:
        state["scheduler"] = sched.state_dict()
        state["rng"] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save(state, path)


def run_seed_loop(spec: Any, x: torch.Tensor, y: torch.Tensor, epochs: int, device: torch.device, ckpt: Path) -> Any:
    """A DataLoader, per-batch copies, .item() every step, a checkpoint every epoch."""
    model, opt, sched = _setup(spec, device, False)
    loader = DataLoader(TensorDataset(x, y), BATCH, shuffle=True, generator=torch.Generator().manual_seed(SEED))
    times, cpu, loss_mean = [], [], float("nan")
    for epoch in range(epochs):
        start, cpu_start, total, correct = time.perf_counter(), time.process_time(), 0.0, 0
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
        sched.step()
        _checkpoint(model, opt, epoch, ckpt)
        loss_mean = total / len(x)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return times, cpu, loss_mean


def _tuned_epochs(
    spec: Any,
    batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    n: int,
    epochs: int,
    device: Any,
    ckpt: Path,
    mark: Callable[[int, str], None] | None = None,
    resumable: bool = False,
) -> tuple[list[float], list[float], float]:
    """The tuned step over ``batches()``: sums on the device, one host read an epoch; with
    ``resumable``, its checkpoint holds the scheduler's and the RNG states too.
    ``mark(epoch, where)`` is called at each epoch's "start", after its "steps" and at its "end"
    (count_instructions.py measures between them)."""
    model, opt, sched = _setup(spec, device, device.type == "cuda")
    times, cpu, loss_mean = [], [], float("nan")
    mark = mark or (lambda epoch, where: None)
    for epoch in range(epochs):
        _sync(device)
        mark(epoch, "start")
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train()
        total = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for xb, yb in batches():
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * len(yb)
            correct += (out.argmax(1) == yb).sum()
        mark(epoch, "steps")
        sched.step()
        loss_mean, _ = total.item() / n, correct.item() / n  # the epoch's host reads
        _checkpoint(model, opt, epoch, ckpt, sched if resumable else None)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        mark(epoch, "end")
    return times, cpu, loss_mean


def run_tuned_loop(
    spec: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    device: torch.device,
    ckpt: Path,
    mark: Callable[[int, str], None] | None = None,
    resumable: bool = False,
) -> Any:
    """The data on the device, batches cut by indexing in the DataLoader's order."""
    xd, yd, g = x.to(device), y.to(device), torch.Generator().manual_seed(SEED)

    def batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        # a shuffling DataLoader's draws: a worker seed, RandomSampler's permutation, an empty one more
        torch.empty((), dtype=torch.int64).random_(generator=g)
        order = torch.randperm(len(x), generator=g).to(device)
        torch.randperm(len(x), generator=g)
        return ((xd.index_select(0, idx), yd.index_select(0, idx)) for idx in order.split(BATCH))

    return _tuned_epochs(spec, batches, len(x), epochs, device, ckpt, mark, resumable)


def run_image_folder(spec: Any, root: Path, epochs: int, device: torch.device, ckpt: Path) -> Any:
    """torchvision's ImageFolder (PIL, converted to L) + ToTensor per sample, through a DataLoader."""
    from PIL import Image
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import ToTensor

    def gray(path: str) -> Image.Image:
        with Image.open(path) as im:
            return im.convert("L")

    folder = ImageFolder(str(root), loader=gray, transform=ToTensor())
    loader = DataLoader(folder, BATCH, shuffle=True, generator=torch.Generator().manual_seed(SEED))

    def batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return ((xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)) for xb, yb in loader)

    return _tuned_epochs(spec, batches, len(folder), epochs, device, ckpt)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- a case, interleaved


def small_contenders(name: str, folder: Path, epochs: int, device: torch.device) -> list[tuple[str, Callable]]:
    """(contender, a function returning its epoch seconds, their CPU seconds and its final loss)
    for ``mlp`` or ``png``."""
    images, labels = write_digits(folder)
    spec = small_spec(name, folder, epochs, str(device))
    if name == "mlp":
        table = np.loadtxt(folder / "digits.csv", delimiter=",", skiprows=1, dtype=np.float32)
        x, y = torch.from_numpy(table[:, 1:] / 16), torch.from_numpy(table[:, 0]).long()
    else:
        x, y = images.float() / 255, labels  # ToTensor's values
    ckpt = folder / f"{name}_checkpoint.pt"
    runs = [
        ("netspec run", lambda: run_netspec(spec, folder)),
        ("seed-style loop", lambda: run_seed_loop(spec, x, y, epochs, device, ckpt)),
        ("tuned loop", lambda: run_tuned_loop(spec, x, y, epochs, device, ckpt)),
        ("tuned loop, again", lambda: run_tuned_loop(spec, x, y, epochs, device, ckpt)),  # the noise
        ("tuned, resumable checkpoint", lambda: run_tuned_loop(spec, x, y, epochs, device, ckpt, resumable=True)),
    ]
    if name == "png":
        runs.append(("ImageFolder + DataLoader", lambda: run_image_folder(spec, folder / "png", epochs, device, ckpt)))
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp,png")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_speed

    return bench_speed.main(
        [
            "--models",
            args.models,
            "--epochs",
            str(args.epochs),
            "--rounds",
            str(args.rounds),
            "--skip-startup",
            "--skip-compile",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
