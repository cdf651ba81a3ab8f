"""Run a sweep: the study opened (or resumed), its trials run by ``jobs`` worker processes (or
this one), each trial's end told in one line, then the results written.

Workers are processes, not threads (a trial is CPU-bound Python and torch), each limited to one
torch thread when there are several. They take trials from one shared counter, so a sweep on one
machine runs exactly ``trials`` trials. Ctrl-C reaches only this process (the workers run in
their own sessions): it passes one SIGINT to every worker, whose trial saves its checkpoint at
the end of its step and is queued again; finished trials stay finished, and running the same
command again resumes the sweep.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..errors import TrainingError
from .trial import Setup, TrialFailed, run_trial

__all__ = ["run_sweep", "locked"]


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the sweep folder's lock: one ``netspec sweep`` per folder at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrainingError(
                f"another `netspec sweep` is running in {folder}",
                path=("--out",),
                hint="wait for it, or give this sweep another --out folder",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_sweep(setup: Setup, sweep: Any, out: TextIO | None = None) -> Any:
    """Run the sweep's remaining trials; the study, with ``interrupted`` set on Ctrl-C. Progress
    lines go to ``out`` (default: the ``sys.stdout`` of the call, not of the import)."""
    from .study import open_study, remaining, retry_stale

    out = out if out is not None else sys.stdout
    study = open_study(sweep, setup.storage, setup.study_name, shared=setup.shared)
    if not setup.shared:
        stale = retry_stale(study)  # killed last time: run them again
        if stale:
            print(f"{stale} trial(s) left running by an earlier sweep: queued again", file=out)
    todo = remaining(study, setup.trials)
    done = setup.trials - todo
    print(
        f"sweep {setup.study_name}: {todo} trial(s) to run ({done} done), {setup.jobs} at a time", file=out, flush=True
    )
    study.set_user_attr("interrupted", False)
    if todo == 0:
        return study
    try:
        if setup.jobs == 1:
            with stop_on_sigint() as stop:
                _work(setup, sweep, None, out, stop=stop)
            if stop.is_set():
                raise KeyboardInterrupt
        else:
            _in_processes(setup, todo)
    except KeyboardInterrupt:
        study.set_user_attr("interrupted", True)
    return study


@contextlib.contextmanager
def stop_on_sigint() -> Iterator[threading.Event]:
    """SIGINT sets the event instead of raising: a trial stops cleanly wherever it is (in its
    epochs the run's own guard saves a checkpoint; before or after them, at its next epoch or
    before the next trial), never half-recorded. A second SIGINT raises KeyboardInterrupt."""
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _in_processes(setup: Setup, todo: int) -> None:
    ctx = mp.get_context("spawn")  # a fresh interpreter: no torch threads or locks copied over
    slots = ctx.Value("i", todo)
    workers = [ctx.Process(target=_worker, args=(setup, slots, k)) for k in range(min(setup.jobs, todo))]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join()
    except KeyboardInterrupt:
        for w in workers:  # one SIGINT each: every trial saves and is queued again
            if w.pid is not None and w.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGINT)
        for w in workers:
            _join_patiently(w)
        raise


def _join_patiently(w: Any) -> None:
    """Wait for a worker to save and stop; a second Ctrl-C stops it at once."""
    try:
        w.join()
    except KeyboardInterrupt:
        w.terminate()
        w.join()


def _worker(setup: Setup, slots: Any, k: int) -> None:
    """Worker ``k``: its own session (the terminal's Ctrl-C goes to the sweep, which passes it on
    once), one torch thread, its own sampler seed (the same one would draw the same first
    values in every worker), trials until the counter runs out."""
    os.setsid()
    import torch

    torch.set_num_threads(1)
    from ..api import load_spec

    sweep = load_spec(
        setup.spec_path, overrides=setup.overrides, allow_imports=setup.allow_imports, data_roots=setup.data_roots
    ).sweep
    with contextlib.suppress(KeyboardInterrupt), stop_on_sigint() as stop:
        _work(setup, sweep, slots, sys.stdout, seed_offset=k, stop=stop)


def _ask(study: Any, setup: Setup, slots: Any) -> Any:
    """The next trial, or None when none is left. Workers take it under one lock: the counter
    stays exact, and two never pop the same queued trial (SQLite has no row locks)."""
    from .study import remaining

    with slots.get_lock() if slots is not None else contextlib.nullcontext():
        if slots is not None and slots.value <= 0:
            return None
        if setup.shared:  # a trial whose machine went silent: failed and queued again
            import optuna

            optuna.storages.fail_stale_trials(study)
        if remaining(study, setup.trials) <= 0:
            return None
        if slots is not None:
            slots.value -= 1
        return study.ask()


def _work(setup: Setup, sweep: Any, slots: Any, out: TextIO, seed_offset: int = 0, stop: Any = None) -> None:
    """Run trials one after another until none is left (or Ctrl-C). The runs' own warnings
    (a deprecation inside TensorBoard's tracing) are in their train.log, not between trial lines."""
    from .study import import_optuna, open_study

    optuna = import_optuna()
    study = open_study(sweep, setup.storage, setup.study_name, shared=setup.shared, seed_offset=seed_offset)
    stop = stop or threading.Event()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while not stop.is_set():
            trial = _ask(study, setup, slots)
            if trial is None:
                return
            frozen = _run_and_tell(study, trial, setup, sweep, optuna, stop)
            if frozen is not None:
                print(trial_line(frozen, sweep.metric), file=out, flush=True)
            else:
                print(f"trial {trial.number} interrupted: queued again for the resumed sweep", file=out, flush=True)


def _run_and_tell(study: Any, trial: Any, setup: Setup, sweep: Any, optuna: Any, stop: Any) -> Any:
    """Run one trial and record how it ended; the finished trial, or None when interrupted."""
    from optuna.trial import TrialState

    with _heartbeat(study, trial, setup.shared):
        try:
            value = run_trial(trial, setup, sweep, optuna, stop)
        except optuna.TrialPruned:
            return _tell(study, trial, state=TrialState.PRUNED)
        except TrialFailed:
            return _tell(study, trial, state=TrialState.FAIL)
        except KeyboardInterrupt:  # Interrupted, or a second Ctrl-C: queued again (trial.py)
            _tell(study, trial, state=TrialState.FAIL)
            stop.set()
            return None
    return _tell(study, trial, values=value)


def _tell(study: Any, trial: Any, **how: Any) -> Any:
    """study.tell; the grid sampler stops the study when its grid is done, which Optuna allows
    only inside optimize(): the trial is recorded by then, and the counter ends the sweep."""
    try:
        return study.tell(trial, **how)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise
        return study.trials[trial.number]


@contextlib.contextmanager
def _heartbeat(study: Any, trial: Any, shared: bool) -> Iterator[None]:
    """On a shared storage, say every HEARTBEAT_S that the trial is alive (Optuna's heartbeat)."""
    if not shared:
        yield
        return
    from .study import HEARTBEAT_S

    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                study._storage.record_heartbeat(trial._trial_id)

    study._storage.record_heartbeat(trial._trial_id)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def trial_line(trial: Any, metric: str) -> str:
    """One line for a trial's end.

    >>> from types import SimpleNamespace as NS
    >>> trial_line(NS(number=3, state=NS(name="COMPLETE"), value=0.91234, params={"width": 32},
    ...     user_attrs={"time_s": 2.5, "epochs": 4}), "val_accuracy")
    'trial 3 finished: val_accuracy 0.9123 after 4 epochs (width=32) 2.5s'
    """
    attrs = trial.user_attrs
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    state = trial.state.name
    if state == "COMPLETE":
        what = f"finished: {metric} {trial.value:.4f} after {attrs.get('epochs', '?')} epochs"
    elif state == "PRUNED":
        what = f"pruned after epoch {attrs.get('epochs', '?')}"
    else:
        what = f"failed: {attrs.get('error', 'interrupted' if attrs.get('interrupted') else '?')}"
    return f"trial {trial.number} {what} ({params}) {attrs.get('time_s', 0):.1f}s"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
