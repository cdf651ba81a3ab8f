"""What a run shows: the progress bar, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from standins import loaders, make_spec, run


def test_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(make_spec(train={"epochs": 2, "progress": "bar"}), tmp_path)
    err = capsys.readouterr().err
    assert "epoch 2/2:" in err and "batch/s" in err  # tqdm on stderr (loss, samples/s as it refreshes)
    assert "epoch 2/2" in result.log  # the epoch line is still printed


def test_tensorboard_used_when_importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    written: list[tuple] = []

    class Writer:
        def __init__(self, log_dir: str) -> None:
            written.append(("dir", log_dir))

        def add_scalar(self, key: str, value: float, step: int) -> None:
            written.append((key, step))

        def close(self) -> None:
            written.append(("closed",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    run(make_spec(train={"epochs": 2}), tmp_path)
    assert ("train_loss", 2) in written and ("val_loss", 1) in written and written[-1] == ("closed",)


def test_progress_bar_reads_the_loss_at_a_fixed_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar copies the loss to the host once per refresh (every Bar.EVERY seconds), never per batch."""
    from netspec.training import report

    copies = []
    real = report.Lagged

    def counting(value):
        copies.append(1)
        return real(value)

    monkeypatch.setattr(report, "Lagged", counting)
    monkeypatch.setattr(report.Bar, "EVERY", 3600.0)
    run(make_spec(train={"epochs": 2, "progress": "bar"}), tmp_path, data=loaders(batch=4))  # 24 batches an epoch
    assert len(copies) == 2  # the first batch of each epoch


_TINY = """\
name: tiny
inputs: {x: [2]}
nodes:
  - fc: {Linear: {out_features: 4}}
  - Dropout: 0.5
  - head: {Linear: {out_features: 2}}
data:
  train: {source: gaussian_clusters, n_per_class: 16, label_dtype: int64}
  batch_size: 8
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.1}}
train: {epochs: 2, device: cpu, progress: line}
"""


def _train_tiny(tmp_path: Path, name: str) -> Any:
    import io

    import netspec
    from netspec.training.loop import train

    return train(netspec.load_spec(text=_TINY), out=tmp_path / name, stream=io.StringIO())


def test_tensorboard_gets_the_model_graph_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 001's writer.add_graph(model, input): on inputs of the declared shapes, in eval mode,
    without changing how the run trains (the dropout draws the same numbers with and without it)."""
    import sys
    import types

    import torch

    plain = _train_tiny(tmp_path, "plain")
    graphs: list[tuple] = []

    class Writer:
        def __init__(self, log_dir: str) -> None:
            pass

        def add_graph(self, model: Any, inputs: Any) -> None:
            graphs.append((model.training, tuple(inputs.shape)))
            torch.rand(100)  # tracing runs the model: any draw must not shift the run's random numbers

        def add_scalar(self, *args: Any) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    traced = _train_tiny(tmp_path, "traced")
    assert graphs == [(True, (2, 2))]  # once; add_graph itself switches to eval
    assert "TensorBoard: model graph written to tb/" in (traced.run_dir / "train.log").read_text()
    for a, b in zip(plain.model.state_dict().values(), traced.model.state_dict().values()):
        assert torch.equal(a, b)


def test_tensorboard_graph_with_tensorboard_itself(tmp_path: Path) -> None:
    pytest.importorskip(
        "tensorboard", reason="tensorboard is not installed (the graph is tested with a stand-in above)"
    )
    result = _train_tiny(tmp_path, "tb")
    assert "TensorBoard: model graph written to tb/" in (result.run_dir / "train.log").read_text()
    assert list((result.run_dir / "tb").glob("events.out.tfevents.*"))


def _epoch_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("epoch ")]


def _lr_of(line: str) -> float:
    return float(line.split("  lr ")[1].split()[0])


class _Scalars:
    """A stand-in TensorBoard writer that keeps the scalars."""

    def __init__(self, log_dir: str) -> None:
        self.lr: list[tuple[int, float]] = []
        _Scalars.last = self

    def add_scalar(self, key: str, value: float, step: int) -> None:
        if key == "lr":
            self.lr.append((step, value))

    def add_graph(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_logged_lr_is_the_one_each_epoch_trained_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """StepLR(step_size=2): epochs 1-2 train with 0.1, 3-4 with 0.01, 5 with 0.001. The console
    line, metrics.jsonl and TensorBoard each say that rate (not the one after the epoch's step)."""
    import sys
    import types

    import torch

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=_Scalars))
    spec = make_spec(
        optimizer={"SGD": {"lr": 0.1}}, scheduler={"StepLR": {"step_size": 2, "gamma": 0.1}}, train={"epochs": 5}
    )
    seen: list[float] = []  # what the optimizer used, read inside each step
    real_step = torch.optim.SGD.step

    def spying_step(self: Any, *args: Any, **kw: Any) -> Any:
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kw)

    monkeypatch.setattr(torch.optim.SGD, "step", spying_step)
    result = run(spec, tmp_path)
    per_epoch = len(seen) // 5
    used = [seen[k * per_epoch] for k in range(5)]
    assert all(seen[k * per_epoch : (k + 1) * per_epoch] == [used[k]] * per_epoch for k in range(5))
    assert used == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert [_lr_of(line) for line in _epoch_lines(result.log)] == pytest.approx(used, rel=1e-3)  # printed to 3 digits
    assert [r["lr"] for r in result.history] == pytest.approx(used)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == pytest.approx(used)
    assert _Scalars.last.lr == [(k + 1, pytest.approx(lr)) for k, lr in enumerate(used)]


def test_a_per_step_schedule_logs_the_lr_of_the_epochs_last_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    spec = make_spec(
        optimizer={"SGD": {"lr": 0.1}},
        scheduler={"StepLR": {"step_size": 4, "gamma": 0.5}, "interval": "step"},
        train={"epochs": 3},
    )
    seen: list[float] = []
    real_step = torch.optim.SGD.step

    def spying_step(self: Any, *args: Any, **kw: Any) -> Any:
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kw)

    monkeypatch.setattr(torch.optim.SGD, "step", spying_step)
    result = run(spec, tmp_path)  # 96 samples, batches of 16: 6 steps an epoch
    assert len(seen) == 18
    assert [r["lr"] for r in result.history] == pytest.approx([seen[5], seen[11], seen[17]])


def test_the_early_stopping_line_follows_the_last_epochs_line(tmp_path: Path) -> None:
    nothing_learnt = {"SGD": {"lr": 0.0}}  # val_loss never improves after epoch 1
    spec = make_spec(optimizer=nothing_learnt, train={"epochs": 10, "log_every": 5, "early_stopping": {"patience": 2}})
    result = run(spec, tmp_path)
    assert result.stop_reason == "early_stopping" and result.epochs == 3
    lines = [line for line in result.log.splitlines() if line.startswith(("epoch ", "early stopping"))]
    assert [line.split()[1] if line.startswith("epoch") else "stop" for line in lines] == ["1/10", "3/10", "stop"]
    assert lines == [line for line in (result.run_dir / "train.log").read_text().splitlines() if line in lines]
