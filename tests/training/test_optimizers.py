"""Optimizers: every torch.optim optimizer takes a step, parameter groups against torch by hand, errors."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn

from netspec.errors import SpecError, TrainingError
from netspec.training.optimizers import OPTIMIZERS, build_optimizer
from netspec.training.spec import OptimizerSpec

from standins import make_spec


def resnet18() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


def test_seed_003_param_groups_match_torch() -> None:
    """optim.SGD([{'params': net.fc.parameters()},
    {'params': net.layer4[0].conv1.parameters(), 'lr': 1e-2}], lr=1e-5)"""
    ours, ref = resnet18(), resnet18()
    spec = OptimizerSpec.model_validate(
        {
            "SGD": {"lr": 1e-5},
            "groups": [{"params": "fc.*"}, {"params": "layer4.0.conv1.*", "lr": 1e-2}],
            "ungrouped": "exclude",  # the seed optimises only these two groups
        }
    )
    opt = build_optimizer(spec, ours)
    ref_opt = torch.optim.SGD(
        [{"params": ref.fc.parameters()}, {"params": ref.layer4[0].conv1.parameters(), "lr": 1e-2}], lr=1e-5
    )
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
    spec = OptimizerSpec.model_validate(
        {
            "name": "AdamW",
            "args": {"lr": 1e-3, "weight_decay": 0.05},
            "groups": [{"params": ["layer4.*", "fc.*"], "lr": 1e-4, "weight_decay": 0.0}],
        }
    )
    opt = build_optimizer(spec, model)
    grouped, default = opt.param_groups
    assert (grouped["lr"], grouped["weight_decay"], default["lr"], default["weight_decay"]) == (1e-4, 0.0, 1e-3, 0.05)
    optimised = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in optimised for p in model.layer1.parameters())
    assert len(optimised) == sum(p.requires_grad for p in model.parameters())


def test_regex_groups_and_per_group_args() -> None:
    model = resnet18()
    spec = OptimizerSpec.model_validate(
        {
            "SGD": {"lr": 0.1},
            "groups": [
                {"params": r".*\.bias|.*bn\d\..*", "match": "regex", "weight_decay": 0.0, "args": {"momentum": 0.5}}
            ],
        }
    )
    opt = build_optimizer(spec, model)
    assert opt.param_groups[0]["momentum"] == 0.5 and opt.param_groups[1]["momentum"] == 0


# Optimizers that cannot train the default nn.Linear(3, 2), with a model they can train.
MODELS = {
    "SparseAdam": lambda: nn.Embedding(5, 3, sparse=True),  # sparse gradients only
    "Muon": lambda: nn.Linear(3, 2, bias=False),  # 2-D parameters only
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_takes_a_step(name: str) -> None:
    model = MODELS.get(name, lambda: nn.Linear(3, 2))()
    opt = build_optimizer(make_spec(optimizer=name).optimizer, model)
    before = model.weight.detach().clone()
    inputs = torch.tensor([0, 2, 4]) if isinstance(model, nn.Embedding) else torch.randn(4, 3)
    model(inputs).pow(2).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)


def test_lbfgs_is_refused_with_the_reason() -> None:
    with pytest.raises(SpecError, match="needs a closure"):
        make_spec(optimizer="LBFGS")


def test_optimizer_errors() -> None:
    model = resnet18()
    cases = [
        ({"SGDD": {}}, SpecError, ("optimizer", "SGDD"), "`SGD`"),
        ({"SGD": {"momentun": 0.9}}, SpecError, ("optimizer", "SGD", "momentun"), "`momentum`"),
        (
            {"SGD": {}, "groups": [{"params": "layer4.0.conv.*"}]},
            SpecError,
            ("optimizer", "groups", 0, "params"),
            "`layer4.0.conv1.*`",
        ),
        (
            {"SGD": {}, "groups": [{"params": ["fc.*", "nope.*"]}]},
            SpecError,
            ("optimizer", "groups", 0, "params", 1),
            None,
        ),
        (
            {"SGD": {}, "groups": [{"params": "layer4.*"}, {"params": "layer4.0.*"}]},
            SpecError,
            ("optimizer", "groups", 1, "params"),
            None,
        ),
        (
            {"SGD": {}, "groups": [{"params": "fc.*", "args": {"betas": [0.9, 0.9]}}]},
            SpecError,
            ("optimizer", "groups", 0, "betas"),
            None,
        ),
        (
            {"SGD": {}, "groups": [{"params": "(", "match": "regex"}]},
            SpecError,
            ("optimizer", "groups", 0, "params"),
            None,
        ),
        ("LBFGS", SpecError, ("optimizer",), None),
    ]
    for raw, exc, path, hint in cases:
        with pytest.raises(exc) as err:  # names, arguments: when loaded; patterns: once the model exists
            build_optimizer(make_spec(optimizer=raw).optimizer, model)
        assert err.value.path == path, raw
        if hint:
            assert hint in (err.value.hint or ""), (raw, err.value.hint)


def test_two_groups_matching_one_param_name_it() -> None:
    with pytest.raises(SpecError, match=re.escape("parameter `layer4.0.conv1.weight` matches groups 0 and 1")):
        build_optimizer(
            OptimizerSpec.model_validate({"SGD": {}, "groups": [{"params": "layer4.*"}, {"params": "*conv1*"}]}),
            resnet18(),
        )


def test_nothing_to_train() -> None:
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(TrainingError, match="nothing to train"):
        build_optimizer(OptimizerSpec.model_validate("Adam"), model)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_stand_in_is_the_optimizer_with_its_defaults(name: str) -> None:
    """The validation stand-in (add_param_group unwrapped, so no torch._dynamo import) is an
    instance of the real class holding the same group settings as the real optimizer would."""
    from netspec.training.optimizers import _stand_in_class, stand_in_optimizer

    cls = OPTIMIZERS[name]
    stand_in = stand_in_optimizer(OptimizerSpec.model_validate({name: {"lr": 0.01}}))
    real = cls([nn.Parameter(torch.zeros(2, 2))], lr=0.01)
    assert isinstance(stand_in, cls) and type(stand_in).__name__ == name
    wrapped = hasattr(cls.add_param_group, "__wrapped__")  # torch's dynamo guard, when there is one
    assert (_stand_in_class(cls).add_param_group is not cls.add_param_group) == wrapped
    drop = {"params"}
    assert [{k: v for k, v in g.items() if k not in drop} for g in stand_in.param_groups] == [
        {k: v for k, v in g.items() if k not in drop} for g in real.param_groups
    ]
    assert cls.add_param_group is getattr(torch.optim, name).add_param_group  # torch's class untouched
