"""Every optimizer / scheduler / init / weights option, each against torch used by hand,
and the errors a training section can produce (path + suggestion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from netspec.errors import CheckpointError, SpecError, TrainingError
from netspec.runner import (
    OPTIMIZERS,
    SCHEDULERS,
    build_optimizer,
    build_scheduler,
    check_training,
    init_model,
    load_weights,
)
from netspec.train_spec import InitSpec, OptimizerSpec, SchedulerSpec, WeightsSpec
from test_runner import make_spec

# --------------------------------------------------------------------------- optimizer


def resnet18() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


def test_seed_003_param_groups_match_torch() -> None:
    """optim.SGD([{'params': net.fc.parameters()},
                  {'params': net.layer4[0].conv1.parameters(), 'lr': 1e-2}], lr=1e-5)"""
    ours, ref = resnet18(), resnet18()
    spec = OptimizerSpec.model_validate({
        "SGD": {"lr": 1e-5},
        "groups": [{"params": "fc.*"}, {"params": "layer4.0.conv1.*", "lr": 1e-2}],
        "ungrouped": "exclude",  # the seed optimises only these two groups
    })
    opt = build_optimizer(spec, ours)
    ref_opt = torch.optim.SGD([{"params": ref.fc.parameters()}, {"params": ref.layer4[0].conv1.parameters(), "lr": 1e-2}], lr=1e-5)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref_opt.param_groups]
    assert [len(g["params"]) for g in opt.param_groups] == [2, 1]
    assert not ours.conv1.weight.requires_grad  # excluded, so no gradient is computed for it
    x = torch.randn(2, 3, 32, 32)
    for model, o in ((ours, opt), (ref, ref_opt)):
        model(x).sum().backward()
        o.step()
    torch.testing.assert_close(ours.layer4[0].conv1.weight, ref.layer4[0].conv1.weight)
    torch.testing.assert_close(ours.fc.weight, ref.fc.weight)


def test_ungrouped_params_join_the_default_group_and_frozen_are_left_out() -> None:
    model = resnet18()
    for p in model.layer1.parameters():
        p.requires_grad_(False)
    spec = OptimizerSpec.model_validate({"name": "AdamW", "args": {"lr": 1e-3, "weight_decay": 0.05},
                                         "groups": [{"params": ["layer4.*", "fc.*"], "lr": 1e-4, "weight_decay": 0.0}]})
    opt = build_optimizer(spec, model)
    grouped, default = opt.param_groups
    assert (grouped["lr"], grouped["weight_decay"], default["lr"], default["weight_decay"]) == (1e-4, 0.0, 1e-3, 0.05)
    optimised = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in optimised for p in model.layer1.parameters())
    assert len(optimised) == sum(p.requires_grad for p in model.parameters())


def test_regex_groups_and_per_group_args() -> None:
    model = resnet18()
    spec = OptimizerSpec.model_validate({"SGD": {"lr": 0.1}, "groups": [
        {"params": r".*\.bias|.*bn\d\..*", "match": "regex", "weight_decay": 0.0, "args": {"momentum": 0.5}}]})
    opt = build_optimizer(spec, model)
    assert opt.param_groups[0]["momentum"] == 0.5 and opt.param_groups[1]["momentum"] == 0


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS) - {"LBFGS", "SparseAdam", "Muon"}))
def test_every_optimizer_takes_a_step(name: str) -> None:
    model = nn.Linear(3, 2)
    opt = build_optimizer(OptimizerSpec.model_validate(name), model)
    before = model.weight.detach().clone()
    model(torch.randn(4, 3)).pow(2).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)


def test_optimizer_errors() -> None:
    model = resnet18()
    cases = [
        ({"SGDD": {}}, SpecError, ("optimizer", "SGDD"), "`SGD`"),
        ({"SGD": {"momentun": 0.9}}, SpecError, ("optimizer", "SGD", "momentun"), "`momentum`"),
        ({"SGD": {}, "groups": [{"params": "layer4.0.conv.*"}]}, SpecError, ("optimizer", "groups", 0, "params"), "`layer4.0.conv1.*`"),
        ({"SGD": {}, "groups": [{"params": ["fc.*", "nope.*"]}]}, SpecError, ("optimizer", "groups", 0, "params", 1), None),
        ({"SGD": {}, "groups": [{"params": "layer4.*"}, {"params": "layer4.0.*"}]}, SpecError, ("optimizer", "groups", 1, "params"), None),
        ({"SGD": {}, "groups": [{"params": "fc.*", "args": {"betas": [0.9, 0.9]}}]}, SpecError, ("optimizer", "groups", 0, "betas"), None),
        ({"SGD": {}, "groups": [{"params": "(", "match": "regex"}]}, SpecError, ("optimizer", "groups", 0, "params"), None),
        ("LBFGS", SpecError, ("optimizer",), None),
    ]
    for raw, exc, path, hint in cases:
        with pytest.raises(exc) as err:
            build_optimizer(OptimizerSpec.model_validate(raw), model)
        assert err.value.path == path, raw
        if hint:
            assert hint in (err.value.hint or ""), (raw, err.value.hint)


def test_two_groups_matching_one_param_name_it() -> None:
    with pytest.raises(SpecError, match="parameter `layer4.0.conv1.weight` matches groups 0 and 1"):
        build_optimizer(OptimizerSpec.model_validate({"SGD": {}, "groups": [{"params": "layer4.*"}, {"params": "*conv1*"}]}), resnet18())


def test_nothing_to_train() -> None:
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(TrainingError, match="nothing to train"):
        build_optimizer(OptimizerSpec.model_validate("Adam"), model)


# --------------------------------------------------------------------------- schedulers

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
    sched = build_scheduler(SchedulerSpec.model_validate({name: SAMPLE_ARGS[name], "interval": interval}), opt,
                            epochs=epochs, steps_per_epoch=steps, produced=["train_loss", "val_loss"])
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
        ours = _trace(lambda i: (sched.after_step(), sched.after_epoch({}) if (i + 1) % steps == 0 else None), opt, total)
        theirs = _trace(lambda i: ref.step(), ref_opt, total)
    assert ours == pytest.approx(theirs)


def test_seed_step_decay_declared_without_code() -> None:
    """Seed 003's adjust_learning_rate: lr = args.lr * 0.1 ** (epoch // 30)."""
    opt = _opt()
    sched = build_scheduler(SchedulerSpec.model_validate({"StepLR": {"step_size": 30, "gamma": 0.1}}), opt,
                            epochs=100, steps_per_epoch=1, produced=["train_loss"])
    for epoch in range(100):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.1 ** (epoch // 30))
        opt.step()
        sched.after_epoch({})


def test_warmup_then_cosine_is_sequential_lr() -> None:
    spec = [SchedulerSpec.model_validate({"LinearLR": {"start_factor": 0.1, "total_iters": 3}, "duration": 3}),
            SchedulerSpec.model_validate("CosineAnnealingLR")]
    opt, ref_opt = _opt(), _opt()
    sched = build_scheduler(spec, opt, epochs=10, steps_per_epoch=1, produced=["train_loss"])
    lr = torch.optim.lr_scheduler
    ref = lr.SequentialLR(ref_opt, [lr.LinearLR(ref_opt, 0.1, total_iters=3), lr.CosineAnnealingLR(ref_opt, T_max=7)], milestones=[3])
    ours = _trace(lambda i: sched.after_epoch({}), opt, 10)
    assert ours == pytest.approx(_trace(lambda i: ref.step(), ref_opt, 10))
    assert isinstance(sched.scheduler, lr.SequentialLR)


def test_plateau_defaults_to_val_loss_or_train_loss() -> None:
    s = build_scheduler(SchedulerSpec.model_validate("ReduceLROnPlateau"), _opt(), epochs=2, steps_per_epoch=1,
                        produced=["train_loss"])
    assert s.monitor == "train_loss"
    s = build_scheduler(SchedulerSpec.model_validate("ReduceLROnPlateau"), _opt(), epochs=2, steps_per_epoch=1,
                        produced=["train_loss", "val_loss"])
    assert s.monitor == "val_loss"


def test_plateau_in_a_run_reduces_the_lr(tmp_path: Path) -> None:
    from test_runner import run

    spec = make_spec(optimizer={"SGD": {"lr": 0.0}},  # lr 0: val_loss is flat, so the plateau is hit
                     scheduler={"ReduceLROnPlateau": {"patience": 0, "factor": 0.5, "min_lr": 0}, "monitor": "val_loss"},
                     train={"epochs": 3})
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
        ([{"LinearLR": {}, "duration": 2}, {"StepLR": {"step_size": 2}, "interval": "step"}], ("scheduler", 1, "interval"), "same"),
        ([{"LinearLR": {}, "duration": 2}, "ReduceLROnPlateau"], ("scheduler", 1), "cannot be part"),
        ({"StepLR": {"step_size": 3}, "duration": 4}, ("scheduler", "duration"), "in a list"),
    ],
)
def test_scheduler_errors(scheduler: Any, path: tuple, text: str) -> None:
    spec = make_spec(scheduler=scheduler, train={"metrics": ["accuracy"]})
    with pytest.raises(SpecError) as err:
        check_training(spec)
    assert err.value.path == path
    assert text in str(err.value)


def test_plateau_monitor_suggests_the_metric() -> None:
    spec = make_spec(scheduler={"ReduceLROnPlateau": {}, "monitor": "val_acuracy"}, train={"metrics": ["accuracy"]})
    with pytest.raises(SpecError) as err:
        check_training(spec)
    assert err.value.hint == "did you mean `val_accuracy`?"
    spec = make_spec(scheduler={"ReduceLROnPlateau": {}, "monitor": "val_dice"})
    with pytest.raises(SpecError) as err:
        check_training(spec)
    assert err.value.hint == "add `dice` to train.metrics"


# --------------------------------------------------------------------------- init


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


SEED_003_INIT = {"rules": [
    {"layer": "Conv2d", "weight": {"kaiming_normal_": {"mode": "fan_out", "nonlinearity": "relu"}}, "bias": {"constant_": {"val": 0.3}}},
    {"layer": "Linear", "weight": {"normal_": {"std": 0.1}}, "bias": "zeros_"},
    {"layer": "BatchNorm2d", "weight": {"constant_": {"val": 1}}, "bias": {"constant_": {"val": 0}}},
]}


def test_seed_003_init_rules_match_nn_init_by_hand() -> None:
    ours, ref = Small(), Small()
    with torch.no_grad():
        ours.bn.weight.fill_(5)
    log: list[str] = []
    torch.manual_seed(0)
    init_model(ours, InitSpec.model_validate(SEED_003_INIT), log=_ListLog(log))
    torch.manual_seed(0)
    nn.init.kaiming_normal_(ref.conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.constant_(ref.conv.bias, 0.3)
    nn.init.normal_(ref.fc.weight, std=0.1)
    nn.init.zeros_(ref.fc.bias)
    nn.init.ones_(ref.bn.weight)
    nn.init.zeros_(ref.bn.bias)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[k], v, msg=k)
    assert "init rules[0] Conv2d: weight kaiming_normal_(mode='fan_out', nonlinearity='relu') on 1 tensors (conv.weight)" in log[0]


def test_init_by_name_pattern_later_rules_win() -> None:
    model = Small()
    spec = InitSpec.model_validate({"rules": [{"layer": ["Conv2d", "Linear"], "bias": "ones_"},
                                              {"name": "fc*", "bias": {"constant_": {"val": 2.0}}}]})
    init_model(model, spec)
    assert model.conv.bias.tolist() == [1.0] * 4 and model.fc.bias.tolist() == [2.0, 2.0]


class _ListLog:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    warn = info


def test_frozen_parameters_are_reported() -> None:
    model = Small()
    model.conv.requires_grad_(False)
    lines: list[str] = []
    init_model(model, None, log=_ListLog(lines))
    assert lines == ["frozen: 2 tensors, 40 parameters (conv.weight, conv.bias)"]


@pytest.mark.parametrize(
    "rule, path, text",
    [
        ({"layer": "Linear", "weight": "kaiming_normal"}, ("init", "rules", 0, "weight"), "did you mean `kaiming_normal_`"),
        ({"layer": "Linear", "weight": {"normal_": {"sdt": 1}}}, ("init", "rules", 0, "weight", "normal_", "sdt"), "`std`"),
        ({"layer": "Conv2D", "weight": "zeros_"}, ("init", "rules", 0, "layer"), "did you mean `Conv2d`"),
        ({"name": "fcc", "weight": "zeros_"}, ("init", "rules", 0, "name"), "did you mean `fc`"),
        ({"layer": "Linear", "bias": "kaiming_normal_"}, ("init", "rules", 0, "bias"), "cannot initialise `fc.bias` (2,)"),
    ],
)
def test_init_errors(rule: dict, path: tuple, text: str) -> None:
    with pytest.raises(SpecError) as err:
        init_model(Small(), InitSpec.model_validate({"rules": [rule]}))
    assert err.value.path == path
    assert text in str(err.value)


# --------------------------------------------------------------------------- weights


def test_load_state_dict_with_dataparallel_prefix(tmp_path: Path) -> None:
    src = Small()
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "dp.pt")
    dst, lines = Small(), []
    load_weights(dst, WeightsSpec(path="dp.pt"), base_dir=tmp_path, log=_ListLog(lines))
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)
    assert "removed DataParallel prefix `module.`" in lines[0] and "loaded 9/9 tensors" in lines[0]


def test_whole_pickled_model_is_refused(tmp_path: Path) -> None:
    torch.save(Small(), tmp_path / "whole.pt")  # seed 003: torch.save(model, save_path)
    with pytest.raises(CheckpointError) as err:
        load_weights(Small(), WeightsSpec(path="whole.pt"), base_dir=tmp_path)
    assert "a whole pickled model" in str(err.value) and "weights_only=True" in str(err.value)
    assert "state_dict()" in (err.value.hint or "")


def test_partial_load_reports_missing_and_unexpected(tmp_path: Path) -> None:
    state = {k: v for k, v in Small().state_dict().items() if not k.startswith("fc.")}
    state["head.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="2 model keys missing .*fc.weight, fc.bias.*1 file keys not in the model"):
        load_weights(Small(), WeightsSpec(path="w.pt"), base_dir=tmp_path)
    lines: list[str] = []
    load_weights(Small(), WeightsSpec(path="w.pt", strict=False), base_dir=tmp_path, log=_ListLog(lines))
    assert "loaded 7/9 tensors" in lines[0] and "kept from init: fc.weight, fc.bias" in lines[0]
    assert "ignored from the file: head.weight" in lines[0]


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    state = Small().state_dict()
    state["fc.weight"] = torch.zeros(10, 4)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"`fc.weight` has shape \(10, 4\) in w.pt but \(2, 4\) in the model"):
        load_weights(Small(), WeightsSpec(path="w.pt", strict=False), base_dir=tmp_path)


def test_prefixes_and_nested_state_dicts(tmp_path: Path) -> None:
    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = Small()

    src = Small()
    torch.save({"epoch": 3, "state_dict": src.state_dict()}, tmp_path / "ckpt.pt")  # found automatically
    dst = Wrapped()
    load_weights(dst, WeightsSpec.model_validate({"path": "ckpt.pt", "add_prefix": "net."}), base_dir=tmp_path)
    torch.testing.assert_close(dst.net.fc.weight, src.fc.weight)
    torch.save({"weights_v2": {f"backbone.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "b.pt")
    dst2 = Small()
    load_weights(dst2, WeightsSpec.model_validate({"path": "b.pt", "key": "weights_v2", "strip_prefix": "backbone."}), base_dir=tmp_path)
    torch.testing.assert_close(dst2.conv.weight, src.conv.weight)


def test_bad_weight_files(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for name, text in [("missing.pt", "not found"), ("junk.pt", "not a PyTorch weights file")]:
        with pytest.raises(CheckpointError, match=text):
            load_weights(Small(), WeightsSpec(path=name), base_dir=tmp_path)
    torch.save({"epoch": 1}, tmp_path / "nostate.pt")
    with pytest.raises(CheckpointError, match="no state_dict found") as err:
        load_weights(Small(), WeightsSpec(path="nostate.pt"), base_dir=tmp_path)
    assert "key:" in (err.value.hint or "")


def test_init_then_weights_in_a_run(tmp_path: Path) -> None:
    from test_runner import mlp, run

    src = mlp(3)
    torch.save(src.state_dict(), tmp_path / "pre.pt")
    spec = make_spec(optimizer={"SGD": {"lr": 0.0}}, train={"epochs": 1},
                     init={"rules": [{"layer": "Linear", "bias": "ones_"}], "weights": str(tmp_path / "pre.pt")})
    result = run(spec, tmp_path)
    torch.testing.assert_close(result.model[0].bias, src[0].bias)  # the file wins over the rule
    assert "init rules[0] Linear" in result.log and "loaded 4/4 tensors" in result.log


# --------------------------------------------------------------------------- check_training


@pytest.mark.parametrize(
    "sections, path, hint",
    [
        ({"optimizer": {"Adamm": {"lr": 1e-3}}}, ("optimizer", "Adamm"), "did you mean `Adam`?"),
        ({"optimizer": None}, ("optimizer",), "optimizer: {Adam: {lr: 0.001}}"),
        ({"loss": None}, ("loss",), "loss: CrossEntropyLoss"),
        ({"loss": "CrossEntropy"}, ("loss",), "did you mean `CrossEntropyLoss`?"),
        ({"loss": {"outputs": {"logit": "CrossEntropyLoss"}}}, ("loss", "outputs", "logit"), "did you mean `logits`?"),
        ({"train": {"metrics": ["acuracy"]}}, ("train", "metrics", 0), "did you mean `accuracy`?"),
        ({"train": {"metrics": [{"top_k_accuracy": {"kk": 5}}]}}, ("train", "metrics", 0, "top_k_accuracy", "kk"), "did you mean `k`?"),
        ({"train": {"early_stopping": {"monitor": "val_los"}}}, ("train", "early_stopping", "monitor"), "did you mean `val_loss`?"),
        ({"train": {"stop_when": {"monitor": "train_accuracy", "above": 0.99}}}, ("train", "stop_when", "monitor"), "add `accuracy` to train.metrics"),
        ({"train": {"checkpoint": {"monitor": "val_top5_accuracy"}}}, ("train", "checkpoint", "monitor"), "add `top5_accuracy` to train.metrics"),
        ({"init": {"rules": [{"layer": "Linear", "weight": "xavier"}]}}, ("init", "rules", 0, "weight"), "did you mean `xavier_normal_`"),
    ],
)
def test_check_training_errors(sections: dict, path: tuple, hint: str) -> None:
    spec = make_spec(**sections)
    with pytest.raises(SpecError) as err:
        check_training(spec)
    assert err.value.path == path
    assert hint in (err.value.hint or ""), err.value.hint


def test_check_training_accepts_a_full_spec() -> None:
    check_training(make_spec(
        loss={"sum": [{"CrossEntropyLoss": {"label_smoothing": 0.1}}, {"Focal": {"gamma": 2}, "weight": 0.5}]},
        optimizer={"AdamW": {"lr": 3e-4}, "groups": [{"params": "0.*", "lr": 1e-4}]},
        scheduler=[{"LinearLR": {"start_factor": 0.1}, "duration": 2}, {"CosineAnnealingLR": {"eta_min": 1e-6}}],
        init={"rules": [{"layer": "Linear", "weight": "xavier_uniform_", "bias": "zeros_"}]},
        train={"epochs": 5, "metrics": ["accuracy", {"top_k_accuracy": {"k": 2}}],
               "early_stopping": {"monitor": "val_accuracy", "patience": 2},
               "checkpoint": {"monitor": "val_top2_accuracy"}, "grad_clip": {"max_norm": 1.0, "norm_type": 2}},
    ))
