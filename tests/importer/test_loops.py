"""Loops and child calls the importer unrolls into nodes that keep every state_dict key: a
module calling its numbered children (``for mod in self``), a Sequential child read as several nodes,
list arguments traced as their tensors, loops reading several values (a split's pieces, a parameter,
the items' extra inputs), a Sequential's items called one by one (the batch size given as a number: test_values.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netspec.errors import SpecError
from netspec.importer.api import spec_from_module
from netspec.importer.concrete import shown_file

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


class ZipSteps(nn.Module):
    """The common form in user code: two lists walked in step."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1) for _ in range(3))
        self.bns = nn.ModuleList(nn.BatchNorm2d(4) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(bn(conv(x)))
        return x


def test_a_loop_over_two_lists_in_step_is_a_node_per_call_at_its_key() -> None:
    torch.manual_seed(0)
    zipped = _round_trip(toys.Zipped(), {"x": (4,)})  # x = x + a(x); x = x + m(x)
    assert (
        "  - attn.0: {Linear: {out_features: 4}}\n  - add: [x, attn.0]\n  - mlp.0: {Linear: {out_features: 4}}\n"
        in zipped
    )
    text = _round_trip(ZipSteps(), {"x": (4, 8, 8)})
    assert (
        "  - convs.0: {Conv2d: {out_channels: 4, kernel_size: 3, padding: 1}}\n  - bns.0: {BatchNorm2d: {}}\n"
        "  - relu: {}\n  - convs.1: {Conv2d: {out_channels: 4, kernel_size: 3, padding: 1}}\n"
    ) in text


class Res2Step(nn.Module):
    """Res2Net's bottleneck: pieces of a split, each through a conv and a norm of two lists in
    step after the previous piece's output is added, all kept and concatenated (several values)."""

    def __init__(self, width: int = 3, scale: int = 3) -> None:
        super().__init__()
        self.width = width
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale - 1))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spx = torch.split(x, self.width, 1)
        spo = []
        sp = spx[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = self.relu(bn(conv(sp)))
            spo.append(sp)
        spo.append(spx[-1])
        return torch.cat(spo, 1)


def test_a_loop_giving_every_step_on_keeps_both_lists_keys() -> None:
    torch.manual_seed(0)
    text = _round_trip(Res2Step(), {"x": (9, 6, 6)})
    assert "  - convs.1: {Conv2d: {out_channels: 3, kernel_size: 3, padding: 1, bias: false}}\n" in text
    assert "  - bns.1: {BatchNorm2d: {}}\n" in text


class HeadCalls(nn.Module):
    """timm's MetaFormer: forward calls the children of its `head` (an nn.Sequential) one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.head = nn.Sequential()
        self.head.add_module("global_pool", nn.AdaptiveAvgPool2d(1))
        self.head.add_module("norm", nn.LayerNorm(8))
        self.head.add_module("fc", nn.Linear(8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head.global_pool(self.stem(x)).flatten(1)
        return self.head.fc(self.head.norm(x))


def test_a_module_inside_a_child_is_a_node_at_its_key() -> None:
    torch.manual_seed(0)
    text = _round_trip(HeadCalls(), {"x": (3, 8, 8)})
    assert "  - head.norm: {LayerNorm: {}}\n  - head.fc: {Linear: {out_features: 5}}\noutputs: [head.fc]\n" in text


class PosEveryStep(nn.Module):
    """CoaT's parallel blocks: a child with weights called at every step of a loop over a list."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Linear(4, 4)
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x + self.pos(x))
        return x


def test_a_child_called_at_every_step_is_same_as_its_first_call() -> None:
    torch.manual_seed(0)
    text = _round_trip(PosEveryStep(), {"x": (5, 4)})
    assert (
        "  - blocks.0: {Linear: {out_features: 4}}\n  - pos_1: {same_as: pos}\n  - add: [blocks.0, pos_1]\n"
        "  - blocks.1: {Linear: {out_features: 4}}\n  - pos_2: {same_as: pos}\n"
    ) in text


class Dct2d(nn.Module):
    """timm's CSATv2: one transform applied along both axes (``self.transform`` called twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = nn.Linear(6, 6, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(self.transform(x).transpose(-1, -2)).transpose(-1, -2)


def test_a_module_called_twice_is_a_same_as_node() -> None:
    torch.manual_seed(0)
    text = _round_trip(Dct2d(), {"x": (6, 6)})
    assert "  - transform_1: {same_as: transform}\n" in text
    _round_trip(toys.Shared(), {"x": (4,)})  # self.fc(self.fc(x)); other values besides: test_import.py


class SkipsOne(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.bns = nn.ModuleList(nn.BatchNorm1d(4) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns):  # convs[2] is never called
            x = bn(conv(x))
        return x


def test_an_item_of_a_list_at_keys_forward_never_calls_is_refused_naming_its_key() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(SkipsOne(), {"x": (4,)}, name="m", label="m")
    assert str(e.value) == (
        "m: `convs.2.weight` is a state_dict key of a module forward (in eval mode) never calls: a spec "
        "cannot hold a module its forward does not use"
    )


class RopeBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        return x + self.fc(x * rope)


class GivenByName(nn.Module):
    """DINOv3's `for blk in self.blocks: x = blk(x, rope=rope)`: a chain whose items read a second
    tensor by name, which a repeat cannot pass on: each call a node at its key."""

    def __init__(self) -> None:
        super().__init__()
        self.rope = nn.Parameter(torch.randn(4))
        self.blocks = nn.ModuleList(RopeBlock() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rope = self.rope.cos()
        for blk in self.blocks:
            x = blk(x, rope=rope)
        return x


def test_a_chain_whose_items_read_another_tensor_by_name_is_a_node_per_call_at_its_key() -> None:
    torch.manual_seed(0)
    text = _round_trip(GivenByName(), {"x": (5, 4)})
    assert "  - blocks.0: {RopeBlock: {}}\n    from: [x, cos]\n" in text
    assert "  - blocks.2: {RopeBlock: {}}\n    from: [blocks.1, cos]\n" in text


class SizedBlock(nn.Module):
    """MViTv2's block: tokens and their grid size in, pooled tokens and the new size out."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.stride = stride

    def forward(self, x: torch.Tensor, size: list[int]) -> tuple[torch.Tensor, tuple[int, int]]:
        H, W = size
        if self.stride > 1:
            B, _, C = x.shape  # (B, H*W, C)
            grid = F.avg_pool2d(x.transpose(1, 2).reshape(B, C, H, W), self.stride)  # (B, C, H/s, W/s)
            x = grid.flatten(2).transpose(1, 2)
            H, W = H // self.stride, W // self.stride
        return x + self.proj(x), (H, W)


class SizedStage(nn.Module):
    def __init__(self, strides: list[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SizedBlock(s) for s in strides)

    def forward(self, x: torch.Tensor, size: list[int]) -> tuple[torch.Tensor, list[int]]:
        for blk in self.blocks:
            x, size = blk(x, size)
        return x, size


class SizedEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 4, 2, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), [x.shape[2], x.shape[3]]


class MViTLike(nn.Module):
    """timm's MultiScaleVit: `x, feat_size = stage(x, feat_size)` over a list of stages, each a
    loop of blocks passing the pair on (a stage of one block is a plain chain)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = SizedEmbed()
        self.stages = nn.ModuleList([SizedStage([2]), SizedStage([2, 1])])
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, feat_size = self.embed(x)
        for stage in self.stages:
            x, feat_size = stage(x, feat_size)
        return self.head(x.mean(1))


def test_a_loop_passing_tensors_and_sizes_on_is_a_group_of_the_tensors() -> None:
    """The sizes are numbers each item was traced with; the group takes and gives the tokens."""
    text = _round_trip(MViTLike(), {"x": (3, 16, 16)})
    assert "  - stages:\n      - SizedStage: {}\n      - SizedStage_2: {}\n" in text
    assert "item" not in text  # no pair is read item by item: only tensors pass


class AddsInPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2
        for b in self.blocks:
            y.add_(b(x))
        return y


def test_a_loop_no_group_holds_is_refused_naming_the_list_and_its_line() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(AddsInPlace(), {"x": (4,)}, name="m", label="m")
    line = AddsInPlace.forward.__code__.co_firstlineno + 2
    assert str(e.value) == (
        f"m: the loop over nn.ModuleList `blocks` at {shown_file(__file__)}:{line} changes its input in "
        "place: a group of its items takes tensors and sizes and gives tensors; make each item a module that "
        "takes and gives tensors (a block)"
    )
