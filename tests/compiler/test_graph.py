"""Groups, `else`, keyword inputs and repeat names (issue 9, items 3 and 4).

- a group (`name: [nodes]`) is a chain run as one sub-module, its unnamed nodes named 0, 1, ...
  like nn.Sequential's; `when` on it keeps or drops the whole group, and `else: x` makes the
  name stand for another value when it is dropped (resnet's optional downsample in one node);
- `from` as a mapping names a layer's forward arguments (`src_key_padding_mask`, `hx`);
- `repeat` names its copies 0..N-1, so keys read `layer1.0.conv1.weight` as in torchvision.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError
from netspec.views.summary import graph_table

BLOCK = """\
name: t
params: {planes: 8, stride: 1}
inputs: {x: [4, 6, 6]}
nodes:
  - conv: {Conv2d: {out_channels: $planes, kernel_size: 3, stride: $stride, padding: 1}}
  - downsample:
      - Conv2d: {out_channels: $planes, kernel_size: 1, stride: $stride, bias: false}
      - BatchNorm2d: {}
    from: x
    when: ${stride != 1 or x.channels != planes}
    else: x
  - add: [conv, downsample]
"""


def _compile(text: str, **params) -> netspec.api.Compiled:
    return netspec.compile_spec(netspec.load_spec("t.yaml", text=text), **params)


def test_a_group_is_one_submodule_numbered_like_nn_sequential() -> None:
    c = _compile(BLOCK)
    assert [n.name for n in c.graph.nodes] == ["conv", "downsample", "add"]
    keys = [k for k in c.module.state_dict() if k.startswith("downsample.")]
    assert keys[:2] == ["downsample.0.weight", "downsample.1.weight"]
    reference = nn.Sequential(nn.Conv2d(4, 8, 1, bias=False), nn.BatchNorm2d(8))
    assert [k.split(".", 1)[1] for k in keys] == list(reference.state_dict())
    assert 'conv2d_0 = getattr(self, "0")(x)' in c.module.downsample.code


def test_else_makes_the_dropped_group_the_identity() -> None:
    c = _compile(BLOCK, planes=4)  # same channels, stride 1: no projection
    assert [n.name for n in c.graph.nodes] == ["conv", "add"]
    assert c.graph.node("add").inputs == ["conv", "x"]
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        assert_close(c.module(x), c.module.conv(x) + x)


def test_a_dropped_node_without_else_is_gone_and_its_name_is_undefined() -> None:
    with pytest.raises(SpecError, match="`from` names `downsample`, which is not defined"):
        _compile(BLOCK.replace("    else: x\n", ""), planes=4)


def test_the_next_node_reads_what_else_names() -> None:
    text = (
        "name: t\nparams: {use_b: false}\ninputs: {x: [4]}\nnodes:\n  - a: {Linear: {out_features: 4}}\n"
        "  - b: {Linear: {out_features: 4}}\n    when: $use_b\n    else: a\n  - ReLU: {}\n"
    )
    assert _compile(text).graph.nodes[-1].inputs == ["a"]


def test_group_errors_point_inside_the_group() -> None:
    text = BLOCK.replace("BatchNorm2d: {}", "BatchNorm2d: {momentom: 0.1}")
    with pytest.raises(SpecError) as err:
        _compile(text, stride=2)
    assert str(err.value).startswith("t.yaml:8:33: nodes[1].nodes[1].BatchNorm2d.momentom")


def test_repeat_copies_are_named_like_nn_sequential() -> None:
    text = "name: t\ninputs: {x: [4]}\nnodes:\n  - body: {Linear: {out_features: 4}}\n    repeat: 3\n"
    c = _compile(text)
    assert list(c.module.state_dict()) == [f"body.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    reference = nn.Sequential(*[nn.Linear(4, 4) for _ in range(3)])
    c.module.body.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(5, 4)
    with torch.no_grad():
        assert_close(c.module(x), reference(x))


# ---- keyword inputs of a layer's forward -------------------------------------------------------

ENCODER = """\
name: t
inputs: {x: [6, 8], pad: {shape: [6], dtype: bool}}
nodes:
  - enc: {TransformerEncoderLayer: {nhead: 2, dim_feedforward: 16, dropout: 0.0}}
    from: {src: x, src_key_padding_mask: pad}
"""


def test_a_padding_mask_reaches_the_encoder_layer() -> None:
    c = _compile(ENCODER)
    assert "enc = self.enc(x, src_key_padding_mask = pad)" in c.module.code
    assert "x, src_key_padding_mask=pad" in graph_table(c)
    x, pad = torch.randn(3, 6, 8), torch.zeros(3, 6, dtype=torch.bool)
    pad[0, 4:] = True
    with torch.no_grad():
        assert_close(c.module.eval()(x, pad), c.module.enc(x, src_key_padding_mask=pad))
        assert not torch.allclose(c.module(x, pad)[0], c.module(x, torch.zeros_like(pad))[0])


def test_the_first_input_defaults_to_the_previous_node() -> None:
    text = ENCODER.replace("from: {src: x, src_key_padding_mask: pad}", "from: {src_key_padding_mask: pad}")
    assert _compile(text).graph.nodes[0].inputs == ["x"]


def test_multihead_attention_with_masks() -> None:
    text = (
        "name: t\ninputs: {q: [5, 8], kv: [7, 8], pad: {shape: [7], dtype: bool}}\nnodes:\n"
        "  - attn: {MultiheadAttention: {num_heads: 2}}\n"
        "    from: {query: q, key: kv, value: kv, key_padding_mask: pad}\n  - item: 0\n"
    )
    c = _compile(text)
    assert c.graph.node("attn").shape == "((B, 5, 8), (B, 5, 7))"
    q, kv, pad = torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.zeros(2, 7, dtype=torch.bool)
    with torch.no_grad():
        assert_close(c.module(q, kv, pad), c.module.attn(q, kv, kv, key_padding_mask=pad)[0])


def test_an_lstm_initial_state_is_a_tuple_of_inputs() -> None:
    """`hx: [h, c]` passes (h0, c0); a per-sample (num_layers, H) input is permuted to (L, B, H)."""
    text = (
        "name: t\ninputs: {x: [5, 4], h0: [2, 8], c0: [2, 8]}\nnodes:\n"
        "  - h: {permute: [1, 0, 2], from: h0}\n  - c: {permute: [1, 0, 2], from: c0}\n"
        "  - lstm: {LSTM: {hidden_size: 8, num_layers: 2}, from: {input: x, hx: [h, c]}}\n  - item: 0\n"
    )
    c = _compile(text)
    assert c.graph.node("h").shape == "(2, B, 8)"
    assert "lstm = self.lstm(x, hx = (h, c))" in c.module.code
    x, h0, c0 = torch.randn(3, 5, 4), torch.randn(3, 2, 8), torch.randn(3, 2, 8)
    with torch.no_grad():
        want = c.module.lstm(x, (h0.transpose(0, 1), c0.transpose(0, 1)))[0]
        assert_close(c.module(x, h0, c0), want)


def test_keyword_inputs_go_to_every_repeated_copy() -> None:
    text = ENCODER + "    repeat: 2\n"
    c = _compile(text)
    assert c.graph.nodes[0].inputs == ["x", "pad"]
    code = c.module.enc.code
    assert code.count("src_key_padding_mask = pad") == 2


# ---- a group giving several values ----------------------------------------------------------------

PAIR = """\
name: t
inputs: {x: [4]}
nodes:
  - pair:
      - Linear: {out_features: 4}
      - ReLU
      - side: {Linear: {out_features: 3}, from: x}
    outputs: ['1', side]
  - first: {item: 0}
  - head: {Linear: {out_features: 3}}
  - second: {item: 1, from: pair}
  - add: [head, second]
"""


class Pair(nn.Module):
    """What PAIR says, by hand: a Sequential-like child giving two values."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = nn.ModuleDict({"0": nn.Linear(4, 4), "1": nn.ReLU(), "side": nn.Linear(4, 3)})
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = self.pair["1"](self.pair["0"](x)), self.pair["side"](x)  # (B, 4), (B, 3)
        return self.head(first) + second


def test_a_group_with_outputs_gives_a_tuple_read_by_item() -> None:
    c = _compile(PAIR)
    reference = Pair()
    c.module.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(5, 4)
    with torch.no_grad():
        assert_close(c.module(x), reference(x))
    assert c.graph.node("pair").shape == "((B, 4), (B, 3))"
    assert "return (relu_1, side)" in c.module.pair.code


def test_outputs_belong_on_a_group_and_name_its_nodes() -> None:
    with pytest.raises(SpecError) as err:
        _compile(PAIR.replace("    outputs: ['1', side]\n", "    outputs: ['1', sid]\n"))
    assert str(err.value).startswith("t.yaml:") and "`sid`" in str(err.value)
    with pytest.raises(SpecError, match="only a group has `outputs`"):
        _compile("name: t\ninputs: {x: [4]}\nnodes:\n  - relu: ReLU\n    outputs: [relu]\n")
