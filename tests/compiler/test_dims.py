"""The batch dim is known wherever a layer puts it (issue 9, item 1).

torch returns an LSTM's or GRU's hidden state as (num_layers, B, H) even with batch_first; a
single probe at batch 2 cannot tell that from (B, num_layers, H), and a spec that selected the
"last layer" along the batch dim compiled and returned the wrong tensor. Now every node is
inferred at two batch sizes, shapes read (2, B, 32), and a node that would mix the samples of
a batch is refused where it is written.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netspec
from netspec.errors import ShapeError
from netspec.views.summary import graph_table

LM = """\
name: lm
inputs: {x: [7, 16]}
nodes:
  - lstm: {LSTM: {hidden_size: 32, num_layers: 2}}
  - state: {item: 1, from: lstm}
  - h_n: {item: 0, from: state}
  - last: {select: {dim: DIM, index: -1}, from: h_n}
  - fc: {Linear: {out_features: 3}}
"""


def test_lstm_hidden_state_is_num_layers_first() -> None:
    c = netspec.compile_spec(netspec.load_spec(text=LM.replace("DIM", "0")))
    shapes = {n.name: n.shape for n in c.graph.nodes}
    assert shapes["lstm"] == "((B, 7, 32), ((2, B, 32), (2, B, 32)))"
    assert shapes["h_n"] == "(2, B, 32)" and shapes["last"] == "(B, 32)"
    assert "(2, B, 32)" in graph_table(c)
    assert "# (2, B, 32)" in c.module.code


def test_selecting_the_last_layer_gives_torchs_tensor_at_any_batch_size() -> None:
    torch.manual_seed(0)
    model = netspec.build_model(netspec.load_spec(text=LM.replace("DIM", "0"))).eval()
    x = torch.randn(5, 7, 16)
    with torch.no_grad():
        _, (h_n, _) = model.lstm(x)
        assert torch.equal(model(x), model.fc(h_n[-1]))


def test_selecting_along_the_batch_dim_is_refused_where_it_is_written() -> None:
    """The issue's silent wrong shape: `dim: 1` of (2, B, 32) is the batch."""
    with pytest.raises(ShapeError) as err:
        netspec.compile_spec(netspec.load_spec("lm.yaml", text=LM.replace("DIM", "1")))
    assert str(err.value).startswith(
        "lm.yaml:7:5: nodes[3] (last): select would mix the samples of a batch: "
        "its input is (2, B, 32) and its output (2, 32) has no batch dim"
    )
    assert "the batch is dim 1 of the input" in str(err.value)


@pytest.mark.parametrize(
    "layer,out",
    [
        ("GRU: {hidden_size: 8, num_layers: 3}", "((B, 5, 8), (3, B, 8))"),
        ("RNN: {hidden_size: 8, bidirectional: true}", "((B, 5, 16), (2, B, 8))"),
        # batch_first: false on a batch-first input: torch reads the batch as time, so the state has
        # no batch dim at all -- what the shapes say, instead of a plausible (B, 1, 8)
        ("LSTM: {hidden_size: 8, batch_first: false}", "((B, 5, 8), ((1, 5, 8), (1, 5, 8)))"),
    ],
)
def test_recurrent_layers_report_where_torch_puts_the_batch(layer: str, out: str) -> None:
    text = f"name: r\ninputs: {{x: [5, 4]}}\nnodes:\n  - rnn: {{{layer}}}\n"
    assert netspec.compile_spec(netspec.load_spec(text=text)).graph.nodes[0].shape == out


@pytest.mark.parametrize(
    "node,message",
    [
        ("{sum: 0}", "sum would mix the samples of a batch"),
        ("{cat: {dim: 0}, from: [x, x]}", "cannot concatenate along the batch dim 0"),
        # flatten from 0 folds the sample's dims into the batch (4B): fine inside, refused as an output
        ("{flatten: 0}", r"output `flatten` is \(4B\): its batch still has dims folded into it"),
        ("{mean: [0, 1]}", "mean would mix the samples of a batch"),
    ],
)
def test_ops_over_the_batch_dim_are_refused(node: str, message: str) -> None:
    text = f"name: m\ninputs: {{x: [4]}}\nnodes:\n  - {node}\n"
    with pytest.raises(ShapeError, match=message):
        netspec.compile_spec(netspec.load_spec(text=text))


def test_a_batch_first_false_sequence_keeps_its_batch_where_torch_has_it() -> None:
    """Transposed to (T, B, F) for a batch_first=False LSTM, the batch is dim 1 all the way."""
    text = (
        "name: t\ninputs: {x: [5, 4]}\nnodes:\n  - transpose: {dim0: 0, dim1: 1}\n"
        "  - lstm: {LSTM: {hidden_size: 8, batch_first: false}}\n  - item: 0\n"
    )
    c = netspec.compile_spec(netspec.load_spec(text=text))
    assert [n.shape for n in c.graph.nodes] == ["(5, B, 4)", "((5, B, 8), ((1, B, 8), (1, B, 8)))", "(5, B, 8)"]
    ref = nn.LSTM(4, 8)
    ref.load_state_dict(c.module.lstm.state_dict())
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        torch.testing.assert_close(c.module(x), ref(x.transpose(0, 1))[0])
