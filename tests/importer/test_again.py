"""One module under two names (importer/again.py ``shared_modules``): CoaT hands one position
conv to its blocks (``Block(shared_cpe=self.cpe1)``), so the model holds it as ``cpe1`` and as
each block's ``cpe``. The spec calls it under each name forward calls it by, their parameters
tied, and holds the name forward never calls as an alias: its state_dict has every key, one
tensor behind them, and loads the model's strictly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module

from .test_import import _round_trip


class Block(nn.Module):
    def __init__(self, a: nn.Module) -> None:
        super().__init__()
        self.a, self.fc = a, nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x + self.a(x))


class Parent(nn.Module):
    """``self.a`` handed to ``blocks`` blocks; forward calls it itself first when ``direct``."""

    def __init__(self, blocks: int, direct: bool, norm: bool = False) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(5)) if norm else nn.Linear(4, 4)
        self.blocks = nn.ModuleList([Block(self.a) for _ in range(blocks)])
        self.direct = direct

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.direct:
            x = self.a(x)
        for block in self.blocks:
            x = block(x)
        return x


@pytest.mark.parametrize(("blocks", "direct"), [(1, False), (2, False), (2, True)])
def test_a_module_under_two_names_is_one_module_in_the_spec(blocks: int, direct: bool) -> None:
    torch.manual_seed(0)
    model = Parent(blocks, direct)
    text = _round_trip(model, {"x": (5, 4)})
    assert ("aliases: {a: blocks.0.a}" in text) is not direct  # never called as `a`: an alias
    module = compile_spec(load_spec(text=text)).module
    state = module.state_dict()
    assert sorted(state) == sorted(model.state_dict())
    keys = [k for k in state if k.endswith("a.weight")]
    assert len(keys) == 1 + blocks and len({state[k].data_ptr() for k in keys}) == 1  # one tensor behind them
    assert sum(p.numel() for p in module.parameters()) == sum(p.numel() for p in model.parameters())


def test_one_module_with_buffers_called_under_two_names_is_refused_in_one_line() -> None:
    with pytest.raises(SpecError) as info:
        spec_from_module(Parent(2, False, norm=True), {"x": (5, 4)}, name="m")
    assert "`blocks.0.a` and `blocks.1.a` are one module with buffers: a spec ties parameters only" in str(info.value)


class TwoNamesCalled(nn.Module):
    """CoaT's parallel blocks: ``self.mlp2 = self.mlp3 = Mlp(...)``, forward calling both names
    (torch.fx records both calls under the first name)."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp2 = self.mlp3 = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp2(x) * self.mlp3(x.flip(1))


def test_a_module_called_by_both_its_names_is_same_as_and_an_alias() -> None:
    torch.manual_seed(0)
    text = _round_trip(TwoNamesCalled(), {"x": (5, 4)})
    assert "  - mlp2_1: {same_as: mlp2}\n" in text and "aliases: {mlp3: mlp2}" in text
