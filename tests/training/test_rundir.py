"""The run directory: what it holds, a new one every run, an unwritable --out."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from netspec.errors import TrainingError
from netspec.training.loop import train
from netspec.training.rundir import spec_hash

from standins import NanAt, loaders, make_spec, mlp, nan_loaders, run


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
    from netspec.training.rundir import RunLogging, write_text

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "train.log").symlink_to(victim)
    with (
        pytest.raises(
            WriteFailed, match=re.escape("train.log: it is a symbolic link, and a run never writes through one")
        ),
        RunLogging(main=True) as logs,
    ):
        logs.release(tmp_path / "train.log")
        logging.getLogger("netspec.training.loop").info("hello")
    (tmp_path / "spec.yaml").symlink_to(victim)
    write_text(tmp_path / "spec.yaml", "name: x\n", force=True)
    assert victim.read_text() == "precious\n" and not (tmp_path / "spec.yaml").is_symlink()


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def netspec_logger() -> Any:
    """The `netspec` logger with a caller's handler, as a program calling train() would set it."""
    logger, kept = logging.getLogger("netspec"), _Kept()
    level = logger.level
    logger.addHandler(kept)
    yield logger, kept
    logger.removeHandler(kept)
    logger.setLevel(level)


def test_a_callers_handler_gets_the_run_lines_and_nothing_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], netspec_logger: Any
) -> None:
    """train() from Python prints nothing itself (the library's NullHandler); the caller's handler
    receives the lines, from the modules that logged them, in order; train.log holds the same."""
    _, kept = netspec_logger
    result = train(make_spec(train={"epochs": 2}), model=mlp(), loaders=loaders(), out=tmp_path / "runs")
    assert capsys.readouterr() == ("", "")
    lines = [r.getMessage() for r in kept.records]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert {r.name for r in kept.records if r.getMessage() in epochs} == {"netspec.training.report"}
    assert any(line.startswith("run directory: ") for line in lines)
    assert (result.run_dir / "train.log").read_text().splitlines() == lines


def test_level_warning_silences_the_epoch_lines(tmp_path: Path, netspec_logger: Any) -> None:
    logger, kept = netspec_logger
    logger.setLevel(logging.WARNING)
    spec = make_spec(train={"epochs": 2, "on_nan": "skip"})
    result = train(spec, model=NanAt(), loaders=nan_loaders(), out=tmp_path / "runs")
    assert [r.levelno for r in kept.records] == [logging.WARNING] * 2  # the skipped batches; no epoch line
    assert all("batch skipped" in r.getMessage() for r in kept.records)
    assert (result.run_dir / "train.log").read_text().startswith("warning: ")
    assert logger.level == logging.WARNING  # the caller's choice is left as it was


def test_the_run_sets_no_level_it_did_not_find(tmp_path: Path, netspec_logger: Any) -> None:
    logger, _ = netspec_logger
    assert logger.level == logging.NOTSET
    train(make_spec(), model=mlp(), loaders=loaders(), out=tmp_path / "runs")
    assert logger.level == logging.NOTSET and logger.propagate
    assert [h for h in logger.handlers if not isinstance(h, logging.NullHandler)] == [netspec_logger[1]]


def test_console_lines_go_around_a_progress_bar() -> None:
    """A line logged while a tqdm bar is drawn: the bar is cleared, the line written whole on its
    own line, the bar drawn again after it (not a line glued to half a bar)."""
    from tqdm import tqdm

    from netspec.cli_options import ConsoleHandler

    screen = io.StringIO()
    bar = tqdm(total=10, file=screen, desc="epoch 1/2", mininterval=0)
    bar.update(3)
    drawn = len(screen.getvalue())
    ConsoleHandler(screen).emit(logging.LogRecord("netspec", logging.WARNING, "", 0, "batch skipped", None, None))
    after = screen.getvalue()[drawn:]
    cleared, line, redrawn = after.partition("warning: batch skipped\n")
    assert line and cleared.endswith("\r") and cleared.strip() == ""  # the bar's line blanked first
    assert redrawn.startswith("\repoch 1/2:") and "3/10" in redrawn  # then drawn again below the line
    bar.close()
