"""Nodes at a key (issue 20): a node named ``convs.0`` or ``head.fc`` holds its module at that
state_dict key, as a forward walking two lists in step (``zip(self.convs, self.bns)``) or calling
a module inside a child (``self.head.fc``) does. Compared with the hand-written module it describes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError


def _build(text: str) -> nn.Module:
    return netspec.build_model(netspec.load_spec(text=text))


class ZipNet(nn.Module):
    """Res2Net's step: a conv and a norm of two lists in step on each piece of a split, then a head
    whose children forward calls one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1, bias=False) for _ in range(2))
        self.bns = nn.ModuleList(nn.BatchNorm2d(4) for _ in range(2))
        self.head = nn.Sequential(OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(8, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = self.stem(x).split(4, 1)  # 2 x (B, 4, H, W)
        outs = [F.relu(bn(conv(p))) for conv, bn, p in zip(self.convs, self.bns, pieces)]
        x = torch.cat(outs, 1)  # (B, 8, H, W)
        return self.head.fc(self.head.flat(self.head.pool(x)))


ZIPNET = """name: zipnet
inputs: {x: [3, 8, 8]}
nodes:
  - stem: {Conv2d: {out_channels: 8, kernel_size: 1}}
  - p0: {narrow: {dim: 1, start: 0, length: 4}}
  - convs.0: {Conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}}
  - bns.0: BatchNorm2d
  - r0: relu
  - p1: {narrow: {dim: 1, start: 4, length: 4}, from: stem}
  - convs.1: {Conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}}
  - bns.1: BatchNorm2d
  - r1: relu
  - cat: [r0, r1]
  - head.pool: {AdaptiveAvgPool2d: {output_size: 1}}
  - head.flat: Flatten
  - head.fc: {Linear: {out_features: 3}}
"""


def test_nodes_at_keys_hold_the_modules_of_two_lists_and_a_childs_children() -> None:
    torch.manual_seed(0)
    reference, model = ZipNet().eval(), _build(ZIPNET).eval()
    assert sorted(model.state_dict()) == sorted(reference.state_dict())
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(2, 3, 8, 8)
    assert_close(model(x), reference(x))
    assert 'convs_0 = getattr(self.convs, "0")(p0)' in model.code
    assert "head_fc = self.head.fc(head_flat)" in model.code


def test_a_node_at_a_key_is_read_shared_and_tied_by_its_name() -> None:
    """``from``, ``same_as``, ``tie``, outputs and a group's inputs name a node at a key as written."""
    model = _build(
        "name: t\ninputs: {x: [4]}\nnodes:\n"
        "  - blocks.0: {Linear: {out_features: 4}}\n"
        "  - again: {same_as: blocks.0}\n"
        "  - g: [ReLU, {Linear: {out_features: 4}}]\n    from: [blocks.0]\n"
        "  - blocks.1: {Linear: {out_features: 4}, from: again, tie: {weight: blocks.0.weight}}\n"
        "  - out: {add: [g, blocks.1]}\n"
        "outputs: [out, blocks.1]\n"
    )
    assert model.blocks.get_submodule("1").weight is model.blocks.get_submodule("0").weight
    # a holder's keys stay together, as a ModuleList's do (blocks.1 joins blocks.0 in `blocks`)
    assert list(model.state_dict()) == [
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
        "g.1.weight",
        "g.1.bias",
    ]
    x = torch.rand(3, 4)
    b0, b1, g1 = (model.get_submodule(k) for k in ("blocks.0", "blocks.1", "g.1"))
    out, last = model(x)
    assert_close(last, b1(b0(b0(x))))
    assert_close(out, g1(torch.relu(b0(x))) + last)


@pytest.mark.parametrize(
    "nodes,message",
    [
        (
            "  - convs: {Linear: {out_features: 4}}\n  - convs.1: {Linear: {out_features: 4}}\n",
            "node `convs.1` lives inside `convs`, which is a node of its own",
        ),
        ("  - head.act: relu\n", "node `head.act` is an op, which holds no module of its own"),
        ("  - w.0: {Parameter: {shape: [4]}}\n  - m: {mul: [x, w.0]}\n", "is a Parameter, which holds no module"),
        (
            "  - fc: {Linear: {out_features: 4}}\n  - again.fc: {same_as: fc}\n",
            "node `again.fc` is a `same_as` node",
        ),
        ("  - x.fc: {Linear: {out_features: 4}}\n", "node `x.fc` lives inside `x`, which is an input of its own"),
        ("  - head.training: {Linear: {out_features: 4}}\n", "is reserved"),
    ],
)
def test_a_bad_node_at_a_key_is_one_line_at_the_node(nodes: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        _build(f"name: t\ninputs: {{x: [4]}}\nnodes:\n{nodes}")
    text = str(info.value)
    assert message in text and "\n" not in text and "nodes[" in text, text


@pytest.mark.parametrize("name", ["convs..0", "convs.", ".convs", "head.if"])
def test_a_key_is_node_names_joined_by_dots(name: str) -> None:
    with pytest.raises(SpecError, match=f"node name `{name}`"):
        netspec.load_spec(text=f"name: t\ninputs: {{x: [4]}}\nnodes:\n  - {name}: {{Linear: {{out_features: 4}}}}\n")
