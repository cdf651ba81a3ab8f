"""Checks of the hand-written seed reference modules in ``tests/reference_models.py``.

Parameter counts are the figures in ``/work/shared/notes/reference-figures.md`` (and, for the
models that table does not list, the counts computed from the modules, written out here).
Forward passes use the documented input sizes, except U-Net, which is run at small sizes
(64x64 and the odd 71x69, which exercises the padding in ``Up``) to keep the file fast.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torchvision

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
    SmallCNN,
    TransformerClassifier,
    TwoInputNet,
    UNet,
    copy_weights_in_order,
    count_parameters,
)

# --------------------------------------------------------------------------------------------
# parameter counts
# --------------------------------------------------------------------------------------------

PARAM_COUNTS: list[tuple[str, Callable[[], nn.Module], int]] = [
    ("unet_3_2", lambda: UNet(3, 2, bilinear=False), 31_037_698),
    ("unet_3_2_bilinear", lambda: UNet(3, 2, bilinear=True), 17_263_042),
    ("unet_1_1", lambda: UNet(1, 1, bilinear=False), 31_036_481),
    ("alexnet_fashion", AlexNet, 46_764_746),
    ("lenet", LeNet, 61_706),
    ("fashion_cnn", FashionCNN, 582_026),
    ("mnist_cnn", MnistCNN, 3_274_634),
    ("resnet50_extra_input", ResNet50ExtraInput, 25_567_052),
    ("resnet50_extra_output", ResNet50ExtraOutput, 25_567_042),
    # 10 + 10 + (21 + 8) * 1024 + 1024 + 1024 * 256 + 256 + 256 * 2 + 2
    ("two_input_net", TwoInputNet, 293_654),
    ("two_input_net_k1", lambda: TwoInputNet(dcgr_features=1), 286_486),
    ("logistic_regression", LogisticRegression, 3),
    ("regression_net_003", RegressionNet, 61),
    ("regression_net_002", lambda: RegressionNet(1, 10, 1), 31),
    ("small_cnn_002", SmallCNN, 28_938),
    # issue 9: 784*400+400 + 2*(400*20+20) + 20*400+400 + 400*784+784
    ("vae", VAE, 652_824),
    # pos 32*64 + embedding 1000*64 + 2 layers x (attention 4*64*64+4*64, ff 2*64*128+128+64, 2 norms 4*64) + fc 64*4+4
    ("transformer_classifier", TransformerClassifier, 133_252),
    ("my_list_dense", MyListDense, 3 * 16 + 4),
]


@pytest.mark.parametrize(
    ("factory", "expected"),
    [(f, n) for _, f, n in PARAM_COUNTS],
    ids=[name for name, _, _ in PARAM_COUNTS],
)
def test_parameter_count(factory: Callable[[], nn.Module], expected: int) -> None:
    assert count_parameters(factory()) == expected


def test_torchvision_resnet50_count_matches_table() -> None:
    """The backbone is the plain torchvision resnet50 (25,557,032 in the figures table)."""
    assert count_parameters(torchvision.models.resnet50(weights=None)) == 25_557_032


# --------------------------------------------------------------------------------------------
# forward shapes (batch of 2, eval mode, no grad)
# --------------------------------------------------------------------------------------------

B = 2

SINGLE_INPUT_SHAPES: list[tuple[str, Callable[[], nn.Module], tuple[int, ...], tuple[int, ...]]] = [
    ("alexnet_fashion", AlexNet, (B, 1, 224, 224), (B, 10)),
    ("lenet", LeNet, (B, 1, 32, 32), (B, 10)),
    ("fashion_cnn", FashionCNN, (B, 1, 28, 28), (B, 10)),
    ("mnist_cnn", MnistCNN, (B, 1, 28, 28), (B, 10)),
    ("logistic_regression", LogisticRegression, (B, 2), (B, 1)),
    ("regression_net", RegressionNet, (B, 1), (B, 1)),
    ("small_cnn_002", SmallCNN, (B, 1, 28, 28), (B, 10)),
    ("unet_3_2_64", lambda: UNet(3, 2, False), (B, 3, 64, 64), (B, 2, 64, 64)),
    ("unet_3_2_odd", lambda: UNet(3, 2, False), (1, 3, 71, 69), (1, 2, 71, 69)),
    ("unet_3_2_bilinear_64", lambda: UNet(3, 2, True), (B, 3, 64, 64), (B, 2, 64, 64)),
    ("unet_3_2_bilinear_odd", lambda: UNet(3, 2, True), (1, 3, 71, 69), (1, 2, 71, 69)),
    ("unet_1_1_odd", lambda: UNet(1, 1, False), (1, 1, 33, 47), (1, 1, 33, 47)),
]


@pytest.mark.parametrize(
    ("factory", "in_shape", "out_shape"),
    [(f, i, o) for _, f, i, o in SINGLE_INPUT_SHAPES],
    ids=[name for name, _, _, _ in SINGLE_INPUT_SHAPES],
)
def test_forward_shape(factory: Callable[[], nn.Module], in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = factory().eval()
    with torch.no_grad():
        y = model(torch.randn(in_shape))
    assert tuple(y.shape) == out_shape
    assert torch.isfinite(y).all()


def test_unet_train_mode_backward_odd_size() -> None:
    """One training step's backward goes through the padded Up path (BatchNorm in train mode)."""
    torch.manual_seed(0)
    model = UNet(1, 1, bilinear=True).train()
    y = model(torch.randn(2, 1, 35, 37))  # (2, 1, 35, 37)
    assert y.shape == (2, 1, 35, 37)
    y.mean().backward()
    assert model.inc.double_conv[0].weight.grad is not None


def test_resnet50_extra_input() -> None:
    torch.manual_seed(0)
    model = ResNet50ExtraInput().eval()
    x = torch.randn(B, 3, 224, 224)
    add = torch.tensor([0.0, 5.0])  # (B,)
    with torch.no_grad():
        y = model(x, add)
        y_other = model(x, add + 100.0)
    assert y.shape == (B, 10)
    torch.testing.assert_close(y.sum(dim=1), torch.ones(B))  # softmax rows
    assert not torch.allclose(y, y_other)  # the extra input is used


def test_resnet50_extra_input_accepts_a_given_backbone() -> None:
    net = torchvision.models.resnet50(weights=None)
    model = ResNet50ExtraInput(net)
    assert model.net is net


def test_resnet50_extra_output() -> None:
    torch.manual_seed(0)
    model = ResNet50ExtraOutput().eval()
    with torch.no_grad():
        x10, x1000 = model(torch.randn(B, 3, 224, 224))
    assert x10.shape == (B, 10)
    assert x1000.shape == (B, 1000)
    torch.testing.assert_close(x10.sum(dim=1), torch.ones(B))
    # x10 is computed from x1000 (eval mode: dropout is the identity)
    with torch.no_grad():
        expected = torch.softmax(model.fc1(torch.relu(x1000)), dim=1)
    torch.testing.assert_close(x10, expected)


def test_two_input_net() -> None:
    torch.manual_seed(0)
    model = TwoInputNet().eval()
    x = torch.randn(B, 1, 10, 18)
    dcgr = torch.randn(B, 8)
    with torch.no_grad():
        y = model(x, dcgr)
        y_other = model(x, dcgr + 10.0)
    assert y.shape == (B, 2)
    assert ((y > 0) & (y < 1)).all()  # sigmoid output
    assert not torch.allclose(y, y_other)  # DCGR_feature is used


def test_two_input_net_trains_with_cross_entropy() -> None:
    """The seed's loss (CrossEntropyLoss on the (B, 2) output, integer labels) now works."""
    torch.manual_seed(0)
    model = TwoInputNet(dcgr_features=3)
    out = model(torch.randn(4, 1, 10, 18), torch.randn(4, 3))  # (4, 2)
    loss = nn.CrossEntropyLoss()(out, torch.tensor([0, 1, 1, 0]))
    loss.backward()
    assert model.fc1.weight.grad is not None
    assert model.fc1.in_features == 24


# --------------------------------------------------------------------------------------------
# copy_weights_in_order
# --------------------------------------------------------------------------------------------


def _lenet_as_sequential() -> nn.Sequential:
    """LeNet written as one Sequential: same parameters, same order, different key names."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


class _ConvBN(nn.Module):
    """Conv + BatchNorm under names that differ from the Sequential version."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 4, 3)
        self.norm_b = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_b(self.conv_a(x))  # (B, 4, H - 2, W - 2)


def test_copy_weights_in_order_different_names_same_outputs() -> None:
    torch.manual_seed(0)
    src = LeNet().eval()
    dst = _lenet_as_sequential().eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(src(x), dst(x))
    copy_weights_in_order(src, dst)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)


def test_copy_weights_in_order_copies_buffers() -> None:
    torch.manual_seed(0)
    src = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    src.train()
    with torch.no_grad():
        for _ in range(3):  # move running stats away from their initial values
            src(torch.randn(2, 3, 8, 8) * 3 + 1)
    src.eval()
    dst = _ConvBN().eval()
    copy_weights_in_order(src, dst)
    bn_src, bn_dst = src[1], dst.norm_b
    assert isinstance(bn_src, nn.BatchNorm2d)
    torch.testing.assert_close(bn_dst.running_mean, bn_src.running_mean)
    torch.testing.assert_close(bn_dst.running_var, bn_src.running_var)
    assert int(bn_dst.num_batches_tracked) == 3
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)
    # a copy, not shared storage
    assert bn_dst.running_mean.data_ptr() != bn_src.running_mean.data_ptr()


def test_copy_weights_in_order_unet_same_outputs() -> None:
    torch.manual_seed(0)
    src, dst = UNet(3, 2, bilinear=True).eval(), UNet(3, 2, bilinear=True).eval()
    copy_weights_in_order(src, dst)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)


def test_copy_weights_in_order_shape_mismatch_names_both_keys() -> None:
    src = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    dst = nn.Sequential()
    dst.add_module("first", nn.Linear(4, 3))
    dst.add_module("second", nn.Linear(3, 5))
    before = dst.first.weight.detach().clone()
    with pytest.raises(ValueError, match=r"'1\.weight'.*'second\.weight'"):
        copy_weights_in_order(src, dst)
    # nothing was copied: the check runs before any copy
    torch.testing.assert_close(dst.first.weight.detach(), before, rtol=0, atol=0)


def test_copy_weights_in_order_length_mismatch() -> None:
    src = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    dst = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"length mismatch.*'1\.weight'"):
        copy_weights_in_order(src, dst)
    with pytest.raises(ValueError, match=r"length mismatch.*dst '1\.weight'"):
        copy_weights_in_order(dst, src)


def test_copy_weights_in_order_dtype_mismatch() -> None:
    src = nn.Linear(2, 2)
    dst = nn.Linear(2, 2).double()
    with pytest.raises(ValueError, match=r"dtype mismatch.*'weight'.*'weight'"):
        copy_weights_in_order(src, dst)
