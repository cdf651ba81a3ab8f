"""Sharing (issue 20): ``same_as`` calls another node's module again, ``tie`` makes a parameter
another's. Each is compared with the hand-written module it describes, with the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError


def _build(text: str) -> nn.Module:
    return netspec.build_model(netspec.load_spec(text=text))


class Siamese(nn.Module):
    """One tower applied to both images (its weights once in the state_dict), then a head on |a - b|."""

    def __init__(self) -> None:
        super().__init__()
        self.tower = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8))
        self.head = nn.Linear(8, 1)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        a, b = self.tower(left), self.tower(right)
        return self.head(torch.abs(a - b))


SIAMESE = """name: siamese
inputs: {left: [1, 8, 8], right: [1, 8, 8]}
nodes:
  - tower: [{Conv2d: {out_channels: 4, kernel_size: 3}}, ReLU, Flatten, {Linear: {out_features: 8}}]
    from: left
  - tower_right: {same_as: tower, from: right}
  - diff: {sub: [tower, tower_right]}
  - dist: abs
  - head: {Linear: {out_features: 1}}
"""


def test_a_siamese_net_calls_one_tower_twice() -> None:
    torch.manual_seed(0)
    reference, model = Siamese(), _build(SIAMESE)
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict())
    left, right = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
    assert_close(model(left, right), reference(left, right))
    assert "tower_right = self.tower(right)" in model.code


def test_gradients_of_both_calls_reach_the_one_module() -> None:
    model = _build(SIAMESE)
    left = torch.rand(2, 1, 8, 8)
    model(left, left).sum().backward()  # equal towers: |a - b| is 0, its gradient at 0 is 0
    model.zero_grad()
    model(left, torch.rand(2, 1, 8, 8)).sum().backward()
    conv = model.tower.get_submodule("0")
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


class TiedLM(nn.Module):
    """pytorch/examples' word language model ties the decoder to the encoder: one weight."""

    def __init__(self, ntoken: int = 50, ninp: int = 16) -> None:
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.GRU(ninp, ninp, batch_first=True)
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.encoder.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.encoder(tokens))
        return self.decoder(out)


TIED = """name: tied
inputs: {tokens: {shape: [7], dtype: int64}}
nodes:
  - encoder: {Embedding: {num_embeddings: 50, embedding_dim: 16}}
  - rnn: {GRU: {hidden_size: 16, batch_first: true}}
  - out: {item: 0}
  - decoder: {Linear: {out_features: 50}, tie: {weight: encoder.weight}}
"""


def test_tied_embeddings_are_one_parameter_under_both_keys() -> None:
    torch.manual_seed(0)
    reference, model = TiedLM(), _build(TIED)
    assert list(model.state_dict()) == list(reference.state_dict())  # both keys, as torch writes them
    assert model.decoder.weight is model.encoder.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    model.load_state_dict(reference.state_dict())
    tokens = torch.randint(0, 50, (2, 7))
    assert_close(model(tokens), reference(tokens))
    model(tokens).sum().backward()  # one gradient, from both uses
    assert model.encoder.weight.grad is model.decoder.weight.grad


def test_a_block_and_a_parameter_node_can_be_shared_and_tied() -> None:
    model = _build(
        "name: t\ninputs: {a: [4], b: [4]}\n"
        "blocks:\n  MLP:\n    nodes: [{Linear: {out_features: 4}}, Tanh]\n"
        "nodes:\n"
        "  - w: {Parameter: {shape: [4, 4]}}\n"
        "  - f: {MLP: {}, from: a}\n"
        "  - g: {same_as: f, from: b}\n"
        "  - h: {Linear: {out_features: 4, bias: false}, from: g, tie: {weight: w}}\n"
        "  - out: {add: [f, h]}\n"
    )
    assert model.h.weight is model.w
    a, b = torch.rand(2, 4), torch.rand(2, 4)
    mlp = model.f
    assert_close(model(a, b), mlp(a) + mlp(b) @ model.w.T)
    assert [k for k in model.state_dict() if k.startswith("g")] == []


@pytest.mark.parametrize(
    "nodes,message",
    [
        ("  - fc1: {Linear: {out_features: 4}}\n  - again: {same_as: fc2}\n", "did you mean `fc1`"),
        ("  - r: relu\n  - again: {same_as: r}\n", "an op, which has no module"),
        ("  - fc: {Linear: {out_features: 3}}\n  - again: {same_as: fc}\n", "in_features=3, not 4"),
        ("  - again: {same_as: fc}\n  - fc: {Linear: {out_features: 4}, from: x}\n", "not a node before this one"),
        ("  - fc: {Linear: {out_features: 4}}\n  - again: {same_as: fc, freeze: true}\n", "takes no `freeze`"),
        (
            "  - emb: {Embedding: {num_embeddings: 9, embedding_dim: 4}, from: t}\n"
            "  - fc: {Linear: {out_features: 5}, from: x, tie: {weight: emb.weight}}\n"
            "outputs: [fc, emb]\n",
            "tied parameters have the same shape",
        ),
        ("  - fc: {Linear: {out_features: 4}, tie: {weight: nope.weight}}\n", "is not a parameter"),
        ("  - fc: {Linear: {out_features: 4}, tie: {wieght: fc.bias}}\n", "did you mean `fc.weight`"),
    ],
)
def test_bad_sharing_is_one_line_at_the_node(nodes: str, message: str) -> None:
    inputs = "{x: [4], t: {shape: [2], dtype: int64}}" if "from: t" in nodes else "{x: [4]}"
    with pytest.raises(SpecError) as info:
        _build(f"name: t\ninputs: {inputs}\nnodes:\n{nodes}")
    text = str(info.value)
    assert message in text and "\n" not in text and "nodes[" in text, text


def test_a_repeat_ties_a_copy_and_a_buffer_refuses_freeze() -> None:
    model = _build(
        "name: t\ninputs: {x: [4]}\nnodes:\n"
        "  - first: {Linear: {out_features: 4}}\n"
        "  - stack: {Linear: {out_features: 4}, repeat: 2, tie: {1.weight: first.weight}}\n"
    )
    assert model.stack.get_submodule("1").weight is model.first.weight
    assert sum(p.numel() for p in model.parameters()) == 3 * 20 - 16
    with pytest.raises(SpecError, match="nothing to stop"):
        _build("name: t\ninputs: {x: [2]}\nnodes:\n  - b: {Buffer: [1.0, 2.0], freeze: true}\n  - add: [x, b]\n")


class TiedCalledTwice(nn.Module):
    """CoaT's `cpe2`: a module whose weight is another's (`fc.weight = emb.weight`), called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.fc = nn.Linear(4, 4), nn.Linear(4, 4)
        self.fc.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc(self.emb(x)))


def test_a_node_with_a_tied_parameter_can_be_called_again() -> None:
    torch.manual_seed(0)
    model = _build(
        "name: t\ninputs: {x: [4]}\nnodes:\n  - emb: {Linear: {out_features: 4}}\n"
        "  - fc: {Linear: {out_features: 4}, tie: {weight: emb.weight}}\n  - fc_1: {same_as: fc}\n"
    )
    reference = TiedCalledTwice()
    model.load_state_dict(reference.state_dict(), strict=True)
    assert model.fc.weight is model.emb.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    x = torch.randn(3, 4)
    assert_close(model(x), reference(x))
