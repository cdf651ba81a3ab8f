"""Every netspec error is one line whatever its text holds; the families and their exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from netspec.errors import NetspecError, NonFiniteLoss, SpecError, TrainingError, WriteFailed

LINE_ENDS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("end", LINE_ENDS, ids=[repr(e) for e in LINE_ENDS])
@pytest.mark.parametrize("cls", [SpecError, WriteFailed])
def test_a_line_end_in_any_part_stays_on_one_line(cls: type[SpecError], end: str) -> None:
    text = str(cls(f"unknown layer `a{end}b`", path=("nodes", 0), node=f"n{end}1", hint=f"did you{end}mean"))
    assert len(text.splitlines()) == 1, repr(text)
    assert "a b" in text and "did you mean" in text


# ------------------------------------------------------------------ the families and their exit codes

MODEL = "name: m\ninputs: {x: [4]}\nnodes:\n  - Linear: {out_features: 2}\n"


def test_the_hierarchy_has_three_families_under_one_base() -> None:
    from netspec.errors import (
        AccessRefused,
        CheckpointError,
        DataError,
        NetspecError,
        NonFiniteLoss,
        OutputError,
        OutputRefused,
        ShapeError,
        TrainingError,
    )
    from netspec.training.distributed import PeerLost
    from netspec.training.launchenv import LaunchError

    for spec_kind in (ShapeError, DataError, AccessRefused, CheckpointError):
        assert issubclass(spec_kind, SpecError) and spec_kind.exit_code == 2
    for family in (SpecError, TrainingError, OutputError):
        assert issubclass(family, NetspecError)
    # a NaN loss, a lost peer or a failed write is no mistake in the spec
    for failure in (TrainingError, NonFiniteLoss, WriteFailed, PeerLost, LaunchError, OutputRefused):
        assert not issubclass(failure, SpecError), failure
    assert issubclass(WriteFailed, TrainingError) and issubclass(WriteFailed, OutputError)
    assert issubclass(OutputRefused, OutputError) and not issubclass(OutputRefused, TrainingError)
    assert {c: c.exit_code for c in (TrainingError, LaunchError, OutputRefused)} == dict.fromkeys(
        (TrainingError, LaunchError, OutputRefused), 2
    )
    assert {c: c.exit_code for c in (NonFiniteLoss, WriteFailed, PeerLost)} == dict.fromkeys(
        (NonFiniteLoss, WriteFailed, PeerLost), 3
    )
    import netspec

    assert netspec.NetspecError is NetspecError and netspec.SpecError is SpecError


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["compile", "m.yaml", "--graph", "taken.svg"],  # the main CLI
        ["export", "m.yaml", "--format", "python", "--out", "taken.py"],  # the interop CLI
        ["import", "torch.nn:Linear", "--args", "in_features=4", "out_features=2", "-o", "taken.yaml"],  # importer
    ],
    ids=["compile", "export", "import"],
)
def test_each_cli_prints_a_refused_output_as_one_line_with_exit_2(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from netspec.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(MODEL)
    taken = (
        tmp_path
        / command[command.index("--graph" if "--graph" in command else "--out" if "--out" in command else "-o") + 1]
    )
    taken.write_text("keep me")
    assert main(command) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{taken.name} exists" in line and "--force" in line, line
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TrainingError("nothing to train: every parameter is frozen", path=("train", "freeze")), 2),
        (NonFiniteLoss("epoch 2, step 7: the loss is nan", path=("loss",)), 3),
        (WriteFailed("cannot write runs/m/last.pt: No space left on device", path=("--out",)), 3),
    ],
    ids=["training-error", "nan", "write-failed"],
)
def test_the_training_cli_prints_a_failed_run_as_one_line_with_its_exit_code(
    error: NetspecError, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from netspec.cli import main

    spec = tmp_path / "m.yaml"
    spec.write_text(
        MODEL + "data: {train: {source: gaussian_clusters}, batch_size: 8}\nloss: MSELoss\n"
        "optimizer: {SGD: {lr: 0.1}}\n"
    )

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    # `run` (its own handler) and `eval` (the main CLI's handler): the same line, the same code
    monkeypatch.setattr("netspec.training.loop.train", fail)
    monkeypatch.setattr("netspec.training.evaluate.evaluate", fail)
    for argv in (["run", str(spec), "--out", str(tmp_path / "runs")], ["eval", str(spec), "--checkpoint", "last.pt"]):
        assert main(argv) == code, argv
        line = _one_line(capsys.readouterr().err)
        assert error.message in line, line
