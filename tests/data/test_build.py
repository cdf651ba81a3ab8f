"""netspec.data.build: per split, the in-memory or the per-sample path; defaults; the global RNG."""

from __future__ import annotations

import torch

import netspec.data.build
from netspec.data import SampleLoader, TensorLoader

from .helpers import batches, build
from datafiles import write_image_folder, write_mnist


def test_random_transforms_fall_back_and_eval_drops_them(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", n_train=20)
    loaders = build(
        {
            "train": {"source": "FashionMNIST", "root": "."},
            "val": {"fraction": 0.25},
            "transforms": [{"RandomCrop": {"size": 28, "padding": 2}}, "ToTensor"],
        },
        tmp_path,
    )
    assert isinstance(loaders.train, SampleLoader) and isinstance(loaders.val, TensorLoader)
    assert loaders.info["val"]["transforms"] == ["ToTensor"]
    assert next(iter(loaders.train))[0]["image"].shape[1:] == (1, 28, 28)


def test_per_batch_transforms_when_too_big(tmp_path, monkeypatch):
    write_mnist(tmp_path, "MNIST", n_train=20)
    common = {"train": {"source": "MNIST", "root": "."}, "batch_size": 6, "transforms": [{"Resize": 20}, "ToTensor"]}
    once = build(common, tmp_path)
    monkeypatch.setattr(netspec.data.build, "PRECOMPUTE_BYTES", 0)
    per_batch = build(common, tmp_path)
    assert "per batch" in per_batch.info["train"]["path"] and "once" in once.info["train"]["path"]
    for (a, ya), (b, yb) in zip(batches(once.train), batches(per_batch.train), strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(ya, yb)


def test_build_does_not_touch_global_rng(tmp_path):
    write_image_folder(tmp_path / "imgs", per_class=2, size=(8, 8))
    state = torch.get_rng_state()
    build(
        {
            "train": {"source": "ImageFolder", "root": "imgs"},
            "val": {"fraction": 0.5},
            "transforms": ["RandomHorizontalFlip", "ToTensor"],
        },
        tmp_path,
    )
    build({"train": {"source": "shapes", "n": 4}, "test": {"source": "random", "shapes": {"image": [1, 4, 4]}}})
    assert torch.equal(state, torch.get_rng_state())
