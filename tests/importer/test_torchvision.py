"""Every torchvision classification model, imported and compiled back: the same state_dict keys
(strict loading) and the same outputs in eval mode. The models netspec cannot express are
listed with the one-line reason, and asserted to fail with exactly that line, so a fix shows.

A few small models run in the default suite, at a small input size; every model runs at its
own size with `pytest -m slow`.
"""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module
from netspec.importer.load import input_shapes

MODELS = tvm.list_models(module=tvm)
# One model of each family in the default run, at a small input (vit needs its 224; alexnet 63 or more).
FAST = {
    "resnet18": 32,
    "mobilenet_v2": 32,
    "mobilenet_v3_small": 32,
    "mnasnet0_5": 32,
    "shufflenet_v2_x0_5": 32,
    "squeezenet1_1": 32,
    "densenet121": 32,
    "efficientnet_b0": 32,
    "convnext_tiny": 32,
    "alexnet": 64,
    "vit_b_32": 224,
    "regnet_x_400mf": 32,
    "googlenet": 32,
    "swin_t": 224,
}

_AUX = (
    "`{aux}` holds weights but forward (in eval mode) never calls it: a spec cannot hold a module its forward "
    "does not use"
)
_SWIN = "features.1.0.attn: forward reads `{buffer}`, a buffer: a spec holds only parameters of its own nodes"

# model -> why netspec cannot express it (the line `netspec import` prints after the model's name)
LIMITATIONS = {
    "googlenet": _AUX.format(aux="aux1"),  # --args aux_logits=false imports it (below)
    "inception_v3": _AUX.format(aux="AuxLogits"),  # likewise
    **{name: _SWIN.format(buffer="relative_position_index") for name in ("swin_t", "swin_s", "swin_b")},
    **{name: _SWIN.format(buffer="relative_coords_table") for name in ("swin_v2_t", "swin_v2_s", "swin_v2_b")},
    "maxvit_t": "blocks.0.layers.0.layers.window_attention.attn_layer.1: `torch.einsum` has no spec op or layer that "
    "does the same; see `netspec layers ops` for the ops",  # and then its relative_position_index buffer
}


def _param(name: str) -> object:
    return name if name in FAST else pytest.param(name, marks=pytest.mark.slow)


def _round_trip(model: torch.nn.Module, inputs: dict[str, tuple[int, ...]], label: str) -> None:
    imported = spec_from_module(model, inputs, name="m", check=False, label=label)
    module = compile_spec(load_spec(text=imported.text)).module
    module.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *inputs["x"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(x), model.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [_param(n) for n in MODELS])
def test_torchvision_model_round_trips(name: str) -> None:
    torch.manual_seed(0)
    model = tvm.get_model(name).eval()
    builder = tvm.get_model_builder(name)
    inputs = {"x": (3, FAST[name], FAST[name])} if name in FAST else input_shapes(model, None, builder)
    label = f"torchvision.models:{name}"
    if name in LIMITATIONS:
        with pytest.raises(SpecError) as e:
            _round_trip(model, inputs, label)
        assert str(e.value) == f"{label}: {LIMITATIONS[name]}"
    else:
        _round_trip(model, inputs, label)


SEGMENTATION = tvm.list_models(module=tvm.segmentation)
# model -> the line after its name
SEG_LIMITATIONS = {
    "lraspp_mobilenet_v3_large": "backbone: forward calls its children by number (`0`, ...) and returns 2 values: "
    "a module that does is written as a group (its children keep their keys by position), which takes one tensor and gives one",
}


@pytest.mark.parametrize(
    "name", [n if n == "fcn_resnet50" else pytest.param(n, marks=pytest.mark.slow) for n in SEGMENTATION]
)
def test_torchvision_segmentation_model_round_trips(name: str) -> None:
    """At 64x64 (their sizes are computed from the input's, and fixed at it); their `aux` head
    runs in eval mode too, so its weights are kept."""
    torch.manual_seed(0)
    model = tvm.get_model(name, weights=None, weights_backbone=None).eval()
    label = f"torchvision.models.segmentation:{name}"
    if name in SEG_LIMITATIONS:
        with pytest.raises(SpecError) as e:
            spec_from_module(model, {"x": (3, 64, 64)}, name="m", label=label)
        assert str(e.value) == f"{label}: {SEG_LIMITATIONS[name]}"
    else:
        imported = spec_from_module(model, {"x": (3, 64, 64)}, name="m", label=label)
        assert imported.checked is not None and imported.checked.tensors == len(model.state_dict())


@pytest.mark.parametrize("name", [pytest.param("googlenet"), pytest.param("inception_v3", marks=pytest.mark.slow)])
def test_without_aux_heads_googlenet_and_inception_round_trip(name: str) -> None:
    model = tvm.get_model(name, aux_logits=False, init_weights=False).eval()
    _round_trip(model, {"x": (3, 64, 64) if name == "googlenet" else (3, 299, 299)}, name)
