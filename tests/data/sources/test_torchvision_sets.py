"""netspec.data.sources.torchvision_sets: the MNIST family (IDX files) and CIFAR, from tiny files."""

from __future__ import annotations

import torch
import torchvision
from torch.utils.data import DataLoader

from ..helpers import batches, build, data_error, same_batches
from datafiles import write_cifar, write_mnist


def test_fashion_mnist_matches_torchvision(tmp_path):
    arrays = write_mnist(tmp_path, "FashionMNIST", n_train=40, n_test=20)
    tv = torchvision.datasets.FashionMNIST(
        str(tmp_path), train=True, download=False, transform=torchvision.transforms.ToTensor()
    )
    loaders = build(
        {
            "train": {"source": "FashionMNIST", "root": ".", "split": "train"},
            "test": {"source": "FashionMNIST", "root": ".", "split": "test"},
            "batch_size": 16,
            "loader": {"shuffle": False},
        },
        tmp_path,
    )
    assert loaders.info["train"]["path"].startswith("in memory")
    assert loaders.info["classes"] == tv.classes and loaders.info["num_classes"] == 10
    ref = list(DataLoader(tv, batch_size=16))
    ours = batches(loaders.train)
    same_batches(ours, ref, names=("image",))  # ToTensor default == torchvision's per-sample ToTensor
    assert loaders.test.dataset_size == 20
    assert torch.equal(next(iter(loaders.test))[1], torch.from_numpy(arrays["test"][1][:16]).long())


def test_gzipped_idx_files(tmp_path):
    arrays = write_mnist(tmp_path / "d", "MNIST", n_train=10, n_test=5, gz=True)
    loaders = build(
        {"train": {"source": "MNIST", "root": "d"}, "batch_size": 10, "transforms": [], "loader": {"shuffle": False}},
        tmp_path,
    )
    inputs, _ = next(iter(loaders.train))
    assert inputs["image"].dtype == torch.uint8 and inputs["image"].shape == (10, 1, 28, 28)
    assert torch.equal(inputs["image"][:, 0], torch.from_numpy(arrays["train"][0]))


def test_missing_mnist_files_name_them(tmp_path):
    err = data_error(build, {"train": {"source": "FashionMNIST", "root": "data/fashion"}}, tmp_path)
    text = str(err)
    assert "data/fashion/FashionMNIST/raw/train-images-idx3-ubyte(.gz)" in text
    assert "train-labels-idx1-ubyte(.gz)" in text and "download: true" in text
    assert err.path == ("data", "train", "root")


def test_download_only_when_allowed(tmp_path, monkeypatch):
    calls = []

    def fake_download(self):
        calls.append(self.root)
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fake_download)
    data_error(build, {"train": {"source": "FashionMNIST", "root": "d"}}, tmp_path)
    assert calls == []
    err = data_error(build, {"train": {"source": "FashionMNIST", "root": "d", "download": True}}, tmp_path)
    assert "downloading FashionMNIST" in str(err) and "no network" in str(err) and len(calls) == 1
    data_error(build, {"train": {"source": "FashionMNIST", "root": "d"}}, tmp_path, allow_download=True)
    assert len(calls) == 2


def test_emnist_variant_files(tmp_path):
    err = data_error(build, {"train": {"source": "EMNIST", "root": ".", "variant": "letters"}}, tmp_path)
    assert "emnist-letters-train-images-idx3-ubyte" in str(err)


def test_cifar(tmp_path, cifar_unchecked):
    entry = write_cifar(tmp_path / "c", "CIFAR10", n=6)
    loaders = build({"train": entry, "batch_size": 8, "transforms": []}, tmp_path)
    inputs, _ = next(iter(loaders.train))
    assert inputs["image"].shape == (8, 3, 32, 32) and inputs["image"].dtype == torch.uint8
    assert loaders.train.dataset_size == 30 and loaders.info["classes"][0] == "class0"


def test_cifar_missing_and_corrupt(tmp_path):
    err = data_error(build, {"train": {"source": "CIFAR10", "root": "c"}}, tmp_path)
    assert "cifar-10-batches-py/data_batch_1" in str(err)
    write_cifar(tmp_path / "c")  # checksums do not match the official files
    err = data_error(build, {"train": {"source": "CIFAR10", "root": "c"}}, tmp_path)
    assert "official" in str(err)


def test_limit_and_separate_val_source(tmp_path):
    write_mnist(tmp_path, "KMNIST", n_train=30, n_test=12)
    loaders = build(
        {
            "train": {"source": "KMNIST", "root": ".", "limit": 10},
            "val": {"source": "KMNIST", "root": ".", "split": "test"},
            "batch_size": 4,
        },
        tmp_path,
    )
    assert loaders.train.dataset_size == 10 and loaders.val.dataset_size == 12 and len(loaders.val) == 3
