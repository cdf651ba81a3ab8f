"""netspec.data.checks: values and class labels, checked once per split when the loaders are
built (the messages name the file and the line or sample; the corpus has the end-to-end cases)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netspec.data import DataSpec, build_loaders
from netspec.data.checks import ClassCount, Declared, check_batch_classes, check_sample
from netspec.data.fields import FieldMap
from netspec.data.sources import SourceData
from netspec.errors import DataError

from .helpers import build, data_error
from datafiles import write_pt

CE = ClassCount("label", 3, -100, "CrossEntropyLoss", "logits", (3,))


def _tensors(tmp_path: Path, y: torch.Tensor, x: torch.Tensor | None = None) -> dict:
    write_pt(tmp_path / "d.pt", {"x": torch.zeros(len(y), 2) if x is None else x, "y": y})
    return {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 2}


def test_ignore_index_and_in_range_labels_pass(tmp_path: Path) -> None:
    loaders = build(_tensors(tmp_path, torch.tensor([0, 2, -100, 1])), tmp_path, ["x"], classes=[CE])
    assert len(loaders.train) == 2


@pytest.mark.parametrize(
    "y, expect",
    [
        (
            torch.tensor([0, 3, 1]),
            "`y`[1]: label 3 is not a class of output `logits` (CrossEntropyLoss: 3 classes, 0..2)",
        ),
        (torch.tensor([0.0, 1.0, 1.5]), "`y`[2]: label 1.5 is not a whole number"),
        (torch.tensor([0, -1, 1]), "`y`[1]: label -1 is not a class"),
    ],
)
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
        data_error(build, _tensors(tmp_path, masks), tmp_path, ["x"], classes=[dice])
    )


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


# ---- the first sample of each split against the model's declared inputs and its loss's target

X4 = {"x": Declared((4,), torch.float32)}


def checked(data: dict, tmp_path: Path, declared: dict[str, Declared], **kw: object):
    """build_loaders with the model's declared inputs (their names are the input names)."""
    return build_loaders(
        DataSpec.model_validate(data), base_dir=tmp_path, input_names=list(declared), seed=0, inputs=declared, **kw
    )


def test_first_sample_fits_the_declared_inputs(tmp_path: Path) -> None:
    checked(_tensors(tmp_path, torch.tensor([0, 1]), torch.zeros(2, 4)), tmp_path, X4, classes=[CE])
    err = data_error(checked, _tensors(tmp_path, torch.tensor([0, 1]), torch.zeros(2, 5)), tmp_path, X4)
    assert "`x`[0]: samples of `x` have shape [5] but the model's input `x` is declared [4]" in str(err)
    assert err.path == ("data", "train", "path") and "declare `x: [5]`" in (err.hint or "")
    err = data_error(
        checked, _tensors(tmp_path, torch.tensor([0, 1]), torch.zeros(2, 4, dtype=torch.float64)), tmp_path, X4
    )
    assert "samples of `x` are float64 but the model's input `x` is declared float32" in str(err)
    tokens = {"x": Declared((4,), torch.int64)}  # integer inputs (token ids): any integer dtype
    checked(_tensors(tmp_path, torch.tensor([0, 1]), torch.zeros(2, 4, dtype=torch.int32)), tmp_path, tokens)


def test_each_split_is_checked_with_its_own_transforms(tmp_path: Path) -> None:
    from datafiles import write_image_folder

    write_image_folder(tmp_path / "train", per_class=1, size=(8, 8))
    write_image_folder(tmp_path / "val", per_class=1, size=(6, 6))
    data = {
        "train": {"source": "ImageFolder", "root": "train"},
        "val": {"source": "ImageFolder", "root": "val"},
        "batch_size": 1,
    }
    rgb8 = {"image": Declared((3, 8, 8), torch.float32)}
    err = data_error(checked, data, tmp_path, rgb8)
    assert "val/cat/0.png: samples of `image` have shape [3, 6, 6]" in str(err) and err.path == ("data", "val", "root")
    resized = {**data, "transforms": ["ToTensor", {"Resize": {"size": [8, 8]}}]}
    checked(resized, tmp_path, rgb8)  # the shape the model sees: after the transforms
    err = data_error(checked, {**data, "train": {**data["train"], "mode": "L"}}, tmp_path, rgb8)
    assert "set `mode: RGB` on data.train (images read with three channels)" in (err.hint or "")


def test_first_sample_target_and_label_of_a_per_sample_split() -> None:
    """A per-sample split whose labels are not known up front: its first sample's label is checked
    with the inputs (the rest batch by batch, as the loader yields them)."""
    raw = SourceData(("x", "y"), ("value", "label"), dataset=[(torch.zeros(4), 5), (torch.zeros(4), 0)])
    fmap = FieldMap({"x": 0}, 1)
    with pytest.raises(DataError, match=r"y\[0\]: label 5 is not a class of output `logits`"):
        check_sample((torch.zeros(4), 5), raw, fmap, X4, [CE], ("data", "train"))
    with pytest.raises(
        DataError,
        match=r"are class indices of shape \[\] \(or class probabilities of shape \[3\]\), "
        r"but samples of `y` have shape \[2\]",
    ):
        check_sample((torch.zeros(4), torch.tensor([0, 1])), raw, fmap, X4, [CE], ("data", "train"))
    check_sample((torch.zeros(4), torch.tensor([1])), raw, fmap, X4, [CE], ("data", "train"))  # (1,): squeezed
    check_sample((torch.zeros(4), torch.full((3,), 1 / 3)), raw, fmap, X4, [CE], ("data", "train"))  # probabilities
