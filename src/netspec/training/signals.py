"""Signals during a run: the first Ctrl-C (SIGINT) or SIGTERM -- what a cluster scheduler sends
before it kills a job -- asks the loop to save and stop after the current step; a second one
stops at once.

>>> guard = SigintGuard()
>>> guard._handle(signal.SIGTERM, None); guard.requested, guard.signum == signal.SIGTERM
(True, True)
>>> echoed = SigintGuard(quiet=True, echoes=True)  # data-parallel: the scheduler's and torchrun's SIGTERM
>>> echoed._handle(signal.SIGTERM, None); echoed._handle(signal.SIGTERM, None); echoed.requested
True
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

from ..errors import Terminated

__all__ = ["SigintGuard", "STOP_SIGNALS"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SigintGuard:
    """First SIGINT or SIGTERM: finish the step, save last.pt, raise Interrupted (the loop does,
    reading ``requested`` and ``signum``). Second: stop at once (KeyboardInterrupt, or
    :class:`~netspec.errors.Terminated` for SIGTERM)."""

    #: under torchrun a stop signal can come twice at once: from the job's scheduler, which
    #: signals every process, and forwarded by torchrun's agent; that is still the first
    ECHO_SECONDS = 5.0

    def __init__(self, quiet: bool = False, echoes: bool = False) -> None:
        self.quiet = quiet  # the other processes of a data-parallel run: rank 0 says it
        self.echoes = echoes  # a data-parallel run: the same signal again within ECHO_SECONDS is one
        self.requested = False
        self._first = 0.0  # time.monotonic() of the first signal
        self.signum: int = signal.SIGINT
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SigintGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            if self.echoes and signum == self.signum and time.monotonic() - self._first < self.ECHO_SECONDS:
                return
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt
        self.requested, self.signum, self._first = True, signum, time.monotonic()
        if self.quiet:
            return
        what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        again = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        print(f"\n{what}: saving a checkpoint after this step ({again} again to quit now)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        for s, previous in self._previous.items():
            if previous is not None:
                # A data-parallel process stopping on a signal: its echo may still be on the way
                # (see ECHO_SECONDS) and must not turn the saved stop into a bare "terminated".
                echo = self.echoes and self.requested and s == self.signum
                signal.signal(s, signal.SIG_IGN if echo else previous)
