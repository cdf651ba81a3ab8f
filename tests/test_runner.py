"""The runner against a plain PyTorch loop, resume against an uninterrupted run, and the
run directory. Stand-ins replace the compiler and the data pipeline: a pydantic Spec with
the training sections, an nn.Module, and loaders with ``set_epoch`` like data.py's.
"""

from __future__ import annotations

import io
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from netspec.errors import CheckpointError, SpecError, TrainingError
from netspec.runner import (
    Interrupted,
    NonFiniteLoss,
    evaluate,
    load_checkpoint,
    set_seed,
    spec_hash,
    train,
)
from netspec.train_spec import TrainingSections

# --------------------------------------------------------------------------- stand-ins


class Spec(TrainingSections):
    """What the runner reads from netspec.spec.Spec."""

    name: str = "standin"
    inputs: dict[str, Any] = {"x": {"shape": [8]}}
    outputs: list[str] = ["logits"]
    data: Any = None

    @property
    def output_names(self) -> list[str]:
        return self.outputs


def make_spec(**sections: Any) -> Spec:
    sections.setdefault("loss", "CrossEntropyLoss")
    sections.setdefault("optimizer", {"SGD": {"lr": 0.1, "momentum": 0.9}})
    train = {"progress": "line", **sections.pop("train", {})}
    return Spec.model_validate({**sections, "train": train})


class Loader:
    """Batches sliced from tensors; the order comes from a generator reseeded by set_epoch."""

    def __init__(self, x: torch.Tensor, y: Any, batch_size: int, shuffle: bool = True, seed: int = 0,
                 name: str = "x", on_batch: Any = None) -> None:
        self.x, self.y, self.batch_size, self.shuffle, self.seed, self.name = x, y, batch_size, shuffle, seed, name
        self.epoch, self.on_batch = 0, on_batch
        self.dataset_size = len(x)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.x), generator=g) if self.shuffle else torch.arange(len(self.x))
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.on_batch is not None:
                self.on_batch(self.epoch, b)
            y = {k: v[idx] for k, v in self.y.items()} if isinstance(self.y, dict) else self.y[idx]
            yield {self.name: self.x[idx]}, y


@dataclass
class Loaders:
    train: Any
    val: Any = None
    test: Any = None
    info: dict = field(default_factory=dict)


def blobs(n: int = 96, classes: int = 3, features: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    centers = torch.randn(classes, features, generator=g) * 2
    return centers[y] + torch.randn(n, features, generator=g), y


def loaders(batch: int = 16, n: int = 96, on_batch: Any = None) -> Loaders:
    x, y = blobs(n)
    xv, yv = blobs(48, seed=2)
    return Loaders(Loader(x, y, batch, on_batch=on_batch), Loader(xv, yv, 32, shuffle=False))


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def run(spec: Spec, tmp_path: Path, model: nn.Module | None = None, data: Loaders | None = None, **kw: Any):
    log = io.StringIO()
    out = None if "resume" in kw else tmp_path / "runs"  # a resumed run continues in its own directory
    result = train(spec, model=model or mlp(), loaders=data or loaders(), out=out, stream=log, **kw)
    result.log = log.getvalue()  # type: ignore[attr-defined]
    return result


def plain_loop(model: nn.Module, data: Loaders, opt: torch.optim.Optimizer, epochs: int, *, seed: int = 0,
               accum: int = 1, sched: Any = None, interval: str = "epoch", clip: float | None = None) -> None:
    """The textbook loop (seed 003), the reference the runner must match exactly."""
    set_seed(seed)
    loader = data.train
    for epoch in range(epochs):
        model.train()
        loader.set_epoch(epoch)
        n = len(loader)
        for i, (inputs, y) in enumerate(loader):
            loss = F.cross_entropy(model(inputs["x"]), y)
            window = min(accum, n - (i // accum) * accum)
            (loss / window if window > 1 else loss).backward()
            if (i + 1) % accum == 0 or i + 1 == n:
                if clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                opt.zero_grad()
                if sched is not None and interval == "step":
                    sched.step()
        if sched is not None and interval == "epoch":
            sched.step()


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


# --------------------------------------------------------------------------- parity with a plain loop


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
    assert result.history[-1]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_parity_grad_accumulation(tmp_path: Path) -> None:
    # 7 batches of 14 (98 samples) with accumulation 3: windows of 3, 3 and a short 1.
    data = Loaders(Loader(*blobs(98), 14))
    spec = make_spec(train={"epochs": 2, "grad_accumulation": 3},
                     scheduler={"CosineAnnealingLR": {}})  # T_max filled in: 2 epochs
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
    expected = sum(F.cross_entropy(model(x[i:i + 16]), y[i:i + 16]).item() * len(y[i:i + 16]) for i in range(0, 40, 16)) / 40
    assert result.history[0]["train_loss"] == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- resume


def _strip_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("t", "time_s", "samples_per_s")} for r in records]


def test_resume_at_epoch_boundary_equals_uninterrupted(tmp_path: Path) -> None:
    full = run(make_spec(train={"epochs": 3}, scheduler={"ExponentialLR": {"gamma": 0.9}}), tmp_path / "a")
    first = run(make_spec(train={"epochs": 1}, scheduler={"ExponentialLR": {"gamma": 0.9}}), tmp_path / "b")
    resumed = run(make_spec(train={"epochs": 3}, scheduler={"ExponentialLR": {"gamma": 0.9}}), tmp_path / "b",
                  resume=first.run_dir / "last.pt")
    assert_same_weights(resumed.model, full.model)
    assert resumed.run_dir == first.run_dir  # continues in the same directory
    assert "spec changed" in resumed.log  # epochs 1 -> 3 changes the hash: warned, not refused
    assert _strip_times(resumed.history) == _strip_times(full.history)
    lines = (resumed.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_resume_with_fp16_grad_scaler(tmp_path: Path) -> None:
    spec = lambda epochs: make_spec(train={"epochs": epochs, "precision": "fp16", "device": "cpu"})  # noqa: E731
    full = run(spec(2), tmp_path / "a")
    first = run(spec(1), tmp_path / "b")
    resumed = run(spec(2), tmp_path / "b", resume=first.run_dir)  # a run directory means its last.pt
    assert_same_weights(resumed.model, full.model)
    assert torch.load(resumed.run_dir / "last.pt", weights_only=True)["scaler"]["scale"] > 0


def test_sigint_mid_epoch_saves_and_resume_is_exact(tmp_path: Path) -> None:
    spec = make_spec(optimizer={"AdamW": {"lr": 0.01}}, train={"epochs": 2, "grad_accumulation": 2, "metrics": ["accuracy"]},
                     scheduler={"OneCycleLR": {"max_lr": 0.05}, "interval": "step"})
    full = run(spec, tmp_path / "a")

    def ctrl_c(epoch: int, batch: int) -> None:
        if (epoch, batch) == (1, 1):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as stop:
        run(spec, tmp_path / "b", data=loaders(on_batch=ctrl_c))
    ckpt = load_checkpoint(stop.value.checkpoint)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 2, 4)  # finished the accumulation window
    resumed = run(spec, tmp_path / "b", resume=stop.value.checkpoint)
    assert "spec changed" not in resumed.log
    assert_same_weights(resumed.model, full.model)
    assert _strip_times(resumed.history) == _strip_times(full.history)


def test_second_ctrl_c_exits_at_once() -> None:
    from netspec.runner import _SigintGuard

    with _SigintGuard() as guard:
        guard._handle(signal.SIGINT, None)
        assert guard.requested
        with pytest.raises(KeyboardInterrupt):
            guard._handle(signal.SIGINT, None)


def test_resume_refuses_a_plain_state_dict(tmp_path: Path) -> None:
    torch.save(mlp().state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="not a netspec checkpoint"):
        run(make_spec(), tmp_path, resume=tmp_path / "w.pt")


# --------------------------------------------------------------------------- run directory and checkpoints


def test_run_directory_contents(tmp_path: Path) -> None:
    spec = make_spec(train={"epochs": 2, "metrics": ["accuracy", {"top_k_accuracy": {"k": 2}}]})
    result = run(spec, tmp_path)
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"spec.yaml", "spec.sha256", "metrics.jsonl", "last.pt", "best.pt", "curves.png", "train.log"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    digest, name = (result.run_dir / "spec.sha256").read_text().split()
    assert name == "spec.yaml" and digest == spec_hash(spec)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_top2_accuracy", "lr"} <= set(records[0])
    ckpt = torch.load(result.run_dir / "last.pt", weights_only=True)  # safe to load: no pickled objects
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng", "spec_hash", "best"} <= set(ckpt)
    assert ckpt["spec_hash"] == digest and ckpt["epoch"] == 2
    assert set(ckpt["rng"]) == {"python", "numpy", "torch", "cuda"}


def test_new_run_directory_every_time(tmp_path: Path) -> None:
    a = run(make_spec(), tmp_path)
    b = run(make_spec(), tmp_path)
    assert a.run_dir != b.run_dir and a.run_dir.parent == b.run_dir.parent


def test_best_checkpoint_follows_monitor(tmp_path: Path) -> None:
    spec = make_spec(optimizer={"SGD": {"lr": 0.05}}, train={"epochs": 3, "metrics": ["accuracy"],
                     "checkpoint": {"monitor": "val_accuracy"}})
    result = run(spec, tmp_path)
    best = torch.load(result.run_dir / "best.pt", weights_only=True)
    values = [r["val_accuracy"] for r in result.history]
    assert best["best"]["value"] == max(values)
    assert best["epoch"] == result.history[values.index(max(values))]["epoch"]


def test_unwritable_out_dir_reported_before_training(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(TrainingError, match="cannot write the run directory") as err:
        train(make_spec(), model=mlp(), loaders=loaders(), out=tmp_path / "file" / "runs", stream=io.StringIO())
    assert err.value.path == ("--out",)


def test_save_checkpoint_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netspec.runner import save_checkpoint

    target = tmp_path / "last.pt"
    save_checkpoint(target, {"a": torch.ones(2)})

    def crash(*args: Any, **kw: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(target, {"a": torch.zeros(2)})
    assert torch.load(target, weights_only=True)["a"].tolist() == [1.0, 1.0]  # old one intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


# --------------------------------------------------------------------------- NaN, stopping


class NanAt(nn.Module):
    """The MLP, but its output is NaN on the batch where it sees the marker input."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out * float("nan") if bool((x == 1234.0).any()) else out


def nan_loaders() -> Loaders:
    x, y = blobs(96)
    x[40] = 1234.0  # sample 40; unshuffled: batch 2 (0-based) of epoch 1
    xv, yv = blobs(48, seed=2)
    return Loaders(Loader(x, y, 16, shuffle=False), Loader(xv, yv, 32, shuffle=False))


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
    spec = make_spec(optimizer={"SGD": {"lr": 0.0}}, train={"epochs": 10, "early_stopping": {"monitor": "val_loss", "patience": 2}})
    result = run(spec, tmp_path)  # lr 0: val_loss never improves after epoch 1
    assert result.stop_reason == "early_stopping" and result.epochs == 3


def test_stop_when_seed_000_logistic_regression(tmp_path: Path) -> None:
    """Seed 000: two Gaussian clusters, Linear(2, 1) + Sigmoid, BCELoss on (N, 1) vs (N,) labels,
    SGD lr 0.01 momentum 0.9, full batch, stop once training accuracy exceeds 0.99."""
    torch.manual_seed(10)
    n = torch.ones(100, 2)
    x = torch.cat([torch.normal(1.7 * n, 1) + 1, torch.normal(-1.7 * n, 1) + 1])
    y = torch.cat([torch.zeros(100), torch.ones(100)])
    model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    spec = make_spec(
        outputs=["prob"], inputs={"x": {"shape": [2]}},
        loss="BCELoss", optimizer={"SGD": {"lr": 0.01, "momentum": 0.9}},
        train={"epochs": 1000, "metrics": ["accuracy"], "checkpoint": {"every": 100},
               "stop_when": {"monitor": "train_accuracy", "above": 0.99, "check_every": "step"}},
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


# --------------------------------------------------------------------------- hardware, precision, misc


def test_cuda_asked_but_absent(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TrainingError, match="CUDA is not available") as err:
        run(make_spec(train={"device": "cuda:0"}), tmp_path)
    assert err.value.path == ("train", "device")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(tmp_path: Path, precision: str) -> None:
    result = run(make_spec(train={"epochs": 2, "precision": precision, "device": "cpu", "grad_clip": 1.0}), tmp_path)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] * 1.5
    ckpt = torch.load(result.run_dir / "last.pt", weights_only=True)
    assert (ckpt["scaler"] is not None) == (precision == "fp16")


def test_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(make_spec(train={"epochs": 2, "progress": "bar"}), tmp_path)
    err = capsys.readouterr().err
    assert "epoch 2/2:" in err and "batch/s" in err  # tqdm on stderr (loss, samples/s as it refreshes)
    assert "epoch 2/2" in result.log  # the epoch line is still printed


def test_deterministic_flag_is_restored(tmp_path: Path) -> None:
    before = torch.are_deterministic_algorithms_enabled()
    run(make_spec(train={"deterministic": True}), tmp_path)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_same_seed_same_result_different_seed_differs(tmp_path: Path) -> None:
    a = run(make_spec(train={"seed": 3}), tmp_path)
    b = run(make_spec(train={"seed": 3}), tmp_path)
    c = run(make_spec(train={"seed": 4}), tmp_path)
    assert_same_weights(a.model, b.model)
    assert not torch.equal(a.model[0].weight, c.model[0].weight)  # dropout and order differ


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


def test_evaluate_checkpoint(tmp_path: Path) -> None:
    spec = make_spec(train={"epochs": 2, "metrics": ["accuracy"]})
    result = run(spec, tmp_path)
    values = evaluate(spec, checkpoint=result.run_dir / "last.pt", model=mlp(5), loaders=loaders())
    assert values["val_loss"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)
    assert values["val_accuracy"] == pytest.approx(result.history[-1]["val_accuracy"])
    with pytest.raises(SpecError, match="no `test` split"):
        evaluate(spec, checkpoint=result.run_dir / "last.pt", split="test", model=mlp(), loaders=loaders())


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
