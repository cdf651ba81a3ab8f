"""Loops and child calls the importer unrolls into nodes that keep every state_dict key: a
module calling its numbered children (``for mod in self``), ..."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netspec.errors import SpecError
from netspec.importer.api import spec_from_module

from .test_import import _round_trip


class Pooling(nn.Sequential):
    """torchvision's ASPPPooling: an nn.Sequential whose own forward calls its children, then resizes."""

    def __init__(self, c: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False) + 1


class Getter(nn.ModuleDict):
    """torchvision's IntermediateLayerGetter: numbered children in a chain, a dict of what some give."""

    def __init__(self, c: int, keep: dict[str, str]) -> None:
        super().__init__({str(k): nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU()) for k in range(3)})
        self.keep = keep

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name, module in self.items():
            x = module(x)
            if name in self.keep:
                out[self.keep[name]] = x
        return out


class Segmenter(nn.Module):
    def __init__(self, keep: dict[str, str] | None = None) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.backbone = Getter(4, keep or {"2": "out"})
        self.pool = Pooling(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self.stem(x))
        return self.pool(features["out"])


def test_a_module_calling_its_numbered_children_is_a_group_keeping_their_keys() -> None:
    model = Segmenter()
    text = _round_trip(model, {"x": (3, 8, 8)})
    assert "backbone.2.0.weight" in model.state_dict() and "pool.1.weight" in model.state_dict()
    # the children first, unnamed (numbered by position: their keys), then the ops, named; the
    # group's value is its last node
    assert "  - backbone:\n      - op: Sequential\n        nodes:\n          - Conv2d:" in text
    assert "          - ReLU: {}\n      - out: {Identity: {}}\n  - pool:\n      - AdaptiveAvgPool2d:" in text
    assert "      - interpolate: {interpolate: {size: [8, 8], mode: bilinear, align_corners: false}}\n" in text


def test_a_module_calling_its_numbered_children_and_giving_two_values_is_refused() -> None:
    model = Segmenter({"0": "low", "2": "out"})
    with pytest.raises(SpecError) as e:
        spec_from_module(model, {"x": (3, 8, 8)}, name="m", label="m")
    assert str(e.value) == (
        "m: backbone: forward calls its children by number (`0`, ...) and returns 2 values: a module that does is "
        "written as a group (its children keep their keys by position), which gives one value"
    )


class NormActs(nn.Module):
    """timm's DenseTransition: a Sequential whose children are read as several nodes each (a
    BatchNormAct2d: the norm, then its activation), first, inside and last."""

    def __init__(self) -> None:
        super().__init__()
        timm_layers = pytest.importorskip("timm.layers")
        norm_act = timm_layers.BatchNormAct2d
        self.t = nn.Sequential(norm_act(3), nn.Conv2d(3, 4, 1), norm_act(4))
        self.u = nn.Sequential(norm_act(4), nn.Conv2d(4, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.u(self.t(x))


def test_a_sequential_child_read_as_several_nodes_keeps_the_others_places() -> None:
    text = _round_trip(NormActs(), {"x": (3, 6, 6)})
    # the child's further nodes go after the children, named; the inputs are written out
    assert (
        "  - t:\n      - BatchNorm2d: {}\n      - Conv2d: {out_channels: 4, kernel_size: 1}\n        from: n0_act\n"
        in text
    )
    assert "      - n2_act: {ReLU: {inplace: true}}\n        from: '2'\n  - u:\n" in text  # t's value: its last node
    assert "      - out: {Identity: {}}\n        from: '1'\noutputs: [u]\n" in text
