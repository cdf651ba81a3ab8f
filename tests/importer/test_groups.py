"""Groups that give several values or take several tensors, and modules that hold their own class
(issue 20): each is imported, compiled, loaded strictly with the module's state_dict and compared.

- a module calling its numbered children that returns 2 values (torchvision's IntermediateLayerGetter
  in LRASPP) or is given 2 tensors (timm's SequentialAppendList in VoVNet) is a group with
  ``outputs`` or with ``from: [a, b]``;
- a loop over an nn.ModuleList whose stretch gives 2 values to what comes after it (HRNet's
  transitions side by side, FocalNet's running sum beside its chain) is a group with ``outputs``,
  each value read by an ``item`` node;
- a module whose class holds one of its own (timm's DlaTree) is written out level by level as
  groups; an argument its forward never reads is not given.
"""

from __future__ import annotations

import torch
from torch import nn

from .test_import import _round_trip
from .test_loops import AppendList, Segmenter


class TwoFeatures(Segmenter):
    """LRASPP's backbone: an IntermediateLayerGetter keeping two of its children's outputs."""

    def __init__(self) -> None:
        super().__init__({"0": "low", "2": "out"})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self.stem(x))  # {"low": (B, 4, H, W), "out": (B, 4, H, W)}
        return self.pool(features["out"]) * features["low"]


def test_numbered_children_giving_two_values_are_a_group_with_outputs() -> None:
    text = _round_trip(TwoFeatures(), {"x": (3, 8, 8)})
    assert "          - ReLU: {}\n    outputs: ['0', '2']\n" in text  # the getter's kept children, in order
    assert "  - getitem: {item: 1}\n" in text and "  - getitem_1: {item: 0}\n    from: backbone\n" in text


class Osa(nn.Module):
    """VoVNet's OsaBlock: a SequentialAppendList given the reduced input and the block's input."""

    def __init__(self) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(3, 2, 1)
        self.mid = AppendList()
        self.concat = nn.Conv2d(7, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = [x]
        y = self.reduce(x)  # (B, 2, H, W)
        return self.concat(self.mid(y, output))  # mid: (B, 3 + 2 + 2, H, W)


def test_numbered_children_given_two_tensors_are_a_group_reading_both() -> None:
    text = _round_trip(Osa(), {"x": (3, 5, 5)})
    assert "      - cat: {cat: [x, '0', '1']}\n    from: [reduce, x]\n" in text  # each by its outer name


class Transitions(nn.Module):
    """HRNet's ``[t(x) for t in self.transition1]``: items side by side, each read after the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.transition = nn.ModuleList([nn.Conv2d(2, 3, 1), nn.Conv2d(2, 3, 3, stride=2, padding=1)])
        self.head = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [t(x) for t in self.transition]  # (B, 3, H, W), (B, 3, H/2, W/2)
        return self.head(xs[0]).mean((2, 3)) + xs[1].amax((2, 3))  # (B, 3)


class RunningSum(nn.Module):
    """FocalNet's modulation: a chain of items and a running sum of their outputs, both read after."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.GELU()) for _ in range(2))
        self.out = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x
        for layer in self.layers:
            x = layer(x)
            total = total + x  # (B, 2, H, W)
        return self.out(total) * x  # the loop's two values, read by another module and an op


def test_a_loop_giving_two_values_is_a_group_with_outputs_read_by_item() -> None:
    text = _round_trip(Transitions(), {"x": (2, 6, 6)})
    assert "    outputs: ['0', '1']\n  - transition_0: {item: 0}\n  - transition_1: {item: 1}\n" in text
    text = _round_trip(RunningSum(), {"x": (2, 5, 5)})
    assert "      - add_1: {add: [add, '1']}\n    outputs: ['1', add_1]\n" in text


class Leaf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, shortcut: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x) + (x if shortcut is None else shortcut)


class Tree(nn.Module):
    """timm's DlaTree: a tree of trees; `shortcut` is given, then set anew (its forward never reads it)."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.project = nn.Identity()
        self.tree1: nn.Module = Tree(levels - 1) if levels > 1 else Leaf()
        self.tree2: nn.Module = Tree(levels - 1) if levels > 1 else Leaf()
        self.root = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor, shortcut: torch.Tensor | None = None) -> torch.Tensor:
        shortcut = self.project(x)
        x1 = self.tree1(x, shortcut)
        x2 = self.tree2(x1)
        return self.root(torch.cat([x2, x1], 1))  # (B, 2, H, W)


def test_a_module_holding_its_own_class_is_written_out_as_groups() -> None:
    model = Tree(3)
    text = _round_trip(model, {"x": (2, 5, 5)})
    assert "tree1.tree1.tree1.conv.weight" in model.state_dict()
    assert "  - tree1:\n      - project: {Identity: {}}\n" not in text  # its value was for `shortcut` only
    assert "  - tree1:\n      - tree1: {Tree: {}}\n" in text  # level 2 a group, level 1 (no tree inside) a block
    assert "  - tree1_given: {Identity: {}}\n  - tree2:\n" in text  # inside, `tree1` names its own child
