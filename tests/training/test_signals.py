"""Signals during a run: Ctrl-C (SIGINT) and SIGTERM. The real-process trials (kill, resume,
exact state) are in tests/test_faults.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from netspec.cli import main
from netspec.errors import Terminated
from netspec.training.signals import SigintGuard


@pytest.mark.parametrize("signum, second", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_second_signal_stops_at_once(signum: int, second: type[BaseException]) -> None:
    with SigintGuard() as guard:
        guard._handle(signum, None)
        assert guard.requested and guard.signum == signum
        with pytest.raises(second):
            guard._handle(signum, None)


def test_guard_handles_sigterm_and_restores_the_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with SigintGuard() as guard:
        assert signal.getsignal(signal.SIGTERM) == guard._handle
        os.kill(os.getpid(), signal.SIGTERM)  # handled between bytecodes: the guard only records it
        assert guard.requested and guard.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_before_training_is_one_line_and_143(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM while the data is read (before there is anything to save): exit 143, the one
    line `terminated`, no traceback, no run directory."""
    import netspec.data

    def killed(*args, **kw):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the SIGTERM handler should have stopped the command")

    monkeypatch.setattr(netspec.data, "build_loaders", killed)
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\ninputs: {x: [2]}\nnodes:\n  - Linear: {out_features: 2}\n"
        "data: {train: {source: gaussian_clusters}}\nloss: CrossEntropyLoss\n"
        "optimizer: {SGD: {lr: 0.1}}\ntrain: {device: cpu}\n"
    )
    assert main(["run", str(spec), "--out", str(tmp_path / "runs")]) == 143
    captured = capsys.readouterr()
    assert captured.err == "terminated\n" and "Traceback" not in captured.out
    assert not (tmp_path / "runs").exists()
