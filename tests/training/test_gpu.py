"""The CUDA paths: placement, fp16 with GradScaler, bf16, pinned memory, resume on the GPU, and a
CPU run on a GPU machine that leaves CUDA alone. Marked `gpu`: skipped, with the reason, where
torch sees no CUDA device (tests/conftest.py)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import netspec
from netspec.data import build_loaders
from netspec.data.spec import DataSpec

from standins import make_spec, mlp, run

pytestmark = pytest.mark.gpu

SPEC = """name: gpu_mlp
inputs: {{x: [8]}}
nodes:
  - Linear: {{out_features: 16}}
  - ReLU: {{}}
  - Linear: {{out_features: 2}}
data:
  train: {{source: gaussian_clusters, n_per_class: 64, dim: 8, label_dtype: int64}}
  val: {{fraction: 0.25}}
  batch_size: 16
loss: CrossEntropyLoss
optimizer: {{Adam: {{lr: 0.01}}}}
train: {{epochs: {epochs}, seed: 3, device: cuda, precision: {precision}, deterministic: true, progress: line,
         metrics: [accuracy]}}
"""


def _train(tmp_path: Path, epochs: int = 2, precision: str = "fp32", **kw) -> netspec.training.loop.RunResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"gpu_{precision}_{epochs}.yaml"
    path.write_text(SPEC.format(epochs=epochs, precision=precision))
    kw.setdefault("out", tmp_path / "runs")
    return netspec.train(netspec.load_spec(path), stream=io.StringIO(), **kw)


def test_model_and_in_memory_data_live_on_the_gpu(tmp_path: Path) -> None:
    result = _train(tmp_path)
    assert all(p.device.type == "cuda" for p in result.model.parameters())
    log = (result.run_dir / "train.log").read_text()
    assert "device cuda" in log
    ckpt = torch.load(result.run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["rng"]["cuda"], "a CUDA run saves the CUDA generators"


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_on_the_gpu(tmp_path: Path, precision: str) -> None:
    result = _train(tmp_path, epochs=3, precision=precision)
    losses = [r["train_loss"] for r in result.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    ckpt = torch.load(result.run_dir / "last.pt", map_location="cpu", weights_only=True)
    if precision == "fp16":  # float16 needs loss scaling; bfloat16 has float32's range
        assert ckpt["scaler"] is not None and ckpt["scaler"]["scale"] > 0
    else:
        assert ckpt["scaler"] is None


def test_resume_on_the_gpu_is_exact(tmp_path: Path) -> None:
    """Two epochs, then a third by --resume, equal three uninterrupted epochs (deterministic mode)."""
    whole = _train(tmp_path / "whole", epochs=3)
    first = _train(tmp_path / "parts", epochs=2)
    resumed = _train(tmp_path / "parts", epochs=3, resume=first.run_dir, out=None)  # same spec name: same file
    assert resumed.run_dir == first.run_dir
    a = torch.load(whole.run_dir / "last.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(resumed.run_dir / "last.pt", map_location="cpu", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_pinned_batches_for_the_gpu() -> None:
    """pin_memory: batches of the per-sample path come in page-locked memory."""
    spec = DataSpec.model_validate(
        {
            "train": {"source": "random", "n": 8, "shapes": {"x": [4]}, "n_classes": 2},
            "transforms": [{"RandomHorizontalFlip": {}}],
            "batch_size": 4,
            "loader": {"pin_memory": True},
        }
    )
    loaders = build_loaders(spec, base_dir=Path("."), input_names=["x"], seed=0, device=torch.device("cuda"))
    inputs, target = next(iter(loaders.train))
    assert inputs["x"].is_pinned() and target.is_pinned()


def test_stand_in_model_moves_to_the_gpu(tmp_path: Path) -> None:
    result = run(make_spec(train={"epochs": 1, "device": "cuda"}), tmp_path, model=mlp())
    assert next(result.model.parameters()).device.type == "cuda"


def test_a_cpu_run_leaves_cuda_alone(tmp_path: Path) -> None:
    """`device: cpu` on a machine with a GPU never starts CUDA (no context, no device memory),
    not even to save the CUDA random generators."""
    path = tmp_path / "cpu.yaml"
    path.write_text(SPEC.format(epochs=1, precision="fp32").replace("device: cuda", "device: cpu"))
    script = (
        "import io, sys, torch, netspec\n"
        f"netspec.train(netspec.load_spec({str(path)!r}), out={str(tmp_path / 'runs')!r}, stream=io.StringIO())\n"
        "print(torch.cuda.is_initialized())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stderr
