"""The ops of ops_index.py against the torch code they stand for (issue 20: the ops traced models use).

Shapes are checked for every op by test_registry.py; here: values, sizes read at run time (a
model compiled at one sequence length runs at another), and one-line refusals of bad subscripts.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError


def _model(nodes: str, inputs: str = "{x: [5, 8]}") -> torch.nn.Module:
    return netspec.build_model(netspec.load_spec(text=f"name: t\ninputs: {inputs}\nnodes:\n{nodes}"))


@pytest.mark.parametrize(
    "node,fn",
    [
        ("{roll: {shifts: [1, -2], dims: [1, 2]}}", lambda x: torch.roll(x, (1, -2), (1, 2))),
        ("{flip: 1}", lambda x: torch.flip(x, [1])),
        ("{cumsum: 1}", lambda x: torch.cumsum(x, 1)),
        ("{cumprod: 2}", lambda x: torch.cumprod(x, 2)),
        ("{argmax: -1}", lambda x: torch.argmax(x, -1)),
        ("{triu: 1}", lambda x: torch.triu(x, 1)),
        ("{tril: 0}", torch.tril),
        ("{tile: [2, 1]}", lambda x: x.repeat(1, 2, 1)),
        ('{einsum: "bij->bji"}', lambda x: x.transpose(1, 2)),
        ('{index: "[:, 1:-1:2, None]"}', lambda x: x[:, 1:-1:2, None]),
        ('{index: "[..., x.size(2) // 2:]"}', lambda x: x[..., 4:]),
        ('{index: "[:, [0, 3]]"}', lambda x: x[:, [0, 3]]),
        ("{arange: 1}", lambda x: torch.arange(x.size(1))),
        ("{unfold: {dim: 2, size: 3, step: 2}}", lambda x: x.unfold(2, 3, 2)),
        ("{repeat_interleave: {repeats: 3, dim: -1}}", lambda x: x.repeat_interleave(3, dim=-1)),
    ],
)
def test_ops_are_the_torch_code(node: str, fn) -> None:
    model = _model(f"  - out: {node}\n")
    x = torch.randn(3, 5, 8)
    assert_close(model(x), fn(x))


def test_einsum_of_two_inputs_and_gather_and_masked_fill() -> None:
    model = _model(
        '  - att: {einsum: "bqd,bkd->bqk", from: [q, k]}\n'
        "  - causal: {triu: 1, from: att}\n"
        "  - mask: {ne: 0.0}\n"
        "  - filled: {masked_fill: -.inf, from: [att, mask]}\n"
        "  - picked: {gather: 2, from: [att, idx]}\n"
        "outputs: [filled, picked]\n",
        "{q: [4, 8], k: [4, 8], idx: {shape: [4, 1], dtype: int64}}",
    )
    q, k = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    idx = torch.randint(0, 4, (2, 4, 1))
    att = torch.einsum("bqd,bkd->bqk", q, k)
    filled, picked = model(q, k, idx)
    assert_close(filled, att.masked_fill(torch.triu(att, 1) != 0, float("-inf")))
    assert_close(picked, torch.gather(att, 2, idx))


def test_an_index_by_another_nodes_size_follows_the_length_at_run_time() -> None:
    """The positional table is cut to the sequence's length when the forward runs, so a model
    compiled at length 5 runs at 7 (a frozen `${x.shape[0]}` would not)."""
    model = _model(
        "  - table: {Parameter: {shape: [1, 50, 8]}}\n"
        '  - pos: {index: "[:, :x.size(1)]", from: table}\n'
        "  - out: {add: [x, pos]}\n"
    )
    for length in (5, 7):
        x = torch.randn(2, length, 8)
        assert_close(model(x), x + model.table[:, :length])
    assert "pos = table[:, :size]" in model.code


def test_an_index_tensor_picks_rows_of_a_table() -> None:
    model = _model(
        '  - table: {Parameter: {shape: [10, 3]}}\n  - rows: {index: "[ids]", from: table}\n',
        "{ids: {shape: [4], dtype: int64}}",
    )
    ids = torch.randint(0, 10, (2, 4))
    assert_close(model(ids), model.table[ids])


def test_expand_and_expand_as_broadcast_without_copying() -> None:
    model = _model(
        "  - token: {Parameter: {shape: [1, 1, 8]}}\n"
        "  - like_x: {expand_as: {like: x}, from: token}\n"
        "  - wide: {expand: [5, -1], from: like_x}\n"
    )
    x = torch.randn(3, 5, 8)
    out = model(x)
    assert_close(out, model.token.expand(3, 5, 8))
    assert out.stride()[:2] == (0, 0)  # a view, as torch's expand


@pytest.mark.parametrize(
    "at,message",
    [
        ('":, 0"', "in brackets"),
        ('"[x.foo(1)]"', "the only call is x.size(dim)"),
        ('"[0.5]"', "is not an index"),
        ('"[:, :nope.size(1)]"', "`nope`"),
        ('"[:, (]"', "cannot parse"),
    ],
)
def test_a_bad_subscript_is_one_line_at_the_node(at: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        _model(f"  - out: {{index: {at}}}\n")
    text = str(info.value)
    assert message in text and "\n" not in text and "nodes[0]" in text


def test_max_and_min_give_values_and_indices_as_torch() -> None:
    model = _model(
        "  - top: {max: 1}\n  - values: {item: 0}\n  - low: {min: {dim: 2, keepdim: true}, from: x}\n  - at: {item: 1}\noutputs: [values, at]\n"
    )
    x = torch.randn(3, 5, 8)
    values, at = model(x)
    assert_close(values, x.max(1)[0])
    assert torch.equal(at, x.min(2, keepdim=True)[1])
    assert "top = torch.max(x, 1, keepdim = False)" in model.code


def test_repeat_interleave_along_the_batch_keeps_each_samples_copies_together() -> None:
    """GCViT's global query, one per window of its sample: (B, 5, 8) -> (4B, 5, 8), folded back
    by a reshape that writes the batch; each sample sees only its own copies."""
    model = _model("  - each: {repeat_interleave: {repeats: 4, dim: 0}}\n  - back: {reshape: [B, 4, 5, 8]}\n")
    for batch in (1, 3):
        x = torch.randn(batch, 5, 8)
        assert_close(model(x), x.repeat_interleave(4, dim=0).reshape(batch, 4, 5, 8))
    assert "(4B, 5, 8)" in model.code


def test_unfold_along_the_batch_is_refused_naming_it() -> None:
    with pytest.raises(SpecError, match="unfold would mix the samples of a batch"):
        _model("  - out: {unfold: {dim: 0, size: 2, step: 1}}\n")


def test_a_grid_of_axis_coordinates_is_torchs_stacked_meshgrid() -> None:
    model = _model(
        "  - rows: {Buffer: {value: [0.0, 1.0, 2.0], persistent: false}}\n"
        "  - cols: {Buffer: {value: [-1.0, 1.0], persistent: false}}\n"
        "  - grid: {grid: xy, from: [rows, cols]}\n"
        "  - out: {add: [x, grid]}\n",
        "{x: [2, 3, 2]}",
    )
    rows, cols = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([-1.0, 1.0])
    x = torch.randn(4, 2, 3, 2)
    assert_close(model(x), x + torch.stack(torch.meshgrid(rows, cols, indexing="xy"), dim=-1))
    ij = _model(
        "  - a: {Buffer: {value: [0.0, 1.0, 2.0]}}\n  - b: {Buffer: {value: [5.0, 6.0]}}\n  - g: {grid: {}, from: [a, b]}\n  - out: {add: [x, g]}\n",
        "{x: [3, 2, 2]}",
    )
    y = torch.randn(2, 3, 2, 2)
    assert_close(ij(y), y + torch.stack(torch.meshgrid(ij.a, ij.b, indexing="ij"), dim=-1))


def test_a_grid_of_a_batched_input_is_refused_naming_the_shapes() -> None:
    with pytest.raises(SpecError, match=r"inputs are 5x8; a grid is of 1-d coordinates without a batch"):
        _model("  - out: {grid: ij}\n")


def test_put_writes_a_copy_of_its_input_as_item_assignment_does() -> None:
    """`put` is `x[at] = v` on a copy: the tensor it read keeps its values (a later node reads it)."""
    model = _model(
        '  - shifted: {put: "[:, 1:, -3:]", from: [x, v]}\n'
        '  - marked: {put: {at: "[..., 0]", value: 7}, from: x}\n'
        "outputs: [shifted, marked, x]\n",
        "{x: [5, 8], v: [4, 1]}",
    )
    x, v = torch.randn(2, 5, 8), torch.randn(2, 4, 1)
    shifted, marked, same = model(x, v)
    want = x.clone()
    want[:, 1:, -3:] = v
    assert_close(shifted, want)
    want = x.clone()
    want[..., 0] = 7
    assert_close(marked, want)
    assert_close(same, x)


@pytest.mark.parametrize(
    "node,message",
    [
        ('{put: "[:, 0]", from: x}', "either as a second input or as `value`"),
        ('{put: {at: "[:, 0]", value: 1}, from: [x, x]}', "either as a second input or as `value`"),
        ('{put: {at: "[:, :x.size(1)]", value: 1}}', "numbers only"),
    ],
)
def test_put_without_one_value_or_with_sizes_is_one_line_at_the_node(node: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        _model(f"  - out: {node}\n")
    text = str(info.value)
    assert message in text and "\n" not in text and "nodes[0]" in text
