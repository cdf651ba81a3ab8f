"""Forwards with control flow on sizes (``importer/concrete.py``): decided at the traced size, the
spec pinned there; branches on tensor values and decisions on the batch are refused in one line.
Each import is compiled again here and compared with the hand-written module on the same weights."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.proxy import Proxy

from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module


class PadToWindow(nn.Module):
    """Swin's padding: pad H and W up to a multiple of the window, only where they are not."""

    def __init__(self, window: int = 4) -> None:
        super().__init__()
        self.window, self.conv = window, nn.Conv2d(3, 5, 2, stride=2)

    def forward(self, x):
        _, _, h, w = x.shape
        if h % self.window != 0 or w % self.window != 0:
            x = F.pad(x, (0, (-w) % self.window, 0, (-h) % self.window))
        return self.conv(x)


class SamePad(nn.Module):
    """timm's Conv2dSame: TensorFlow's 'SAME' padding, computed from the input size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x):
        ih, iw = x.size()[-2:]
        pad_h = max((math.ceil(ih / 2) - 1) * 2 + 3 - ih, 0)
        pad_w = max((math.ceil(iw / 2) - 1) * 2 + 3 - iw, 0)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return self.conv(x)


class TokensToGrid(nn.Module):
    """A ViT's tokens back to a square grid: `int(N ** 0.5)` and a loop over the size's dims."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.conv = nn.Linear(6, 6), nn.Conv2d(6, 2, 1)

    def forward(self, x):  # (B, N, C)
        b, n, c = x.shape
        side = int(n**0.5)
        for size in x.shape[1:]:  # iterating a size: fx alone cannot
            assert size > 0
        x = self.fc(x).transpose(1, 2).reshape(b, c, side, side)  # (B, C, side, side)
        return self.conv(x)


class RankCheck(nn.Module):
    """A branch on the rank: the same at every input size, so nothing is pinned."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        if x.dim() == 3:
            x = x.unsqueeze(0)
        return self.conv(x)


class DataBranch(nn.Module):
    def forward(self, x):
        k = int(x.abs().max())  # a number from the tensor's values
        return x * k


class BatchBranch(nn.Module):
    def forward(self, x):
        if x.shape[0] > 1:  # a decision on the batch: a spec's batch stays free
            return x * 2
        return x


class FoldedSize(nn.Module):
    """No control flow, but H * W becomes a number in the spec: right at the traced size only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        return self.conv(x).view(b, 4, h * w).mean(-1)


def _round_trip(model: nn.Module, shape: tuple[int, ...]) -> str:
    """Import, compile the text again, load the state_dict strictly, compare at batch 3."""
    torch.manual_seed(0)
    imported = spec_from_module(model.eval(), {"x": shape})
    spec = compile_spec(load_spec(text=imported.text)).module.eval()
    spec.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(spec(x), model(x), rtol=0, atol=1e-6)
    return imported.text


@pytest.mark.parametrize(
    ("model", "shape", "construct", "first"),
    [
        (PadToWindow(), (3, 10, 7), "`if` on a size", "if "),
        (PadToWindow(), (3, 8, 8), "`if` on a size", "if "),
        (SamePad(), (3, 9, 8), "`if` on a size", "max("),  # max() compares: the first decision
        (TokensToGrid(), (16, 6), "`int()` on a size", "int("),
    ],
)
def test_a_branch_on_a_size_is_decided_at_the_traced_size_and_pins_the_spec(
    model: nn.Module, shape: tuple[int, ...], construct: str, first: str
) -> None:
    text = _round_trip(model, shape)
    lines, start = inspect.getsourcelines(type(model).forward)
    number = start + next(k for k, line in enumerate(lines) if first in line)
    pinned = load_spec(text=text).inputs["x"].pinned
    assert pinned is not None and tuple(pinned.shape) == shape
    assert pinned.by == f"the model: {construct} at tests/importer/test_concrete.py:{number}"


def test_the_padding_is_in_the_spec_only_where_the_size_needs_it() -> None:
    assert "pad:" in _round_trip(PadToWindow(), (3, 10, 7))
    assert "pad:" not in _round_trip(PadToWindow(), (3, 8, 8))


def test_a_branch_on_the_rank_pins_nothing_and_the_spec_is_right_at_another_size() -> None:
    model = RankCheck().eval()
    text = _round_trip(model, (3, 8, 8))
    assert "pinned" not in text
    bigger = compile_spec(load_spec(text=text, overrides=["inputs.x.shape=[3,12,12]"])).module.eval()
    bigger.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(bigger(x), model(x), rtol=0, atol=1e-6)


def test_a_size_folded_to_a_number_is_found_at_the_second_size_and_pins_the_spec() -> None:
    text = _round_trip(FoldedSize(), (3, 8, 8))
    pinned = load_spec(text=text).inputs["x"].pinned
    assert pinned is not None and pinned.by == (
        "a size computed in forward is a number in the spec: at 3x16x16 it does not compile"
    )


def test_a_pinned_spec_is_refused_at_another_size_in_one_line() -> None:
    text = _round_trip(PadToWindow(), (3, 10, 7))
    with pytest.raises(SpecError) as e:
        load_spec(text=text, overrides=["inputs.x.shape=[3,12,12]"])
    assert "\n" not in str(e.value)
    assert "inputs.x.shape: shape 3x12x12 is not the size this spec was imported at: it is pinned at 3x10x7" in str(
        e.value
    )
    assert str(e.value).endswith("import the model again with --input-size 3x12x12")


def test_a_branch_on_tensor_values_is_refused_with_the_construct_and_line() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(DataBranch(), {"x": (4,)})
    line = inspect.getsourcelines(DataBranch.forward)[1] + 1
    assert str(e.value) == (
        f"{__name__}.DataBranch: `int()` on a tensor's values in {__name__}.DataBranch.forward at "
        f"tests/importer/test_concrete.py:{line}: a spec's forward cannot depend on its data; "
        "import a model whose forward decides on sizes or arguments only"
    )


def test_a_decision_on_the_batch_is_refused_at_the_second_batch_size() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(BatchBranch(), {"x": (4,)})
    assert str(e.value) == (
        f"{__name__}.BatchBranch: `if` on a size that depends on the batch (False at batch 1, True at batch 2): "
        "a spec's batch stays free; compute it from sizes other than the batch"
    )


def test_tracing_leaves_fx_proxies_as_they_were() -> None:
    _round_trip(TokensToGrid(), (16, 6))
    assert not any(hasattr(Proxy, k) for k in ("__int__", "__index__", "__float__"))
    with pytest.raises(RuntimeError, match="'len' is not supported"):  # fx's own rule again
        len(Proxy(torch.fx.Graph().placeholder("x")))
