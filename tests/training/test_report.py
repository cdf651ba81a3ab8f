"""What a run shows: the progress bar, TensorBoard."""

from __future__ import annotations

from pathlib import Path

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
