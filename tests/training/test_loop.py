"""The loop against a plain PyTorch loop given the same seed (bit-equal weights), NaN handling,
stopping, precision and several outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from netspec.errors import NonFiniteLoss, SpecError
from netspec.training.hardware import set_seed

from standins import (
    Loader,
    Loaders,
    NanAt,
    assert_same_weights,
    blobs,
    loaders,
    make_spec,
    mlp,
    nan_loaders,
    plain_loop,
    run,
)


def test_parity_sgd_momentum(tmp_path: Path) -> None:
    spec = make_spec(train={"epochs": 3, "seed": 7})
    result = run(spec, tmp_path)
    ref = mlp()
    plain_loop(ref, loaders(), torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9), 3, seed=7)
    assert_same_weights(result.model, ref)
    assert result.steps == 3 * 6


def test_parity_with_scheduler_and_clip(tmp_path: Path) -> None:
    spec = make_spec(
        optimizer={"Adam": {"lr": 0.01}},
        scheduler={"StepLR": {"step_size": 2, "gamma": 0.5}, "interval": "step"},
        train={"epochs": 2, "grad_clip": 0.5},
    )
    result = run(spec, tmp_path)
    ref = mlp()
    opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    plain_loop(ref, loaders(), opt, 2, sched=sched, interval="step", clip=0.5)
    assert_same_weights(result.model, ref)
    # the epoch's record: the lr of its last step (step 12 of 12: 0.01 * 0.5 ** (11 // 2)), not the next one
    assert result.history[-1]["lr"] == pytest.approx(0.01 * 0.5**5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**6)


def test_parity_grad_accumulation(tmp_path: Path) -> None:
    # 7 batches of 14 (98 samples) with accumulation 3: windows of 3, 3 and a short 1.
    data = Loaders(Loader(*blobs(98), 14))
    spec = make_spec(
        train={"epochs": 2, "grad_accumulation": 3}, scheduler={"CosineAnnealingLR": {}}
    )  # T_max filled in: 2 epochs
    result = run(spec, tmp_path, data=data)
    ref = mlp()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
    plain_loop(ref, Loaders(Loader(*blobs(98), 14)), opt, 2, accum=3, sched=sched)
    assert_same_weights(result.model, ref)
    assert result.steps == 2 * 3


def test_train_loss_is_sample_weighted_mean(tmp_path: Path) -> None:
    # seed 003: train_loss += loss.item() * data.size(0); / len(dataset); with a short last batch.
    data = Loaders(Loader(*blobs(40), 16, shuffle=False))
    spec = make_spec(optimizer={"SGD": {"lr": 0.0}}, train={"epochs": 1})
    model = mlp().eval()
    result = run(spec, tmp_path, model=model, data=data)
    x, y = blobs(40)
    set_seed(0)
    model.train()
    expected = (
        sum(F.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).item() * len(y[i : i + 16]) for i in range(0, 40, 16))
        / 40
    )
    assert result.history[0]["train_loss"] == pytest.approx(expected, rel=1e-5)


def test_nan_loss_stops_naming_epoch_and_step(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at epoch 1, step 3 \(batch 3 of 6\)") as err:
        run(make_spec(train={"epochs": 2}), tmp_path, model=NanAt(), data=nan_loaders())
    assert "no checkpoint was written yet" in str(err.value)


def test_nan_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    x, y = blobs(96)
    bad = {"on": False}

    class Flip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) * (float("nan") if bad["on"] else 1.0)

    def turn_bad(epoch: int, batch: int) -> None:
        bad["on"] = epoch == 1

    data = Loaders(Loader(x, y, 16, on_batch=turn_bad))
    with pytest.raises(NonFiniteLoss, match="epoch 2, step 7") as err:
        run(make_spec(train={"epochs": 3}), tmp_path, model=Flip(), data=data)
    last = Path(str(err.value).split("checkpoint is ")[1].split(";")[0])
    assert torch.load(last, weights_only=True)["epoch"] == 1


def test_nan_skip_drops_the_batch(tmp_path: Path) -> None:
    result = run(make_spec(train={"epochs": 1, "on_nan": "skip"}), tmp_path, model=NanAt(), data=nan_loaders())
    assert result.steps == 5 and result.history[0]["skipped_batches"] == 1
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert "batch skipped" in result.log


def test_early_stopping(tmp_path: Path) -> None:
    spec = make_spec(
        optimizer={"SGD": {"lr": 0.0}}, train={"epochs": 10, "early_stopping": {"monitor": "val_loss", "patience": 2}}
    )
    result = run(spec, tmp_path)  # lr 0: val_loss never improves after epoch 1
    assert result.stop_reason == "early_stopping" and result.epochs == 3
    # its repr says where the run went and how it ended, not the model and every record
    assert repr(result) == (
        f"RunResult(run_dir={str(result.run_dir)!r}, stop_reason='early_stopping', epochs=3, "
        f"steps={result.steps}, best={result.best!r})"
    ) and "val_loss" in repr(result)


def test_stop_when_seed_000_logistic_regression(tmp_path: Path) -> None:
    """Seed 000: two Gaussian clusters, Linear(2, 1) + Sigmoid, BCELoss on (N, 1) vs (N,) labels,
    SGD lr 0.01 momentum 0.9, full batch, stop once training accuracy exceeds 0.99."""
    torch.manual_seed(10)
    n = torch.ones(100, 2)
    x = torch.cat([torch.normal(1.7 * n, 1) + 1, torch.normal(-1.7 * n, 1) + 1])
    y = torch.cat([torch.zeros(100), torch.ones(100)])
    model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    spec = make_spec(
        outputs=["prob"],
        inputs={"x": {"shape": [2]}},
        loss="BCELoss",
        optimizer={"SGD": {"lr": 0.01, "momentum": 0.9}},
        train={
            "epochs": 1000,
            "metrics": ["accuracy"],
            "checkpoint": {"every": 100},
            "stop_when": {"monitor": "train_accuracy", "above": 0.99, "check_every": "step"},
        },
    )
    result = run(spec, tmp_path, model=model, data=Loaders(Loader(x, y, 200, shuffle=False)))
    assert result.stop_reason == "stop_when"
    assert result.steps < 1000
    with torch.no_grad():
        acc = ((model(x).squeeze(1) > 0.5).float() == y).float().mean()
    assert acc > 0.98  # measured before the last update, as in the seed


def test_no_val_split_refuses_val_monitor(tmp_path: Path) -> None:
    spec = make_spec(train={"early_stopping": {"monitor": "val_loss"}})
    with pytest.raises(SpecError, match="no metric `val_loss`") as err:
        run(spec, tmp_path, data=Loaders(loaders().train))
    assert err.value.path == ("train", "early_stopping", "monitor")
    assert "no validation data" in (err.value.hint or "")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(tmp_path: Path, precision: str) -> None:
    result = run(make_spec(train={"epochs": 2, "precision": precision, "device": "cpu", "grad_clip": 1.0}), tmp_path)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] * 1.5
    ckpt = torch.load(result.run_dir / "last.pt", weights_only=True)
    assert (ckpt["scaler"] is not None) == (precision == "fp16")


def test_same_seed_same_result_different_seed_differs(tmp_path: Path) -> None:
    a = run(make_spec(train={"seed": 3}), tmp_path)
    b = run(make_spec(train={"seed": 3}), tmp_path)
    c = run(make_spec(train={"seed": 4}), tmp_path)
    assert_same_weights(a.model, b.model)
    assert not torch.equal(a.model[0].weight, c.model[0].weight)  # dropout and order differ


def test_multi_output_model_with_dict_targets(tmp_path: Path) -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(8, 16)
            self.cls, self.reg = nn.Linear(16, 3), nn.Linear(16, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.body(x).relu()
            return self.cls(h), self.reg(h)

    x, y = blobs(64)
    targets = {"label": y, "size": x.norm(dim=1)}
    spec = make_spec(
        outputs=["label", "size"],
        loss={"outputs": {"label": "CrossEntropyLoss", "size": {"MSELoss": {}, "weight": 0.1}}},
        train={"epochs": 2, "metrics": [{"accuracy": {}, "output": "label"}, {"mae": {}, "output": "size"}]},
    )
    result = run(spec, tmp_path, model=TwoHeads(), data=Loaders(Loader(x, targets, 16)))
    assert {"train_label_accuracy", "train_size_mae"} <= set(result.history[-1])


def _count_host_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of a tensor's value into Python (each a device sync on a GPU), counted."""
    reads: list[str] = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy"):
        real = getattr(torch.Tensor, name)

        def counting(self, *args, _real=real, _name=name, **kw):
            reads.append(_name)
            return _real(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return reads


def test_no_host_read_per_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step reads nothing back from the device (on a GPU each read would stop the host from
    queueing work ahead): four times the steps, with loss, metrics and NaN watch, make no more reads."""
    from netspec.training.meters import LossMeter

    counts = []
    for batch in (16, 4):  # 6 or 24 steps an epoch; fewer than one queued NaN check
        reads = _count_host_reads(monkeypatch)
        # the losses kept as on a GPU: on the CPU, where a read costs no wait, each is read at once
        monkeypatch.setattr(LossMeter.__init__, "__defaults__", (False,))
        # SGD: CPU Adam reads its step counters with .item() (CPU tensors on a GPU run too: no sync)
        spec = make_spec(train={"epochs": 3, "metrics": ["accuracy", {"top_k_accuracy": {"k": 2}}], "grad_clip": 1.0})
        run(spec, tmp_path / str(batch), data=loaders(batch=batch))
        counts.append(len(reads))
        monkeypatch.undo()
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize("read_cpu", [False, True])
def test_nan_found_batches_later_is_named_where_it_happened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_cpu: bool
) -> None:
    """The queued checks find a NaN within two check intervals, naming its own batch; no
    checkpoint is written after it. On the CPU, where each loss is read at once, at its batch."""
    import netspec.training.watch as watch
    from netspec.training.meters import LossMeter

    monkeypatch.setattr(LossMeter.__init__, "__defaults__", (read_cpu,))
    monkeypatch.setattr(watch, "CHECK_EVERY", 4)
    monkeypatch.setattr(watch.NanWatch.__init__, "__defaults__", (4,))
    x, y = blobs(320)
    x[5 * 16 + 3] = 1234.0  # batch 6 of 20 (unshuffled)
    seen = []

    class Counting(NanAt):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(1)
            return super().forward(x)

    with pytest.raises(NonFiniteLoss, match=r"loss is nan at epoch 1, step 6 \(batch 6 of 20\)"):
        run(make_spec(train={"epochs": 2}), tmp_path, model=Counting(), data=Loaders(Loader(x, y, 16, shuffle=False)))
    assert len(seen) == 6 if read_cpu else 6 < len(seen) <= 6 + 2 * 4


@pytest.mark.gpu
def test_no_device_sync_per_step_on_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA, with in-memory data on the device, torch's sync debug mode raises at any
    synchronising call between the second forward of an epoch and its end-of-epoch check."""
    import netspec.training.loop as loop
    from netspec.data import DataSpec, build_loaders
    from netspec.training.watch import NanWatch

    x, y = blobs(2048)
    from datafiles import write_pt

    write_pt(tmp_path / "d.pt", {"x": x, "y": y})
    data = build_loaders(
        DataSpec.model_validate({"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 32}),
        base_dir=tmp_path,
        input_names=["x"],
        seed=0,
        device=torch.device("cuda"),
    )
    calls = [0]
    real_forward, real_check = loop.forward, NanWatch.check

    def forward(run_, inputs, *rest):
        calls[0] += 1
        if calls[0] == 2:
            torch.cuda.set_sync_debug_mode("error")
        return real_forward(run_, inputs, *rest)

    def check(self):
        torch.cuda.set_sync_debug_mode("default")
        calls[0] = 0
        return real_check(self)

    monkeypatch.setattr(loop, "forward", forward)
    monkeypatch.setattr(NanWatch, "check", check)
    spec = make_spec(
        train={"epochs": 2, "device": "cuda", "metrics": ["accuracy"], "grad_clip": 1.0},
        optimizer={"Adam": {"lr": 0.01}},
    )
    try:
        result = run(spec, tmp_path, data=Loaders(data.train))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.steps == 2 * 64


def test_nan_in_the_data_is_blamed_on_the_data(tmp_path: Path) -> None:
    """A NaN input (here from a loader given in Python; netspec's own loaders refuse NaN when
    they are built) makes the loss NaN: the message says the batch holds it, not the lr."""
    x, y = blobs(96)
    x[20, 3] = float("nan")
    with pytest.raises(
        NonFiniteLoss,
        match=r"loss is nan at epoch 1, step 2 \(batch 2 of 6\): the batch's input "
        r"`x` holds NaN or inf",
    ) as err:
        run(make_spec(train={"epochs": 1}), tmp_path, data=Loaders(Loader(x, y, 16, shuffle=False)))
    assert "learning rate" not in str(err.value) and "transforms" in (err.value.hint or "")
