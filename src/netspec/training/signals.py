"""Signals during a run: the first Ctrl-C asks the loop to save and stop after the current step."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

__all__ = ["SigintGuard"]


class SigintGuard:
    """First Ctrl-C: finish the step, save last.pt, raise Interrupted. Second: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> SigintGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to quit now)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
