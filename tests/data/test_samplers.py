"""netspec.data.samplers: every sampler draws as torch's does; per-class weights."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from netspec.data import SAMPLERS, SamplerContext, sampler_order

from .helpers import batches, build, data_error, same_batches, tensor_file
from datafiles import write_mnist, write_pt

# --------------------------------------------------------------------------------------------
# Registry-wide: every sampler builds, and its epoch order replays exactly
# --------------------------------------------------------------------------------------------

#: Options of each registered sampler (the value under its key in a spec). A new sampler without
#: an example fails test_every_sampler_has_an_example.
EXAMPLES = {
    "WeightedRandomSampler": {"class_weights": {1: 0.85}, "default_weight": 0.1},
    "RandomSampler": {"replacement": True, "num_samples": 50},
}


def test_every_sampler_has_an_example():
    assert set(EXAMPLES) == set(SAMPLERS)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_order_is_its_own_iteration(name):
    """sampler_order() makes the sampler's own generator calls: same indices, same state after."""
    entry = SAMPLERS[name]
    options = entry.options.model_validate(EXAMPLES[name])
    labels = torch.arange(40) % 3  # (40,) three classes

    def make():
        ctx = SamplerContext(40, labels, ["a", "b", "c"], torch.Generator().manual_seed(1), ("data", "sampler", name))
        return entry.build(options, ctx), ctx.generator

    ours, g_ours = make()
    theirs, g_theirs = make()
    order = sampler_order(ours)
    assert torch.equal(order, torch.tensor(list(theirs), dtype=torch.int64))
    assert torch.equal(g_ours.get_state(), g_theirs.get_state())
    assert len(order) == len(ours) and ((order >= 0) & (order < 40)).all()


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_drives_a_loader_that_resumes(name, tmp_path):
    tensor_file(tmp_path)
    s = {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 8, "sampler": {name: EXAMPLES[name]}}
    loaders = build(s, tmp_path, ["x"], seed=4)
    assert loaders.info["train"]["sampler"] == name
    epochs = [batches(loaders.train) for _ in range(2)]
    assert sum(len(t) for _, t in epochs[0]) == len(loaders.train.sampler)
    resumed = build(s, tmp_path, ["x"], seed=4).train
    resumed.set_epoch(1)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches(resumed), epochs[1], strict=True))


# --------------------------------------------------------------------------------------------
# Against torch, per-class weights
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sampler",
    [
        {"WeightedRandomSampler": {"class_weights": {1: 0.85}, "default_weight": 0.1}},
        {"RandomSampler": {"replacement": True, "num_samples": 50}},
        {"RandomSampler": {"num_samples": 80}},
    ],
)
def test_samplers_equal_torch(tmp_path, sampler):
    x, y = tensor_file(tmp_path)
    loaders = build(
        {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 8, "sampler": sampler}, tmp_path, ["x"], seed=7
    )
    g = torch.Generator().manual_seed(7)
    if "WeightedRandomSampler" in sampler:
        # seed 004: weights=list(0.85 if i == 1 else 0.1 for i in train_label), num_samples=len, replacement=True
        torch_sampler = WeightedRandomSampler(
            weights=list(0.85 if i == 1 else 0.1 for i in y), num_samples=len(y), replacement=True, generator=g
        )
    else:
        torch_sampler = torch.utils.data.RandomSampler(
            range(len(y)), generator=g, **{k: v for k, v in sampler["RandomSampler"].items()}
        )
    ref = DataLoader(TensorDataset(x, y), batch_size=8, sampler=torch_sampler, generator=g)
    assert loaders.info["train"]["sampler"] == type(torch_sampler).__name__
    for _ in range(2):
        same_batches(batches(loaders.train), list(ref))


def test_weighted_sampler_balances_and_errors(tmp_path):
    y = torch.tensor([0] * 90 + [1] * 10)
    write_pt(tmp_path / "d.pt", {"x": torch.randn(100, 2), "y": y})
    base = {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 1000}
    loaders = build(
        {**base, "sampler": {"WeightedRandomSampler": {"class_weights": "balanced", "num_samples": 4000}}},
        tmp_path,
        ["x"],
    )
    _, target = next(iter(loaders.train))
    assert 0.4 < target.float().mean() < 0.6
    err = data_error(
        build, {**base, "sampler": {"WeightedRandomSampler": {"class_weights": {1: 0.5}}}}, tmp_path, ["x"]
    )
    assert "no weight for class(es) 0" in str(err) and err.path[:2] == ("data", "sampler")
    err = data_error(
        build, {**base, "sampler": {"WeightedRandomSampler": {"class_weights": {"cat": 1}}}}, tmp_path, ["x"]
    )
    assert "unknown class `cat`" in str(err)


def test_class_names_as_weight_keys(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", n_train=30)
    loaders = build(
        {
            "train": {"source": "FashionMNIST", "root": "."},
            "batch_size": 30,
            "sampler": {"WeightedRandomSampler": {"class_weights": {"Trouser": 1.0}, "default_weight": 0.0}},
        },
        tmp_path,
    )
    assert set(next(iter(loaders.train))[1].tolist()) == {1}
