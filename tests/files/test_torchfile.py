"""netspec.files.torchfile: every .pt file is read with weights_only, bounded, and refused in
netspec's words (never with torch's advice to unpickle it)."""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path

import hostile
import pytest
import torch

from netspec.errors import CheckpointError, DataError
from netspec.files.torchfile import load_torch_file, pickled_global


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "message",
    [
        "Weights only load failed. ... Unsupported global: GLOBAL posix.system was not an allowed global by default.",
        "Weights only load failed. ... Trying to load unsupported GLOBAL posix.system whose module posix is blocked.",
    ],
)
def test_both_wordings_of_a_refused_global_are_recognised(message: str) -> None:
    assert pickled_global(message) == "posix.system"


def test_a_pickled_command_is_refused_by_name_and_never_run(tmp_path: Path) -> None:
    torch.save({"model": _System(tmp_path / "PWNED")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_torch_file(tmp_path / "evil.pt", ("--checkpoint",))
    text = str(err.value)
    assert "holds a pickled Python object (posix.system)" in text and "weights_only=False" not in text
    assert not (tmp_path / "PWNED").exists()


def test_a_whole_pickled_model_gets_the_re_save_hint(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pt")
    with pytest.raises(CheckpointError, match=r"a whole pickled model \(torch.nn.modules.linear.Linear\)") as err:
        load_torch_file(tmp_path / "whole.pt")
    assert "torch.save(model.state_dict(), path)" in (err.value.hint or "")


def test_garbage_is_one_line_without_torchs_text_or_warnings(tmp_path: Path) -> None:
    (tmp_path / "g.pt").write_bytes(b"not a torch file")
    pickle.dump({"a": {1, 2}}, (tmp_path / "set.pt").open("wb"), protocol=4)  # torch warns about protocol 4
    for name in ("g.pt", "set.pt"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(DataError, match=r"cannot be read \(truncated or not a PyTorch file\)$"):
                load_torch_file(tmp_path / name, (), DataError, "tensor file")


def test_a_zip_that_declares_gigabytes_is_refused_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pt"
    path.write_bytes(hostile.zip_archive({"archive/data/0": (hostile.deflate_zeros(300), 300 << 20, 8)}))
    assert path.stat().st_size < 1 << 20 and zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match=r"declares 314,572,800 bytes in .*; refused"):
        load_torch_file(path)


def test_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.pt")
    with pytest.raises(CheckpointError, match="is not a regular file"):
        load_torch_file(tmp_path / "pipe.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_torch_file(tmp_path / "missing.pt")
