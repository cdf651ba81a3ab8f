"""The SOURCES registry: every registered source loads from a tiny example (written with
tests/datafiles.py, never the network), gives the fields and kinds it declares, and feeds a
loader. A new source needs an entry in ``datafiles.source_example`` unless its defaults work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from netspec.data import SOURCES, DataSpec, LoadContext, SourceData, register_source
from netspec.data.sources import BadSample, source_names

from ..helpers import build
from datafiles import source_example


def _load(name: str, tmp_path: Path) -> SourceData:
    """Source ``name``'s example, validated as a spec would be and loaded by its registered function."""
    options = DataSpec.model_validate({"train": source_example(name, tmp_path)}).train
    assert isinstance(options, SOURCES[name].options)
    return SOURCES[name].load(options, LoadContext(tmp_path, seed=0, download=False))


def _check_field(value: Any, kind: str, image: Any) -> None:
    """One field of one sample is what its kind says."""
    if kind == "image":  # (C, H, W), as transforms expect
        assert isinstance(value, Tensor) and value.dim() == 3 and value.dtype in (torch.uint8, torch.float32)
    elif kind == "mask":  # int64 (H, W) class indices, or a float (1, H, W) foreground
        assert isinstance(value, Tensor) and value.shape[-2:] == image.shape[-2:]
        assert (value.dim(), value.dtype) in ((2, torch.int64), (3, torch.float32))
    elif kind == "label":  # one class (or a 0/1 float for BCE) per sample
        assert isinstance(value, int) or (isinstance(value, Tensor) and value.dim() == 0)
    else:
        assert kind == "value" and isinstance(value, Tensor)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_gives_what_it_declares(name, tmp_path, cifar_unchecked):
    raw = _load(name, tmp_path)
    assert len(raw) > 0 and len(raw.names) == len(raw.kinds) >= 2 and len(set(raw.names)) == len(raw.names)
    if SOURCES[name].in_memory is not None:  # None: as the data decides (image folders that fit)
        assert (raw.tensors is not None) == SOURCES[name].in_memory
    sample = tuple(t[0] for t in raw.tensors) if raw.tensors is not None else raw.dataset[0]
    assert not isinstance(sample, BadSample) and len(sample) == len(raw.names)
    image = next((v for v, k in zip(sample, raw.kinds) if k == "image"), None)
    for value, kind in zip(sample, raw.kinds):
        _check_field(value, kind, image)
    if raw.labels is not None:
        assert raw.labels.shape == (len(raw),) and raw.labels.dtype == torch.int64
    if raw.classes is not None and raw.num_classes is not None:
        assert len(raw.classes) == raw.num_classes


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


def test_every_name_is_one_of_its_options_models_source_literal():
    assert source_names() == list(SOURCES)
    for name, entry in SOURCES.items():
        assert name in entry.options.model_fields["source"].annotation.__args__
    with pytest.raises(ValueError, match="source `csv` is registered twice"):
        register_source(SOURCES["csv"].options)(lambda opts, ctx: None)
