"""``.safetensors`` files: read through the same checks as .pt files (regular files only, one
line on a damaged file), written with tied weights as copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from netspec.errors import CheckpointError
from netspec.files.safetensorfile import load_safetensors_file, safetensors_metadata, save_safetensors
from netspec.files.torchfile import load_torch_file


def test_torchfile_hands_safetensors_to_the_library(tmp_path: Path) -> None:
    save_file({"a": torch.arange(3.0), "b": torch.ones(2, dtype=torch.int64)}, str(tmp_path / "w.safetensors"))
    got = load_torch_file(tmp_path / "w.safetensors")
    assert sorted(got) == ["a", "b"] and torch.equal(got["a"], torch.arange(3.0)) and got["b"].dtype == torch.int64


@pytest.mark.parametrize("keep", [0, 7, 60, -1])
def test_a_truncated_file_is_one_line(tmp_path: Path, keep: int) -> None:
    save_file({"w": torch.randn(4, 4)}, str(tmp_path / "full.safetensors"))
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:keep])
    with pytest.raises(CheckpointError) as err:
        load_torch_file(tmp_path / "cut.safetensors", ("init", "weights", "path"))
    message = str(err.value)
    assert "\n" not in message and "cut.safetensors cannot be read (truncated or not a safetensors file" in message
    assert message.startswith("<spec>: init.weights.path: ")


def test_only_regular_files(tmp_path: Path) -> None:
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(CheckpointError, match=r"is a folder|not a regular file"):
        load_safetensors_file(tmp_path / "dir.safetensors")
    with pytest.raises(CheckpointError, match=r"weights file .*nowhere.safetensors not found"):
        load_safetensors_file(tmp_path / "nowhere.safetensors")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.safetensors")
        with pytest.raises(CheckpointError):
            load_safetensors_file(tmp_path / "fifo.safetensors")  # never blocks reading a pipe


def test_tied_weights_are_written_as_copies_that_any_reader_loads(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight  # tied: one storage, two names
    save_safetensors(model.state_dict(), tmp_path / "tied.safetensors", {"k": "v"})
    plain = load_file(str(tmp_path / "tied.safetensors"))  # the library's own reader
    assert sorted(plain) == ["0.weight", "1.weight"]
    assert torch.equal(plain["0.weight"], model[0].weight) and torch.equal(plain["1.weight"], model[0].weight)
    assert safetensors_metadata(tmp_path / "tied.safetensors") == {"k": "v"}
    fresh = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    fresh.load_state_dict(plain)  # strict
    assert torch.equal(fresh[1].weight, model[1].weight)
