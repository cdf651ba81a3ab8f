"""The SOURCES registry: every registered source loads from a tiny example file (tests/datafiles.py,
never the network)."""

from __future__ import annotations

import pytest

from datafiles import source_example
from netspec.data import SOURCES
from ..helpers import build


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_loads(name, tmp_path, cifar_unchecked):
    entry = source_example(name, tmp_path)
    loaders = build({"train": entry, "val": {"fraction": 0.25}, "batch_size": 4}, tmp_path)
    inputs, target = next(iter(loaders.train))
    assert inputs["image"].shape[0] == target.shape[0] <= 4
    assert inputs["image"].is_floating_point()
    info = loaders.info
    assert info["train"]["samples"] == loaders.train.dataset_size and info["val"]["samples"] == loaders.val.dataset_size
    assert info["train"]["batches"] == len(loaders.train)
    assert info["train"]["shapes"]["inputs"]["image"]["shape"] == list(inputs["image"].shape[1:])
