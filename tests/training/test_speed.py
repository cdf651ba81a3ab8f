"""The speed switches of `train:` (netspec.training.speed): each against the plain loop on the
CPU, equal where the math is the same and close where the kernels differ; CUDA defaults on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

import netspec.training.speed as speed
from netspec.errors import SpecError

from standins import Loader, Loaders, assert_same_weights, blobs, loaders, make_spec, mlp, plain_loop, run


def test_compile_is_the_same_math(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile with the graph-capturing "eager" backend runs the same kernels: bit-equal
    to the plain loop; checkpoints hold the plain module's state dict."""
    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")
    result = run(make_spec(train={"epochs": 2, "seed": 7, "compile": True}), tmp_path)
    ref = mlp()
    plain_loop(ref, loaders(), torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9), 2, seed=7)
    assert_same_weights(result.model, ref)
    assert not isinstance(result.model, torch._dynamo.eval_frame.OptimizedModule)
    ckpt = torch.load(result.run_dir / "last.pt", weights_only=True)
    assert set(ckpt["model"]) == set(ref.state_dict())
    assert "torch.compile: mode default" in result.log


@pytest.mark.slow
def test_compile_with_inductor_trains_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated kernels: close, not equal. (Inductor draws dropout masks its own way unless told
    to fall back to torch's RNG.)"""
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    result = run(make_spec(train={"epochs": 2, "seed": 7, "compile": "default"}), tmp_path)
    ref = mlp()
    plain_loop(ref, loaders(), torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9), 2, seed=7)
    for a, b in zip(result.model.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


class Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).relu().flatten(1))  # (N, 4, 4, 4) -> (N, 64) -> (N, 3)


def images() -> Loaders:
    x, y = blobs(96, features=36)
    return Loaders(Loader(x.view(96, 1, 6, 6), y, 16))


def test_channels_last_trains_alike_and_resumes(tmp_path: Path) -> None:
    spec = lambda epochs: make_spec(train={"epochs": epochs, "channels_last": True})  # noqa: E731
    result = run(spec(2), tmp_path / "a", model=Conv(), data=images())
    assert result.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    ref = Conv()
    plain_loop(ref, images(), torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9), 2)
    for a, b in zip(result.model.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # NHWC convolutions round differently
    first = run(spec(1), tmp_path / "b", model=Conv(), data=images())
    resumed = run(spec(2), tmp_path / "b", model=Conv(), data=images(), resume=first.run_dir)
    assert_same_weights(resumed.model, result.model)


def test_fused_optimizer(tmp_path: Path) -> None:
    """`auto` leaves the CPU alone (the parity tests are bit-exact); `true` fuses where torch
    can, close to the per-parameter step."""
    adam = {"Adam": {"lr": 0.01}}
    auto = run(make_spec(optimizer=adam, train={"epochs": 2}), tmp_path / "auto")
    assert "added by netspec" not in auto.log
    fused = run(make_spec(optimizer=adam, train={"epochs": 2, "fused_optimizer": True}), tmp_path / "fused")
    assert "optimizer: Adam(fused=True) added by netspec" in fused.log
    for a, b in zip(fused.model.state_dict().values(), auto.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    said = run(
        make_spec(optimizer={"Adam": {"lr": 0.01, "foreach": False}}, train={"fused_optimizer": True}),
        tmp_path / "said",
    )  # the spec's own choice wins
    assert "added by netspec" not in said.log


def test_cudnn_benchmark_for_the_run_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = speed.prepare_model

    def spy(*args, **kw):
        seen.append(torch.backends.cudnn.benchmark)
        return real(*args, **kw)

    monkeypatch.setattr("netspec.training.loop.prepare_model", spy)
    before = torch.backends.cudnn.benchmark
    run(make_spec(train={"cudnn_benchmark": True}), tmp_path / "on")
    run(make_spec(train={"cudnn_benchmark": "auto"}), tmp_path / "auto")  # CPU: left alone
    assert seen == [True, before] and torch.backends.cudnn.benchmark == before
    with pytest.raises(SpecError, match="rules out") as err:
        make_spec(train={"cudnn_benchmark": True, "deterministic": True})
    assert err.value.path == ("train",)


@pytest.mark.gpu
def test_cuda_defaults_fuse_and_autotune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = speed.prepare_model

    def spy(model, tspec, hw, log):
        seen.append(torch.backends.cudnn.benchmark)
        return real(model, tspec, hw, log)

    monkeypatch.setattr("netspec.training.loop.prepare_model", spy)
    result = run(make_spec(optimizer={"Adam": {"lr": 0.01}}, train={"device": "cuda", "epochs": 1}), tmp_path)
    assert seen == [True] and "Adam(fused=True) added by netspec" in result.log
    det = run(
        make_spec(optimizer={"Adam": {"lr": 0.01}}, train={"device": "cuda", "deterministic": True}), tmp_path / "det"
    )
    assert seen[-1] is False and det.steps == 6
