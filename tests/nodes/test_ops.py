"""Element-wise, comparison and random ops by their torch names (issue 9, item 3).

Shapes come from running the call on meta tensors like every op (``test_registry.py`` checks
each against a real forward); here: values, scalars as `other`, and random ops following the
seed.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError
from netspec.nodes.ops import OPS


def _model(nodes: str, inputs: str = "{x: [3, 4]}") -> torch.nn.Module:
    return netspec.build_model(netspec.load_spec(text=f"name: t\ninputs: {inputs}\nnodes:\n{nodes}"))


@pytest.mark.parametrize(
    "name,fn",
    [
        ("exp", torch.exp),
        ("log1p", torch.log1p),
        ("sigmoid", torch.sigmoid),
        ("tanh", torch.tanh),
        ("abs", torch.abs),
        ("sqrt", torch.sqrt),
    ],
)
def test_unary_ops_are_the_torch_functions(name: str, fn) -> None:
    x = torch.rand(2, 3, 4)
    model = _model(f"  - {name}\n")
    assert_close(model(x), fn(x))
    assert f"torch.{name}(x)" in model.code


@pytest.mark.parametrize(
    "node,fn",
    [
        ("{add: 1.5, from: x}", lambda x, y: x + 1.5),
        ("{sub: 1, from: x}", lambda x, y: x - 1),
        ("{mul: -0.5, from: x}", lambda x, y: x * -0.5),
        ("{div: 4, from: x}", lambda x, y: x / 4),
        ("{pow: 2, from: x}", lambda x, y: x**2),
        ("{pow: [x, y]}", torch.pow),
        ("{eq: 0.5, from: x}", lambda x, y: x == 0.5),
        ("{gt: [x, y]}", lambda x, y: x > y),
        ("{minimum: [x, y]}", torch.minimum),
        ("{where: {other: 0.0}, from: [m, x]}", lambda x, y: torch.where(x > 0.5, x, 0.0)),
        ("{where: [m, x, y]}", lambda x, y: torch.where(x > 0.5, x, y)),
    ],
)
def test_binary_ops_take_a_second_input_or_a_number(node: str, fn) -> None:
    mask = "  - m: {gt: 0.5, from: x}\n" if "m," in node else ""
    model = _model(f"{mask}  - out: {node}\noutputs: [out, y]\n", "{x: [3, 4], y: [3, 4]}")
    x, y = torch.rand(2, 3, 4), torch.rand(2, 3, 4)
    with torch.no_grad():
        assert_close(model(x, y)[0], fn(x, y))


def test_random_ops_follow_the_seed_and_differ_across_seeds() -> None:
    model = _model("  - noise: randn_like\n  - add: [x, noise]\n")
    x = torch.zeros(4, 3, 4)
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(0)
    b = model(x)
    torch.manual_seed(1)
    c = model(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(0)
    assert torch.equal(a, torch.randn(4, 3, 4))


def test_compiling_draws_nothing_from_the_global_generator() -> None:
    """Shape inference runs random ops on meta tensors: a seeded run is not shifted by it."""
    torch.manual_seed(0)
    state = torch.get_rng_state()
    netspec.compile_spec(netspec.load_spec(text="name: t\ninputs: {x: [4]}\nnodes:\n  - randn_like\n  - rand_like\n"))
    assert torch.equal(torch.get_rng_state(), state)


def test_the_vae_sample_can_be_written() -> None:
    """z = mu + randn_like(std) * exp(0.5 * logvar), the issue's example."""
    model = _model(
        "  - mu: {Linear: {out_features: 2}, from: x}\n  - logvar: {Linear: {out_features: 2}, from: x}\n"
        "  - scaled: {mul: 0.5, from: logvar}\n  - std: exp\n  - eps: randn_like\n"
        "  - noise: {mul: [eps, std]}\n  - z: {add: [mu, noise]}\n",
        "{x: [4]}",
    )
    x = torch.randn(3, 4)
    with torch.no_grad():
        torch.manual_seed(2)
        z = model(x)
        torch.manual_seed(2)
        std = torch.exp(0.5 * model.logvar(x))
        assert_close(z, model.mu(x) + torch.randn_like(std) * std)


def test_two_inputs_and_a_number_is_refused() -> None:
    with pytest.raises(SpecError, match="`add` takes two inputs, or one input and a number"):
        _model("  - add: {other: 1.0}\n    from: [x, x]\n")


def test_ops_are_a_fixed_list_of_torch_functions() -> None:
    """A spec names registered ops only: nothing reaches other attributes of torch."""
    for name in ("load", "save", "set_default_device", "manual_seed", "getattr", "__import__", "eval"):
        assert name not in OPS
    with pytest.raises(SpecError, match="unknown layer, op or block `manual_seed`"):
        _model("  - manual_seed: 0\n")


def test_group_norm_and_normalize_are_torchs() -> None:
    """group_norm with and without the weight and bias inputs; normalize along a dim, with p."""
    nodes = (
        "  - w: {Parameter: {shape: [4], init: normal_}}\n"
        "  - b: {Parameter: {shape: [4], init: normal_}}\n"
        "  - gn: {group_norm: {num_groups: 2, eps: 0.001}, from: [x, w, b]}\n"
        "  - plain: {group_norm: 4, from: x}\n"
        "  - unit: {normalize: -1, from: x}\n"
        "  - l1: {normalize: {dim: 1, p: 1.0}, from: x}\n"
        "outputs: [gn, plain, unit, l1]\n"
    )
    model = _model(nodes, "{x: [4, 5]}")
    x = torch.randn(3, 4, 5)
    with torch.no_grad():
        gn, plain, unit, l1 = model(x)
    assert_close(gn, torch.nn.functional.group_norm(x, 2, model.w, model.b, 0.001))
    assert_close(plain, torch.nn.GroupNorm(4, 4, affine=False)(x))
    assert_close(unit, x / x.norm(dim=-1, keepdim=True))
    assert_close(l1, x / x.abs().sum(dim=1, keepdim=True))


def test_attention_adds_a_mask_given_as_a_fourth_input() -> None:
    """BEiT's relative position bias: scaled_dot_product_attention's attn_mask."""
    nodes = "  - out: {attention: {scale: 0.5}, from: [q, k, v, bias]}\n"
    model = _model(nodes, "{q: [2, 5, 4], k: [2, 5, 4], v: [2, 5, 4], bias: [2, 5, 5]}")
    q, k, v, bias = (torch.randn(3, 2, 5, n) for n in (4, 4, 4, 5))
    want = torch.softmax(q @ k.transpose(-2, -1) * 0.5 + bias, dim=-1) @ v
    with torch.no_grad():
        assert_close(model(q, k, v, bias), want)


def test_every_dtype_a_spec_names_is_a_torch_dtype_and_the_to_op_takes_each() -> None:
    """One list of dtype names (compiler.spec_base.DType) for inputs, the `to` op and buffers;
    the table that maps them to torch (copied into ejected code) must hold exactly those."""
    from typing import get_args

    from netspec.compiler.spec_base import DType
    from netspec.nodes.functional import _DTYPES

    assert tuple(_DTYPES) == get_args(DType)
    for name, dtype in _DTYPES.items():
        spec = {"name": "m", "inputs": {"x": [2]}, "nodes": [{"to": name}]}
        assert netspec.build_model(spec)(torch.ones(1, 2)).dtype == dtype
    with pytest.raises(SpecError, match="complex64"):
        netspec.compile_spec({"name": "m", "inputs": {"x": [2]}, "nodes": [{"to": "complex64"}]})
