"""Tabular data as a first-time user writes it (scikit-learn's breast cancer and wine sets as
CSV files): a run with ``Standardize`` and balanced class weights, then ``netspec eval``,
``netspec predict`` and every export format on the raw CSV features, each compared with the
trained model applied to features standardised by hand (numpy, training split only)."""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import netspec
from netspec.cli import main
from netspec.training.evaluate import evaluate

from datafiles import write_sklearn_csv

CANCER = """
name: cancer
inputs: {x: [30]}
nodes:
  - {Linear: {out_features: 8}}
  - ReLU
  - logit: {Linear: {out_features: 1}}
data:
  train: {source: csv, path: breast_cancer_train.csv, label: target}
  test: {source: csv, path: breast_cancer_test.csv, label: target}
  transforms: [Standardize]
  batch_size: 64
loss: {BCEWithLogitsLoss: {pos_weight: balanced}}
optimizer: {Adam: {lr: 0.01}}
train: {epochs: 3, device: cpu, seed: 0, progress: line}
"""

WINE = """
name: wine
inputs: {x: [13]}
nodes:
  - {Linear: {out_features: 3}}
data:
  train: {source: csv, path: wine_train.csv, label: target}
  test: {source: csv, path: wine_test.csv, label: target}
  transforms: [{Standardize: {method: minmax}}]
  batch_size: 32
loss: {CrossEntropyLoss: {weight: balanced}}
optimizer: {Adam: {lr: 0.05}}
train: {epochs: 3, device: cpu, seed: 0, progress: line}
"""


def _run(tmp_path: Path, text: str, name: str) -> tuple[netspec.Spec, Path, dict]:
    """Write the set and the spec, train; (spec, checkpoint, arrays)."""
    arrays = write_sklearn_csv(tmp_path, name)
    (tmp_path / "spec.yaml").write_text(text)
    spec = netspec.load_spec(tmp_path / "spec.yaml")
    result = netspec.train(spec, out=tmp_path / "runs", stream=io.StringIO())
    return spec, result.run_dir / "last.pt", arrays


def _trained(spec: netspec.Spec, checkpoint: Path) -> torch.nn.Module:
    """The plain compiled model with the checkpoint's weights: it takes standardised features."""
    model = netspec.build_model(spec)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    return model.eval()


def _by_hand(arrays: dict, method: str) -> np.ndarray:
    """The test features standardised with numpy statistics of the training split only (float32)."""
    train = arrays["x_train"].astype(np.float32).astype(np.float64)  # the CSV source reads float32
    if method == "zscore":
        shift, scale = train.mean(0), train.std(0)
    else:
        shift, scale = train.min(0), train.max(0) - train.min(0)
    return (arrays["x_test"].astype(np.float32) - shift.astype(np.float32)) / scale.astype(np.float32)


def _predict(capsys, *args) -> list[dict[str, str]]:
    assert main(["predict", *map(str, args)]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_breast_cancer_eval_predict_and_exports_use_the_training_statistics(tmp_path, capsys) -> None:
    spec, checkpoint, arrays = _run(tmp_path, CANCER, "breast_cancer")
    model = _trained(spec, checkpoint)
    with torch.no_grad():
        logits = model(torch.from_numpy(_by_hand(arrays, "zscore")))[:, 0]  # (N,)
    y = torch.from_numpy(arrays["y_test"]).float()
    n0, n1 = np.bincount(arrays["y_train"])
    want = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor([n0 / n1])).item()
    assert evaluate(spec, checkpoint=checkpoint, split="test")["test_loss"] == pytest.approx(want, rel=1e-5)

    # never fitted nor counted again: the checkpoint's statistics and class counts, whatever
    # the training file holds now
    scaled = np.loadtxt(tmp_path / "breast_cancer_train.csv", delimiter=",", skiprows=1)
    scaled[:, 1:] *= 10
    scaled[:60, 0] = 1 - scaled[:60, 0]
    header = (tmp_path / "breast_cancer_train.csv").read_text().splitlines()[0]
    np.savetxt(tmp_path / "breast_cancer_train.csv", scaled, delimiter=",", header=header, comments="", fmt="%.17g")
    assert evaluate(spec, checkpoint=checkpoint, split="test")["test_loss"] == pytest.approx(want, rel=1e-5)

    rows = _predict(capsys, tmp_path / "spec.yaml", tmp_path / "breast_cancer_test.csv", "--checkpoint", checkpoint)
    assert list(rows[0]) == ["input", "class", "p_1"]  # P(y=1), the sigmoid of the logit
    p1 = torch.sigmoid(logits).numpy()
    np.testing.assert_allclose([float(r["p_1"]) for r in rows], p1, rtol=1e-5, atol=1e-7)
    assert [r["class"] for r in rows] == [str(int(p > 0.5)) for p in p1]

    raw = torch.from_numpy(arrays["x_test"].astype(np.float32))
    formats = ["export", "torchscript", "python"] + (["onnx"] if importlib.util.find_spec("onnxruntime") else [])
    for fmt in formats:
        out = (
            tmp_path
            / {"export": "m.pt2", "torchscript": "m.ts.pt", "python": "ejected_cancer.py", "onnx": "m.onnx"}[fmt]
        )
        assert (
            main(
                [
                    "export",
                    str(tmp_path / "spec.yaml"),
                    "--format",
                    fmt,
                    "--checkpoint",
                    str(checkpoint),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        capsys.readouterr()
        got = _run_exported(fmt, out, raw, checkpoint)
        torch.testing.assert_close(got[:, 0], logits, rtol=1e-5, atol=1e-5, msg=fmt)


def _run_exported(fmt: str, out: Path, raw: torch.Tensor, checkpoint: Path) -> torch.Tensor:
    """An exported file run on raw features, as a plain PyTorch (or ONNX Runtime) user runs it."""
    with torch.no_grad():
        if fmt == "export":
            return torch.export.load(str(out)).module()(raw)
        if fmt == "torchscript":
            return torch.jit.load(str(out))(raw)
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            return torch.from_numpy(session.run(None, {"x": raw.numpy()})[0])
        namespace: dict = {}
        exec(compile(out.read_text(), str(out), "exec"), namespace)  # the file netspec wrote, as `import` would
        return namespace["Cancer"].load(str(checkpoint))(raw)


def test_wine_minmax_and_balanced_weights_predict_each_class(tmp_path, capsys) -> None:
    spec, checkpoint, arrays = _run(tmp_path, WINE, "wine")
    model = _trained(spec, checkpoint)
    with torch.no_grad():
        probs = model(torch.from_numpy(_by_hand(arrays, "minmax"))).softmax(1).numpy()  # (N, 3)
    rows = _predict(
        capsys, tmp_path / "spec.yaml", tmp_path / "wine_test.csv", "--checkpoint", checkpoint.parent
    )  # a run directory
    assert list(rows[0]) == ["input", "class", "p_0", "p_1", "p_2"]
    got = np.array([[float(r[f"p_{c}"]) for c in range(3)] for r in rows])
    np.testing.assert_allclose(got, probs, rtol=1e-5, atol=1e-7)
    assert [r["class"] for r in rows] == [str(c) for c in probs.argmax(1)]
    run = netspec.load_run(checkpoint.parent)  # Python: the model takes raw features too
    with torch.no_grad():
        raw = run.model(torch.from_numpy(arrays["x_test"].astype(np.float32)))
    np.testing.assert_allclose(raw.softmax(1).numpy(), probs, rtol=1e-5, atol=1e-7)


def test_a_checkpoint_without_statistics_is_refused_for_predict_and_export(tmp_path, capsys) -> None:
    write_sklearn_csv(tmp_path, "wine")
    (tmp_path / "spec.yaml").write_text(WINE)
    spec = netspec.load_spec(tmp_path / "spec.yaml")
    torch.save(netspec.build_model(spec).state_dict(), tmp_path / "plain.pt")
    for command in (
        ["predict", str(tmp_path / "spec.yaml"), str(tmp_path / "wine_test.csv")],
        ["export", str(tmp_path / "spec.yaml"), "--format", "python"],
    ):
        assert main([*command, "--checkpoint", str(tmp_path / "plain.pt")]) == 2
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1
            and "the spec's data ends in Standardize, and " in err
            and "plain.pt holds no statistics" in err
        )


def test_a_resumed_run_keeps_the_statistics_it_started_with(tmp_path) -> None:
    _, checkpoint, _ = _run(tmp_path, WINE.replace("epochs: 3", "epochs: 1"), "wine")
    first = torch.load(checkpoint, weights_only=True)["standardize"]["x"]
    table = np.loadtxt(tmp_path / "wine_train.csv", delimiter=",", skiprows=1)
    table[:, 1:] += 100  # the training file changes between the two sessions
    header = (tmp_path / "wine_train.csv").read_text().splitlines()[0]
    np.savetxt(tmp_path / "wine_train.csv", table, delimiter=",", header=header, comments="", fmt="%.17g")
    longer = netspec.load_spec(tmp_path / "spec.yaml", overrides=["train.epochs=2"])
    result = netspec.train(longer, resume=checkpoint.parent, stream=io.StringIO())
    after = torch.load(result.run_dir / "last.pt", weights_only=True)
    assert after["epoch"] == 2
    for key in ("shift", "scale"):
        assert torch.equal(after["standardize"]["x"][key], first[key])
