"""Every torchvision classification model, imported and compiled back: the same state_dict keys
(strict loading) and the same outputs in eval mode. The models netspec cannot express are
listed with the one-line reason, and asserted to fail with exactly that line, so a fix shows.

A few small models run in the default suite, at a small input size; every model runs at its
own size with `pytest -m slow`.
"""

from __future__ import annotations

import copy
import inspect

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
    "swin_t": 64,  # windows padded, shifted at the first stage only
}

# model -> why netspec cannot express it (the line `netspec import` prints after the model's name)
LIMITATIONS: dict[str, str] = {}


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
SEG_LIMITATIONS: dict[str, str] = {}


@pytest.mark.parametrize(
    "name", [n if n == "fcn_resnet50" else pytest.param(n, marks=pytest.mark.slow) for n in SEGMENTATION]
)
def test_torchvision_segmentation_model_round_trips(name: str) -> None:
    """At 64x64 (their sizes are computed from the input's, and fixed at it); their `aux` head
    runs in eval mode too, so its weights are kept. The input is named as forward names it
    (LRASPP's is `input`)."""
    torch.manual_seed(0)
    model = tvm.get_model(name, weights=None, weights_backbone=None).eval()
    label = f"torchvision.models.segmentation:{name}"
    inputs = {next(iter(inspect.signature(model.forward).parameters)): (3, 64, 64)}
    if name in SEG_LIMITATIONS:
        with pytest.raises(SpecError) as e:
            spec_from_module(model, inputs, name="m", label=label)
        assert str(e.value) == f"{label}: {SEG_LIMITATIONS[name]}"
    else:
        imported = spec_from_module(model, inputs, name="m", label=label)
        assert imported.checked is not None and imported.checked.tensors == len(model.state_dict())


@pytest.mark.parametrize("name", [pytest.param("googlenet"), pytest.param("inception_v3", marks=pytest.mark.slow)])
def test_without_aux_heads_googlenet_and_inception_round_trip(name: str) -> None:
    model = tvm.get_model(name, aux_logits=False, init_weights=False).eval()
    _round_trip(model, {"x": (3, 64, 64) if name == "googlenet" else (3, 299, 299)}, name)


@pytest.mark.parametrize(
    ("name", "size"), [pytest.param("googlenet", 32), pytest.param("inception_v3", 299, marks=pytest.mark.slow)]
)
def test_aux_heads_are_training_only_and_equal_torchvisions_in_training(name: str, size: int) -> None:
    """GoogLeNet's aux1/aux2 and Inception v3's AuxLogits run only when training (`if self.training`):
    the spec computes them only then, and returns them after the main output, as torchvision's
    GoogLeNetOutputs / InceptionOutputs; with the same seed the dropout draws are the same."""
    torch.manual_seed(0)
    model = tvm.get_model(name, init_weights=False).eval()
    imported = spec_from_module(model, {"x": (3, size, size)}, name="m", check=True, label=name)
    assert imported.checked is not None and imported.checked.tensors == len(model.state_dict())
    aux = ["aux2", "aux1"] if name == "googlenet" else ["AuxLogits"]
    assert all(f"  - {a}: {{InceptionAux: {{}}}}\n    training_only: true" in imported.text for a in aux)
    module = compile_spec(load_spec(text=imported.text)).module
    module.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert isinstance(module.eval()(x), torch.Tensor)  # eval mode: the main output alone
        reference, mine = copy.deepcopy(model).train(), copy.deepcopy(module).train()
        torch.manual_seed(5)
        want = reference(x)
        torch.manual_seed(5)
        got = mine(x)
    assert len(got) == len(want) == 1 + len(aux)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine.state_dict(), reference.state_dict())  # batch norms' running stats too
