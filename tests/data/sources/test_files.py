"""netspec.data.sources.files: CSV, tensor files and image folders, from tiny files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netspec.errors import DataError

from ..helpers import batches, build, data_error
from datafiles import write_csv, write_image_folder, write_npz, write_pt

# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def test_csv_like_fmdataset(tmp_path):
    rng = np.random.default_rng(1)
    pixels, labels = rng.integers(0, 256, (10, 16)), rng.integers(0, 10, 10)
    write_csv(tmp_path / "f.csv", labels, pixels)
    loaders = build(
        {
            "train": {"source": "csv", "path": "f.csv", "label": "label", "image_shape": [1, 4, 4], "scale": "1/255"},
            "batch_size": 10,
            "loader": {"shuffle": False},
        },
        tmp_path,
    )
    inputs, target = next(iter(loaders.train))
    expected = torch.tensor(pixels / 255.0, dtype=torch.float32).reshape(10, 1, 4, 4)
    assert torch.allclose(inputs["image"], expected) and torch.equal(target, torch.from_numpy(labels))
    assert loaders.info["train"]["transforms"] == []  # float features: no default transform


def test_csv_uint8_gets_default_totensor(tmp_path):
    write_csv(tmp_path / "f.csv", np.array([0, 1]), np.array([[0, 255, 51, 102], [1, 2, 3, 4]]), header=False)
    loaders = build(
        {
            "train": {"source": "csv", "path": "f.csv", "image_shape": [1, 2, 2], "dtype": "uint8"},
            "loader": {"shuffle": False},
        },
        tmp_path,
    )
    inputs, _ = next(iter(loaders.train))
    assert inputs["image"][0].flatten().tolist() == pytest.approx([0, 1, 0.2, 0.4])
    assert loaders.info["train"]["transforms"] == ["ToTensor"]


def test_csv_option_errors(tmp_path):
    write_csv(tmp_path / "f.csv", np.array([0, 1]), np.array([[1, 2, 3], [4, 5, 6]]))
    err = data_error(build, {"train": {"source": "csv", "path": "f.csv", "label": "lable"}}, tmp_path, ["x"])
    assert "no column `lable`; did you mean `label`?" in str(err)
    err = data_error(build, {"train": {"source": "csv", "path": "f.csv", "image_shape": [1, 2, 2]}}, tmp_path)
    assert "3 feature columns" in str(err)
    err = data_error(build, {"train": {"source": "csv", "path": "nope.csv"}}, tmp_path)
    assert "nope.csv: no such file" in str(err)


# --------------------------------------------------------------------------------------------
# Tensor files
# --------------------------------------------------------------------------------------------


def test_npz_and_pt(tmp_path):
    f1, f2, y = np.random.rand(9, 3).astype(np.float32), np.random.rand(9, 2).astype(np.float32), np.arange(9) % 3
    write_npz(tmp_path / "a.npz", f1=f1, f2=f2, y=y)
    write_pt(tmp_path / "a.pt", {"f1": torch.from_numpy(f1), "f2": torch.from_numpy(f2), "y": torch.from_numpy(y)})
    write_pt(tmp_path / "l.pt", [torch.from_numpy(f1), torch.from_numpy(f2), torch.from_numpy(y)])
    for path in ("a.npz", "a.pt", "l.pt"):
        loaders = build(
            {"train": {"source": "tensors", "path": path}, "batch_size": 9, "loader": {"shuffle": False}},
            tmp_path,
            ["a", "b"],
        )
        inputs, target = next(iter(loaders.train))
        assert torch.equal(inputs["a"], torch.from_numpy(f1)) and torch.equal(inputs["b"], torch.from_numpy(f2))
        assert torch.equal(target, torch.from_numpy(y)) and loaders.info["num_classes"] == 3


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------


def test_image_folder(tmp_path):
    write_image_folder(tmp_path / "imgs", ("a", "b", "c"), per_class=2, size=(10, 6))
    loaders = build(
        {
            "train": {"source": "ImageFolder", "root": "imgs", "mode": "L"},
            "batch_size": 6,
            "loader": {"shuffle": False},
        },
        tmp_path,
    )
    inputs, target = next(iter(loaders.train))
    assert inputs["image"].shape == (6, 1, 6, 10) and target.tolist() == [0, 0, 1, 1, 2, 2]
    assert loaders.info["classes"] == ["a", "b", "c"] and loaders.info["train"]["path"].startswith("in memory")


def _write_images(folder, mode: str, n: int, size=(7, 5), seed: int = 0, fmt: str = "png"):
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.{fmt}")


@pytest.mark.parametrize("stored", ["L", "RGB"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_image_folder_decodes_once_the_pixels_torchvision_imagefolder_reads(tmp_path, stored, mode):
    """Decoded into memory (torchvision.io where no conversion is needed), the same uint8
    pixels as torchvision's ImageFolder (PIL, convert(mode)), in the same order."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms.v2.functional import pil_to_tensor

    for c, fmt in (("a", "png"), ("b", "jpg")):
        _write_images(tmp_path / "imgs" / c, stored, 3, seed=len(c) + ord(c[0]), fmt=fmt)
    loaders = build(
        {
            "train": {"source": "ImageFolder", "root": "imgs", "mode": mode},
            "transforms": [],
            "batch_size": 6,
            "loader": {"shuffle": False},
        },
        tmp_path,
    )
    inputs, target = next(iter(loaders.train))
    theirs = ImageFolder(str(tmp_path / "imgs"), loader=lambda p: __import__("PIL.Image").Image.open(p).convert(mode))
    expected = torch.stack([pil_to_tensor(theirs[i][0]) for i in range(6)])
    assert inputs["image"].dtype == torch.uint8 and torch.equal(inputs["image"], expected)
    assert target.tolist() == [theirs[i][1] for i in range(6)]
    assert loaders.info["train"]["path"] == "in memory"


def test_image_folder_mode_follows_the_declared_channels(tmp_path):
    """Grayscale PNGs against a 1-channel input work as a first-time user writes the spec."""
    from netspec.data.checks import Declared

    _write_images(tmp_path / "imgs" / "zero", "L", 2)
    _write_images(tmp_path / "imgs" / "one", "L", 2, seed=1)
    data = {"train": {"source": "ImageFolder", "root": "imgs"}, "batch_size": 4}
    gray = build(data, tmp_path, inputs=["image"], inputs_declared={"image": Declared((1, 5, 7), torch.float32)})
    assert next(iter(gray.train))[0]["image"].shape == (4, 1, 5, 7)
    colour = build(data, tmp_path, inputs=["image"], inputs_declared={"image": Declared((3, 5, 7), torch.float32)})
    x = next(iter(colour.train))[0]["image"]
    assert x.shape == (4, 3, 5, 7) and torch.equal(x[:, 0], x[:, 2])  # gray copied into R, G and B
    assert build(data, tmp_path).train.tensors[0].shape[1] == 3  # nothing declared: RGB, as torchvision
    with pytest.raises(DataError, match=r"shape \[3, 5, 7\].*declared \[1, 5, 7\]"):
        build(
            {**data, "train": {**data["train"], "mode": "RGB"}},
            tmp_path,
            inputs_declared={"image": Declared((1, 5, 7), torch.float32)},
        )


def test_image_folder_over_the_memory_budget_is_read_per_sample(tmp_path, monkeypatch):
    from netspec.data.sources import files

    _write_images(tmp_path / "imgs" / "a", "RGB", 4)
    data = {"train": {"source": "ImageFolder", "root": "imgs"}, "batch_size": 4, "loader": {"shuffle": False}}
    kept = next(iter(build(data, tmp_path).train))[0]["image"]
    monkeypatch.setattr(files, "KEEP_DECODED_BYTES", 3 * 5 * 7 * 2)  # two images
    loaders = build(data, tmp_path)
    assert loaders.info["train"]["path"].startswith("per sample")
    assert torch.equal(next(iter(loaders.train))[0]["image"], kept)
    err = data_error(build, {**data, "loader": {"in_memory": True}}, tmp_path)
    assert "`in_memory: true` is impossible" in str(err) and "MiB decoded" in str(err)


def test_image_folder_errors(tmp_path):
    write_image_folder(tmp_path / "imgs", ("a",), per_class=1, size=(8, 8))
    write_image_folder(tmp_path / "imgs", ("b",), per_class=1, size=(9, 8), seed=1)
    err = data_error(lambda: batches(build({"train": {"source": "ImageFolder", "root": "imgs"}}, tmp_path).train))
    assert "different shapes" in str(err) and "Resize" in str(err)
    ok = build(
        {"train": {"source": "ImageFolder", "root": "imgs"}, "transforms": [{"Resize": [8, 8]}, "ToTensor"]}, tmp_path
    )
    assert next(iter(ok.train))[0]["image"].shape == (2, 3, 8, 8)
    (tmp_path / "imgs" / "b" / "0.png").write_bytes(b"not an image")
    err = data_error(lambda: batches(build({"train": {"source": "ImageFolder", "root": "imgs"}}, tmp_path).train))
    assert "cannot read image" in str(err) and "0.png" in str(err)
    assert "no such folder" in str(data_error(build, {"train": {"source": "ImageFolder", "root": "nope"}}, tmp_path))
    (tmp_path / "empty").mkdir()
    data_error(build, {"train": {"source": "ImageFolder", "root": "empty"}}, tmp_path)
