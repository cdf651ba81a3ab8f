"""Tiny data files for tests: IDX (MNIST layout), CSV, npz, .pt, image folders.

Nothing can be downloaded here, so every test that reads data writes its own files with these
helpers (into pytest's ``tmp_path``). Other test modules import them::

    from datafiles import write_mnist, source_example
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

# IDX type bytes by numpy dtype (big-endian on disk)
_IDX_TYPE = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of an array: magic (0, 0, type, ndim), big-endian dims, big-endian data.

    >>> idx_bytes(np.array([1, 2], dtype=np.uint8))[:8].hex()
    '0000080100000002'
    """
    type_byte = _IDX_TYPE[array.dtype]
    header = struct.pack(">BBBB", 0, 0, type_byte, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """Write an IDX file (gzipped, with ``.gz`` appended, when ``gz``); returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def mnist_arrays(n: int, *, seed: int = 0, size: int = 28, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images ``(n, size, size)`` and labels ``(n,)``."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.integers(0, classes, (n,), dtype=np.uint8))


def write_mnist(
    root: Path, name: str = "FashionMNIST", *, n_train: int = 64, n_test: int = 32, gz: bool = False, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``root/<name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` as torchvision expects.

    Returns ``{"train": (images, labels), "test": (images, labels)}``.
    """
    raw = root / name / "raw"
    out = {}
    for split, prefix, n, s in (("train", "train", n_train, seed), ("test", "t10k", n_test, seed + 1)):
        images, labels = mnist_arrays(n, seed=s)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)
        out[split] = (images, labels)
    return out


def write_csv(
    path: Path, labels: np.ndarray, features: np.ndarray, *, header: bool = True, label_name: str = "label"
) -> Path:
    """Write ``label, f0, f1, ...`` rows (seed 003's fashion-mnist_train.csv layout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    if header:
        lines.append(",".join([label_name] + [f"pixel{i + 1}" for i in range(features.shape[1])]))
    for y, row in zip(labels, features):
        lines.append(",".join([str(y)] + [str(v) for v in row]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    """Write named arrays to an ``.npz`` file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def write_pt(path: Path, obj: Any) -> Path:
    """``torch.save`` an object (a dict/list of tensors, or a tensor)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog"),
    *,
    per_class: int = 3,
    size: tuple[int, int] = (12, 10),
    seed: int = 0,
) -> Path:
    """``root/<class>/<i>.png`` RGB images of ``size`` (W, H); returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def source_example(name: str, tmp: Path) -> dict[str, Any]:
    """A small working spec entry for source ``name``, writing any files it needs under ``tmp``.

    Every registered source must have one: the registry-wide tests load each of them.
    """
    if name in ("MNIST", "FashionMNIST", "KMNIST"):
        write_mnist(tmp / "mnist", name, n_train=20, n_test=10)
        return {"source": name, "root": str(tmp / "mnist"), "split": "train"}
    if name == "EMNIST":
        images, labels = mnist_arrays(20, classes=47)
        raw = tmp / "emnist" / "EMNIST" / "raw"
        write_idx(raw / "emnist-balanced-train-images-idx3-ubyte", images)
        write_idx(raw / "emnist-balanced-train-labels-idx1-ubyte", labels)
        return {"source": "EMNIST", "root": str(tmp / "emnist"), "split": "train", "variant": "balanced"}
    if name in ("CIFAR10", "CIFAR100"):
        return write_cifar(tmp / "cifar", name)
    if name == "ImageFolder":
        write_image_folder(tmp / "images", size=(8, 8))
        return {"source": "ImageFolder", "root": str(tmp / "images")}
    if name == "csv":
        rng = np.random.default_rng(0)
        write_csv(tmp / "t.csv", rng.integers(0, 3, 12), rng.integers(0, 256, (12, 16)))
        return {"source": "csv", "path": str(tmp / "t.csv"), "image_shape": [1, 4, 4], "scale": "1/255"}
    if name == "tensors":
        write_npz(tmp / "t.npz", x=np.random.rand(12, 3).astype(np.float32), y=np.arange(12) % 2)
        return {"source": "tensors", "path": str(tmp / "t.npz")}
    return {"source": name}  # generated sources: the defaults work


def write_cifar(root: Path, name: str = "CIFAR10", n: int = 10) -> dict[str, Any]:
    """CIFAR-layout pickles with random images (they fail torchvision's MD5 check: tests patch it)."""
    import pickle

    import torchvision.datasets as tvd

    cls = getattr(tvd, name)
    folder = root / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    key = "labels" if name == "CIFAR10" else "fine_labels"
    for file, _ in cls.train_list + cls.test_list:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: list(rng.integers(0, 10, n))}
        with open(folder / file, "wb") as f:
            pickle.dump(entry, f)
    meta_key = cls.meta["key"]
    with open(folder / cls.meta["filename"], "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(10 if name == "CIFAR10" else 100)]}, f)
    return {"source": name, "root": str(root), "split": "train"}


def write_sklearn_csv(folder: Path, name: str, test_fraction: float = 0.25, seed: int = 0) -> dict[str, Any]:
    """scikit-learn's bundled ``breast_cancer`` or ``wine`` set (shipped inside scikit-learn, never
    downloaded) as a user writes it: ``<name>_train.csv`` and ``<name>_test.csv``, a header with the
    feature names, the class in a ``target`` column first. Returns the arrays as written
    (``x_train``, ``y_train``, ``x_test``, ``y_test``; float64 features, int64 classes)."""
    from sklearn import datasets

    bunch = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[name]()
    order = np.random.default_rng(seed).permutation(len(bunch.target))
    n_test = round(len(order) * test_fraction)
    header = ",".join(["target"] + [f.replace(" ", "_") for f in bunch.feature_names])
    out: dict[str, Any] = {}
    for split, rows in (("train", order[n_test:]), ("test", order[:n_test])):
        x, y = bunch.data[rows], bunch.target[rows].astype(np.int64)
        lines = [header] + [",".join([str(t)] + [repr(float(v)) for v in r]) for t, r in zip(y, x)]
        (folder / f"{name}_{split}.csv").write_text("\n".join(lines) + "\n")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return out
