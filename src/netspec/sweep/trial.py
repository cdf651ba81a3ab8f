"""One trial: the spec with the trial's values set, trained in an ordinary run directory under
the sweep's ``trials/`` folder, its per-epoch metric reported to the pruner.

The trial's value is the best value of the sweep's metric over its epochs (the epoch best.pt
would keep when the checkpoint monitors the same metric). A trial that fails (a spec value that
breaks the shapes, a NaN loss) is recorded with its one-line error and the sweep goes on.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Interrupted, first_line

__all__ = ["Setup", "suggest", "trial_overrides", "run_trial", "TrialFailed"]


@dataclass
class Setup:
    """What every worker needs to run trials: plain values, so it crosses to a new process."""

    spec_path: str
    overrides: list[str]
    allow_imports: list[str] | None
    data_roots: tuple[str, ...]
    folder: Path
    storage: str
    study_name: str
    shared: bool  # an RDB storage other machines may use too
    jobs: int = 1
    allow_download: bool = False
    trials: int = 0  # the sweep's total, overrides included
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class TrialFailed(Exception):
    """A trial's run failed; the trial is recorded as failed (its ``error`` attribute says why)."""


def suggest(trial: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The trial's value for every swept path, drawn from its space.

    >>> import optuna
    >>> from netspec.sweep.spec import SpaceSpec
    >>> t = optuna.create_study().ask()
    >>> v = suggest(t, {"width": SpaceSpec.model_validate({"choice": [8, 16]})})
    >>> v["width"] in (8, 16)
    True
    """
    values: dict[str, Any] = {}
    for name, space in params.items():
        kind = space.kind
        if kind in ("uniform", "loguniform"):
            low, high = getattr(space, kind)
            values[name] = trial.suggest_float(name, low, high, log=kind == "loguniform")
        elif kind == "int":
            low, high = space.int_
            values[name] = trial.suggest_int(name, low, high, step=space.step or 1, log=space.log)
        else:
            values[name] = trial.suggest_categorical(name, space.values)
    return values


def trial_overrides(base: list[str], values: dict[str, Any]) -> list[str]:
    """``--set`` items for a trial: the user's, the trial's values, and no sweep section (a trial's
    spec is a plain spec, as its run directory keeps it).

    >>> trial_overrides(["train.device=cpu"], {"optimizer.args.lr": 0.01, "width": 32})
    ['train.device=cpu', 'optimizer.args.lr=0.01', 'width=32', 'sweep=null']
    """
    return [*base, *(f"{k}={json.dumps(v)}" for k, v in values.items()), "sweep=null"]


def _note_guarded_sigint(stop: Any) -> None:
    """A Ctrl-C during the run's epochs goes to the run's own guard (which saves and stops it);
    in the last epoch the run just ends, so the sweep must hear of it here to stop after it."""
    import signal

    guard = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    if getattr(guard, "requested", False):
        stop.set()


def run_trial(trial: Any, setup: Setup, sweep: Any, optuna: Any, stop: Any = None) -> float:
    """Train the trial's spec; its value, or TrialPruned / TrialFailed / Interrupted (re-queued).
    ``stop`` (a threading.Event): a Ctrl-C that came outside the run's epochs; it stops the trial
    at its next epoch, as the run's own Ctrl-C would."""
    from ..api import load_spec
    from ..training.loop import train

    values = suggest(trial, sweep.params)
    started = time.perf_counter()
    out = setup.folder / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("run_folder", str(out))
    higher = trial.study.direction == optuna.study.StudyDirection.MAXIMIZE
    seen: list[float] = []

    def on_epoch(record: dict[str, Any]) -> None:
        if stop is not None:
            _note_guarded_sigint(stop)
            if stop.is_set() and record["epoch"] < (spec.train.epochs if spec.train else 1):
                raise Interrupted(out)
        value = float(record[sweep.metric])
        seen.append(value)
        trial.report(value, record["epoch"])
        if trial.should_prune():
            trial.set_user_attr("epochs", record["epoch"])
            raise optuna.TrialPruned(f"pruned after epoch {record['epoch']}")

    try:
        spec = load_spec(
            setup.spec_path,
            overrides=trial_overrides(setup.overrides, values),
            allow_imports=setup.allow_imports,
            data_roots=setup.data_roots,
        )
        result = train(spec, out=out, stream=io.StringIO(), on_epoch=on_epoch, allow_download=setup.allow_download)
    except optuna.TrialPruned:
        raise
    except KeyboardInterrupt:  # Ctrl-C (Interrupted: saved): the same values are queued again, for a resumed sweep
        trial.set_user_attr("interrupted", True)
        trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        raise
    except Exception as err:
        trial.set_user_attr("error", first_line(err))
        raise TrialFailed(first_line(err)) from None
    finally:
        trial.set_user_attr("time_s", round(time.perf_counter() - started, 2))
    trial.set_user_attr("run_dir", str(result.run_dir))
    trial.set_user_attr("epochs", result.epochs)
    if not seen:
        raise TrialFailed(f"the run recorded no `{sweep.metric}`")
    return max(seen) if higher else min(seen)
