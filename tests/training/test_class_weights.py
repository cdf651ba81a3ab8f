"""``weight: balanced`` (``pos_weight: balanced``): class weights from the training labels, by
scikit-learn's formula (the sampler's ``class_weights: balanced`` uses the same function),
checked against scikit-learn and against torch losses built by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

import netspec
from netspec.data import build_loaders
from netspec.data.samplers import balanced_class_weights
from netspec.errors import SpecError
from netspec.training.context import output_shapes
from netspec.training.criterion import build_criterion
from netspec.training.evaluate import evaluate

from datafiles import write_sklearn_csv

WINE = """
name: wine
inputs: {{x: [13]}}
nodes: [{{Linear: {{out_features: 3}}}}]
data:
  train: {{source: csv, path: wine_train.csv, label: target}}
  val: {{fraction: 0.25, seed: 3}}
  test: {{source: csv, path: wine_test.csv, label: target}}
  batch_size: 16
loss: {loss}
optimizer: {{SGD: {{lr: 0.01}}}}
train: {{device: cpu, epochs: 1}}
"""


def _spec(folder: Path, loss: str, text: str = WINE) -> netspec.Spec:
    path = folder / "spec.yaml"
    path.write_text(text.format(loss=loss))
    return netspec.load_spec(path)


def test_the_formula_is_scikit_learns() -> None:
    y = np.array([0] * 7 + [1] * 2 + [3] * 5)  # class 2 absent: weight 0, as the sampler gives it
    got = balanced_class_weights(torch.bincount(torch.from_numpy(y))).numpy()
    want = compute_class_weight("balanced", classes=np.unique(y), y=y)
    np.testing.assert_allclose(got[[0, 1, 3]], want, rtol=1e-12)
    assert got[2] == 0


def test_cross_entropy_weights_come_from_the_training_split_only(tmp_path) -> None:
    arrays = write_sklearn_csv(tmp_path, "wine")
    spec = _spec(tmp_path, "{CrossEntropyLoss: {weight: balanced}}")
    model = netspec.build_model(spec)
    loaders = build_loaders(
        spec.data, base_dir=tmp_path, input_names=["x"], seed=0, count_classes=True
    )  # val: a quarter of train, cut off before counting
    _, val_idx = netspec.data.fields.split_indices(len(arrays["y_train"]), 0.25, 3)
    train_y = np.delete(arrays["y_train"], val_idx.numpy())
    assert loaders.info["class_counts"] == np.bincount(train_y).tolist()
    criterion = build_criterion(spec.loss, ["output"], loaders.info["class_counts"], output_shapes(model))
    want = compute_class_weight("balanced", classes=np.arange(3), y=train_y)
    np.testing.assert_allclose(criterion.losses[0].weight.numpy(), want, rtol=1e-6)
    logits, target = torch.randn(10, 3), torch.tensor([0, 1, 2, 2, 1, 0, 0, 1, 2, 1])
    by_hand = F.cross_entropy(logits, target, weight=torch.tensor(want, dtype=torch.float32))
    torch.testing.assert_close(criterion({"output": logits}, target), by_hand)


def test_eval_uses_the_balanced_weights_of_the_training_labels(tmp_path) -> None:
    arrays = write_sklearn_csv(tmp_path, "wine")
    spec = _spec(tmp_path, "{NLLLoss: {weight: balanced}}")
    torch.manual_seed(0)
    model = netspec.build_model(spec).eval()
    got = evaluate(spec, model=model, split="test")["test_loss"]
    _, val_idx = netspec.data.fields.split_indices(len(arrays["y_train"]), 0.25, 3)
    weight = compute_class_weight("balanced", classes=np.arange(3), y=np.delete(arrays["y_train"], val_idx.numpy()))
    with torch.no_grad():
        out = model(torch.tensor(arrays["x_test"], dtype=torch.float32))
    target = torch.from_numpy(arrays["y_test"])
    # NLLLoss per batch of 16, averaged over batches weighted by their sizes (the eval meter's mean)
    w = torch.tensor(weight, dtype=torch.float32)
    losses = [F.nll_loss(out[i : i + 16], target[i : i + 16], weight=w) for i in range(0, len(target), 16)]
    sizes = [len(target[i : i + 16]) for i in range(0, len(target), 16)]
    assert got == pytest.approx(float(sum(v * n for v, n in zip(losses, sizes)) / len(target)), rel=1e-5)


def test_pos_weight_balanced_is_negatives_over_positives(tmp_path) -> None:
    arrays = write_sklearn_csv(tmp_path, "breast_cancer")
    text = WINE.replace("wine", "breast_cancer").replace("[13]", "[30]").replace("out_features: 3", "out_features: 1")
    spec = _spec(
        tmp_path,
        "{BCEWithLogitsLoss: {pos_weight: balanced}}",
        text.replace("val: {{fraction: 0.25, seed: 3}}\n  ", ""),
    )
    loaders = build_loaders(spec.data, base_dir=tmp_path, input_names=["x"], seed=0, count_classes=True)
    n0, n1 = np.bincount(arrays["y_train"])
    criterion = build_criterion(spec.loss, ["output"], loaders.info["class_counts"], {"output": (1,)})
    torch.testing.assert_close(criterion.losses[0].pos_weight, torch.tensor([n0 / n1], dtype=torch.float32))
    logits, target = torch.randn(8, 1), torch.tensor([0, 1, 1, 0, 1, 1, 1, 0])
    by_hand = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([n0 / n1]))(logits, target[:, None].float())
    torch.testing.assert_close(criterion({"output": logits}, target), by_hand)


@pytest.mark.parametrize(
    "loss,message",
    [
        (
            "{CrossEntropyLoss: {weight: balance}}",
            "`weight: balance`: give one weight per class, or `balanced`; did you mean `balanced`?",
        ),
        ("{BCELoss: {weight: balanced}}", "`weight: balanced` is for class weights"),
        ("{BCEWithLogitsLoss: {weight: balanced}}", "write `pos_weight: balanced`"),
    ],
)
def test_a_bad_string_is_one_line_at_load(tmp_path, loss: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        _spec(tmp_path, loss)
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith(f"{tmp_path / 'spec.yaml'}:10:")


def test_balanced_without_class_labels_is_one_line(tmp_path) -> None:
    spec = netspec.load_spec(
        text="""
name: r
inputs: {x: [2]}
nodes: [{Linear: {out_features: 3}}]
data: {train: {source: function_regression}}
loss: {CrossEntropyLoss: {weight: balanced}}
optimizer: {SGD: {lr: 0.1}}
train: {device: cpu, epochs: 1}
"""
    )
    loaders = build_loaders(spec.data, base_dir=tmp_path, input_names=["x"], seed=0, count_classes=True)
    with pytest.raises(netspec.errors.DataError, match="needs the class of every training sample"):
        build_criterion(spec.loss, ["output"], loaders.info["class_counts"], {"output": (3,)})
