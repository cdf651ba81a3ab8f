"""Signals during a run."""

from __future__ import annotations

import signal

import pytest


def test_second_ctrl_c_exits_at_once() -> None:
    from netspec.training.signals import SigintGuard

    with SigintGuard() as guard:
        guard._handle(signal.SIGINT, None)
        assert guard.requested
        with pytest.raises(KeyboardInterrupt):
            guard._handle(signal.SIGINT, None)
