"""The importer reads F.conv2d and F.batch_norm on a module's own tensors (issue 20: timm's
weight-standardised convolutions, its same-padded convolution and blur pool) as the ops
conv2d and batch_norm, with the tensors as Parameter and Buffer nodes under their keys; each
model is compiled from its imported spec, loaded strictly and compared with itself at two sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module


class StandardisedConv(nn.Conv2d):
    """Weight standardisation, written as timm's StdConv2d and ScaledStdConv2d write it."""

    def __init__(self, cin: int, cout: int, gain: bool) -> None:
        super().__init__(cin, cout, 3, stride=2, padding=1)
        self.gain = nn.Parameter(torch.rand(cout, 1, 1, 1) + 0.5) if gain else None

    def forward(self, x):
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),  # (1, out, in * 3 * 3)
            None,
            None,
            weight=None if self.gain is None else (self.gain * 0.5).view(-1),
            training=True,
            momentum=0.0,
            eps=1e-6,
        ).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Blur(nn.Module):
    """A fixed filter per channel (a buffer outside the state_dict), reflect-padded, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0]) / 4
        self.register_buffer("filt", (taps[:, None] * taps[None, :]).repeat(channels, 1, 1, 1), persistent=False)
        self.channels = channels

    def forward(self, x):
        return F.conv2d(F.pad(x, [1, 1, 1, 1], mode="reflect"), self.filt, stride=2, groups=self.channels)


class SamePadded(nn.Conv2d):
    """TensorFlow's SAME padding, computed from the input size (timm's Conv2dSame)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        ph = max((math.ceil(ih / 2) - 1) * 2 + kh - ih, 0)
        pw = max((math.ceil(iw / 2) - 1) * 2 + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, 2, 0, 1, 1)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.std = StandardisedConv(3, 8, gain=False)
        self.scaled = StandardisedConv(8, 8, gain=True)
        self.blur = Blur(8)
        self.same = SamePadded(8, 4, 5)

    def forward(self, x):
        return self.same(self.blur(torch.relu(self.scaled(self.std(x)))))


def _compare(text: str, model: nn.Module, shape: tuple[int, ...]) -> None:
    size = "x".join(map(str, shape))
    module = compile_spec(load_spec(text=text, overrides=[f"inputs.x.shape=[{', '.join(map(str, shape))}]"])).module
    module.load_state_dict(model.state_dict(), strict=True)  # the same keys and shapes
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(x), model.eval()(x), msg=size)


def test_weight_standardisation_blur_and_same_padding_round_trip() -> None:
    torch.manual_seed(0)
    model = Net().eval()
    text = spec_from_module(model, {"x": (3, 32, 32)}, name="m").text
    assert "- batch_norm: {use_input_stats: true, eps: 1.0e-06}" in text
    assert "- conv2d: {stride: 2, padding: 1}\n        from: [x, reshape_as, bias]" in text  # its keys: weight, bias
    assert "- conv2d: {stride: 2, groups: 8}\n        from: [pad, filt]" in text
    assert "filt: {Buffer: {value: [0.0625, 0.125, 0.0625, 0.125, 0.25" in text and "persistent: false" in text
    _compare(text, model, (3, 32, 32))
    assert "pinned: {shape: [3, 32, 32]" in text  # SAME padding: computed from the size, fixed at it


def test_without_size_dependent_padding_the_spec_is_right_at_other_sizes() -> None:
    torch.manual_seed(0)
    model = _Two().eval()
    text = spec_from_module(model, {"x": (3, 16, 16)}, name="m").text
    assert "pinned" not in text
    for shape in ((3, 16, 16), (3, 21, 10)):
        _compare(text, model, shape)


class _Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.std = StandardisedConv(3, 8, gain=True)
        self.blur = Blur(8)

    def forward(self, x):
        return self.blur(self.std(x))


class BatchStatistics(nn.Module):
    def forward(self, x):
        return F.batch_norm(x, None, None, training=True)


def test_batch_norm_by_a_batchs_statistics_is_refused_in_one_line() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(_Wrap(BatchStatistics()), {"x": (3, 8, 8)})
    assert str(e.value).endswith(
        "inner: `batch_norm` by the statistics of a batch has no spec op (a spec writes a BatchNorm layer)"
    )


class _Wrap(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def _timm_layer(name: str) -> nn.Module:
    layers = pytest.importorskip("timm.layers")
    return {
        "StdConv2d": lambda: layers.StdConv2d(3, 8, 3, stride=2),
        "ScaledStdConv2d": lambda: layers.ScaledStdConv2d(3, 8, 3, stride=2),
        "Conv2dSame": lambda: layers.Conv2dSame(3, 8, 4, stride=1),  # 3 + 3 padded: (1, 2) on each side
        "Conv2dSame-odd": lambda: layers.Conv2dSame(3, 8, 5, stride=1, dilation=2),  # a Conv2d with padding 4
        "BlurPool2d": lambda: layers.BlurPool2d(3, 3, 2),
        "BatchNormAct2d-GELU": lambda: layers.BatchNormAct2d(3, act_layer=layers.activations.GELU),
    }[name]()


@pytest.mark.parametrize(
    "name", ["StdConv2d", "ScaledStdConv2d", "Conv2dSame", "Conv2dSame-odd", "BlurPool2d", "BatchNormAct2d-GELU"]
)
def test_timms_layers_round_trip_at_two_sizes(name: str) -> None:
    torch.manual_seed(0)
    model = _Wrap(_timm_layer(name)).eval()
    text = spec_from_module(model, {"x": (3, 16, 16)}, name="m").text
    assert "pinned" not in text
    for shape in ((3, 16, 16), (3, 13, 20)):
        _compare(text, model, shape)


def test_timms_conv2d_same_at_stride_2_pads_at_the_traced_size_and_is_pinned() -> None:
    layers = pytest.importorskip("timm.layers")
    torch.manual_seed(0)
    model = _Wrap(layers.Conv2dSame(3, 8, 5, stride=2)).eval()
    text = spec_from_module(model, {"x": (3, 16, 16)}, name="m").text
    assert "- inner_pad: {pad: [1, 2, 1, 2]}\n  - inner: {Conv2d: {out_channels: 8, kernel_size: 5, stride: 2}}" in text
    by = "inner: timm.layers.conv2d_same.Conv2dSame: its SAME padding at stride (2, 2) follows the input size"
    assert f"pinned: {{shape: [3, 16, 16], by: '{by}'}}" in text
    _compare(text, model, (3, 16, 16))
    model = _Wrap(layers.Conv2dSame(3, 8, 5, stride=2)).eval()
    text = spec_from_module(model, {"x": (3, 15, 15)}, name="m").text  # 2 on each side: the Conv2d's own
    assert "- inner: {Conv2d: {out_channels: 8, kernel_size: 5, stride: 2, padding: 2}}" in text
    _compare(text, model, (3, 15, 15))
