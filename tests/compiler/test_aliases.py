"""`aliases` (compiler/aliases.py): one module under a second name, as a PyTorch model that hands
one module to its blocks holds it. Compared with that hand-written module: the same state_dict
keys, one tensor behind them, the same outputs and one gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netspec
from netspec.errors import SpecError


class Block(nn.Module):
    def __init__(self, pos: nn.Module) -> None:
        super().__init__()
        self.pos, self.fc = pos, nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x + self.pos(x))


class SharedPos(nn.Module):
    """CoaT's form: `self.pos` is built once and handed to every block; forward calls only the blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Linear(4, 4)
        self.blocks = nn.ModuleList([Block(self.pos), Block(self.pos)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


SPEC = """name: shared
inputs: {x: [5, 4]}
blocks:
  Block:
    nodes:
      - pos: {Linear: {out_features: 4}}
      - add: [x, pos]
      - fc: {Linear: {out_features: 4}}
nodes:
  - blocks: {Block: {}}
    repeat: 2
    tie: {1.pos.weight: blocks.0.pos.weight, 1.pos.bias: blocks.0.pos.bias}
aliases: {pos: blocks.0.pos}
"""


def test_an_alias_is_the_module_under_both_keys_as_torch_holds_it() -> None:
    torch.manual_seed(0)
    model, built = SharedPos(), netspec.build_model(netspec.load_spec(text=SPEC))
    assert sorted(built.state_dict()) == sorted(model.state_dict())
    built.load_state_dict(model.state_dict(), strict=True)
    state = built.state_dict()
    assert (
        state["pos.weight"].data_ptr()
        == state["blocks.0.pos.weight"].data_ptr()
        == state["blocks.1.pos.weight"].data_ptr()
    )
    assert sum(p.numel() for p in built.parameters()) == sum(p.numel() for p in model.parameters())
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(built(x), model(x))
    built(x).sum().backward()
    model(x).sum().backward()
    torch.testing.assert_close(built.get_parameter("pos.weight").grad, model.pos.weight.grad)


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        (
            "{pos: blocks.0.pas}",
            "`pos` is to be the module at `blocks.0.pas`, which holds no module; did you mean `blocks.0.pos`?",
        ),
        (
            "{blocks: blocks.0.pos}",
            "`blocks` is taken or no identifier; an alias is a new name in a module the spec builds",
        ),
        ("{stem.pos: blocks.0.pos}", "`stem` holds no module; an alias is a new name in a module the spec builds"),
    ],
)
def test_a_bad_alias_is_one_line_at_its_key(aliases: str, message: str) -> None:
    text = SPEC.replace("{pos: blocks.0.pos}", aliases)
    with pytest.raises(SpecError) as info:
        netspec.build_model(netspec.load_spec(text=text))
    assert message in str(info.value) and "aliases." in str(info.value) and "\n" not in str(info.value)
