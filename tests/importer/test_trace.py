"""What torch.fx alone cannot trace and the importer's trace (importer/trace.py, concrete.py)
reads: functions kept whole by ``torch.fx.wrap``, a forward bound per instance, a disabled
autocast block, a ``None`` a child returns, sizes given to torch's factories and to a buffer's
methods. Each module is written by hand, imported, compiled back, loaded strictly and compared."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import _symbolic_trace as st
from torch.fx.proxy import Proxy

from netspec.errors import SpecError
from netspec.importer.api import spec_from_module
from netspec.importer.trace import trace_module

from .test_concrete import _round_trip


def padded_attention(x: torch.Tensor, weight: torch.Tensor, window: int) -> torch.Tensor:
    """torchvision Swin's form: a function fx keeps whole, padding to the window inside."""
    n = x.shape[1]
    pad = (window - n % window) % window
    x = F.pad(x, (0, 0, 0, pad))
    scores = (x @ weight).softmax(-1)
    return scores[:, :n]


torch.fx.wrap("padded_attention")


class Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return padded_attention(x, self.weight, 3)


class Split(nn.Module):
    """timm FasterNet's form: the forward chosen in __init__ and bound on the instance."""

    def __init__(self, slicing: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.forward = self.forward_slicing if slicing else self.forward_split_cat

    def forward_slicing(self, x):
        x = x.clone()
        x[:, :2] = self.conv(x[:, :2])
        return x

    def forward_split_cat(self, x):
        a, b = torch.split(x, [2, 2], dim=1)
        return torch.cat((self.conv(a), b), 1)


class TwoSplits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = Split(slicing=False), Split(slicing=True)

    def forward(self, x):
        return self.b(self.a(x))


class Float32Block(nn.Module):
    """timm EfficientViT's form: a block kept in float32 with autocast off, its device read from a tensor."""

    def __init__(self, enabled: bool = False) -> None:
        super().__init__()
        self.fc, self.enabled = nn.Linear(4, 4), enabled

    def forward(self, x):
        v = self.fc(x)
        with torch.autocast(device_type=v.device.type, enabled=self.enabled):
            return v.float() / (v.abs().sum(-1, keepdim=True) + 1e-3)


class Embed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x), None  # no padding mask


class MaybeMasked(nn.Module):
    """timm Gemma4's form: an optional mask a child returns as None, tested in the parent."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = Embed()

    def forward(self, x):
        x, pad = self.embed(x)
        if pad is not None and pad.any():
            x = x.masked_fill(pad, 0.0)
        return x


class BufferSizes(nn.Module):
    """A buffer reshaped to sizes of the input (ConViT's `rel_indices.expand(B, -1, -1, -1)` is of the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.randn(1, 4))

    def forward(self, x):
        return x + self.table.reshape(x.shape[2])


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (Wrapped(), (5, 4)),
        (TwoSplits(), (4, 5, 5)),
        (Float32Block(), (3, 4)),
        (BufferSizes(), (3, 4)),
    ],
    ids=["fx-wrapped", "bound-forward", "autocast-off", "buffer-sizes"],
)
def test_what_fx_alone_cannot_trace_round_trips(model: nn.Module, shape: tuple[int, ...]) -> None:
    _round_trip(model, shape)


def test_a_none_a_child_returns_is_none_in_the_parents_trace() -> None:
    """`if pad is not None` reads as Python does (fx alone gives a proxy for the None, and the
    branch fails on it); the child's tuple with a None is the converter's to read or refuse."""
    graph = trace_module(MaybeMasked().eval(), "", {}, {"x": torch.randn(1, 3, 4)})
    assert [n.target for n in graph.nodes if n.op != "placeholder"] == ["embed", operator.getitem, "output"]


def test_a_wrapped_function_is_traced_through_and_fx_keeps_wrapping_it_after() -> None:
    text = _round_trip(Wrapped(), (5, 4))
    assert "softmax" in text and "padded_attention" not in text
    assert any(name == "padded_attention" for _, name in st._wrapped_fns_to_patch)
    assert not any(name == "expand" for _, name in st._wrapped_methods_to_patch)
    assert "__setitem__" not in Proxy.__dict__ and not hasattr(torch.ones, "__wrapped__")


class Cache(nn.Module):
    """A forward that recomputes a cached buffer for the size it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("cache", torch.zeros(1), persistent=False)

    def forward(self, x):
        self.cache = x.sum(0)
        return x * self.cache


def test_an_enabled_autocast_and_an_assignment_to_state_are_refused_in_one_line() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(Float32Block(enabled=True), {"x": (3, 4)})
    assert "an enabled torch.autocast at tests/importer/test_trace.py:" in str(e.value)
    model = Cache()
    with pytest.raises(SpecError) as e:
        spec_from_module(model, {"x": (3,)})
    assert ": forward assigns `self.cache`: a spec's forward changes no state of its modules; " in str(e.value)
    assert isinstance(model.cache, torch.Tensor)  # not the traced value
