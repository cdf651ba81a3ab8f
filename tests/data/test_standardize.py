"""The Standardize transform: statistics fitted on the training split only (checked against
numpy and scikit-learn), applied alike on every split and on both loader paths; its mistakes
are one line at load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import netspec
from netspec.data.fields import split_indices
from netspec.data.standardize import Standardizer, fit
from netspec.errors import DataError, SpecError

from .helpers import batches, build
from datafiles import write_pt, write_sklearn_csv


def _data(method: str = "zscore", **extra) -> dict:
    return {
        "train": {"source": "csv", "path": "wine_train.csv", "label": "target"},
        "val": {"fraction": 0.25, "seed": 5},
        "test": {"source": "csv", "path": "wine_test.csv", "label": "target"},
        "transforms": [{"Standardize": {"method": method}}],
        "batch_size": 1000,
        **extra,
    }


@pytest.mark.parametrize("method,scaler", [("zscore", StandardScaler), ("minmax", MinMaxScaler)])
def test_fit_is_scikit_learns_scaler(method: str, scaler: type) -> None:
    x = np.random.default_rng(0).normal(3, [1, 100, 0.01], size=(50, 3)).astype(np.float32)
    x[:, 1] = 7.0  # a constant feature: scale 1, as scikit-learn's
    shift, scale = fit(torch.from_numpy(x), method)
    fitted = scaler().fit(x.astype(np.float64))
    want_shift = fitted.mean_ if method == "zscore" else fitted.data_min_
    np.testing.assert_allclose(shift.numpy(), want_shift, rtol=1e-7)  # float64 statistics, rounded to float32
    np.testing.assert_allclose(scale.numpy(), fitted.scale_ if method == "zscore" else 1 / fitted.scale_, rtol=1e-7)
    got = Standardizer(shift, scale)(torch.from_numpy(x)).numpy()
    assert np.array_equal(got, (x - shift.numpy()) / scale.numpy())  # float32 arithmetic, as the data pipeline's
    # against scikit-learn's float64 transform: float32's rounding of x and shift, over the scale
    atol = 4 * np.finfo(np.float32).eps * np.abs(x).max(0) / scale.numpy()
    assert (np.abs(got - fitted.transform(x.astype(np.float64))) <= atol).all()
    assert scale[1] == 1 and got[:, 1].tolist() == [0.0] * 50


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_every_split_is_standardised_with_the_training_split_statistics(tmp_path, method, in_memory) -> None:
    arrays = write_sklearn_csv(tmp_path, "wine")
    loaders = build(_data(method, loader={"in_memory": in_memory}), tmp_path, ["x"])
    _, val_idx = split_indices(len(arrays["y_train"]), 0.25, 5)
    train_x = np.delete(arrays["x_train"], val_idx.numpy(), axis=0).astype(np.float32).astype(np.float64)
    if method == "zscore":  # by hand, on the training rows only (the val quarter cut off first)
        shift, scale = train_x.mean(0), train_x.std(0)
    else:
        shift, scale = train_x.min(0), train_x.max(0) - train_x.min(0)
    stats = loaders.info["standardize"]["x"]
    np.testing.assert_allclose(stats["shift"].numpy(), shift, rtol=1e-6)
    np.testing.assert_allclose(stats["scale"].numpy(), scale, rtol=1e-6)
    for split, rows in (("val", arrays["x_train"][val_idx.numpy()]), ("test", arrays["x_test"])):
        ((inputs, _),) = batches(getattr(loaders, split))
        want = (rows.astype(np.float32) - shift) / scale
        np.testing.assert_allclose(inputs["x"].numpy(), want, rtol=1e-5, atol=1e-5)
    ((inputs, _),) = batches(loaders.train)
    assert inputs["x"].shape == (len(train_x), 13)
    if method == "minmax":
        assert float(inputs["x"].min()) == 0 and float(inputs["x"].max()) == pytest.approx(1)


def test_given_statistics_are_used_and_never_fitted_again(tmp_path) -> None:
    write_sklearn_csv(tmp_path, "wine")
    stats = {"x": {"method": "zscore", "shift": torch.full((13,), 1.0), "scale": torch.full((13,), 2.0)}}
    loaders = build(_data(), tmp_path, ["x"], standardize=stats)
    ((inputs, _),) = batches(loaders.test)
    raw = np.loadtxt(tmp_path / "wine_test.csv", delimiter=",", skiprows=1, dtype=np.float32)[:, 1:]
    np.testing.assert_allclose(inputs["x"].numpy(), (raw - 1) / 2, rtol=1e-6)
    assert loaders.info["standardize"] is stats


def test_only_the_named_inputs_and_only_float_ones(tmp_path) -> None:
    write_pt(
        tmp_path / "d.pt",
        {"a": torch.arange(8.0).view(4, 2), "ids": torch.arange(4), "b": torch.ones(4, 1), "y": torch.zeros(4)},
    )
    loaders = build(
        {"train": {"source": "tensors", "path": "d.pt"}, "transforms": ["Standardize"]}, tmp_path, ["a", "ids", "b"]
    )
    assert sorted(loaders.info["standardize"]) == ["a", "b"]  # the integer ids are left alone
    named = build(
        {"train": {"source": "tensors", "path": "d.pt"}, "transforms": [{"Standardize": {"inputs": ["b"]}}]},
        tmp_path,
        ["a", "ids", "b"],
    )
    assert list(named.info["standardize"]) == ["b"]
    with pytest.raises(DataError, match=r"input `ids` is torch\.int64, not floating point"):
        build(
            {"train": {"source": "tensors", "path": "d.pt"}, "transforms": [{"Standardize": {"inputs": ["ids"]}}]},
            tmp_path,
            ["a", "ids", "b"],
        )
    with pytest.raises(DataError, match="the model has no input `bb`; did you mean `b`"):
        build(
            {"train": {"source": "tensors", "path": "d.pt"}, "transforms": [{"Standardize": {"inputs": ["bb"]}}]},
            tmp_path,
            ["a", "ids", "b"],
        )


def test_without_training_data_there_is_nothing_to_fit(tmp_path) -> None:
    write_sklearn_csv(tmp_path, "wine")
    data = {"test": {"source": "csv", "path": "wine_test.csv", "label": "target"}, "transforms": ["Standardize"]}
    with pytest.raises(DataError) as info:
        build(data, tmp_path, ["x"])
    assert "Standardize is fitted on the training data in memory, and the data has no `train` split" in str(info.value)
    assert info.value.path == ("data", "transforms", 0)


@pytest.mark.parametrize(
    "transforms,message",
    [
        (["Standardize", "ToTensor"], "Standardize comes last"),
        ([{"Standardize": {"method": "zcore"}}], "method is zscore or minmax, not 'zcore'; did you mean `zscore`?"),
        ([{"Standardize": {"mean": 0}}], "Standardize: unknown argument `mean`"),
    ],
)
def test_mistakes_are_one_line_at_load(transforms, message) -> None:
    text = (
        "name: m\ninputs: {x: [2]}\nnodes: [Identity]\ndata:\n  train: {source: random}\n  transforms: "
        + str(transforms).replace("'", "")
        + "\n"
    )
    with pytest.raises(SpecError) as info:
        netspec.load_spec(text=text)
    assert message in str(info.value) and "\n" not in str(info.value) and str(info.value).startswith("<text>:6:")


def test_an_unfitted_standardize_refuses_to_run() -> None:
    from netspec.data.transforms import apply, compose

    with pytest.raises(RuntimeError, match="Standardize has no statistics"):
        apply(compose(["Standardize"]), (torch.ones(2, 3), torch.zeros(2)), ("value", "label"))
    fitted = compose(["Standardize"], {0: (torch.ones(3), torch.full((3,), 2.0))})
    x, y = apply(fitted, (torch.full((2, 3), 5.0), torch.zeros(2)), ("value", "label"))
    assert x.tolist() == [[2.0] * 3] * 2 and y.tolist() == [0.0, 0.0]  # the label is no model input: untouched


@pytest.mark.parametrize(
    "lists,message",
    [
        (
            "  transforms: [Standardize]\n  eval_transforms: []\n",
            "Standardize ends `transforms` but not `eval_transforms`",
        ),
        ("  eval_transforms: [Standardize]\n", "Standardize ends `eval_transforms` but not `transforms`"),
    ],
)
def test_training_and_evaluation_inputs_are_standardised_alike(lists: str, message: str) -> None:
    text = "name: m\ninputs: {x: [2]}\nnodes: [Identity]\ndata:\n  train: {source: random}\n" + lists
    with pytest.raises(SpecError) as info:
        netspec.load_spec(text=text)
    assert message in str(info.value) and "standardise both the training and the evaluation inputs" in str(info.value)
