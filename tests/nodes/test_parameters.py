"""Learnable tensors declared in a spec: the `Parameter` node (issue 9, item 3)."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError


def _compile(nodes: str, inputs: str = "{x: [4]}") -> netspec.api.Compiled:
    return netspec.compile_spec(netspec.load_spec("t.yaml", text=f"name: t\ninputs: {inputs}\nnodes:\n{nodes}"))


def test_a_parameter_is_a_value_without_a_batch_dim() -> None:
    c = _compile("  - w: {Parameter: {shape: [4, 3]}}\n  - y: {matmul: [x, w]}\n")
    assert [(n.name, n.shape, n.params) for n in c.graph.nodes] == [("w", "(4, 3)", 12), ("y", "(B, 3)", 0)]
    assert "w = self.w" in c.module.code and "# (4, 3)" in c.module.code
    assert isinstance(c.module.w, torch.nn.Parameter) and c.module.w.requires_grad
    x = torch.randn(5, 4)
    assert_close(c.module(x), x @ c.module.w)


def test_the_default_init_is_torch_randn_from_the_global_generator() -> None:
    torch.manual_seed(3)
    model = _compile("  - w: {Parameter: [2, 3]}\n  - y: {matmul: [x, w]}\n", "{x: [2]}").module
    torch.manual_seed(3)
    assert torch.equal(model.w, torch.randn(2, 3))


@pytest.mark.parametrize(
    "init,check",
    [
        ("zeros_", lambda t: bool((t == 0).all())),
        ("{constant_: {val: 0.5}}", lambda t: bool((t == 0.5).all())),
        ("eye_", lambda t: torch.equal(t, torch.eye(4))),
        ("{uniform_: {a: 2, b: 3}}", lambda t: bool(((t >= 2) & (t <= 3)).all())),
    ],
)
def test_init_names_a_torch_nn_init_function(init: str, check) -> None:
    model = _compile(f"  - w: {{Parameter: {{shape: [4, 4], init: {init}}}}}\n  - y: {{matmul: [x, w]}}\n").module
    assert check(model.w.detach())


def test_parameters_in_a_block_and_with_ops() -> None:
    """A bias and a gain as parameters of a block, used twice: each use has its own tensors."""
    text = (
        "name: t\ninputs: {x: [4]}\nblocks:\n  Affine:\n    nodes:\n"
        "      - gain: {Parameter: {shape: [4], init: ones_}}\n      - bias: {Parameter: {shape: [4], init: zeros_}}\n"
        "      - scaled: {mul: [x, gain]}\n      - add: [scaled, bias]\n"
        "nodes:\n  - a: {Affine: {}}\n  - b: {Affine: {}}\n"
    )
    c = netspec.compile_spec(netspec.load_spec(text=text))
    assert list(c.module.state_dict()) == ["a.gain", "a.bias", "b.gain", "b.bias"]
    x = torch.randn(3, 4)
    assert_close(c.module(x), x)


def test_freeze_keeps_a_parameter_fixed() -> None:
    c = _compile("  - w: {Parameter: [4, 4]}\n    freeze: true\n  - y: {matmul: [x, w]}\n")
    assert not c.module.w.requires_grad
    assert "w: frozen" in c.log


def test_a_parameter_trains() -> None:
    model = _compile("  - w: {Parameter: {shape: [4, 1], init: zeros_}}\n  - y: {matmul: [x, w]}\n").module
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, target = torch.randn(16, 4), torch.randn(16, 1)
    loss = torch.nn.functional.mse_loss(model(x), target)
    loss.backward()
    opt.step()
    assert model.w.abs().sum() > 0


def test_a_parameter_takes_no_input() -> None:
    with pytest.raises(SpecError, match="a Parameter takes no input"):
        _compile("  - w: {Parameter: [4, 4]}\n    from: x\n  - y: {matmul: [x, w]}\n")
