"""Tests of netspec.data: every source from tiny files, errors, and the in-memory loader's
equivalence with a plain DataLoader (the runner's parity test depends on it)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from datafiles import (mnist_arrays, source_example, write_cifar, write_csv, write_idx, write_image_folder,
                       write_mnist, write_npz, write_pt)
import netspec
from netspec import data as D
from netspec.data import DataSpec, SampleLoader, TensorLoader, build_loaders
from netspec.errors import DataError, SpecError


def spec(**kw: Any) -> DataSpec:
    return DataSpec.model_validate(kw)


def build(s: DataSpec | dict, tmp: Path = Path("."), inputs: list[str] | None = None, seed: int = 0, **kw: Any):
    s = s if isinstance(s, DataSpec) else DataSpec.model_validate(s)
    return build_loaders(s, base_dir=tmp, input_names=inputs or ["image"], seed=seed, **kw)


def batches(loader) -> list[tuple[dict, Any]]:
    return list(loader)


def same_batches(ours, theirs, names=("x",)) -> None:
    """ours: list of (inputs dict, target); theirs: list of collated field lists."""
    assert len(ours) == len(theirs)
    for (inputs, target), fields in zip(ours, theirs):
        for name, t in zip(names, fields[:-1]):
            assert torch.equal(inputs[name], t)
        assert torch.equal(target, fields[-1])


def load_error(data: dict) -> SpecError:
    """The one-line error a user sees for a bad `data:` section (load_spec of a tiny model)."""
    with pytest.raises(SpecError) as info:
        netspec.load_spec({"name": "m", "inputs": {"x": [2]}, "nodes": [{"Linear": {"out_features": 1}}],
                           "data": data})
    assert "\n" not in str(info.value)
    return info.value


def data_error(fn, *args, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*args, **kw)
    assert "\n" not in str(info.value)
    return info.value


@pytest.fixture
def cifar_unchecked(monkeypatch):
    """Our CIFAR test files cannot match torchvision's MD5 sums: skip that check."""
    import torchvision.datasets.cifar as cifar
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    for cls in (cifar.CIFAR10, cifar.CIFAR100):
        monkeypatch.setattr(cls, "_check_integrity", lambda self: True)


# --------------------------------------------------------------------------------------------
# Registry-wide: every source loads from its example
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(D.SOURCES))
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


def test_schema_is_generated_and_documented():
    schema = DataSpec.model_json_schema()
    assert "train" in schema["properties"]
    for model in [DataSpec, *{e.options for e in D.SOURCES.values()}]:
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"


# --------------------------------------------------------------------------------------------
# MNIST family: IDX files
# --------------------------------------------------------------------------------------------

def test_fashion_mnist_matches_torchvision(tmp_path):
    arrays = write_mnist(tmp_path, "FashionMNIST", n_train=40, n_test=20)
    tv = torchvision.datasets.FashionMNIST(str(tmp_path), train=True, download=False,
                                           transform=torchvision.transforms.ToTensor())
    loaders = build({"train": {"source": "FashionMNIST", "root": ".", "split": "train"},
                     "test": {"source": "FashionMNIST", "root": ".", "split": "test"},
                     "batch_size": 16, "loader": {"shuffle": False}}, tmp_path)
    assert loaders.info["train"]["path"].startswith("in memory")
    assert loaders.info["classes"] == tv.classes and loaders.info["num_classes"] == 10
    ref = list(DataLoader(tv, batch_size=16))
    ours = batches(loaders.train)
    same_batches(ours, ref, names=("image",))  # ToTensor default == torchvision's per-sample ToTensor
    assert loaders.test.dataset_size == 20
    assert torch.equal(next(iter(loaders.test))[1], torch.from_numpy(arrays["test"][1][:16]).long())


def test_gzipped_idx_files(tmp_path):
    arrays = write_mnist(tmp_path / "d", "MNIST", n_train=10, n_test=5, gz=True)
    loaders = build({"train": {"source": "MNIST", "root": "d"}, "batch_size": 10,
                     "transforms": [], "loader": {"shuffle": False}}, tmp_path)
    inputs, target = next(iter(loaders.train))
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


# --------------------------------------------------------------------------------------------
# CSV, tensor files, image folders
# --------------------------------------------------------------------------------------------

def test_csv_like_fmdataset(tmp_path):
    rng = np.random.default_rng(1)
    pixels, labels = rng.integers(0, 256, (10, 16)), rng.integers(0, 10, 10)
    write_csv(tmp_path / "f.csv", labels, pixels)
    loaders = build({"train": {"source": "csv", "path": "f.csv", "label": "label", "image_shape": [1, 4, 4],
                               "scale": "1/255"}, "batch_size": 10, "loader": {"shuffle": False}}, tmp_path)
    inputs, target = next(iter(loaders.train))
    expected = torch.tensor(pixels / 255.0, dtype=torch.float32).reshape(10, 1, 4, 4)
    assert torch.allclose(inputs["image"], expected) and torch.equal(target, torch.from_numpy(labels))
    assert loaders.info["train"]["transforms"] == []  # float features: no default transform


def test_csv_uint8_gets_default_totensor(tmp_path):
    write_csv(tmp_path / "f.csv", np.array([0, 1]), np.array([[0, 255, 51, 102], [1, 2, 3, 4]]), header=False)
    loaders = build({"train": {"source": "csv", "path": "f.csv", "image_shape": [1, 2, 2], "dtype": "uint8"},
                     "loader": {"shuffle": False}}, tmp_path)
    inputs, _ = next(iter(loaders.train))
    assert inputs["image"][0].flatten().tolist() == pytest.approx([0, 1, 0.2, 0.4])
    assert loaders.info["train"]["transforms"] == ["ToTensor"]


@pytest.mark.parametrize("content, expect", [
    ("label,a,b\n1,2,3\n4,x,6\n", "line 3, column 2: `x` is not a number"),
    ("label,a,b\n1,2,3\n4,5\n", "line 3 has 2 columns, expected 3"),
    ("", "empty"),
    ("label,a,b\n", "no data rows"),
])
def test_csv_bad_rows(tmp_path, content, expect):
    (tmp_path / "b.csv").write_text(content)
    err = data_error(build, {"train": {"source": "csv", "path": "b.csv"}}, tmp_path, ["x"])
    assert expect in str(err) and "b.csv" in str(err)


def test_csv_option_errors(tmp_path):
    write_csv(tmp_path / "f.csv", np.array([0, 1]), np.array([[1, 2, 3], [4, 5, 6]]))
    err = data_error(build, {"train": {"source": "csv", "path": "f.csv", "label": "lable"}}, tmp_path, ["x"])
    assert "no column `lable`; did you mean `label`?" in str(err)
    err = data_error(build, {"train": {"source": "csv", "path": "f.csv", "image_shape": [1, 2, 2]}}, tmp_path)
    assert "3 feature columns" in str(err)
    err = data_error(build, {"train": {"source": "csv", "path": "nope.csv"}}, tmp_path)
    assert "nope.csv: no such file" in str(err)


def test_npz_and_pt(tmp_path):
    f1, f2, y = np.random.rand(9, 3).astype(np.float32), np.random.rand(9, 2).astype(np.float32), np.arange(9) % 3
    write_npz(tmp_path / "a.npz", f1=f1, f2=f2, y=y)
    write_pt(tmp_path / "a.pt", {"f1": torch.from_numpy(f1), "f2": torch.from_numpy(f2), "y": torch.from_numpy(y)})
    write_pt(tmp_path / "l.pt", [torch.from_numpy(f1), torch.from_numpy(f2), torch.from_numpy(y)])
    for path in ("a.npz", "a.pt", "l.pt"):
        loaders = build({"train": {"source": "tensors", "path": path}, "batch_size": 9,
                         "loader": {"shuffle": False}}, tmp_path, ["a", "b"])
        inputs, target = next(iter(loaders.train))
        assert torch.equal(inputs["a"], torch.from_numpy(f1)) and torch.equal(inputs["b"], torch.from_numpy(f2))
        assert torch.equal(target, torch.from_numpy(y)) and loaders.info["num_classes"] == 3


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
    assert "c.npz: not a readable .npz file" in str(data_error(build, {"train": {"source": "tensors",
                                                                               "path": "c.npz"}}, tmp_path))
    torch.save({"x": torch.zeros(2), "obj": Path("x")}, tmp_path / "p.pt")  # not weights-only loadable
    err = data_error(build, {"train": {"source": "tensors", "path": "p.pt"}}, tmp_path)
    assert "p.pt: not a readable tensor file" in str(err)


def test_image_folder(tmp_path):
    write_image_folder(tmp_path / "imgs", ("a", "b", "c"), per_class=2, size=(10, 6))
    loaders = build({"train": {"source": "ImageFolder", "root": "imgs", "mode": "L"}, "batch_size": 6,
                     "loader": {"shuffle": False}}, tmp_path)
    inputs, target = next(iter(loaders.train))
    assert inputs["image"].shape == (6, 1, 6, 10) and target.tolist() == [0, 0, 1, 1, 2, 2]
    assert loaders.info["classes"] == ["a", "b", "c"] and loaders.info["train"]["path"].startswith("per sample")


def test_image_folder_errors(tmp_path):
    write_image_folder(tmp_path / "imgs", ("a",), per_class=1, size=(8, 8))
    write_image_folder(tmp_path / "imgs", ("b",), per_class=1, size=(9, 8), seed=1)
    err = data_error(lambda: batches(build({"train": {"source": "ImageFolder", "root": "imgs"}}, tmp_path).train))
    assert "different shapes" in str(err) and "Resize" in str(err)
    ok = build({"train": {"source": "ImageFolder", "root": "imgs"}, "transforms": [{"Resize": [8, 8]}, "ToTensor"]},
               tmp_path)
    assert next(iter(ok.train))[0]["image"].shape == (2, 3, 8, 8)
    (tmp_path / "imgs" / "b" / "0.png").write_bytes(b"not an image")
    err = data_error(lambda: batches(build({"train": {"source": "ImageFolder", "root": "imgs"}}, tmp_path).train))
    assert "cannot read image" in str(err) and "0.png" in str(err)
    assert "no such folder" in str(data_error(build, {"train": {"source": "ImageFolder", "root": "nope"}}, tmp_path))
    (tmp_path / "empty").mkdir()
    data_error(build, {"train": {"source": "ImageFolder", "root": "empty"}}, tmp_path)


def test_unreadable_image_in_worker(tmp_path):
    write_image_folder(tmp_path / "imgs", ("a",), per_class=3, size=(8, 8))
    loaders = build({"train": {"source": "ImageFolder", "root": "imgs"}, "batch_size": 1,
                     "loader": {"num_workers": 1, "shuffle": False}}, tmp_path)
    (tmp_path / "imgs" / "a" / "2.png").write_bytes(b"broken after the scan")
    err = data_error(batches, loaders.train)
    assert "cannot read image" in str(err) and "2.png" in str(err) and err.path == ("data", "train", "root")  # the option naming the folder


# --------------------------------------------------------------------------------------------
# Generated data
# --------------------------------------------------------------------------------------------

def test_gaussian_clusters_is_seed_000():
    torch.manual_seed(10)  # the seed's own code
    n_data = torch.ones(100, 2)
    x0 = torch.normal(1.7 * n_data, 1) + 1
    x1 = torch.normal(-1.7 * n_data, 1) + 1
    loaders = build({"train": {"source": "gaussian_clusters", "seed": 10}, "batch_size": 200,
                     "loader": {"shuffle": False}}, inputs=["x"])
    inputs, y = next(iter(loaders.train))
    assert torch.equal(inputs["x"], torch.cat([x0, x1]))
    assert torch.equal(y, torch.cat([torch.zeros(100), torch.ones(100)]))


def test_function_regression_is_seed_003():
    torch.manual_seed(3)
    x = torch.unsqueeze(torch.linspace(-1, 1, 1000), dim=1)
    y = x.pow(2) + 0.1 * torch.normal(torch.zeros(x.size()))
    loaders = build({"train": {"source": "function_regression", "seed": 3}, "batch_size": 1000,
                     "loader": {"shuffle": False}}, inputs=["x"])
    inputs, target = next(iter(loaders.train))
    assert torch.equal(inputs["x"], x) and torch.equal(target, y)
    sin = build({"train": {"source": "function_regression", "function": "sin", "noise": 0}, "batch_size": 5,
                 "loader": {"shuffle": False}}, inputs=["x"])
    xs, ys = next(iter(sin.train))
    assert torch.allclose(ys, torch.sin(xs["x"]))
    with pytest.raises(Exception, match="function"):
        spec(train={"source": "function_regression", "function": "__import__('os')"})


def test_shapes_and_random_segmentation():
    loaders = build({"train": {"source": "shapes", "n": 8, "size": 32, "channels": 3}, "batch_size": 8,
                     "loader": {"shuffle": False}})
    inputs, mask = next(iter(loaders.train))
    image = inputs["image"]
    assert image.shape == (8, 3, 32, 32) and mask.shape == (8, 32, 32) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 1, 2} and (mask > 0).any(dim=(1, 2)).all()
    # shapes are bright, background dark: a model can learn it
    assert image[:, 0][mask > 0].mean() > image[:, 0][mask == 0].mean() + 0.4
    binary = build({"train": {"source": "shapes", "n": 4, "n_classes": 1}, "batch_size": 4})
    assert next(iter(binary.train))[1].shape == (4, 1, 64, 64)
    rs = build({"train": {"source": "random_segmentation", "n": 4, "image_shape": [1, 16, 16], "n_classes": 5}})
    _, m = next(iter(rs.train))
    assert m.shape == (4, 16, 16) and int(m.max()) < 5 and rs.info["num_classes"] == 5


def test_random_source_shapes_and_split_seeds():
    s = {"train": {"source": "random", "n": 10, "shapes": {"image": [1, 8, 8], "extra": [3]}},
         "test": {"source": "random", "n": 10, "shapes": {"image": [1, 8, 8], "extra": [3]}},
         "batch_size": 10, "loader": {"shuffle": False}}
    loaders = build(s, inputs=["image", "extra"])
    (tr, y), (te, _) = next(iter(loaders.train)), next(iter(loaders.test))
    assert tr["image"].shape == (10, 1, 8, 8) and tr["extra"].shape == (10, 3) and y.dtype == torch.int64
    assert not torch.equal(tr["image"], te["image"])  # train and test differ unless seeded alike
    again = build(s, inputs=["image", "extra"])
    assert torch.equal(next(iter(again.train))[0]["image"], tr["image"])


# --------------------------------------------------------------------------------------------
# The in-memory loader == DataLoader over a TensorDataset
# --------------------------------------------------------------------------------------------

def _tensor_file(tmp_path, n=37):
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(n, 3, generator=g), torch.randint(0, 3, (n,), generator=g)
    write_pt(tmp_path / "d.pt", {"x": x, "y": y})
    return x, y


@pytest.mark.parametrize("shuffle, drop_last, bs", [(True, False, 8), (True, True, 8), (False, False, 5),
                                                    (False, True, 10), (True, False, 64)])
def test_in_memory_equals_dataloader(tmp_path, shuffle, drop_last, bs):
    x, y = _tensor_file(tmp_path)
    loaders = build({"train": {"source": "tensors", "path": "d.pt"}, "batch_size": bs,
                     "loader": {"shuffle": shuffle, "drop_last": drop_last}}, tmp_path, ["x"], seed=123)
    assert isinstance(loaders.train, TensorLoader)
    ref = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=shuffle, drop_last=drop_last,
                     generator=torch.Generator().manual_seed(123))
    assert len(loaders.train) == len(ref)
    for _ in range(3):  # the generator carries on across epochs in both
        same_batches(batches(loaders.train), list(ref))


def test_eval_loader_equals_dataloader_and_global_rng(tmp_path):
    x, y = _tensor_file(tmp_path)
    loaders = build({"test": {"source": "tensors", "path": "d.pt"}, "batch_size": 8,
                     "loader": {"eval_batch_size": 6}}, tmp_path, ["x"])
    torch.manual_seed(0)
    ours = batches(loaders.test)
    after_ours = torch.rand(1)
    torch.manual_seed(0)
    theirs = list(DataLoader(TensorDataset(x, y), batch_size=6))
    assert torch.equal(after_ours, torch.rand(1))  # both drew the same from the global RNG
    same_batches(ours, theirs)


@pytest.mark.parametrize("sampler", [
    {"WeightedRandomSampler": {"class_weights": {1: 0.85}, "default_weight": 0.1}},
    {"RandomSampler": {"replacement": True, "num_samples": 50}},
    {"RandomSampler": {"num_samples": 80}},
])
def test_samplers_equal_torch(tmp_path, sampler):
    x, y = _tensor_file(tmp_path)
    loaders = build({"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 8, "sampler": sampler},
                    tmp_path, ["x"], seed=7)
    g = torch.Generator().manual_seed(7)
    if "WeightedRandomSampler" in sampler:
        # seed 004: weights=list(0.85 if i == 1 else 0.1 for i in train_label), num_samples=len, replacement=True
        torch_sampler = WeightedRandomSampler(weights=list(0.85 if i == 1 else 0.1 for i in y),
                                              num_samples=len(y), replacement=True, generator=g)
    else:
        torch_sampler = torch.utils.data.RandomSampler(range(len(y)), generator=g, **{
            k: v for k, v in sampler["RandomSampler"].items()})
    ref = DataLoader(TensorDataset(x, y), batch_size=8, sampler=torch_sampler, generator=g)
    assert loaders.info["train"]["sampler"] == type(torch_sampler).__name__
    for _ in range(2):
        same_batches(batches(loaders.train), list(ref))


def test_weighted_sampler_balances_and_errors(tmp_path):
    y = torch.tensor([0] * 90 + [1] * 10)
    write_pt(tmp_path / "d.pt", {"x": torch.randn(100, 2), "y": y})
    base = {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 1000}
    loaders = build({**base, "sampler": {"WeightedRandomSampler": {"class_weights": "balanced",
                                                                   "num_samples": 4000}}}, tmp_path, ["x"])
    _, target = next(iter(loaders.train))
    assert 0.4 < target.float().mean() < 0.6
    err = data_error(build, {**base, "sampler": {"WeightedRandomSampler": {"class_weights": {1: 0.5}}}},
                     tmp_path, ["x"])
    assert "no weight for class(es) 0" in str(err) and err.path[:2] == ("data", "sampler")
    err = data_error(build, {**base, "sampler": {"WeightedRandomSampler": {"class_weights": {"cat": 1}}}},
                     tmp_path, ["x"])
    assert "unknown class `cat`" in str(err)


def test_class_names_as_weight_keys(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", n_train=30)
    loaders = build({"train": {"source": "FashionMNIST", "root": "."}, "batch_size": 30, "sampler": {
        "WeightedRandomSampler": {"class_weights": {"Trouser": 1.0}, "default_weight": 0.0}}}, tmp_path)
    assert set(next(iter(loaders.train))[1].tolist()) == {1}


def test_per_sample_path_gives_the_same_batches(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", n_train=30)
    common = {"train": {"source": "FashionMNIST", "root": "."}, "batch_size": 7,
              "transforms": [{"Resize": 14}, "ToTensor", {"Normalize": {"mean": [0.5], "std": [0.25]}}]}
    fast = build(common, tmp_path, seed=3)
    slow = build({**common, "loader": {"in_memory": False}}, tmp_path, seed=3)
    assert isinstance(fast.train, TensorLoader) and isinstance(slow.train, SampleLoader)
    for _ in range(2):
        for (a, ya), (b, yb) in zip(batches(fast.train), batches(slow.train), strict=True):
            assert torch.allclose(a["image"], b["image"], atol=1e-6) and torch.equal(ya, yb)
    assert fast.info["train"]["shapes"]["inputs"]["image"]["shape"] == [1, 14, 14]


def test_per_batch_transforms_when_too_big(tmp_path, monkeypatch):
    write_mnist(tmp_path, "MNIST", n_train=20)
    common = {"train": {"source": "MNIST", "root": "."}, "batch_size": 6, "transforms": [{"Resize": 20}, "ToTensor"]}
    once = build(common, tmp_path)
    monkeypatch.setattr(netspec.data.build, "PRECOMPUTE_BYTES", 0)
    per_batch = build(common, tmp_path)
    assert "per batch" in per_batch.info["train"]["path"] and "once" in once.info["train"]["path"]
    for (a, ya), (b, yb) in zip(batches(once.train), batches(per_batch.train), strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(ya, yb)


@pytest.mark.parametrize("in_memory", [True, False])
def test_set_epoch_resumes_exactly(tmp_path, in_memory):
    _tensor_file(tmp_path)
    s = {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 8,
         "loader": {"in_memory": in_memory}}
    first = build(s, tmp_path, ["x"], seed=9).train
    epochs = [batches(first) for _ in range(3)]
    resumed = build(s, tmp_path, ["x"], seed=9).train
    resumed.set_epoch(2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches(resumed), epochs[2], strict=True))
    first.set_epoch(1)  # going back works too
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches(first), epochs[1], strict=True))
    half = iter(first)
    next(half)  # an abandoned epoch does not spoil the next set_epoch
    first.set_epoch(2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches(first), epochs[2], strict=True))


def test_build_does_not_touch_global_rng(tmp_path):
    write_image_folder(tmp_path / "imgs", per_class=2, size=(8, 8))
    state = torch.get_rng_state()
    build({"train": {"source": "ImageFolder", "root": "imgs"}, "val": {"fraction": 0.5},
           "transforms": ["RandomHorizontalFlip", "ToTensor"]}, tmp_path)
    build({"train": {"source": "shapes", "n": 4}, "test": {"source": "random", "shapes": {"image": [1, 4, 4]}}})
    assert torch.equal(state, torch.get_rng_state())


# --------------------------------------------------------------------------------------------
# Transforms, fields, validation split, spec errors
# --------------------------------------------------------------------------------------------

def test_random_transforms_fall_back_and_eval_drops_them(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", n_train=20)
    loaders = build({"train": {"source": "FashionMNIST", "root": "."}, "val": {"fraction": 0.25},
                     "transforms": [{"RandomCrop": {"size": 28, "padding": 2}}, "ToTensor"]}, tmp_path)
    assert isinstance(loaders.train, SampleLoader) and isinstance(loaders.val, TensorLoader)
    assert loaders.info["val"]["transforms"] == ["ToTensor"]
    assert next(iter(loaders.train))[0]["image"].shape[1:] == (1, 28, 28)
    err = load_error({"train": {"source": "FashionMNIST", "root": "."}, "loader": {"in_memory": True},
                      "transforms": [{"RandomCrop": 28}, "ToTensor"]})  # found when the spec is loaded
    assert "these transforms are random: RandomCrop" in str(err) and err.path == ("data", "loader", "in_memory")


def test_segmentation_masks_follow_geometric_transforms():
    common = {"train": {"source": "shapes", "n": 4, "size": 32}, "batch_size": 4, "loader": {"shuffle": False}}
    flipped = build({**common, "transforms": [{"RandomHorizontalFlip": {"p": 1.0}}]})
    plain = build({**common, "transforms": []})
    (a, ma), (b, mb) = next(iter(flipped.train)), next(iter(plain.train))
    assert isinstance(flipped.train, SampleLoader)
    assert torch.equal(ma, mb.flip(-1)) and torch.equal(a["image"], b["image"].flip(-1))
    small = build({**common, "transforms": [{"Resize": 16}]})
    _, mask = next(iter(small.train))
    assert mask.shape == (4, 16, 16) and mask.dtype == torch.int64 and set(mask.unique().tolist()) <= {0, 1, 2}


def test_transform_validation():
    err = load_error({"train": {"source": "random"}, "transforms": ["RandomHorizontalFlp"]})
    assert "did you mean `RandomHorizontalFlip`" in str(err)
    err = load_error({"train": {"source": "random"}, "transforms": [{"Resize": {"sise": 3}}]})
    assert "unknown argument `sise`; did you mean `size`" in str(err)
    err = load_error({"train": {"source": "random"}, "eval_transforms": [{"ToDtype": {"dtype": "flaot32"}}]})
    assert "unknown dtype `flaot32`" in str(err)
    assert "Lambda" in str(load_error({"train": {"source": "random"}, "transforms": [{"Lambda": {"lambd": "x"}}]}))
    s = spec(train={"source": "random"}, transforms=[{"RandomApply": {"transforms": ["RandomVerticalFlip"], "p": 0.5}},
                                                    {"Resize": {"size": 8, "interpolation": "nearest"}}])
    assert len(s.transforms) == 2


def test_spec_errors_have_paths():
    cases = [({"train": {"source": "FashionMNST", "root": "x"}}, ("train", "source"), "did you mean `FashionMNIST`"),
             ({"train": {"source": "random", "n": 0}}, ("train", "n"), "greater than"),
             ({"train": {"source": "random"}, "val": {"fraction": 1.5}}, ("val", "fraction"), "less than"),
             ({"val": {"fraction": 0.1}}, ("val",), "`train` is needed"),
             ({"train": {"source": "random"}, "loader": {"shuffle": True},
               "sampler": {"RandomSampler": {}}}, ("sampler",), "replaces shuffling"),
             ({"train": {"source": "random"}, "transforms": ["ToImage", "Bogus"]}, ("transforms", 1), "unknown")]
    for data, path, msg in cases:
        err = load_error(data)
        assert err.path == ("data", *path) and msg in str(err), err


def test_two_inputs_seed_004(tmp_path):
    f1, f2, y = torch.randn(20, 1, 4, 4), torch.randn(20, 5), (torch.arange(20) % 2)
    write_pt(tmp_path / "d.pt", {"feature1": f1, "feature2": f2, "label": y})
    s = {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 20, "loader": {"shuffle": False},
         "transforms": []}
    inputs, target = next(iter(build(s, tmp_path, ["image", "extra"]).train))  # positional default
    assert torch.equal(inputs["image"], f1) and torch.equal(inputs["extra"], f2) and torch.equal(target, y)
    mapped = build({**s, "fields": {"inputs": {"image": "feature1", "extra": 1}, "target": "label"}},
                   tmp_path, ["image", "extra"])
    assert mapped.info["fields"] == {"inputs": {"image": "feature1", "extra": "feature2"}, "target": "label"}
    multi = build({**s, "fields": {"inputs": {"image": 0}, "target": {"logits": 2, "aux": "feature2"}}},
                  tmp_path, ["image"])
    _, targets = next(iter(multi.train))
    assert torch.equal(targets["logits"], y) and torch.equal(targets["aux"], f2)


def test_field_errors(tmp_path):
    write_pt(tmp_path / "d.pt", {"a": torch.zeros(4, 2), "b": torch.zeros(4, 2), "y": torch.zeros(4)})
    s = {"train": {"source": "tensors", "path": "d.pt"}}
    err = data_error(build, s, tmp_path, ["image"])
    assert "2 field(s) besides the target (a, b)" in str(err) and err.path == ("data", "fields")
    err = data_error(build, {**s, "fields": {"inputs": {"imgae": 0}}}, tmp_path, ["image"])
    assert "no input `imgae`" in str(err) and "did you mean `image`" in str(err)
    err = data_error(build, {**s, "fields": {"inputs": {"image": "c"}}}, tmp_path, ["image"])
    assert err.path == ("data", "fields", "inputs", "image")
    err = data_error(build, {**s, "fields": {"inputs": {"image": 0}, "target": 7}}, tmp_path, ["image"])
    assert "out of range" in str(err)


def test_val_split(tmp_path):
    x, y = _tensor_file(tmp_path, n=40)
    s = {"train": {"source": "tensors", "path": "d.pt"}, "val": {"fraction": 0.25, "seed": 1}, "batch_size": 100,
         "loader": {"shuffle": False}}
    loaders = build(s, tmp_path, ["x"], seed=0)
    (tx, _), (vx, _) = next(iter(loaders.train)), next(iter(loaders.val))
    assert loaders.train.dataset_size == 30 and loaders.val.dataset_size == 10
    train_idx, val_idx = D.split_indices(40, 0.25, seed=1)
    assert torch.equal(tx["x"], x[train_idx]) and torch.equal(vx["x"], x[val_idx])
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    assert loaders.info["val"]["source"] == "tensors"
    other = build({**s, "val": {"fraction": 0.25}}, tmp_path, ["x"], seed=5)  # default: the run seed
    assert not torch.equal(next(iter(other.val))[0]["x"], vx["x"])
    err = data_error(build, {**s, "val": {"fraction": 0.001}}, tmp_path, ["x"])
    assert err.path == ("data", "val", "fraction")


def test_limit_and_separate_val_source(tmp_path):
    write_mnist(tmp_path, "KMNIST", n_train=30, n_test=12)
    loaders = build({"train": {"source": "KMNIST", "root": ".", "limit": 10},
                     "val": {"source": "KMNIST", "root": ".", "split": "test"}, "batch_size": 4}, tmp_path)
    assert loaders.train.dataset_size == 10 and loaders.val.dataset_size == 12 and len(loaders.val) == 3


def test_gaussian_clusters_trains_logistic_regression():
    """Seed 000 end to end: the data set is learnable by the seed's model and recipe."""
    loaders = build({"train": {"source": "gaussian_clusters", "seed": 10}, "batch_size": 200}, inputs=["x"])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    accuracy = 0.0
    for _ in range(1000):  # the seed's loop: stop once training accuracy exceeds 0.99
        inputs, y = next(iter(loaders.train))
        opt.zero_grad()
        out = model(inputs["x"]).squeeze(1)
        torch.nn.functional.binary_cross_entropy(out, y).backward()
        opt.step()
        accuracy = ((out > 0.5).float() == y).float().mean().item()
        if accuracy > 0.99:
            break
    assert accuracy > 0.99


def test_read_idx_gz_roundtrip(tmp_path):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a", arr, gz=True)
    assert path.suffix == ".gz" and gzip.open(path).read(4) == b"\x00\x00\x0c\x03"
    assert torch.equal(D.read_idx(path), torch.from_numpy(arr))


def test_equivalence_property(tmp_path_factory):
    """For any size, batch size, shuffle and drop_last: the same batches as a DataLoader, epoch after epoch."""
    from hypothesis import given, settings, strategies as st

    root = tmp_path_factory.mktemp("prop")

    @settings(max_examples=25, deadline=None)
    @given(n=st.integers(1, 40), bs=st.integers(1, 50), shuffle=st.booleans(), drop_last=st.booleans(),
           seed=st.integers(0, 2**31))
    def check(n, bs, shuffle, drop_last, seed):
        x, y = torch.arange(n * 2.0).reshape(n, 2), torch.arange(n) % 3
        write_pt(root / "p.pt", {"x": x, "y": y})
        loaders = build({"train": {"source": "tensors", "path": "p.pt"}, "batch_size": bs,
                         "loader": {"shuffle": shuffle, "drop_last": drop_last}}, root, ["x"], seed=seed)
        ref = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=shuffle, drop_last=drop_last,
                         generator=torch.Generator().manual_seed(seed))
        for _ in range(2):
            same_batches(batches(loaders.train), list(ref))

    check()
