"""``netspec predict`` and ``TrainedModel.predict``: inputs prepared as the spec's evaluation
data (transforms, CSV columns, tensor fields), predictions checked against the model run by
hand on the same tensors."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

import netspec
from netspec.cli import main
from netspec.interop.run import TrainedModel
from netspec.training.checkpoint import CHECKPOINT_FORMAT

from datafiles import write_csv, write_image_folder, write_npz

IMAGE_SPEC = """
name: tiny_classifier
inputs: {image: [3, 8, 8]}
nodes:
  - Flatten
  - logits: {Linear: {out_features: 2}}
data:
  train: {source: ImageFolder, root: images}
  transforms: [RandomHorizontalFlip, {Resize: [8, 8]}, ToTensor]
  batch_size: 4
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.1}}
"""


def _checkpoint(spec, path, seed: int = 0):
    """A netspec checkpoint of the spec's model with seeded random weights; returns the model."""
    torch.manual_seed(seed)
    model = netspec.build_model(spec).eval()
    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict()}, path)
    return model


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _predict(capsys, *args) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_images_get_the_eval_transforms_and_the_folder_class_names(tmp_path, capsys) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(IMAGE_SPEC)
    write_image_folder(tmp_path / "images", per_class=3, size=(12, 10))
    model = _checkpoint(netspec.load_spec(spec_file), tmp_path / "best.pt")
    code, out, err = _predict(
        capsys, spec_file, tmp_path / "images", "--checkpoint", tmp_path / "best.pt", "--top-k", 2
    )
    assert code == 0, err
    rows = _rows(out)
    assert list(rows[0]) == ["input", "class", "probability", "class_2", "probability_2"]
    assert len(rows) == 6 and rows[0]["input"].endswith("cat/0.png")
    from PIL import Image

    for row in rows:
        with Image.open(row["input"]) as im:
            x = TF.pil_to_tensor(im.convert("RGB"))
        x = TF.resize(x, [8, 8]).float().div(255)  # Resize then ToTensor; no random flip
        with torch.no_grad():
            probs = model(x[None]).softmax(1)[0]
        assert row["class"] == ["cat", "dog"][int(probs.argmax())]
        assert float(row["probability"]) == pytest.approx(float(probs.max()), abs=1e-6)
        assert {row["class"], row["class_2"]} == {"cat", "dog"}


def test_csv_rows_follow_the_csv_source_with_or_without_a_label_column(tmp_path, capsys) -> None:
    spec = netspec.load_spec(
        text="""
name: pixels
inputs: {image: [1, 2, 2]}
nodes: [Flatten, {Linear: {out_features: 3}}]
data:
  train: {source: csv, path: train.csv, image_shape: [1, 2, 2], dtype: uint8}
  transforms: [ToTensor]
  batch_size: 2
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.1}}
""",
        overrides=[],
    )
    spec_file = tmp_path / "pixels.yaml"
    spec_file.write_text(spec.to_yaml())
    model = _checkpoint(spec, tmp_path / "last.pt")
    pixels = np.array([[0, 255, 10, 20], [5, 6, 7, 8], [255, 0, 255, 0]], dtype=np.int64)
    write_csv(tmp_path / "with_label.csv", np.array([1, 0, 2]), pixels)
    (tmp_path / "no_label.csv").write_text("\n".join(",".join(map(str, r)) for r in pixels) + "\n")
    code, out, err = _predict(
        capsys,
        spec_file,
        tmp_path / "with_label.csv",
        tmp_path / "no_label.csv",
        "--checkpoint",
        tmp_path,
        "--top-k",
        1,
    )
    assert code == 0, err
    rows = _rows(out)
    assert [r["input"] for r in rows] == [f"{tmp_path}/with_label.csv:{i}" for i in (2, 3, 4)] + [
        f"{tmp_path}/no_label.csv:{i}" for i in (1, 2, 3)
    ]
    with torch.no_grad():
        probs = model(torch.tensor(pixels, dtype=torch.float32).div(255).reshape(3, 1, 2, 2)).softmax(1)
    for r, p in zip(rows, torch.cat([probs, probs])):
        assert (r["class"], float(r["probability"])) == (str(int(p.argmax())), pytest.approx(float(p.max()), abs=1e-6))


def test_tensor_files_feed_inputs_through_the_field_map(tmp_path) -> None:
    spec = netspec.load_spec(
        text="""
name: two_inputs
inputs: {x: [3], y: [2]}
nodes:
  - cat: [x, y]
  - Linear: {out_features: 4}
data:
  train: {source: tensors, path: data.npz}
  fields: {inputs: {x: feature1, y: feature2}, target: label}
  batch_size: 2
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.1}}
"""
    )
    model = _checkpoint(spec, tmp_path / "best.pt")
    f1, f2 = np.random.default_rng(0).normal(size=(5, 3)), np.random.default_rng(1).normal(size=(5, 2))
    write_npz(tmp_path / "new.npz", feature1=f1.astype(np.float32), feature2=f2.astype(np.float32))
    trained = TrainedModel.from_spec(spec, tmp_path / "best.pt", device="cpu")
    rows = trained.predict(tmp_path / "new.npz", top_k=1, batch_size=2)
    with torch.no_grad():
        probs = model(torch.tensor(f1, dtype=torch.float32), torch.tensor(f2, dtype=torch.float32)).softmax(1)
    assert [r["input"].rsplit("/", 1)[-1] for r in rows] == [f"new.npz[{i}]" for i in range(5)]
    assert [r["class"] for r in rows] == [str(int(i)) for i in probs.argmax(1)]
    from safetensors.torch import save_file

    save_file(
        {"feature1": torch.tensor(f1, dtype=torch.float32), "feature2": torch.tensor(f2, dtype=torch.float32)},
        tmp_path / "new.safetensors",
    )
    same = trained.predict(tmp_path / "new.safetensors", top_k=1, batch_size=2)
    assert [(r["class"], r["probability"]) for r in same] == [(r["class"], r["probability"]) for r in rows]


SEGMENTATION_SPEC = """
name: tiny_segmenter
inputs: {image: [1, 6, 6]}
nodes: [{logits: {Conv2d: {out_channels: 3, kernel_size: 1}}}]
loss: CrossEntropyLoss
"""


def test_segmentation_writes_a_mask_png_per_input(tmp_path, capsys) -> None:
    from PIL import Image

    spec_file = tmp_path / "seg.yaml"
    spec_file.write_text(SEGMENTATION_SPEC)
    model = _checkpoint(netspec.load_spec(spec_file), tmp_path / "best.pt")
    images = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    torch.save({"image": images}, tmp_path / "scans.pt")
    code, out, err = _predict(
        capsys, spec_file, tmp_path / "scans.pt", "--checkpoint", tmp_path / "best.pt", "--out", tmp_path / "masks"
    )
    assert code == 0 and out == "" and err.startswith("2 predictions: "), err
    with open(tmp_path / "masks" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["mask"].rsplit("/", 1)[-1] for r in rows] == ["scans.png", "scans_2.png"]
    with torch.no_grad():
        want = model(images).argmax(1)
    for row, mask in zip(rows, want):
        with Image.open(row["mask"]) as im:
            assert im.mode == "P" and np.array_equal(np.array(im), mask.numpy().astype(np.uint8))


def test_masks_need_an_out_folder(tmp_path, capsys) -> None:
    spec_file = tmp_path / "seg.yaml"
    spec_file.write_text(SEGMENTATION_SPEC)
    _checkpoint(netspec.load_spec(spec_file), tmp_path / "best.pt")
    torch.save(torch.zeros(1, 1, 6, 6), tmp_path / "one.pt")
    code, _, err = _predict(capsys, spec_file, tmp_path / "one.pt", "--checkpoint", tmp_path / "best.pt")
    assert code == 2 and err == (
        "<spec>: --out: this model predicts masks: give a folder for the mask images with --out DIR\n"
    )


def test_binary_and_regression_outputs(specs_dir, tmp_path, capsys) -> None:
    (tmp_path / "points.csv").write_text("3,3\n-3,-3\n")
    logreg = _checkpoint(netspec.load_spec(specs_dir / "logistic_regression.yaml"), tmp_path / "logreg.pt")
    code, out, _ = _predict(
        capsys, specs_dir / "logistic_regression.yaml", tmp_path / "points.csv", "--checkpoint", tmp_path / "logreg.pt"
    )
    rows = _rows(out)
    assert code == 0 and list(rows[0]) == ["input", "class", "p_1"]
    with torch.no_grad():  # the Sigmoid's output is P(y=1) already, whichever class it predicts
        p1 = logreg(torch.tensor([[3.0, 3.0], [-3.0, -3.0]]))[:, 0].tolist()
    assert [float(r["p_1"]) for r in rows] == pytest.approx(p1, abs=1e-6)
    assert [r["class"] for r in rows] == [str(int(p > 0.5)) for p in p1]
    model = _checkpoint(netspec.load_spec(specs_dir / "regression.yaml"), tmp_path / "reg.pt")
    (tmp_path / "x.csv").write_text("0.5\n-0.25\n")
    code, out, _ = _predict(
        capsys, specs_dir / "regression.yaml", tmp_path / "x.csv", "--checkpoint", tmp_path / "reg.pt"
    )
    with torch.no_grad():
        want = model(torch.tensor([[0.5], [-0.25]]))[:, 0].tolist()
    assert [float(r["predict"]) for r in _rows(out)] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: (d / "bad.png").write_bytes(b"not a png"), "cannot read image "),
        (lambda d: (d / "bad.csv").write_text("1,2,3\n"), "bad.csv: rows have 3 values, but input `x` takes 2"),
        (lambda d: (d / "bad.txt.gz").write_text("x"), "not an image, CSV or tensor file"),
    ],
)
def test_bad_inputs_are_one_line_with_exit_2(specs_dir, tmp_path, capsys, make, message) -> None:
    make(tmp_path)
    _checkpoint(netspec.load_spec(specs_dir / "logistic_regression.yaml"), tmp_path / "best.pt")
    bad = next(p for p in tmp_path.iterdir() if p.name.startswith("bad"))
    code, out, err = _predict(capsys, specs_dir / "logistic_regression.yaml", bad, "--checkpoint", tmp_path / "best.pt")
    assert code == 2 and out == "" and message in err and err.count("\n") == 1, err


def test_load_run_predicts_on_tensors_and_files(tmp_path) -> None:
    spec = netspec.load_spec(text=IMAGE_SPEC)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "spec.yaml").write_text(spec.to_yaml())
    model = _checkpoint(spec, tmp_path / "run" / "last.pt")
    write_image_folder(tmp_path / "images", per_class=1, size=(8, 8))
    run = netspec.load_run(tmp_path / "run", base_dir=tmp_path)
    assert run.checkpoint.name == "last.pt" and run.classes == ["cat", "dog"] and not run.model.training
    x = torch.rand(3, 3, 8, 8)
    rows = run.predict(x, top_k=1)
    with torch.no_grad():
        assert [r["class"] for r in rows] == [["cat", "dog"][int(i)] for i in model(x).argmax(1)]
    assert [r["input"].rsplit("/", 2)[-2] for r in run.predict(tmp_path / "images")] == ["cat", "dog"]
    _checkpoint(spec, tmp_path / "run" / "best.pt", seed=1)
    assert netspec.load_run(tmp_path / "run").checkpoint.name == "best.pt"  # best.pt first
    # its repr names the model and its weights, not the whole spec and graph (a notebook shows it)
    best = tmp_path / "run" / "best.pt"
    assert repr(netspec.load_run(tmp_path / "run", device="cpu", base_dir=tmp_path)) == (
        f"TrainedModel('{spec.name}', checkpoint='{best}', classes=['cat', 'dog'], device='cpu')"
    )


def test_load_run_needs_a_run_directory(tmp_path) -> None:
    with pytest.raises(netspec.SpecError, match=re.escape("is not a run directory: it has no spec.yaml")):
        netspec.load_run(tmp_path)


def test_progress_bar_stays_off_stderr_when_it_is_no_terminal(specs_dir, tmp_path, capsys) -> None:
    _checkpoint(netspec.load_spec(specs_dir / "regression.yaml"), tmp_path / "best.pt")
    (tmp_path / "many.csv").write_text("".join(f"{i / 100}\n" for i in range(100)))
    code, out, err = _predict(
        capsys,
        specs_dir / "regression.yaml",
        tmp_path / "many.csv",
        "--checkpoint",
        tmp_path / "best.pt",
        "--batch-size",
        8,
    )
    assert code == 0 and len(_rows(out)) == 100 and err == ""


# ---- the output policy and inputs checked as training data is ------------------------------


def test_out_naming_an_input_or_a_folder_is_refused_and_the_input_kept(specs_dir, tmp_path, capsys) -> None:
    (tmp_path / "points.csv").write_text("3,3\n-3,-3\n")
    _checkpoint(netspec.load_spec(specs_dir / "logistic_regression.yaml"), tmp_path / "best.pt")
    spec = specs_dir / "logistic_regression.yaml"
    code, out, err = _predict(
        capsys,
        spec,
        tmp_path / "points.csv",
        "--checkpoint",
        tmp_path / "best.pt",
        "--out",
        tmp_path / "points.csv",
        "--force",
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and "is the input" in err, err
    assert err.startswith(f"{spec}: --out: ") and "writing it would destroy it" in err
    assert (tmp_path / "points.csv").read_text() == "3,3\n-3,-3\n"
    code, _, err = _predict(
        capsys, spec, tmp_path / "points.csv", "--checkpoint", tmp_path / "best.pt", "--out", tmp_path
    )
    assert code == 2 and err.endswith(" is a folder; give --out a file name\n"), err
    code, _, _ = _predict(
        capsys, spec, tmp_path / "points.csv", "--checkpoint", tmp_path / "best.pt", "--out", tmp_path / "p.csv"
    )
    assert code == 0 and len(_rows((tmp_path / "p.csv").read_text())) == 2
    code, _, err = _predict(
        capsys, spec, tmp_path / "points.csv", "--checkpoint", tmp_path / "best.pt", "--out", tmp_path / "p.csv"
    )
    assert code == 2 and "p.csv exists; pass --force" in err, err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_a_mask_folder_with_predictions_needs_force_and_never_replaces_an_input(tmp_path, capsys) -> None:
    from PIL import Image

    spec_file = tmp_path / "seg.yaml"
    spec_file.write_text(SEGMENTATION_SPEC.replace("[1, 6, 6]", "[3, 6, 6]"))
    _checkpoint(netspec.load_spec(spec_file), tmp_path / "best.pt")
    scans = tmp_path / "scans"
    scans.mkdir()
    Image.new("RGB", (6, 6), (200, 10, 10)).save(scans / "a.png")
    args = (spec_file, scans, "--checkpoint", tmp_path / "best.pt", "--out")
    code, _, err = _predict(capsys, *args, scans, "--force")
    assert code == 2 and "a.png is an input of this command" in err and err.count("\n") == 1, err
    with Image.open(scans / "a.png") as im:
        assert im.mode == "RGB"
    assert _predict(capsys, *args, tmp_path / "masks")[0] == 0
    code, _, err = _predict(capsys, *args, tmp_path / "masks")
    assert code == 2 and "already holds predictions" in err and "--force" in err, err
    assert _predict(capsys, *args, tmp_path / "masks", "--force")[0] == 0


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: (d / "nan.csv").write_text("3,3\nnan,1\n"), "nan.csv: line 2, column 1 holds NaN"),
        (
            lambda d: np.savez(d / "inf.npz", x=np.array([[0, 1], [np.inf, 2]], np.float32)),
            "inf.npz: array `x`, sample 1: holds inf",
        ),
        (
            lambda d: torch.save({"x": torch.tensor([[float("nan"), 0.0]])}, d / "nan.pt"),
            "nan.pt: array `x`, sample 0: holds nan",
        ),
        (lambda d: __import__("os").mkfifo(d / "fifo.csv"), "fifo.csv: is not a regular file"),
    ],
)
def test_nan_inf_and_fifo_inputs_are_refused_in_one_line(specs_dir, tmp_path, capsys, make, message) -> None:
    make(tmp_path)
    _checkpoint(netspec.load_spec(specs_dir / "logistic_regression.yaml"), tmp_path / "best.pt")
    bad = next(p for p in tmp_path.iterdir() if p.name != "best.pt")
    code, out, err = _predict(capsys, specs_dir / "logistic_regression.yaml", bad, "--checkpoint", tmp_path / "best.pt")
    assert code == 2 and out == "" and message in err and err.count("\n") == 1, err


def test_an_image_bomb_is_refused_before_decoding(tmp_path, capsys) -> None:
    """hostile.png_bomb: 12 kB declaring 10 000 x 10 000 pixels (300 MB decoded as RGB). PIL itself only
    warns below twice its limit: the refusal is training's (ImageFiles), applied to predict's inputs."""
    from hostile import png_bomb

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(IMAGE_SPEC)
    _checkpoint(netspec.load_spec(spec_file), tmp_path / "best.pt")
    bomb = tmp_path / "images" / "cat" / "bomb.png"
    bomb.parent.mkdir(parents=True)
    png_bomb(bomb, tmp_path)
    code, out, err = _predict(capsys, spec_file, bomb, "--checkpoint", tmp_path / "best.pt")
    assert code == 2 and out == "" and "declares more than 89,478,485 pixels" in err and err.count("\n") == 1, err
