"""The ops of ops_weights.py (conv2d, batch_norm with their weights as inputs) against F.conv2d and
F.batch_norm on the same tensors; their one-line refusals (issue 20: timm's weight-standardised
and same-padded convolutions, its blur pool)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError


def _model(nodes: str, inputs: str = "{x: [4, 9, 9]}") -> torch.nn.Module:
    return netspec.build_model(netspec.load_spec(text=f"name: t\ninputs: {inputs}\nnodes:\n{nodes}")).eval()


def test_conv2d_convolves_by_the_kernel_a_parameter_gives() -> None:
    model = _model(
        "  - w: {Parameter: {shape: [6, 2, 3, 3]}}\n"
        "  - b: {Parameter: {shape: [6]}}\n"
        "  - out: {conv2d: {stride: 2, padding: [1, 0], dilation: 1, groups: 2}, from: [x, w, b]}\n"
    )
    x = torch.randn(3, 4, 9, 9)
    want = F.conv2d(x, model.w, model.b, stride=2, padding=(1, 0), groups=2)
    assert_close(model(x), want)
    assert set(model.state_dict()) == {"w", "b"}
    x = torch.randn(2, 4, 12, 7)  # any size: nothing in it is fixed at the compiled one
    assert_close(model(x), F.conv2d(x, model.w, model.b, stride=2, padding=(1, 0), groups=2))


def test_conv2d_with_a_buffer_filter_blurs_each_channel() -> None:
    model = _model(
        f"  - filt: {{Buffer: {{value: {[0.25, 0.5, 0.25] * 4}, shape: [4, 1, 1, 3], persistent: false}}}}\n"
        "  - out: {conv2d: {padding: same, groups: 4}, from: [x, filt]}\n"
    )
    x = torch.randn(2, 4, 9, 9)
    filt = torch.tensor([0.25, 0.5, 0.25]).repeat(4).view(4, 1, 1, 3)
    assert_close(model(x), F.conv2d(x, filt, padding="same", groups=4))
    assert list(model.state_dict()) == []  # a buffer outside the state_dict, as timm's BlurPool2d's


def test_batch_norm_by_its_own_statistics_standardises_a_weight() -> None:
    """timm's StdConv2d: each filter to mean 0 and variance 1 over its values."""
    model = _model(
        "  - w: {Parameter: {shape: [6, 4, 3, 3]}}\n"
        "  - gain: {Parameter: {shape: [6], init: ones_}}\n"
        "  - rows_whole: {reshape: [1, 6, 36], from: w}\n"  # reshape keeps dim 0: (1, 1, 6, 36)
        "  - rows: {squeeze: 0}\n"  # (1, 6, 36): w.reshape(1, 6, -1)
        "  - standard: {batch_norm: {use_input_stats: true, eps: 1.0e-6}, from: [rows, gain]}\n"
        "  - kernel_whole: {reshape: [6, 4, 3, 3]}\n"
        "  - kernel: {squeeze: 0}\n"
        "  - out: {conv2d: {padding: 1}, from: [x, kernel]}\n"
    )
    with torch.no_grad():
        model.gain.uniform_(0.5, 2.0)
    rows = model.w.reshape(1, 6, 36)
    standard = F.batch_norm(rows, None, None, weight=model.gain, training=True, momentum=0.0, eps=1e-6)
    assert_close(standard.mean(-1), torch.zeros(1, 6), atol=1e-6, rtol=0)  # the reference does standardise
    x = torch.randn(2, 4, 9, 9)
    assert_close(model(x), F.conv2d(x, standard.reshape(6, 4, 3, 3), padding=1))


def test_batch_norm_by_running_statistics_reads_them_and_leaves_them() -> None:
    model = _model(
        "  - mean: {Buffer: {value: [0.5, -1.0, 2.0, 0.0]}}\n"
        "  - var: {Buffer: {value: [1.0, 4.0, 0.25, 2.0]}}\n"
        "  - weight: {Parameter: {shape: [4]}}\n"
        "  - bias: {Parameter: {shape: [4]}}\n"
        "  - out: {batch_norm: {eps: 0.001}, from: [x, mean, var, weight, bias]}\n"
    )
    x = torch.randn(3, 4, 9, 9)
    mean, var = model.mean.clone(), model.var.clone()
    want = F.batch_norm(x, mean, var, model.weight, model.bias, training=False, eps=1e-3)
    for mode in (model.eval(), model.train()):  # the same in both modes: running statistics are inputs
        assert_close(mode(x), want)
    assert torch.equal(model.mean, mean) and torch.equal(model.var, var)


@pytest.mark.parametrize(
    "nodes,message",
    [
        (
            "  - w: {Parameter: {shape: [6, 3, 3, 3]}}\n  - out: {conv2d: {}, from: [x, w]}\n",
            "the input has 4 channels and the kernel (6, 3, 3, 3) takes 3 per group with groups=1",
        ),
        (
            "  - w: {Parameter: {shape: [6, 36]}}\n  - out: {conv2d: {}, from: [x, w]}\n",
            "`conv2d` takes a (B, C, H, W) input and an (out, C / groups, kh, kw) kernel",
        ),
        ("  - out: {batch_norm: {}}\n", "`batch_norm` without use_input_stats takes [x, running_mean, running_var]"),
    ],
)
def test_mistakes_are_one_line_at_the_node(nodes: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        _model(nodes)
    assert message in str(e.value) and "\n" not in str(e.value)
