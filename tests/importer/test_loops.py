"""Loops and child calls the importer unrolls into nodes that keep every state_dict key: a
module calling its numbered children (``for mod in self``), a Sequential child read as several nodes,
list arguments traced as their tensors, loops reading several values (a split's pieces, a parameter,
the items' extra inputs), a Sequential's items called one by one; and the batch size given as a number."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netspec.errors import SpecError
from netspec.importer.api import spec_from_module

from . import toy_models as toys
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


class AppendTo(nn.Module):
    """A module that appends to the list it is given and reads it back (timm's DLA trees)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, outs: list[torch.Tensor]) -> torch.Tensor:
        outs.append(self.a(x))
        outs.append(self.b(outs[-1]))
        return torch.cat(outs, 1) + outs[0].sum(1, keepdim=True)  # (B, 6, H, W)


class AppendList(nn.Sequential):
    """timm's SequentialAppendList: numbered children, each appended to the list it is given."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1))

    def forward(self, x: torch.Tensor, concat_list: list[torch.Tensor]) -> torch.Tensor:
        for i, module in enumerate(self):
            concat_list.append(module(x if i == 0 else concat_list[-1]))
        return torch.cat(concat_list, dim=1)


class Lists(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 2, 1)
        self.tree = AppendTo()
        self.mid = AppendList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        z = self.tree(y, [x])  # (B, 6, H, W)
        return self.mid(y, [y]).sum(1, keepdim=True) + z.mean(1, keepdim=True)  # the same tensor given twice


def test_a_list_argument_changed_or_indexed_is_traced_as_its_tensors() -> None:
    """fx records no appends to a list argument; traced as a placeholder per tensor, the list is a
    Python list inside, so the appends and reads are plain Python and the block takes each tensor."""
    text = _round_trip(Lists(), {"x": (2, 5, 5)})
    assert "  - tree: {AppendTo: {}}\n    from: [stem, x]\n" in text  # its inputs: y, then the list's tensor
    assert "    inputs: [x, outs_1]\n" in text and "      - cat: [outs_1, a, b]\n" in text  # fx numbers them from 1
    assert "  - mid:\n      - Conv2d: {out_channels: 2, kernel_size: 1}\n" in text  # a group: `y` given twice


class SplitPaths(nn.Module):
    """timm's SelectiveKernel: each item of a list reads its own piece of a split."""

    def __init__(self) -> None:
        super().__init__()
        self.paths = nn.ModuleList(nn.Conv2d(2, 3, 3, padding=1) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(x, 2, 1)  # 2x (B, 2, H, W)
        return torch.cat([path(pieces[i]) for i, path in enumerate(self.paths)], 1)  # (B, 6, H, W)


def test_a_loop_reading_pieces_of_a_split_is_a_group_of_the_split_tensor() -> None:
    text = _round_trip(SplitPaths(), {"x": (4, 5, 5)})
    assert "  - paths:\n      - Conv2d: {out_channels: 3, kernel_size: 3, padding: 1}\n        from: getitem\n" in text
    assert (
        "      - getitem_1: {narrow: {dim: 1, start: 2, length: 2}}\n        from: x\n" in text
    )  # read inside the group


class PosEmbedAt(nn.Module):
    """VOLO's loop: a parameter added inside the loop, at one step."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(4))
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k, block in enumerate(self.blocks):
            if k == 1:
                x = x + self.pos
            x = block(x)
        return x


def test_a_loop_reading_values_from_before_it_takes_them_as_inputs() -> None:
    """``x = x + gamma * b(x)`` and a parameter added at one step: the group reads both by name."""
    text = _round_trip(toys.GatedStack(), {"x": (4,)})
    assert (
        "  - blocks:\n      - Linear: {out_features: 4}\n      - Linear: {out_features: 4}\n        from: add\n" in text
    )
    assert "      - add_1: {add: [add, mul_1]}\n    from: [x, gamma]\n" in text
    text = _round_trip(PosEmbedAt(), {"x": (4,)})
    assert text.index("  - pos: {Parameter: {shape: [4], ") < text.index("  - blocks:\n")  # before the loop
    assert (
        "      - add: {add: ['0', pos]}\n      - out: {Identity: {}}\n        from: '2'\n    from: [x, pos]\n" in text
    )


class TokenBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        return cls + self.fc(x).mean(1, keepdim=True)  # (B, 1, 4)


class ClassAttention(nn.Module):
    """CaiT's ``for blk in self.blocks_token_only: cls_tokens = blk(x, cls_tokens)``."""

    def __init__(self) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, 4))
        self.blocks = nn.ModuleList(TokenBlock() for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = self.cls.expand(x.shape[0], -1, -1)  # (B, 1, 4)
        for block in self.blocks:
            cls = block(x, cls)
        return cls


def test_a_chain_whose_items_are_given_more_is_a_group_reading_it() -> None:
    text = _round_trip(ClassAttention(), {"x": (3, 4)})
    assert "      - TokenBlock: {}\n        from: [x, expand]\n      - TokenBlock: {}\n        from: [x, '0']\n" in text
    assert "    from: [x, expand]\noutputs: [blocks]\n" in text  # its value: the last item


class Stages(nn.Module):
    """FastViT's ``for stage in self.stages: x = stage(x)`` over an nn.Sequential, keeping each output."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x.relu())
        return torch.cat(outs, 1)  # (B, 8)


def test_the_items_of_a_sequential_called_one_by_one_are_a_group_keeping_their_keys() -> None:
    text = _round_trip(Stages(), {"x": (4,)})
    assert (
        "  - stages:\n      - Linear: {out_features: 4}\n      - Linear: {out_features: 4}\n      - relu: {relu: {}}\n"
        in text
    )
    assert "      - cat: {cat: [relu, relu_1]}\noutputs: [stages]\n" in text


class Positions(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(2, 4)

    def forward(self, batch: int, n: int) -> torch.Tensor:
        grid = torch.linspace(0, 1, n).unsqueeze(1).repeat(1, 2)  # (n, 2)
        return self.proj(grid).repeat(batch, 1, 1)  # (batch, n, 4)


class BatchArgument(nn.Module):
    """XCiT's ``self.pos_embed(B, H, W)``: a module given the batch size as a number."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = Positions()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos_embed(x.shape[0], x.shape[1])


def test_a_module_given_the_batch_size_as_a_number_is_refused_naming_it() -> None:
    """It was fixed at its first call's value, and the run at the second batch size failed."""
    with pytest.raises(SpecError) as e:
        spec_from_module(BatchArgument(), {"x": (3, 4)}, name="m", label="m")
    assert str(e.value) == (
        "m: pos_embed: forward is given batch=1 at batch size 1 and 2 at 2: a value that follows the batch size "
        "cannot be written in a spec, whose nodes take tensors; compute it inside the module from its input "
        "(x.shape[0]), or broadcast instead"
    )
