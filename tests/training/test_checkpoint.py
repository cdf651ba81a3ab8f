"""Checkpoints: resume against an uninterrupted run (bit-equal), best.pt, atomic writes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from netspec.errors import CheckpointError, Interrupted
from netspec.training.checkpoint import load_checkpoint

from standins import assert_same_weights, loaders, make_spec, mlp, run, strip_times


def test_resume_at_epoch_boundary_equals_uninterrupted(tmp_path: Path) -> None:
    full = run(make_spec(train={"epochs": 3}, scheduler={"ExponentialLR": {"gamma": 0.9}}), tmp_path / "a")
    first = run(make_spec(train={"epochs": 1}, scheduler={"ExponentialLR": {"gamma": 0.9}}), tmp_path / "b")
    resumed = run(
        make_spec(train={"epochs": 3}, scheduler={"ExponentialLR": {"gamma": 0.9}}),
        tmp_path / "b",
        resume=first.run_dir / "last.pt",
    )
    assert_same_weights(resumed.model, full.model)
    assert resumed.run_dir == first.run_dir  # continues in the same directory
    assert "spec changed" in resumed.log  # epochs 1 -> 3 changes the hash: warned, not refused
    assert strip_times(resumed.history) == strip_times(full.history)
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
    spec = make_spec(
        optimizer={"AdamW": {"lr": 0.01}},
        train={"epochs": 2, "grad_accumulation": 2, "metrics": ["accuracy"]},
        scheduler={"OneCycleLR": {"max_lr": 0.05}, "interval": "step"},
    )
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
    assert strip_times(resumed.history) == strip_times(full.history)


def test_resume_refuses_a_plain_state_dict(tmp_path: Path) -> None:
    torch.save(mlp().state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="not a netspec checkpoint"):
        run(make_spec(), tmp_path, resume=tmp_path / "w.pt")


def test_best_checkpoint_follows_monitor(tmp_path: Path) -> None:
    spec = make_spec(
        optimizer={"SGD": {"lr": 0.05}},
        train={"epochs": 3, "metrics": ["accuracy"], "checkpoint": {"monitor": "val_accuracy"}},
    )
    result = run(spec, tmp_path)
    best = torch.load(result.run_dir / "best.pt", weights_only=True)
    values = [r["val_accuracy"] for r in result.history]
    assert best["best"]["value"] == max(values)
    assert best["epoch"] == result.history[values.index(max(values))]["epoch"]


def test_save_checkpoint_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netspec.training.checkpoint import save_checkpoint

    target = tmp_path / "last.pt"
    save_checkpoint(target, {"a": torch.ones(2)})

    def crash(*args: Any, **kw: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(target, {"a": torch.zeros(2)})
    assert torch.load(target, weights_only=True)["a"].tolist() == [1.0, 1.0]  # old one intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


def test_checkpoint_is_a_snapshot_written_while_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first epoch's checkpoint is still being written when the second epoch trains (the
    write waits for it here), yet it holds the first epoch's state, bit for bit."""
    import threading

    import netspec.training.checkpoint as checkpoint

    second_epoch = threading.Event()
    written: list[dict] = []
    real = checkpoint.write_checkpoint  # a small model's: serialised at once, written by the writer

    def slow_save(path: Path, data: Any) -> None:
        if not written:
            assert second_epoch.wait(timeout=30), "training waited for the checkpoint"
        real(path, data)
        written.append(torch.load(path, weights_only=True))

    def on_batch(epoch: int, batch: int) -> None:
        if epoch == 1 and batch == 1:
            second_epoch.set()

    monkeypatch.setattr(checkpoint, "write_checkpoint", slow_save)
    spec = make_spec(train={"epochs": 2}, optimizer={"Adam": {"lr": 0.01}})
    result = run(spec, tmp_path / "a", data=loaders(on_batch=on_batch))
    monkeypatch.undo()
    one = run(make_spec(train={"epochs": 1}, optimizer={"Adam": {"lr": 0.01}}), tmp_path / "b")
    reference = torch.load(one.run_dir / "last.pt", weights_only=True)
    assert written[0]["epoch"] == 1
    for part in ("model", "optimizer", "meters"):
        torch.testing.assert_close(written[0][part], reference[part], rtol=0, atol=0, msg=part)
    assert torch.equal(written[0]["rng"]["torch"], reference["rng"]["torch"])
    assert torch.load(result.run_dir / "last.pt", weights_only=True)["epoch"] == 2


def test_a_large_state_is_snapshotted_and_serialised_by_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SERIALISE_AT_ONCE the writer thread serialises a snapshot (torch.save there, not in
    the training thread); either way the files hold the same state, bit for bit."""
    import threading

    import netspec.training.checkpoint as checkpoint

    spec = lambda: make_spec(train={"epochs": 2, "metrics": ["accuracy"]})  # noqa: E731
    small = run(spec(), tmp_path / "small")
    where: list[str] = []
    real = checkpoint.save_checkpoint

    def save_checkpoint(path: Path, state: dict) -> None:
        where.append(threading.current_thread().name)
        real(path, state)

    monkeypatch.setattr(checkpoint, "SERIALISE_AT_ONCE", 0)
    monkeypatch.setattr(checkpoint, "save_checkpoint", save_checkpoint)
    large = run(spec(), tmp_path / "large")
    assert where and set(where) == {"netspec-writer"}
    a, b = (torch.load(r.run_dir / "last.pt", weights_only=True) for r in (small, large))
    for part in ("model", "optimizer", "meters"):
        torch.testing.assert_close(a[part], b[part], rtol=0, atol=0, msg=part)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["meters"] == {}  # an epoch's end: no half-done sums to keep


def test_background_writer_reports_its_error_once() -> None:
    from netspec.training.rundir import Background

    b = Background()

    def fail() -> None:
        raise OSError(28, "No space left on device")

    b.submit(fail)
    with pytest.raises(OSError, match="No space"):
        b.wait()
    b.wait()  # said once
    b.submit(lambda: None)
    b.wait()


def test_background_writer_keeps_order_and_drops_writes_after_a_failure() -> None:
    """Posted jobs do not wait for the one in flight; jobs run in the order handed over; after a
    failed one, those queued behind it never run, and the training thread is told once."""
    import threading

    from netspec.training.rundir import Background

    b, done, release = Background(), [], threading.Event()

    def slow() -> None:
        release.wait(10)
        done.append("checkpoint 1")

    def fail() -> None:
        raise OSError(28, "No space left on device")

    b.submit(slow)
    b.post(lambda: done.append("record 2"))  # queued while the checkpoint is written: no wait
    assert done == []
    release.set()
    b.submit(fail)  # waits for checkpoint 1 only
    b.post(lambda: done.append("record 3"))  # behind the failing job: dropped
    with pytest.raises(OSError, match="No space"):
        b.wait()
    b.wait()  # said once
    assert done == ["checkpoint 1", "record 2"]  # nothing reached the disk after the failure
    b.post(lambda: done.append("record 5"))
    b.wait()
    assert done[-1] == "record 5"


@pytest.fixture(scope="module")
def mid_epoch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A spec with metrics and its last.pt, saved by a Ctrl-C in the middle of epoch 1."""
    spec = make_spec(train={"epochs": 2, "metrics": ["accuracy", {"top_k_accuracy": {"k": 2}}]})

    def ctrl_c(epoch: int, batch: int) -> None:
        if (epoch, batch) == (0, 2):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as stop:
        run(spec, tmp_path_factory.mktemp("mid"), data=loaders(on_batch=ctrl_c))
    return spec, Path(stop.value.checkpoint)


def _set(*keys: Any, value: Any) -> Any:
    def change(state: dict) -> None:
        for key in keys[:-1]:
            state = state[key]
        state[keys[-1]] = value(state[keys[-1]]) if callable(value) else value

    return change


# (forgery, what the one line says): right keys, wrong types or shapes; each was taken before
# and failed only when the epoch's values were computed (or counted wrong)
FORGED_METERS = {
    "state of another shape": (
        _set("meters", "accuracy", "state", "tp", value=torch.zeros(5, dtype=torch.int64)),
        "entry `accuracy`: state `tp` is a tensor of shape [5] (int64); a fresh one is [1] (int64)",
    ),
    "state of another dtype": (
        _set("meters", "top2_accuracy", "state", "fn", value=lambda t: t.float()),
        "entry `top2_accuracy`: state `fn` is a tensor of shape [3] (float32); a fresh one is [3] (int64)",
    ),
    "state a list": (
        _set("meters", "accuracy", "state", "tp", value=lambda t: [t]),
        "entry `accuracy`: state `tp` is a list, not a tensor",
    ),
    "config of more classes": (
        _set("meters", "top2_accuracy", "config", value={"classes": 7, "k": 2}),
        "entry `top2_accuracy`: its configuration {'classes': 7, 'k': 2} is not the one its "
        "shapes give ({'classes': 3, 'k': 2})",
    ),
    "shapes garbage": (
        _set("meters", "accuracy", "shapes", value={"output": "x"}),
        "entry `accuracy`: `shapes` is not a pair of sample shapes and a dtype",
    ),
    "loss values of a matrix": (
        _set("meters", "loss", "values", value=torch.zeros(3, 3)),
        "entry `loss`: `values` is a tensor of shape [3, 3], not a 1-D floating-point tensor",
    ),
    "loss counts as text": (
        _set("meters", "loss", "counts", value=lambda c: [str(n) for n in c]),
        "entry `loss`: `counts` is not a list of batch sizes",
    ),
    "fewer counts than losses": (
        _set("meters", "loss", "counts", value=lambda c: c[:1]),
        "entry `loss`: 3 losses but 1 batch sizes",
    ),
    "a metric missing": (
        lambda state: state["meters"].pop("accuracy"),
        "holds `loss`, `top2_accuracy`; this run's are `loss`, `accuracy`, `top2_accuracy`",
    ),
}


@pytest.mark.parametrize("forgery", FORGED_METERS)
def test_forged_mid_epoch_meter_state_is_refused_at_resume(
    forgery: str, mid_epoch: tuple[Any, Path], tmp_path: Path
) -> None:
    spec, saved = mid_epoch
    change, says = FORGED_METERS[forgery]
    state = torch.load(saved, weights_only=True)
    assert state["batch"] == 3 and set(state["meters"]) == {"loss", "accuracy", "top2_accuracy"}
    change(state)
    forged = tmp_path / "last.pt"
    torch.save(state, forged)
    with pytest.raises(CheckpointError) as err:
        run(spec, tmp_path, resume=forged)
    line = str(err.value)
    assert "\n" not in line and f"{forged} is damaged or was not written by netspec: its `meters`: " in line, line
    assert says in line, line


def test_unforged_mid_epoch_checkpoint_resumes(mid_epoch: tuple[Any, Path], tmp_path: Path) -> None:
    """The checks refuse only the forgeries: the real checkpoint, copied, resumes and finishes."""
    spec, saved = mid_epoch
    copy = tmp_path / "last.pt"
    copy.write_bytes(saved.read_bytes())
    result = run(spec, tmp_path, resume=copy)
    assert result.epochs == 2
    assert result.history[-1]["epoch"] == 2 and result.history[-1]["train_top2_accuracy"] > 0


@pytest.mark.parametrize(("version", "age"), [(1, "an older"), (3, "a newer")])
def test_checkpoint_of_another_format_is_refused_as_older_or_newer(version: int, age: str, tmp_path: Path) -> None:
    from netspec.training.checkpoint import FORMAT_VERSION

    first = run(make_spec(train={"epochs": 1}), tmp_path / "a")
    state = torch.load(first.run_dir / "last.pt", weights_only=True)
    state["format"] = f"netspec-checkpoint-{version}"
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "old.pt")
    line = str(err.value)
    assert f"old.pt was written by {age} netspec, format {version}; this one reads {FORMAT_VERSION}" in line, line
    assert "damaged" not in line and "start again without --resume" in line
