"""Learning-rate schedulers: the registry (``torch.optim.lr_scheduler``), the checks and the builder.

A ``scheduler:`` section is one scheduler or a list run one after the other (a SequentialLR with
milestones at the durations). :func:`check_scheduler` checks one entry when the spec is loaded;
:func:`check_schedule` the rules of a list and the values (made on a stand-in optimizer), from
the whole spec's checks (:mod:`netspec.training.rules`); :func:`build_scheduler` trusts them.

>>> sorted(n for n in SCHEDULERS if n.startswith("Cosine"))
['CosineAnnealingLR', 'CosineAnnealingWarmRestarts']
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import SpecError, fmt_args, number_string_hint
from ..nodes.registry import Registry, SpecPath
from .optimizers import refuse_non_finite

if TYPE_CHECKING:
    from .spec import SchedulerSpec

__all__ = ["SCHEDULERS", "Schedule", "check_scheduler", "check_schedule", "build_scheduler", "phases"]

logger = logging.getLogger(__name__)

_sched = torch.optim.lr_scheduler
_NOT_SCHEDULERS = ("LRScheduler",)  # the base class


def _torch_schedulers(registry: Registry[type]) -> None:
    for name, cls in vars(_sched).items():
        if (
            inspect.isclass(cls)
            and (issubclass(cls, _sched.LRScheduler) or cls is _sched.ReduceLROnPlateau)
            and not name.startswith("_")
            and name not in _NOT_SCHEDULERS
            and name not in registry.refused
        ):
            registry.add(name, cls)


#: scheduler name -> torch.optim.lr_scheduler class.
SCHEDULERS: Registry[type] = Registry("scheduler", fill=_torch_schedulers, passed=("optimizer",))
SCHEDULERS.refuse(
    "LambdaLR",
    "LambdaLR cannot be declared: takes a Python function, which a spec cannot hold; "
    "StepLR, MultiStepLR, ExponentialLR, LinearLR, PolynomialLR or a list of schedulers cover the usual shapes",
)
SCHEDULERS.refuse(
    "MultiplicativeLR",
    "MultiplicativeLR cannot be declared: takes a Python function; ExponentialLR multiplies by a constant `gamma`",
)
SCHEDULERS.refuse(
    "SequentialLR",
    "SequentialLR cannot be declared: write a list under `scheduler:`; each entry but the last sets `duration:`",
)
SCHEDULERS.refuse("ChainedScheduler", "ChainedScheduler cannot be declared: write a list under `scheduler:` instead")

# Arguments netspec works out when missing: the length of the phase (epochs or steps).
_LENGTH_ARGS = {"OneCycleLR": "total_steps", "CosineAnnealingLR": "T_max"}


@dataclass
class Schedule:
    """The compiled ``scheduler:`` section: knows when to step and on which metric."""

    scheduler: Any = None  # LRScheduler | ReduceLROnPlateau | None
    interval: str = "epoch"
    monitor: str | None = None
    stepped_with: list[float] | None = None  # interval step: the lrs of the last step, before the scheduler moved them

    def after_step(self) -> None:
        if self.scheduler is not None and self.interval == "step":
            self.stepped_with = [g["lr"] for g in self.scheduler.optimizer.param_groups]
            self.scheduler.step()

    def trained_with(self, optimizer: torch.optim.Optimizer) -> list[float]:
        """The lr of each group that the epoch's (last) optimizer step used: read before
        :meth:`after_epoch` moves it, so the epoch line and metrics.jsonl say the rate the epoch
        trained with, not the next epoch's.

        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> s = Schedule(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), "step")
        >>> opt.step(); s.after_step(); s.trained_with(opt), opt.param_groups[0]["lr"]
        ([0.1], 0.05)
        """
        used, self.stepped_with = self.stepped_with, None
        return used if used is not None else [g["lr"] for g in optimizer.param_groups]

    def after_epoch(self, values: dict[str, float]) -> None:
        if self.scheduler is None or self.interval != "epoch":
            return
        if self.monitor is not None:
            self.scheduler.step(values[self.monitor])  # ReduceLROnPlateau
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scheduler.state_dict() if self.scheduler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)


def phases(spec: SchedulerSpec | list[SchedulerSpec] | None) -> list[tuple[SchedulerSpec, SpecPath]]:
    """The entries of a ``scheduler:`` section with their spec paths.

    >>> from netspec.training.spec import SchedulerSpec
    >>> [p for _, p in phases([SchedulerSpec(name="LinearLR", duration=2), SchedulerSpec(name="ExponentialLR", args={"gamma": 0.9})])]
    [('scheduler', 0), ('scheduler', 1)]
    """
    if spec is None:
        return []
    if isinstance(spec, list):
        return [(s, ("scheduler", i)) for i, s in enumerate(spec)]
    return [(spec, ("scheduler",))]


def check_scheduler(spec: SchedulerSpec) -> None:
    """One entry: its name, arguments and the options only ReduceLROnPlateau takes (paths
    relative to the entry)."""
    filled = (_LENGTH_ARGS[spec.name],) if spec.name in _LENGTH_ARGS else ()
    cls = SCHEDULERS.check(spec, filled=filled)
    refuse_non_finite(spec.args, spec.args_path(()))
    if cls is _sched.ReduceLROnPlateau:
        if spec.interval != "epoch":
            raise SpecError("ReduceLROnPlateau steps once per epoch, on a metric", path=("interval",))
    elif spec.monitor is not None:
        raise SpecError(f"`monitor:` is for ReduceLROnPlateau; {spec.name} does not watch a metric", path=("monitor",))


def check_schedule(
    spec: SchedulerSpec | list[SchedulerSpec], optimizer: torch.optim.Optimizer | None, *, epochs: int
) -> None:
    """The rules of a scheduler list, then the schedulers made on ``optimizer`` (a stand-in; None
    when the spec has no optimizer yet), so that a wrong value is reported at its line before
    any work."""
    entries = phases(spec)
    if isinstance(spec, list) and not spec:
        raise SpecError(
            "an empty scheduler list; leave `scheduler:` out for a constant learning rate", path=("scheduler",)
        )
    for k, (phase, path) in enumerate(entries):
        if len(entries) == 1:
            if phase.duration is not None:
                raise SpecError("`duration:` is for schedulers in a list", path=(*path, "duration"))
            continue
        if phase.name == "ReduceLROnPlateau":
            raise SpecError("ReduceLROnPlateau cannot be part of a scheduler list", path=path)
        if phase.interval != entries[0][0].interval:
            raise SpecError("every scheduler in a list steps on the same `interval:`", path=(*path, "interval"))
        if k < len(entries) - 1 and phase.duration is None:
            raise SpecError(
                "every scheduler in a list but the last needs `duration:` (epochs or steps before the next one)",
                path=path,
            )
    if optimizer is not None:  # made once on the stand-in, silently: its lines are the run's to say
        _compile(spec, optimizer, epochs, 1, False, notes=[])


def build_scheduler(
    spec: SchedulerSpec | list[SchedulerSpec] | None,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    has_val: bool,
) -> Schedule:
    """Compile ``scheduler:``; a list becomes a SequentialLR with milestones at the durations.

    ``OneCycleLR.total_steps`` and ``CosineAnnealingLR.T_max`` default to the length of their
    phase (epochs, or optimizer steps with ``interval: step``); ReduceLROnPlateau watches
    ``val_loss`` by default (``train_loss`` without validation data).

    >>> from netspec.training.spec import SchedulerSpec
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> s = build_scheduler(SchedulerSpec.model_validate({"StepLR": {"step_size": 30, "gamma": 0.1}}), opt,
    ...                     epochs=60, steps_per_epoch=10, has_val=False)
    >>> for _ in range(30): opt.step(); s.after_epoch({})
    >>> round(opt.param_groups[0]["lr"], 6)   # lr * 0.1 ** (epoch // 30)
    0.01
    """
    notes: list[str] = []
    schedule = _compile(spec, optimizer, epochs, steps_per_epoch, has_val, notes)
    for note in notes:
        logger.info(note)
    return schedule


def _compile(
    spec: SchedulerSpec | list[SchedulerSpec] | None,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    has_val: bool,
    notes: list[str],
) -> Schedule:
    """:func:`build_scheduler`'s work; what it would log is appended to ``notes``."""
    entries = phases(spec)
    if not entries:
        return Schedule()
    interval = entries[0][0].interval
    total = epochs if interval == "epoch" else epochs * steps_per_epoch
    made, start = [], 0
    for k, (phase, path) in enumerate(entries):
        length = phase.duration if k < len(entries) - 1 else max(1, total - start)
        assert length is not None  # every phase but the last has a duration (checked when the spec loaded)
        made.append(_make_scheduler(phase, path, optimizer, length, notes))
        start += phase.duration or 0
    if len(made) == 1:
        sched = made[0]
    else:
        milestones = np.cumsum([p.duration for p, _ in entries[:-1]])
        sched = _sched.SequentialLR(optimizer, made, milestones=[int(m) for m in milestones])
    monitor = None
    if isinstance(sched, _sched.ReduceLROnPlateau):
        monitor = entries[0][0].monitor or ("val_loss" if has_val else "train_loss")
    notes.append(
        f"scheduler: {' then '.join(p.name for p, _ in entries)} every {interval}"
        + (f", watching {monitor}" if monitor else "")
    )
    return Schedule(sched, interval, monitor)


def _make_scheduler(
    phase: SchedulerSpec, path: SpecPath, optimizer: torch.optim.Optimizer, length: int, notes: list[str]
) -> Any:
    args = dict(phase.args)
    fill = _LENGTH_ARGS.get(phase.name)
    if fill and fill not in args and not (phase.name == "OneCycleLR" and "epochs" in args):
        args[fill] = length
        notes.append(f"scheduler {phase.name}: {fill}={length} (the length of its phase)")
    try:
        return SCHEDULERS[phase.name](optimizer, **args)
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise SpecError(
            f"{phase.name}({fmt_args(phase.args)}) failed: {err}",
            path=phase.args_path(path),
            hint=number_string_hint(phase.args),
        ) from None
