"""netspec.data.checks: values and class labels, checked once per split when the loaders are
built (the messages name the file and the line or sample; the corpus has the end-to-end cases)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datafiles import write_pt
from netspec.data import DataSpec
from netspec.data.checks import ClassCount, check_batch_classes
from netspec.errors import DataError
from .helpers import build, data_error

CE = ClassCount("label", 3, -100, "CrossEntropyLoss", "logits", (3,))


def _tensors(tmp_path: Path, y: torch.Tensor, x: torch.Tensor | None = None) -> dict:
    write_pt(tmp_path / "d.pt", {"x": torch.zeros(len(y), 2) if x is None else x, "y": y})
    return {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 2}


def test_ignore_index_and_in_range_labels_pass(tmp_path: Path) -> None:
    loaders = build(_tensors(tmp_path, torch.tensor([0, 2, -100, 1])), tmp_path, ["x"], classes=[CE])
    assert len(loaders.train) == 2


@pytest.mark.parametrize("y, expect", [
    (torch.tensor([0, 3, 1]), "`y`[1]: label 3 is not a class of output `logits` (CrossEntropyLoss: 3 classes, 0..2)"),
    (torch.tensor([0.0, 1.0, 1.5]), "`y`[2]: label 1.5 is not a whole number"),
    (torch.tensor([0, -1, 1]), "`y`[1]: label -1 is not a class"),
])
def test_unusable_labels_are_named(tmp_path: Path, y: torch.Tensor, expect: str) -> None:
    err = data_error(build, _tensors(tmp_path, y), tmp_path, ["x"], classes=[CE])
    assert expect in str(err) and err.path == ("data", "train", "path")


def test_a_validation_fraction_names_the_sample_in_the_file(tmp_path: Path) -> None:
    y = torch.zeros(20, dtype=torch.int64)
    y[17] = 9
    data = {**_tensors(tmp_path, y), "val": {"fraction": 0.5, "seed": 1}}
    err = data_error(build, data, tmp_path, ["x"], classes=[CE])
    assert "`y`[17]: label 9" in str(err) and err.path == ("data", "train", "path")


def test_class_probabilities_and_binary_forms_are_not_class_indices(tmp_path: Path) -> None:
    probs = torch.full((4, 3), 1 / 3)  # CrossEntropyLoss with probability targets
    build(_tensors(tmp_path, probs), tmp_path, ["x"], classes=[CE])
    dice = ClassCount("label", 2, None, "Dice", "logits", (2, 4, 4), auto=True)
    floats = torch.full((4, 2, 4, 4), 0.5)  # the binary form: float targets, as many elements
    build(_tensors(tmp_path, floats), tmp_path, ["x"], classes=[dice])
    masks = torch.zeros(4, 4, 4, dtype=torch.int64)
    masks[2, 1, 1] = 2  # the multi-class form: integer masks with one dimension less
    assert "`y`[2]: label 2 is not a class of output `logits` (Dice" in str(
        data_error(build, _tensors(tmp_path, masks), tmp_path, ["x"], classes=[dice]))


def test_non_finite_features_are_refused(tmp_path: Path) -> None:
    x = torch.zeros(4, 2)
    x[3, 1] = float("-inf")
    err = data_error(build, _tensors(tmp_path, torch.tensor([0, 1, 2, 0]), x), tmp_path, ["x"])
    assert "`x`[3]: holds -inf (a value that is not finite)" in str(err)


def test_labels_read_per_sample_are_checked_per_batch() -> None:
    check_batch_classes(torch.tensor([0, 1, 2]), [CE], ("data", "train"))
    with pytest.raises(DataError, match="a batch's sample 1: label 5 is not a class"):
        check_batch_classes({"label": torch.tensor([0, 5])}, [CE], ("data", "train"))


def test_an_image_folder_with_more_classes_than_outputs(tmp_path: Path) -> None:
    from datafiles import write_image_folder

    write_image_folder(tmp_path / "img", ("a", "b", "c"), per_class=1, size=(4, 4))
    spec = DataSpec.model_validate({"train": {"source": "ImageFolder", "root": "img"}, "batch_size": 1})
    two = ClassCount("label", 2, -100, "CrossEntropyLoss", "logits", (2,))
    err = data_error(build, spec, tmp_path, ["image"], classes=[two])
    assert "c/0.png: label 2 is not a class" in str(err) and "at least 3 outputs" in (err.hint or "")
