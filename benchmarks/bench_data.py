"""Loading throughput: netspec's in-memory tensor path vs torchvision's per-sample FashionMNIST.

Writes Fashion-MNIST-shaped IDX files (60000 x 28 x 28 random pixels) to a temporary folder,
then times full epochs (shuffle, batch 256) of

* torchvision: ``FashionMNIST(root, transform=ToTensor())`` + ``DataLoader`` -- every sample
  becomes a PIL image and back in a Python loop;
* netspec: ``build_loaders`` on the same files -- decoded once into one tensor, ToTensor applied
  once to the whole tensor, batches cut by indexing;

and prints samples/s side by side with the ratio (goal: at least 3x). Then the same for a
folder of ``--images`` 28x28 grayscale PNGs (10 class folders): torchvision's ``ImageFolder``
(PIL, ``L``) + ToTensor per sample through a DataLoader, against netspec's ``ImageFolder`` source,
which decodes the folder once into one uint8 tensor (goal: faster from the first epoch on).
Run::

    python benchmarks/bench_data.py [--n 60000] [--batch-size 256] [--epochs 2] [--workers 0] [--images 5000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader

from netspec.data import DataSpec, build_loaders


def write_fashion_idx(root: Path, n: int, seed: int = 0) -> None:
    """``root/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` with random content.

    torchvision wants the test files present too; they get 100 samples.
    """
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", n), ("t10k", 100)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, (count,), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([0x803, count, 28, 28], dtype=">u4").tobytes() + images.tobytes()
        )  # magic 2051, dims
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([0x801, count], dtype=">u4").tobytes() + labels.tobytes()
        )  # magic 2049


def time_epochs(loader: Iterable, epochs: int) -> tuple[float, float, int]:
    """(first, median) seconds per epoch over ``epochs`` epochs, and the samples in one epoch."""
    times, samples = [], 0
    for _ in range(epochs):
        start, samples = time.perf_counter(), 0
        for batch in loader:
            target = batch[1]
            samples += len(target)
        times.append(time.perf_counter() - start)
    return times[0], float(np.median(times)), samples


def main() -> None:
    """Run both paths on the same files and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60000, help="samples in the synthetic training set")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per path (the median is reported)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the torchvision path")
    parser.add_argument("--images", type=int, default=5000, help="PNGs in the image-folder comparison (0: none)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_fashion_idx(root, args.n)

        start = time.perf_counter()
        tv = torchvision.datasets.FashionMNIST(
            str(root), train=True, download=False, transform=torchvision.transforms.ToTensor()
        )
        tv_loader = DataLoader(
            tv,
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            generator=torch.Generator().manual_seed(0),
        )
        tv_setup = time.perf_counter() - start
        tv_first, tv_epoch, tv_samples = time_epochs(tv_loader, args.epochs)

        start = time.perf_counter()
        spec = DataSpec.model_validate(
            {
                "train": {"source": "FashionMNIST", "root": ".", "split": "train"},
                "transforms": ["ToTensor"],
                "batch_size": args.batch_size,
            }
        )
        ours = build_loaders(spec, base_dir=root, input_names=["image"], seed=0)
        ours_setup = time.perf_counter() - start
        ours_first, ours_epoch, ours_samples = time_epochs(ours.train, args.epochs)

        # Same data, same values: the comparison is like for like.
        first_tv = next(iter(DataLoader(tv, batch_size=8)))[0]
        plain = build_loaders(
            spec.model_copy(update={"loader": spec.loader.model_copy(update={"shuffle": False})}),
            base_dir=root,
            input_names=["image"],
            seed=0,
        )
        assert torch.equal(next(iter(plain.train))[0]["image"][:8], first_tv)

    assert tv_samples == ours_samples == args.n
    rate_tv, rate_ours = args.n / tv_epoch, args.n / ours_epoch
    print(
        f"Fashion-MNIST-shaped data: {args.n} x 1 x 28 x 28 uint8, batch {args.batch_size}, shuffled, "
        f"ToTensor; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'path':<52}{'setup s':>9}{'1st epoch s':>13}{'epoch s':>9}{'samples/s':>12}")
    print(
        f"{'torchvision FashionMNIST + DataLoader (' + str(args.workers) + ' workers)':<52}"
        f"{tv_setup:>9.2f}{tv_first:>13.3f}{tv_epoch:>9.3f}{rate_tv:>12,.0f}"
    )
    print(
        f"{'netspec in-memory tensor path':<52}{ours_setup:>9.2f}{ours_first:>13.3f}{ours_epoch:>9.3f}"
        f"{rate_ours:>12,.0f}"
    )
    print(f"ratio (netspec / torchvision samples/s, median epoch): {rate_ours / rate_tv:.1f}x  (goal >= 3x)")
    first_epoch = (tv_setup + tv_first) / (ours_setup + ours_first)
    print(f"ratio for setup + first epoch (netspec decodes and transforms once, up front): {first_epoch:.1f}x")
    if args.images:
        image_folder_comparison(args)


def image_folder_comparison(args: argparse.Namespace) -> None:
    """A folder of PNGs: torchvision's ImageFolder + DataLoader against netspec's source."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "png"
        pixels = np.random.default_rng(0).integers(0, 256, (args.images, 28, 28), dtype=np.uint8)
        for i, image in enumerate(pixels):
            (root / str(i % 10)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(root / str(i % 10) / f"{i:06d}.png")

        def gray(path: str) -> Image.Image:
            with Image.open(path) as im:
                return im.convert("L")

        start = time.perf_counter()
        tv = torchvision.datasets.ImageFolder(str(root), loader=gray, transform=torchvision.transforms.ToTensor())
        tv_loader = DataLoader(tv, args.batch_size, shuffle=True, num_workers=args.workers)
        rows = [("torchvision ImageFolder + DataLoader", time.perf_counter() - start, tv_loader)]
        start = time.perf_counter()
        spec = DataSpec.model_validate(
            {"train": {"source": "ImageFolder", "root": "png"}, "batch_size": args.batch_size}
        )
        ours = build_loaders(spec, base_dir=Path(tmp), input_names=["image"], seed=0)
        rows.append(("netspec ImageFolder (decoded once)", time.perf_counter() - start, ours.train))
        print(f"\na folder of {args.images} 28x28 grayscale PNGs, batch {args.batch_size}, shuffled, ToTensor")
        print(f"{'path':<52}{'setup s':>9}{'1st epoch s':>13}{'epoch s':>9}{'samples/s':>12}")
        rates = []
        for name, setup, loader in rows:
            first, epoch, samples = time_epochs(loader, args.epochs)
            assert samples == args.images
            rates.append(samples / epoch)
            print(f"{name:<52}{setup:>9.2f}{first:>13.3f}{epoch:>9.3f}{rates[-1]:>12,.0f}")
        print(f"ratio (netspec / torchvision samples/s, median epoch): {rates[1] / rates[0]:.1f}x")


if __name__ == "__main__":
    main()
