"""Item assignment and tensors made from sizes (importer/assign.py): each module written by hand,
imported, compiled back, loaded strictly and compared with the module (issue 20: torchvision's
Swin builds its shifted-window mask so; MViTv2 adds its position bias into a slice)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netspec.errors import SpecError
from netspec.importer.api import spec_from_module

from .test_concrete import _round_trip


class SliceBias(nn.Module):
    """MViTv2's form: a slice of a computed tensor given a new value that depends on the input."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.bias = nn.Parameter(torch.randn(4, 1))

    def forward(self, x):
        attn = self.fc(x)  # (B, 5, 6)
        attn[:, 1:, 2:] = attn[:, 1:, 2:] + self.bias
        return attn.softmax(-1)


class WindowMask(nn.Module):
    """torchvision Swin's form: a mask made from sizes, its regions numbered by item assignment."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        _, h, w, _ = x.shape
        mask = x.new_zeros((h, w))
        count = 0
        for rows in ((0, -2), (-2, None)):
            for cols in ((0, -1), (-1, None)):
                mask[rows[0] : rows[1], cols[0] : cols[1]] = count
                count += 1
        mask = mask.masked_fill(mask != 0, -100.0)
        return self.proj(x) + mask.unsqueeze(-1)


class ZeroedThird(nn.Module):
    """torchvision Swin v2's form: a copy of a parameter with a slice zeroed in place."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(4, 12)

    def forward(self, x):
        bias = self.qkv.bias.clone()
        bias[4:8].zero_()
        return torch.nn.functional.linear(x, self.qkv.weight, bias)


class Positions(nn.Module):
    """A tensor made from the sizes of one sample (not the batch): a constant at the declared size."""

    def forward(self, x):
        return x + torch.ones(x.shape[1], x.shape[2])


def test_item_assignment_of_an_input_dependent_value_is_a_put_node() -> None:
    text = _round_trip(SliceBias(), (5, 6))
    assert "put: '[:, 1:, 2:]'" in text


def test_a_mask_made_from_sizes_is_a_buffer_numbered_by_put_nodes() -> None:
    text = _round_trip(WindowMask(), (4, 3, 4))
    assert "{Buffer: {shape: [4, 3], persistent: false}}" in text
    assert "put: {at: '[-2:, -1:]', value: 3.0}" in text


def test_a_fill_of_a_slice_of_a_copy_is_a_put_and_the_copy_the_tensor_itself() -> None:
    text = _round_trip(ZeroedThird(), (4,))
    assert "put: {at: '[4:8]', value: 0.0}" in text and "clone" not in text


def test_a_tensor_made_from_the_sizes_of_a_sample_is_a_buffer() -> None:
    text = _round_trip(Positions(), (2, 3))
    assert "{Buffer: {shape: [2, 3], init: ones_, persistent: false}}" in text


class BatchZeros(nn.Module):
    def forward(self, x):
        return x + torch.zeros(x.shape[0], 4)


def test_zeros_of_the_batch_size_are_one_samples_buffer_expanded_to_the_batch() -> None:
    text = _round_trip(BatchZeros(), (4,))
    assert "expand_batch" in text


class BatchMask(nn.Module):
    def forward(self, x):
        return x + x.new_zeros(x.shape[0], 4)


class SampleAssign(nn.Module):
    def forward(self, x):
        y = x * 2
        y[0] = 1.0
        return y


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (BatchMask(), "`Tensor.new_zeros` of a size that follows the batch"),
        (SampleAssign(), "item assignment into the batch dim has no spec op"),
    ],
)
def test_what_would_depend_on_the_batch_is_refused_in_one_line(model: nn.Module, reason: str) -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(model, {"x": (4,)})
    assert reason in str(e.value) and "\n" not in str(e.value)
