"""Named nodes: in `key: value` the value decides whether `key` is a name (issue 9, item 4).

torchvision names SqueezeNet's layer `squeeze`; `add`, `mean`, `pad`, `view`, `select`, `item`
and the new element-wise op names (`relu`, `exp`, ...) are natural node names too.
"""

from __future__ import annotations

import pytest
import torch

import netspec
from netspec.compiler.node_forms import normalize_node
from netspec.errors import SpecError
from netspec.nodes.ops import OPS


def _compile(nodes: str, inputs: str = "{x: [3, 8, 8]}") -> netspec.api.Compiled:
    return netspec.compile_spec(netspec.load_spec("t.yaml", text=f"name: t\ninputs: {inputs}\nnodes:\n{nodes}"))


@pytest.mark.parametrize("name", ["squeeze", "add", "mean", "pad", "view", "select", "item", "relu", "exp", "where"])
def test_an_op_name_can_name_a_layer(name: str) -> None:
    c = _compile(f"  - {name}: {{Conv2d: {{out_channels: 4, kernel_size: 1}}}}\n")
    (node,) = c.graph.nodes
    assert (node.name, node.op) == (name, "Conv2d")
    assert list(c.module.state_dict()) == [f"{name}.weight", f"{name}.bias"]


def test_squeezenet_fire_module_names_as_torchvision_writes_them() -> None:
    c = _compile(
        "  - squeeze: {Conv2d: {out_channels: 16, kernel_size: 1}}\n"
        "  - squeeze_activation: {ReLU: {inplace: true}}\n"
        "  - expand1x1: {Conv2d: {out_channels: 64, kernel_size: 1}}\n"
    )
    assert [n.name for n in c.graph.nodes] == ["squeeze", "squeeze_activation", "expand1x1"]


@pytest.mark.parametrize(
    "text,name,op",
    [
        ("  - relu: ReLU\n", "relu", "ReLU"),  # was "unknown layer ... `relu`; did you mean `ReLU`?"
        ("  - act: Tanh\n", "act", "Tanh"),
        ("  - mean: {dim: [2, 3]}\n", "mean", "mean"),  # an op with its arguments, as before
        ("  - pad: {pad: [1, 1]}\n", "pad", "pad"),  # `pad` is also pad's argument: the op
        ("  - squeeze: {from: x, Conv2d: {out_channels: 2, kernel_size: 1}}\n", "squeeze", "Conv2d"),
    ],
)
def test_the_value_decides(text: str, name: str, op: str) -> None:
    (node,) = _compile(text).graph.nodes
    assert (node.name, node.op) == (name, op)


def test_a_name_that_is_an_input_is_a_duplicate_not_an_op() -> None:
    """`- image: Tanh` used to be read as an op called `image`."""
    with pytest.raises(SpecError, match="duplicate name `image`: an input has it already"):
        _compile("  - image: Tanh\n", inputs="{image: [4]}")


def test_a_stray_key_beside_the_layer_says_where_it_goes() -> None:
    with pytest.raises(SpecError) as err:
        _compile("  - squeeze: {Conv2d: {out_channels: 4, kernel_size: 3}, stride: 2}\n")
    assert "node `squeeze` holds `Conv2d` and `stride`" in str(err.value)
    assert "move `stride` into Conv2d's arguments" in str(err.value)


def test_a_layer_key_with_a_misspelt_argument_is_not_taken_for_a_name() -> None:
    """`Linear: {scale: 2}`: `scale` is an op, but inside a layer it is a (wrong) argument."""
    with pytest.raises(SpecError, match="Linear has no argument `scale`"):
        _compile("  - Linear: {scale: 2}\n", inputs="{x: [4]}")


def test_a_block_parameter_named_like_an_op_stays_a_parameter() -> None:
    text = (
        "name: t\ninputs: {x: [4]}\nblocks:\n  B:\n    params: {scale: 1.0}\n    nodes:\n"
        "      - mul: $scale\nnodes:\n  - B: {scale: 3.0}\n"
    )
    model = netspec.build_model(netspec.load_spec(text=text))
    assert torch.equal(model(torch.ones(2, 4)), torch.full((2, 4), 3.0))


def test_normalize_node_keeps_the_merge_list_form_for_every_multi_input_op() -> None:
    multi = [n for n, e in OPS.items() if e.max_inputs is None or e.max_inputs > 1]
    assert {"cat", "add", "matmul", "where", "eq", "pow"} <= set(multi)
    for name in multi:
        assert normalize_node({name: ["a", "b"]}, set())["from"] == ["a", "b"], name
