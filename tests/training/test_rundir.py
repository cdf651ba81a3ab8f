"""The run directory: what it holds, a new one every run, an unwritable --out."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch

from netspec.errors import TrainingError
from netspec.training.loop import train
from netspec.training.rundir import spec_hash

from standins import loaders, make_spec, mlp, run


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


def test_unwritable_out_dir_reported_before_training(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(TrainingError, match="cannot write the run directory") as err:
        train(make_spec(), model=mlp(), loaders=loaders(), out=tmp_path / "file" / "runs", stream=io.StringIO())
    assert err.value.path == ("--out",)


def test_resume_refuses_a_run_directory_holding_a_link(tmp_path: Path) -> None:
    """`--resume` of a run directory whose train.log is a link to a file elsewhere: refused before
    anything is written, and the file the link points at is untouched."""
    first = run(make_spec(train={"epochs": 1}), tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (first.run_dir / "train.log").unlink()
    (first.run_dir / "train.log").symlink_to(victim)
    with pytest.raises(TrainingError, match=re.escape("train.log is a symbolic link; a run writes only inside")) as err:
        train(
            make_spec(train={"epochs": 2}), model=mlp(), loaders=loaders(), resume=first.run_dir, stream=io.StringIO()
        )
    assert err.value.path == ("--resume",) and "--out DIR" in (err.value.hint or "")
    assert victim.read_text() == "precious\n"


def test_writes_never_follow_a_link_in_the_run_directory(tmp_path: Path) -> None:
    """A link that appears while the run goes on: appending through it fails (one line), and a
    file replaced atomically replaces the link itself, never what it points at."""
    from netspec.errors import WriteFailed
    from netspec.training.rundir import Log, write_text

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "train.log").symlink_to(victim)
    with pytest.raises(
        WriteFailed, match=re.escape("train.log: it is a symbolic link, and a run never writes through one")
    ):
        Log(None, tmp_path / "train.log").info("hello")
    (tmp_path / "spec.yaml").symlink_to(victim)
    write_text(tmp_path / "spec.yaml", "name: x\n", force=True)
    assert victim.read_text() == "precious\n" and not (tmp_path / "spec.yaml").is_symlink()
