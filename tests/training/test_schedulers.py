"""Schedulers: every scheduler against torch by hand, lists, ReduceLROnPlateau, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from netspec.errors import SpecError
from netspec.training.schedulers import SCHEDULERS, build_scheduler
from netspec.training.spec import SchedulerSpec

from standins import make_spec, run

SAMPLE_ARGS: dict[str, dict[str, Any]] = {
    "StepLR": {"step_size": 2, "gamma": 0.5},
    "MultiStepLR": {"milestones": [1, 3], "gamma": 0.1},
    "ConstantLR": {"factor": 0.5, "total_iters": 2},
    "LinearLR": {"start_factor": 0.1, "total_iters": 3},
    "ExponentialLR": {"gamma": 0.9},
    "PolynomialLR": {"total_iters": 4, "power": 2.0},
    "CosineAnnealingLR": {},  # T_max filled in
    "ReduceLROnPlateau": {"patience": 0, "factor": 0.5},
    "CyclicLR": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2},
    "CosineAnnealingWarmRestarts": {"T_0": 2},
    "OneCycleLR": {"max_lr": 0.5},  # total_steps filled in
}


def test_every_scheduler_has_a_sample() -> None:
    assert set(SCHEDULERS) == set(SAMPLE_ARGS)


def _opt() -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


def _trace(step: Any, opt: torch.optim.Optimizer, n: int) -> list[float]:
    lrs = []
    for i in range(n):
        opt.step()
        step(i)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize(
    "name, interval",
    # ReduceLROnPlateau steps on epochs only (interval: step is an error, tested below).
    [(n, i) for n in sorted(SAMPLE_ARGS) for i in ("epoch", "step") if (n, i) != ("ReduceLROnPlateau", "step")],
)
def test_every_scheduler_matches_torch(name: str, interval: str) -> None:
    epochs, steps = 4, 3
    total = epochs if interval == "epoch" else epochs * steps
    opt = _opt()
    sched = build_scheduler(
        SchedulerSpec.model_validate({name: SAMPLE_ARGS[name], "interval": interval}),
        opt,
        epochs=epochs,
        steps_per_epoch=steps,
        has_val=True,
    )
    ref_opt = _opt()
    args = dict(SAMPLE_ARGS[name])
    args.update({"CosineAnnealingLR": {"T_max": total}, "OneCycleLR": {"total_steps": total}}.get(name, {}))
    ref = getattr(torch.optim.lr_scheduler, name)(ref_opt, **args)
    losses = [1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    if name == "ReduceLROnPlateau":
        ours = _trace(lambda i: sched.after_epoch({"val_loss": losses[i]}), opt, epochs)
        theirs = _trace(lambda i: ref.step(losses[i]), ref_opt, epochs)
    elif interval == "epoch":
        ours = _trace(lambda i: (sched.after_step(), sched.after_epoch({})), opt, total)
        theirs = _trace(lambda i: ref.step(), ref_opt, total)
    else:
        ours = _trace(
            lambda i: (sched.after_step(), sched.after_epoch({}) if (i + 1) % steps == 0 else None), opt, total
        )
        theirs = _trace(lambda i: ref.step(), ref_opt, total)
    assert ours == pytest.approx(theirs)


def test_seed_step_decay_declared_without_code() -> None:
    """Seed 003's adjust_learning_rate: lr = args.lr * 0.1 ** (epoch // 30)."""
    opt = _opt()
    sched = build_scheduler(
        SchedulerSpec.model_validate({"StepLR": {"step_size": 30, "gamma": 0.1}}),
        opt,
        epochs=100,
        steps_per_epoch=1,
        has_val=False,
    )
    for epoch in range(100):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.1 ** (epoch // 30))
        opt.step()
        sched.after_epoch({})


def test_warmup_then_cosine_is_sequential_lr() -> None:
    spec = [
        SchedulerSpec.model_validate({"LinearLR": {"start_factor": 0.1, "total_iters": 3}, "duration": 3}),
        SchedulerSpec.model_validate("CosineAnnealingLR"),
    ]
    opt, ref_opt = _opt(), _opt()
    sched = build_scheduler(spec, opt, epochs=10, steps_per_epoch=1, has_val=False)
    lr = torch.optim.lr_scheduler
    ref = lr.SequentialLR(
        ref_opt, [lr.LinearLR(ref_opt, 0.1, total_iters=3), lr.CosineAnnealingLR(ref_opt, T_max=7)], milestones=[3]
    )
    ours = _trace(lambda i: sched.after_epoch({}), opt, 10)
    assert ours == pytest.approx(_trace(lambda i: ref.step(), ref_opt, 10))
    assert isinstance(sched.scheduler, lr.SequentialLR)


def test_plateau_defaults_to_val_loss_or_train_loss() -> None:
    s = build_scheduler(
        SchedulerSpec.model_validate("ReduceLROnPlateau"), _opt(), epochs=2, steps_per_epoch=1, has_val=False
    )
    assert s.monitor == "train_loss"
    s = build_scheduler(
        SchedulerSpec.model_validate("ReduceLROnPlateau"), _opt(), epochs=2, steps_per_epoch=1, has_val=True
    )
    assert s.monitor == "val_loss"


def test_plateau_in_a_run_reduces_the_lr(tmp_path: Path) -> None:
    spec = make_spec(
        optimizer={"SGD": {"lr": 0.0}},  # lr 0: val_loss is flat, so the plateau is hit
        scheduler={"ReduceLROnPlateau": {"patience": 0, "factor": 0.5, "min_lr": 0}, "monitor": "val_loss"},
        train={"epochs": 3},
    )
    result = run(spec, tmp_path)
    assert result.history[-1]["lr"] == 0.0  # 0 * 0.5: stepped without error on the monitored value


@pytest.mark.parametrize(
    "scheduler, path, text",
    [
        ({"StepLr": {"step_size": 3}}, ("scheduler", "StepLr"), "did you mean `StepLR`"),
        ({"LambdaLR": {}}, ("scheduler", "LambdaLR"), "Python function"),
        ({"name": "SequentialLR"}, ("scheduler", "name"), "write a list"),
        ({"StepLR": {"step_sise": 3}}, ("scheduler", "StepLR", "step_sise"), "`step_size`"),
        ({"StepLR": {}}, ("scheduler", "StepLR"), "needs argument `step_size`"),
        ({"ReduceLROnPlateau": {}, "monitor": "val_acc"}, ("scheduler", "monitor"), "no metric `val_acc`"),
        ({"ReduceLROnPlateau": {}, "interval": "step"}, ("scheduler", "interval"), "once per epoch"),
        ({"StepLR": {"step_size": 3}, "monitor": "val_loss"}, ("scheduler", "monitor"), "for ReduceLROnPlateau"),
        ([{"LinearLR": {}}, {"StepLR": {"step_size": 2}}], ("scheduler", 0), "needs `duration:`"),
        (
            [{"LinearLR": {}, "duration": 2}, {"StepLR": {"step_size": 2}, "interval": "step"}],
            ("scheduler", 1, "interval"),
            "same",
        ),
        ([{"LinearLR": {}, "duration": 2}, "ReduceLROnPlateau"], ("scheduler", 1), "cannot be part"),
        ({"StepLR": {"step_size": 3}, "duration": 4}, ("scheduler", "duration"), "in a list"),
    ],
)
def test_scheduler_errors(scheduler: Any, path: tuple, text: str) -> None:
    with pytest.raises(SpecError) as err:
        make_spec(scheduler=scheduler, train={"metrics": ["accuracy"]})
    assert err.value.path == path
    assert text in str(err.value)


def test_plateau_monitor_suggests_the_metric() -> None:
    with pytest.raises(SpecError) as err:
        make_spec(scheduler={"ReduceLROnPlateau": {}, "monitor": "val_acuracy"}, train={"metrics": ["accuracy"]})
    assert err.value.hint == "did you mean `val_accuracy`?"
    with pytest.raises(SpecError) as err:
        make_spec(scheduler={"ReduceLROnPlateau": {}, "monitor": "val_dice"})
    assert err.value.hint == "add `dice` to train.metrics"
