"""netspec.data.readers: IDX, CSV and tensor files; every problem is one line naming the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from netspec.data import read_idx

from .helpers import build, data_error
from datafiles import mnist_arrays, write_idx, write_npz

# --------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------


def test_read_idx_gz_roundtrip(tmp_path):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a", arr, gz=True)
    with gzip.open(path) as f:
        assert path.suffix == ".gz" and f.read(4) == b"\x00\x00\x0c\x03"
    assert torch.equal(read_idx(path), torch.from_numpy(arr))


@pytest.mark.parametrize("problem", ["swapped", "truncated", "garbage", "count", "badgz"])
def test_corrupt_idx(tmp_path, problem):
    raw = tmp_path / "MNIST" / "raw"
    images, labels = mnist_arrays(8)
    img = write_idx(raw / "train-images-idx3-ubyte", images)
    lbl = write_idx(raw / "train-labels-idx1-ubyte", labels)
    if problem == "swapped":
        img.write_bytes(lbl.read_bytes())
        expect = "wrong magic number 2049, expected 2051"
    elif problem == "truncated":
        img.write_bytes(img.read_bytes()[:-100])
        expect = "truncated or corrupt"
    elif problem == "garbage":
        img.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
        expect = "not an IDX file"
    elif problem == "count":
        write_idx(lbl, labels[:5])
        expect = "has 8 images but"
    else:
        img.unlink()
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
        expect = "cannot read"
    err = data_error(build, {"train": {"source": "MNIST", "root": "."}}, tmp_path)
    assert expect in str(err) and "train-" in str(err)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, expect",
    [
        ("label,a,b\n1,2,3\n4,x,6\n", "line 3, column 2 is not a number"),
        ("label,a,b\n1,2,3\n4,5\n", "line 3 has 2 columns, expected 3"),
        ("", "empty"),
        ("label,a,b\n", "no data rows"),
    ],
)
def test_csv_bad_rows(tmp_path, content, expect):
    (tmp_path / "b.csv").write_text(content)
    err = data_error(build, {"train": {"source": "csv", "path": "b.csv"}}, tmp_path, ["x"])
    assert expect in str(err) and "b.csv" in str(err)


# --------------------------------------------------------------------------------------------
# Tensor files
# --------------------------------------------------------------------------------------------


def test_safetensors_file_reads_like_npz(tmp_path):
    from safetensors.torch import save_file

    x, y = torch.randn(5, 3), torch.arange(5)
    save_file({"y": y, "x": x}, tmp_path / "t.safetensors")
    write_npz(tmp_path / "t.npz", x=x.numpy(), y=y.numpy())
    from netspec.data.readers import read_tensor_file

    names, tensors = read_tensor_file(tmp_path / "t.safetensors", ["x", "y"])
    npz_names, npz_tensors = read_tensor_file(tmp_path / "t.npz", ["x", "y"])
    assert names == npz_names == ["x", "y"]
    for a, b in zip(tensors, npz_tensors):
        assert torch.equal(a, b)
    assert read_tensor_file(tmp_path / "t.safetensors", None)[0] == ["x", "y"]  # by name
    err = data_error(build, {"train": {"source": "tensors", "path": "t.safetensors", "arrays": ["x", "z"]}}, tmp_path)
    assert "no tensor `z` (it has: x, y)" in str(err)
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    err = data_error(build, {"train": {"source": "tensors", "path": "bad.safetensors"}}, tmp_path)
    assert "bad.safetensors cannot be read (truncated or not a safetensors file" in str(err)


def test_tensor_file_errors(tmp_path):
    write_npz(tmp_path / "a.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    err = data_error(build, {"train": {"source": "tensors", "path": "a.npz", "arrays": ["x", "z"]}}, tmp_path)
    assert "no array `z` (it has: x, y)" in str(err)
    err = data_error(build, {"train": {"source": "tensors", "path": "a.npz"}}, tmp_path)
    assert "same number of samples" in str(err) and "x has 4, y has 3" in str(err)
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    err = data_error(build, {"train": {"source": "tensors", "path": "o.npz"}}, tmp_path)
    assert "o.npz" in str(err)
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 truncated zip")
    assert "c.npz: not a readable .npz file" in str(
        data_error(build, {"train": {"source": "tensors", "path": "c.npz"}}, tmp_path)
    )
    torch.save({"x": torch.zeros(2), "obj": Path("x")}, tmp_path / "p.pt")  # not weights-only loadable
    err = data_error(build, {"train": {"source": "tensors", "path": "p.pt"}}, tmp_path)
    assert "p.pt holds a pickled Python object (pathlib." in str(err) and "ask for its tensors" in str(err)
