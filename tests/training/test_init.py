"""Initialisation rules against torch.nn.init by hand, frozen parameters, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from netspec.errors import SpecError
from netspec.nodes.initializers import INIT_FUNCTIONS
from netspec.training.init import init_model
from netspec.training.spec import InitSpec

from standins import Small, logged, make_spec

SEED_003_INIT = {
    "rules": [
        {
            "layer": "Conv2d",
            "weight": {"kaiming_normal_": {"mode": "fan_out", "nonlinearity": "relu"}},
            "bias": {"constant_": {"val": 0.3}},
        },
        {"layer": "Linear", "weight": {"normal_": {"std": 0.1}}, "bias": "zeros_"},
        {"layer": "BatchNorm2d", "weight": {"constant_": {"val": 1}}, "bias": {"constant_": {"val": 0}}},
    ]
}


# Arguments and tensor shapes for the init functions that need them; every other function must
# work with its defaults on a (4, 6) tensor.
EXAMPLE_ARGS = {
    "constant_": {"val": 0.5},
    "sparse_": {"sparsity": 0.5},
    "relative_position_index_": {"window": [2, 2]},
    "shifted_window_mask_": {"size": [2, 4], "window": [2, 2], "shift": [1, 1]},
    "attention_bias_index_": {"resolution": [2, 3]},
    "log_relative_coords_": {"window": [1, 2]},
    "log_offsets_": {"window": [2, 3]},
}
EXAMPLE_SHAPES = {
    "dirac_": (4, 4, 3),
    "relative_position_index_": (4, 4),
    "shifted_window_mask_": (2, 4, 4),
    "attention_bias_index_": (6, 6),
    "log_relative_coords_": (4, 2),
    "log_offsets_": (3, 5, 2),
}


@pytest.mark.parametrize("name", sorted(INIT_FUNCTIONS))
def test_every_init_function_initialises_a_weight(name: str) -> None:
    fn_spec = make_spec(init={"rules": [{"name": "weight", "weight": {name: EXAMPLE_ARGS.get(name, {})}}]}).init
    shape = EXAMPLE_SHAPES.get(name, (4, 6))
    module = nn.Module()
    module.weight = nn.Parameter(torch.full(shape, 7.0))
    holder = nn.Sequential()
    holder.add_module("weight", module)  # so the rule's name pattern matches
    init_model(holder, fn_spec)
    assert torch.isfinite(module.weight).all() and not (module.weight == 7.0).all(), name


def test_seed_003_init_rules_match_nn_init_by_hand() -> None:
    ours, ref = Small(), Small()
    with torch.no_grad():
        ours.bn.weight.fill_(5)
    torch.manual_seed(0)
    with logged() as log:
        init_model(ours, InitSpec.model_validate(SEED_003_INIT))
    torch.manual_seed(0)
    nn.init.kaiming_normal_(ref.conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.constant_(ref.conv.bias, 0.3)
    nn.init.normal_(ref.fc.weight, std=0.1)
    nn.init.zeros_(ref.fc.bias)
    nn.init.ones_(ref.bn.weight)
    nn.init.zeros_(ref.bn.bias)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[k], v, msg=k)
    assert (
        "init rules[0] Conv2d: weight kaiming_normal_(mode='fan_out', nonlinearity='relu') on 1 tensors (conv.weight)"
        in log[0]
    )


def test_init_by_name_pattern_later_rules_win() -> None:
    model = Small()
    spec = InitSpec.model_validate(
        {
            "rules": [
                {"layer": ["Conv2d", "Linear"], "bias": "ones_"},
                {"name": "fc*", "bias": {"constant_": {"val": 2.0}}},
            ]
        }
    )
    init_model(model, spec)
    assert model.conv.bias.tolist() == [1.0] * 4 and model.fc.bias.tolist() == [2.0, 2.0]


def test_frozen_parameters_are_reported() -> None:
    model = Small()
    model.conv.requires_grad_(False)
    with logged() as lines:
        init_model(model, None)
    assert lines == ["frozen: 2 tensors, 40 parameters (conv.weight, conv.bias)"]


@pytest.mark.parametrize(
    "rule, path, text",
    [
        (
            {"layer": "Linear", "weight": "kaiming_normal"},
            ("init", "rules", 0, "weight"),
            "did you mean `kaiming_normal_`",
        ),
        (
            {"layer": "Linear", "weight": {"normal_": {"sdt": 1}}},
            ("init", "rules", 0, "weight", "normal_", "sdt"),
            "`std`",
        ),
        ({"layer": "Conv2D", "weight": "zeros_"}, ("init", "rules", 0, "layer"), "did you mean `Conv2d`"),
        ({"name": "fcc", "weight": "zeros_"}, ("init", "rules", 0, "name"), "did you mean `fc`"),
        (
            {"layer": "Linear", "bias": "kaiming_normal_"},
            ("init", "rules", 0, "bias"),
            "cannot initialise `fc.bias` (2,)",
        ),
    ],
)
def test_init_errors(rule: dict, path: tuple, text: str) -> None:
    with pytest.raises(SpecError) as err:
        spec = make_spec(init={"rules": [rule]})  # names and arguments: found when the spec is loaded
        init_model(Small(), spec.init)  # which modules a rule selects: found once the model exists
    assert err.value.path == path
    assert text in str(err.value)
