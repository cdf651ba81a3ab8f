"""Every spec in ``specs/`` trains: `netspec run SPEC` for one short epoch on tiny data.

The list of specs is a glob, so a new spec is smoke-run without writing a test. Data sets that
would need a download (Fashion-MNIST, MNIST, CIFAR-10, image folders, tensor files) are written
into ``tmp_path`` with ``tests/datafiles.py`` and the spec's ``root``/``path`` is pointed there
with ``--set``; generated sources are kept small. Big models run at a small input size
(``inputs.image.shape``, with the spec's Resize/CenterCrop or generated size to match), which
changes the parameter count of AlexNet's inferred Linear but nothing else that is tested here.

The seed 000 example is also run in full, exactly as the README shows it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netspec.cli import main
from netspec.compiler.extends import resolve_extends
from netspec.compiler.source import load_document

from datafiles import write_cifar, write_image_folder, write_mnist, write_npz
from speclist import spec_params

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))

MNIST_FAMILY = ("MNIST", "FashionMNIST", "KMNIST")
GENERATED = ("gaussian_clusters", "function_regression", "random", "random_segmentation", "shapes")

# Per spec: overrides that shrink a big model's input (and the data that feeds it).
SMALL: dict[str, list[str]] = {
    # 1.7 s a step at 224x224; at 96x96 the features end at 1x1, so fc's input is 256, not 6400
    "alexnet_fashion": ["inputs.image.shape=[1, 96, 96]", "data.transforms.0.Resize=96"],
    # at 224x224: its transforms are resnet18's weights' own (Resize 256, CenterCrop 224); frozen, so cheap
    "resnet18_finetune": ["data.loader.num_workers=0"],
    # not smaller: BatchNorm over 2 values per channel (batch 2 at layer4's 1x1) blows up the gradients
    "resnet50_extra_input": ["inputs.image.shape=[3, 64, 64]", "data.train.shapes.image=[3, 64, 64]", "data.train.n=8"],
    "resnet50_extra_output": [
        "inputs.image.shape=[3, 64, 64]",
        "data.train.shapes.image=[3, 64, 64]",
        "data.train.n=8",
    ],
    "unet": ["inputs.image.shape=[3, 32, 32]", "data.train.size=32", "data.train.n=8", "data.batch_size=4"],
    "small_resnet": ["data.loader.num_workers=0"],
    "timm_resnet34": ["inputs.image.shape=[1, 64, 64]", "data.train.shapes.image=[1, 64, 64]", "data.train.n=8"],
    "timm_resnet34_fashion": ["inputs.image.shape=[1, 64, 64]", "data.transforms.0.Resize=64"],
    "resnet18": [
        "inputs.image.shape=[3, 64, 64]",
        "data.transforms.0.RandomResizedCrop=64",
        "data.eval_transforms.0.Resize=72",
        "data.eval_transforms.1.CenterCrop=64",
        "data.loader.num_workers=0",
    ],
}


@pytest.fixture
def cifar_unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our CIFAR test files cannot match torchvision's MD5 sums: skip that check."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    for cls in (cifar.CIFAR10, cifar.CIFAR100):
        monkeypatch.setattr(cls, "_check_integrity", lambda self: True)


def _tensor_file(path: Path, fields: dict[str, Any], n: int) -> None:
    """An .npz with the arrays a spec's `fields` names (two_input_net: feature1/feature2/label)."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 100, (n, 32))
    tokens[::2, 20:] = 0  # padding (transformer_classifier)
    arrays = {
        "feature1": rng.standard_normal((n, 1, 10, 18)).astype(np.float32),
        "feature2": rng.standard_normal((n, 8)).astype(np.float32),
        "tokens": tokens,
        "next_tokens": np.roll(tokens, -1, axis=1),  # word_language_model's targets
        "label": np.arange(n) % 2,  # both classes present: the sampler weighs class 1
    }
    wanted = list(dict.fromkeys([*fields.get("inputs", {}).values(), fields.get("target", "label")]))
    assert set(wanted) <= set(arrays), f"tests/{Path(__file__).name} has no test data for fields {wanted}"
    write_npz(path, **{k: arrays[k] for k in wanted})


def data_overrides(spec: dict[str, Any], tmp: Path) -> list[str]:
    """Write small data where each split's source can read it; the `--set`s that point there."""
    data = spec.get("data") or {}
    out = ["data.batch_size=4"]
    for split in ("train", "val", "test"):
        entry = data.get(split)
        if not isinstance(entry, dict) or "source" not in entry:
            continue  # absent, or `{fraction: ...}` of train
        source, key = entry["source"], f"data.{split}"
        if source in MNIST_FAMILY:
            if not (tmp / "data" / source).exists():
                write_mnist(tmp / "data", source, n_train=20, n_test=10)
            out.append(f"{key}.root={tmp / 'data'}")
        elif source in ("CIFAR10", "CIFAR100"):
            if not (tmp / "cifar").exists():
                write_cifar(tmp / "cifar", source, n=4)
            out.append(f"{key}.root={tmp / 'cifar'}")
        elif source == "ImageFolder":
            write_image_folder(tmp / "images" / split, ("a", "b", "c"), per_class=2, size=(80, 76))
            out.append(f"{key}.root={tmp / 'images' / split}")
        elif source == "tensors":
            _tensor_file(tmp / f"{split}.npz", data.get("fields") or {}, 20)
            out.append(f"{key}.path={tmp / f'{split}.npz'}")
        else:
            assert source in GENERATED, f"no test data for source {source}: teach data_overrides()"
        out.append(f"{key}.limit=12")
    return out


@pytest.mark.parametrize("path", spec_params(SPECS))
def test_spec_runs_one_short_epoch(
    path: Path, tmp_path: Path, cifar_unchecked: None, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = resolve_extends(load_document(path)).data  # with the sections of a base it extends
    assert {"data", "loss", "optimizer"} <= set(spec), f"{path.name} has no training sections"
    overrides = [
        "train.epochs=1",
        "train.device=cpu",
        "train.progress=line",
        *data_overrides(spec, tmp_path),
        *SMALL.get(path.stem, []),
    ]
    argv = ["run", str(path), "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path)]  # data is written there
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "done: 1 epochs" in out, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert {"spec.yaml", "spec.sha256", "train.log", "metrics.jsonl", "last.pt"} <= {p.name for p in run_dir.iterdir()}
    (record,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert record["epoch"] == 1 and record["step"] >= 1
    assert math.isfinite(record["train_loss"])
    if "val" in (spec.get("data") or {}):
        assert math.isfinite(record["val_loss"])
    assert "epochs: 1" in (run_dir / "spec.yaml").read_text()  # the overrides are in the resolved spec


def test_logistic_regression_runs_as_in_the_readme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Seed 000 end to end: `netspec run specs/logistic_regression.yaml --out DIR`, offline,
    stops on stop_when once the training accuracy exceeds 0.99."""
    assert main(["run", str(ROOT / "specs" / "logistic_regression.yaml"), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "stop_when: train_accuracy = " in out and "(stop_when)" in out, out
    (run_dir,) = tmp_path.iterdir()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train_accuracy"] > 0.99
    assert all(r["train_accuracy"] <= 0.99 for r in records[:-1])  # it stopped at the first success
    assert 1 < len(records) < 1000 and records[-1]["step"] == len(records)  # one step per epoch
    assert (run_dir / "last.pt").exists()
