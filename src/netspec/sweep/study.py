"""The Optuna study a sweep runs in: its storage (an SQLite file in the sweep's folder, or an RDB
URL that several machines share), sampler, pruner and direction, and how many trials are left.

A trial stopped by Ctrl-C is marked ``interrupted`` and failed, and the same parameters are
queued again (``retry_of``), so a resumed sweep runs it anew and never repeats a finished one.
A trial left running by a process that was killed is found the same way: at the start of a sweep
on its own SQLite file (the folder's lock says no one else runs it), or by Optuna's heartbeat on a
shared RDB storage (:class:`optuna.storages.RetryFailedTrialCallback`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from .spec import SweepSpec

__all__ = ["INSTALL", "import_optuna", "storage_url", "open_study", "direction", "remaining", "retry_stale", "counts"]

INSTALL = "pip install 'netspec[sweep]'  (optuna)"
HEARTBEAT_S = 30  # a shared study's running trials say they are alive this often
GRACE_S = 120  # ... and one silent for this long is failed and queued again


def import_optuna() -> Any:
    """optuna, quiet, or a one-line error with the install command."""
    from ..errors import TrainingError

    try:
        import optuna
    except ImportError:
        raise TrainingError("`netspec sweep` needs optuna, which is not installed", hint=INSTALL) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # netspec says what happened, one line a trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage_url(folder: Path, given: str | None) -> str:
    """The study's storage: ``given`` (``postgresql://...``, ``mysql+pymysql://...``) or
    ``sqlite:///<folder>/study.db``.

    >>> storage_url(Path("/tmp/s"), None)
    'sqlite:////tmp/s/study.db'
    """
    return given if given else f"sqlite:///{(folder / 'study.db').resolve()}"


def open_study(sweep: SweepSpec, url: str, name: str, *, shared: bool, seed_offset: int = 0) -> optuna.Study:
    """Create the study or load it (a resumed sweep); ``shared``: an RDB several machines use;
    ``seed_offset``: the worker's number, added to the sampler's seed."""
    optuna = import_optuna()
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if shared:  # several machines: a trial silent for GRACE_S is failed and queued again
        import optuna.storages as st

        # optuna 4.9 renamed the callback (the old name warns); older 4.x has only the old one
        beats: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S}
        if hasattr(st, "RetryHeartbeatStaleTrialCallback"):
            beats["heartbeat_stale_trial_callback"] = st.RetryHeartbeatStaleTrialCallback()
        else:
            beats["failed_trial_callback"] = RetryFailedTrialCallback()
        storage = RDBStorage(url, engine_kwargs=engine, **beats)
    else:
        storage = RDBStorage(url, engine_kwargs=engine)
    return optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction(sweep),
        sampler=_sampler(optuna, sweep, sweep.seed + 1000 * seed_offset),
        pruner=_pruner(optuna, sweep),
        load_if_exists=True,
    )


def direction(sweep: SweepSpec) -> str:
    """``minimize`` or ``maximize``: the metric's own sense with ``direction: auto``.

    >>> from netspec.sweep.spec import SweepSpec
    >>> direction(SweepSpec(metric="val_accuracy", params={"x": {"int": [1, 2]}}))
    'maximize'
    """
    if sweep.direction != "auto":
        return sweep.direction
    from ..training.metrics import METRICS, split_metric_name

    split = split_metric_name(sweep.metric)
    key = split[1] if split else sweep.metric
    if key == "loss" or key not in METRICS:
        return "minimize"
    return "maximize" if getattr(METRICS[key], "higher_is_better", False) else "minimize"


def _sampler(optuna: Any, sweep: SweepSpec, seed: int) -> Any:
    name = sweep.sampler_name
    if name == "grid":
        return optuna.samplers.GridSampler({k: s.values for k, s in sweep.params.items()}, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, sweep.trials // 3)))


def _pruner(optuna: Any, sweep: SweepSpec) -> Any:
    p = optuna.pruners
    return {
        "median": lambda: p.MedianPruner(n_startup_trials=sweep.startup_trials, n_warmup_steps=sweep.warmup_epochs),
        "hyperband": lambda: p.HyperbandPruner(min_resource=1),
        "successive_halving": lambda: p.SuccessiveHalvingPruner(min_resource=1),
        "none": lambda: p.NopPruner(),
    }[sweep.pruner]()


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by what they came to: ``done`` (finished, pruned or failed for good), ``running``,
    ``interrupted`` (queued again), ``waiting`` (queued)."""
    from optuna.storages import RetryFailedTrialCallback
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials} | {
        RetryFailedTrialCallback.retried_trial_number(t) for t in trials
    }
    out = {"done": 0, "running": 0, "interrupted": 0, "waiting": 0}
    for t in trials:
        if t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
        elif t.state == TrialState.FAIL and t.number in retried:
            out["interrupted"] += 1
        else:
            out["done"] += 1
    return out


def remaining(study: optuna.Study, total: int) -> int:
    """Trials still to start for ``total`` in all (running ones count as started)."""
    c = counts(study)
    return max(0, total - c["done"] - c["running"])


def retry_stale(study: optuna.Study) -> int:
    """Fail every trial left running (its process is gone: the caller holds the sweep's lock) and
    queue its parameters again; returns how many."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    storage = study._storage
    for t in stale:
        storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
    return len(stale)
