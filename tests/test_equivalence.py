"""Compiled specs compute exactly what the seed models compute.

For each seed model, the spec in ``specs/`` is compiled (at a small input size where the
model allows one), the hand-written reference module of ``tests/reference_models.py`` gets
random weights, those weights (parameters and BatchNorm buffers) are copied into the compiled
module in registration order with ``copy_weights_in_order``, and both modules get the same
seeded random input. Outputs must match in eval mode; for U-Net (BatchNorm) also in train mode,
together with every parameter's gradient and the updated running statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import netspec

from reference_models import (
    VAE,
    AlexNet,
    FashionCNN,
    LeNet,
    LogisticRegression,
    MnistCNN,
    MyListDense,
    RegressionNet,
    ResNet50ExtraInput,
    ResNet50ExtraOutput,
    TransformerClassifier,
    TwoInputNet,
    UNet,
    copy_weights_in_order,
)

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
BATCH = 3


def compiled(name: str, input_shapes: dict[str, list[int]] | None = None, **params: Any) -> nn.Module:
    """Compile ``specs/<name>.yaml`` with parameter and input-shape overrides."""
    overrides = [f"inputs.{k}.shape={list(v)}" for k, v in (input_shapes or {}).items()]
    spec = netspec.load_spec(SPECS / f"{name}.yaml", overrides=overrides)
    return netspec.build_model(spec, **params)


def paired(reference: nn.Module, model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Give ``model`` the reference's weights; both in eval mode."""
    copy_weights_in_order(reference, model)
    # the copy really happened: same values, key by key in order
    for (_, a), (_, b) in zip(reference.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b)
    return reference.eval(), model.eval()


def random_inputs(shapes: list[tuple[int, ...]], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((BATCH, *s), generator=g) for s in shapes]


def assert_same_outputs(reference: nn.Module, model: nn.Module, inputs: list[torch.Tensor]) -> None:
    with torch.no_grad():
        want = reference(*inputs)
        got = model(*inputs)
    assert type(got) is type(want)
    assert_close(got, want)


# (id, reference factory, spec name, spec params, input overrides, per-sample input shapes)
CASES: list[tuple[str, Callable[[], nn.Module], str, dict, dict, list[tuple[int, ...]]]] = [
    ("unet", lambda: UNet(3, 2, bilinear=False), "unet", {}, {"image": [3, 68, 76]}, [(3, 68, 76)]),
    (
        "unet_bilinear",
        lambda: UNet(3, 2, bilinear=True),
        "unet",
        {"bilinear": True},
        {"image": [3, 68, 76]},
        [(3, 68, 76)],
    ),
    (
        "unet_1_1",
        lambda: UNet(1, 1),
        "unet",
        {"n_channels": 1, "n_classes": 1},
        {"image": ["$n_channels", 33, 47]},
        [(1, 33, 47)],
    ),
    ("alexnet_fashion", AlexNet, "alexnet_fashion", {}, {}, [(1, 224, 224)]),
    ("lenet", LeNet, "lenet", {}, {}, [(1, 32, 32)]),
    ("fashion_cnn", FashionCNN, "fashion_cnn", {}, {}, [(1, 28, 28)]),
    ("mnist_cnn", MnistCNN, "mnist_cnn", {}, {}, [(1, 28, 28)]),
    ("resnet50_extra_input", ResNet50ExtraInput, "resnet50_extra_input", {}, {"image": [3, 64, 64]}, [(3, 64, 64), ()]),
    ("resnet50_extra_output", ResNet50ExtraOutput, "resnet50_extra_output", {}, {"image": [3, 64, 64]}, [(3, 64, 64)]),
    ("two_input_net", TwoInputNet, "two_input_net", {}, {}, [(1, 10, 18), (8,)]),
    (
        "two_input_net_k3",
        lambda: TwoInputNet(dcgr_features=3),
        "two_input_net",
        {"dcgr_features": 3},
        {},
        [(1, 10, 18), (3,)],
    ),
    ("logistic_regression", LogisticRegression, "logistic_regression", {}, {}, [(2,)]),
    ("regression", RegressionNet, "regression", {}, {}, [(1,)]),
    ("regression_002", lambda: RegressionNet(1, 10, 1), "regression", {"n_hidden": 10}, {}, [(1,)]),
]


@pytest.mark.parametrize(
    "ref_factory,spec,params,input_shapes,shapes", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_eval_outputs_match_the_reference(ref_factory, spec, params, input_shapes, shapes) -> None:
    torch.manual_seed(0)
    reference, model = paired(ref_factory(), compiled(spec, input_shapes, **params))
    assert_same_outputs(reference, model, random_inputs(shapes))


def test_resnet50_extra_output_returns_probabilities_and_features() -> None:
    torch.manual_seed(1)
    reference, model = paired(ResNet50ExtraOutput(), compiled("resnet50_extra_output", {"image": [3, 64, 64]}))
    (x,) = random_inputs([(3, 64, 64)], seed=1)
    with torch.no_grad():
        probs, features = model(x)
        assert_close(features, reference.net(x))
    assert probs.shape == (BATCH, 10) and features.shape == (BATCH, 1000)
    assert_close(probs.sum(dim=1), torch.ones(BATCH))


def test_compiled_model_runs_at_other_sizes_than_compiled() -> None:
    """U-Net compiled at 572x572 (the spec's size) runs at an odd size like the reference."""
    torch.manual_seed(2)
    reference, model = paired(UNet(3, 2), netspec.build_model(SPECS / "unet.yaml"))
    assert_same_outputs(reference, model, random_inputs([(3, 37, 45)], seed=2))


@pytest.mark.parametrize("bilinear", [False, True], ids=["transposed", "bilinear"])
def test_unet_train_mode_outputs_gradients_and_batchnorm_statistics(bilinear: bool) -> None:
    torch.manual_seed(3)
    reference = UNet(3, 2, bilinear=bilinear)
    model = compiled("unet", {"image": [3, 36, 44]}, bilinear=bilinear)
    copy_weights_in_order(reference, model)
    reference.train()
    model.train()
    x, target = random_inputs([(3, 36, 44), (2, 36, 44)], seed=3)
    outs = []
    for m in (reference, model):
        m.zero_grad(set_to_none=True)
        out = m(x)
        loss = nn.functional.mse_loss(out, target)
        loss.backward()
        outs.append((out.detach(), loss.detach()))
    assert_close(outs[1], outs[0])
    ref_params = list(reference.named_parameters())
    got_params = list(model.named_parameters())
    assert len(ref_params) == len(got_params)
    for (rn, rp), (gn, gp) in zip(ref_params, got_params):
        assert rp.grad is not None and gp.grad is not None, (rn, gn)
        assert_close(gp.grad, rp.grad, rtol=1e-4, atol=1e-6, msg=lambda m, rn=rn, gn=gn: f"{gn} vs {rn}: {m}")
    for (rn, rb), (gn, gb) in zip(reference.named_buffers(), model.named_buffers()):
        assert_close(gb, rb, msg=lambda m, rn=rn, gn=gn: f"{gn} vs {rn}: {m}")


def test_state_dict_keys_follow_the_spec_names() -> None:
    """Weights are addressed by spec node names (``fc1.weight``), as the seed's attributes."""
    keys = list(compiled("lenet").state_dict())
    assert keys == [f"{n}.{p}" for n in ("conv1", "conv2", "fc1", "fc2", "fc3") for p in ("weight", "bias")]
    keys = list(compiled("two_input_net").state_dict())
    assert keys == [f"{n}.{p}" for n in ("conv1", "conv2", "fc1", "fc2", "fc3") for p in ("weight", "bias")]
    keys = list(compiled("resnet50_extra_input", {"image": [3, 64, 64]}).state_dict())
    assert keys[0] == "net.conv1.weight" and keys[-2:] == ["fc_add.weight", "fc_add.bias"]


# ---- models nobody here wrote (issue 9) ------------------------------------------------------


def test_vae_matches_pytorch_examples_with_the_same_noise() -> None:
    """The reparameterised sample draws from torch's global RNG: the same seed, the same z."""
    torch.manual_seed(4)
    reference, model = paired(VAE(), compiled("vae"))
    (x,) = random_inputs([(1, 28, 28)], seed=4)
    with torch.no_grad():
        torch.manual_seed(5)
        want = reference(x)
        torch.manual_seed(5)
        recon, mu, logvar, recon_image = model(x)
    assert_close((recon, mu, logvar), want)
    assert_close(recon_image, want[0].view(BATCH, 1, 28, 28))
    with torch.no_grad():
        torch.manual_seed(6)
        other = model(x)[0]
    assert not torch.equal(other, recon), "another seed, another sample"


def test_transformer_classifier_with_a_padding_mask_matches_nn_transformer_encoder() -> None:
    torch.manual_seed(7)
    reference, model = paired(TransformerClassifier(), compiled("transformer_classifier"))
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(1, 1000, (BATCH, 32), generator=g)
    tokens[0, 20:] = 0  # padded sequences of different lengths
    tokens[1, 5:] = 0
    with torch.no_grad():
        assert_close(model(tokens), reference(tokens))
    assert "src_key_padding_mask = pad" in model.encoder.code


def test_parameter_list_layer_matches_seed_003() -> None:
    torch.manual_seed(8)
    reference, model = paired(MyListDense(), compiled("list_dense"))
    assert list(model.state_dict()) == ["w0", "w1", "w2", "w3"]
    assert_same_outputs(reference, model, random_inputs([(4,)], seed=8))


def test_resnet18_spec_loads_torchvisions_weights_strictly() -> None:
    """`repeat` and groups name children 0, 1, ... as nn.Sequential does, so torchvision's own
    state_dict loads into the spec with strict loading (never downloaded: weights=None)."""
    import torchvision

    torch.manual_seed(9)
    reference = torchvision.models.resnet18(weights=None).eval()
    model = compiled("resnet18", {"image": [3, 64, 64]}).eval()
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict(), strict=True)
    assert_same_outputs(reference, model, random_inputs([(3, 64, 64)], seed=9))
