"""netspec.data.fields: sample fields -> model inputs and targets; the validation split."""

from __future__ import annotations

import torch

from netspec.data import split_indices

from .helpers import build, data_error, tensor_file
from datafiles import write_pt


def test_two_inputs_seed_004(tmp_path):
    f1, f2, y = torch.randn(20, 1, 4, 4), torch.randn(20, 5), (torch.arange(20) % 2)
    write_pt(tmp_path / "d.pt", {"feature1": f1, "feature2": f2, "label": y})
    s = {
        "train": {"source": "tensors", "path": "d.pt"},
        "batch_size": 20,
        "loader": {"shuffle": False},
        "transforms": [],
    }
    inputs, target = next(iter(build(s, tmp_path, ["image", "extra"]).train))  # positional default
    assert torch.equal(inputs["image"], f1) and torch.equal(inputs["extra"], f2) and torch.equal(target, y)
    mapped = build(
        {**s, "fields": {"inputs": {"image": "feature1", "extra": 1}, "target": "label"}}, tmp_path, ["image", "extra"]
    )
    assert mapped.info["fields"] == {"inputs": {"image": "feature1", "extra": "feature2"}, "target": "label"}
    multi = build(
        {**s, "fields": {"inputs": {"image": 0}, "target": {"logits": 2, "aux": "feature2"}}}, tmp_path, ["image"]
    )
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
    x, _ = tensor_file(tmp_path, n=40)
    s = {
        "train": {"source": "tensors", "path": "d.pt"},
        "val": {"fraction": 0.25, "seed": 1},
        "batch_size": 100,
        "loader": {"shuffle": False},
    }
    loaders = build(s, tmp_path, ["x"], seed=0)
    (tx, _), (vx, _) = next(iter(loaders.train)), next(iter(loaders.val))
    assert loaders.train.dataset_size == 30 and loaders.val.dataset_size == 10
    train_idx, val_idx = split_indices(40, 0.25, seed=1)
    assert torch.equal(tx["x"], x[train_idx]) and torch.equal(vx["x"], x[val_idx])
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    assert loaders.info["val"]["source"] == "tensors"
    other = build({**s, "val": {"fraction": 0.25}}, tmp_path, ["x"], seed=5)  # default: the run seed
    assert not torch.equal(next(iter(other.val))[0]["x"], vx["x"])
    err = data_error(build, {**s, "val": {"fraction": 0.001}}, tmp_path, ["x"])
    assert err.path == ("data", "val", "fraction")
