"""Helpers of the data tests: build loaders from a plain dict, compare batches, catch errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import netspec
from netspec.data import DataSpec, build_loaders
from netspec.errors import DataError, SpecError

from datafiles import write_pt


def spec(**kw: Any) -> DataSpec:
    """A validated data section."""
    return DataSpec.model_validate(kw)


def build(
    s: DataSpec | dict,
    tmp: Path = Path("."),
    inputs: list[str] | None = None,
    seed: int = 0,
    inputs_declared: dict | None = None,
    **kw: Any,
):
    """build_loaders of a data section (a dict is validated first); model inputs default to
    ["image"]; ``inputs_declared``: their declared shapes (build_loaders' ``inputs``)."""
    s = s if isinstance(s, DataSpec) else DataSpec.model_validate(s)
    return build_loaders(s, base_dir=tmp, input_names=inputs or ["image"], seed=seed, inputs=inputs_declared, **kw)


def batches(loader) -> list[tuple[dict, Any]]:
    """One epoch of a loader."""
    return list(loader)


def same_batches(ours, theirs, names=("x",)) -> None:
    """ours: list of (inputs dict, target); theirs: list of collated field lists."""
    assert len(ours) == len(theirs)
    for (inputs, target), fields in zip(ours, theirs):
        for name, t in zip(names, fields[:-1]):
            assert torch.equal(inputs[name], t)
        assert torch.equal(target, fields[-1])


def data_error(fn, *args, **kw) -> DataError:
    """The DataError ``fn(*args, **kw)`` raises; its text is one line."""
    with pytest.raises(DataError) as info:
        fn(*args, **kw)
    assert "\n" not in str(info.value)
    return info.value


def load_error(data: dict) -> SpecError:
    """The one-line error a user sees for a bad `data:` section (load_spec of a tiny model)."""
    with pytest.raises(SpecError) as info:
        netspec.load_spec({"name": "m", "inputs": {"x": [2]}, "nodes": [{"Linear": {"out_features": 1}}], "data": data})
    assert "\n" not in str(info.value)
    return info.value


def tensor_file(tmp_path: Path, n: int = 37) -> tuple[torch.Tensor, torch.Tensor]:
    """``d.pt`` with x ``(n, 3)`` and 3-class labels y ``(n,)``; returns (x, y)."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(n, 3, generator=g), torch.randint(0, 3, (n,), generator=g)
    write_pt(tmp_path / "d.pt", {"x": x, "y": y})
    return x, y
