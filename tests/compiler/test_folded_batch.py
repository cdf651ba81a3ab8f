"""A batch with dims folded into it (windows into samples, issue 20): `reshape: [64B, ...]` folds,
`reshape: [B, ...]` unfolds; shapes read 64B; the forward is Swin's window partition and reverse;
what would mix samples (interleaving, a folded output, a layer changing the rows) is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import netspec
from netspec.compiler.dims import Probe, check_batch_kept, input_probe
from netspec.errors import ShapeError

# Swin's window attention on a (B, 8, 8, 16) map in 2x2 windows of 4x4: partition, attention, reverse
WINDOWS = """\
name: windows
params: {ws: 4, n: 2}
inputs: {x: [8, 8, 16]}
nodes:
  - norm: {LayerNorm: {}}
  - grid: {reshape: [$n, $ws, $n, $ws, 16]}
  - cells: {permute: [0, 1, 3, 2, 4, 5]}
  - windows: {reshape: ["${n * n}B", "${ws * ws}", 16]}
  - attn: {MultiheadAttention: {num_heads: 2}, from: [windows, windows, windows]}
  - out: {item: 0}
  - proj: {Linear: {out_features: 16}}
  - unfolded: {reshape: [B, $n, $n, $ws, $ws, 16]}
  - back: {permute: [0, 1, 3, 2, 4, 5]}
  - merged: {reshape: [8, 8, 16]}
  - add: [x, merged]
"""


class WindowAttention(nn.Module):
    """The same block as a person writes it in torch (timm's window_partition / window_reverse)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = self.norm(x).view(b, 2, 4, 2, 4, 16).permute(0, 1, 3, 2, 4, 5).reshape(b * 4, 16, 16)  # (4B, 16, 16)
        y = self.proj(self.attn(y, y, y)[0])  # (4B, 16, 16): attention inside each window
        y = y.view(b, 2, 2, 4, 4, 16).permute(0, 1, 3, 2, 4, 5).reshape(b, 8, 8, 16)  # (B, 8, 8, 16)
        return x + y


def test_window_attention_computes_the_torch_module_at_any_batch_size() -> None:
    torch.manual_seed(0)
    c = netspec.compile_spec(netspec.load_spec(text=WINDOWS))
    shapes = {n.name: n.shape for n in c.graph.nodes}
    assert shapes["windows"] == "(4B, 16, 16)" and shapes["proj"] == "(4B, 16, 16)"
    assert shapes["unfolded"] == "(B, 2, 2, 4, 4, 16)" and shapes["add"] == "(B, 8, 8, 16)"
    # the forward reads like the torch code: the batch's place is the -1 the sizes fix
    assert "windows = torch.reshape(cells, (-1, 16, 16))" in c.module.code
    assert "# (4B, 16, 16)" in c.module.code
    ref = WindowAttention().eval()
    c.module.load_state_dict(ref.state_dict(), strict=True)
    for batch in (1, 5):  # other sizes than the two shapes were inferred at
        x = torch.randn(batch, 8, 8, 16)
        with torch.no_grad():
            torch.testing.assert_close(c.module.eval()(x), ref(x))


def test_flatten_from_the_batch_folds_and_a_written_reshape_unfolds() -> None:
    """Hiera's `x.flatten(0, 1)`: (B, 4, 6) -> (4B, 6), a per-row layer, then back to (B, 4, 6)."""
    text = (
        "name: f\ninputs: {x: [4, 6]}\nnodes:\n  - rows: {flatten: {start_dim: 0, end_dim: 1}}\n"
        "  - bn: {BatchNorm1d: {}}\n  - back: {reshape: [B, 4, 6]}\n"
    )
    c = netspec.compile_spec(netspec.load_spec(text=text))
    assert [n.shape for n in c.graph.nodes] == ["(4B, 6)", "(4B, 6)", "(B, 4, 6)"]
    bn = nn.BatchNorm1d(6).eval()
    bn.load_state_dict(c.module.bn.state_dict())
    x = torch.randn(3, 4, 6)
    with torch.no_grad():
        torch.testing.assert_close(c.module.eval()(x), bn(x.flatten(0, 1)).reshape(3, 4, 6))


def test_an_output_that_keeps_a_folded_batch_is_refused_at_its_node() -> None:
    text = WINDOWS.split("  - unfolded")[0]  # ends at proj: (4B, 16, 16)
    with pytest.raises(ShapeError) as err:
        netspec.compile_spec(netspec.load_spec("win.yaml", text=text))
    assert str(err.value) == (
        "win.yaml:11:5: nodes[6] (proj): output `proj` is (4B, 16, 16): its batch still has dims folded "
        "into it (4 rows per sample); unfold it before the output, e.g. `reshape: [B, 4, 16, 16]`"
    )


@pytest.mark.parametrize(
    "node,message",
    [
        # the sizes do not hold a sample's values: 4 windows of 15x16 are not 8x8x16
        (
            '{reshape: ["4B", 15, 16]}',
            r"reshape: \[4B, 15, 16\] holds 960 values per sample; the input 8x8x16 holds 1024",
        ),
        # folding without writing the batch: the fix is the written form
        ("{reshape: [16, 16]}", r"holds 256 values per sample; .*write it: `reshape: \[4B, 16, 16\]`"),
        ("{reshape: [4B, -1, 16]}", r"writes the batch, so it needs every other size \(no -1\)"),
        ("{reshape: [8, 8B, 16]}", r"`8B` is size 1: only the first size can be the batch"),
        ("{reshape: [Bx4, 16, 16]}", r"`Bx4` is no size: the batch is written `B`, or `64B`"),
        # dims in front of the batch read with it: the samples would interleave
        ('{permute: [1, 0, 2, 3]}\n  - {reshape: ["8B", 8, 16]}', r"would interleave the samples of a batch"),
        ("{permute: [1, 0, 2, 3]}\n  - {flatten: {start_dim: 0, end_dim: 1}}", r"would interleave the samples"),
    ],
)
def test_a_fold_that_does_not_keep_the_samples_apart_is_refused(node: str, message: str) -> None:
    text = f"name: m\ninputs: {{x: [8, 8, 16]}}\nnodes:\n  - {node}\n  - {{flatten: 1}}\n"
    with pytest.raises(ShapeError, match=message):
        netspec.compile_spec(netspec.load_spec(text=text))


def test_only_a_reshape_changes_the_rows_per_sample() -> None:
    """A layer given a folded batch keeps it, and a mean over a row's dim keeps it too."""
    text = (
        "name: m\ninputs: {x: [8, 16]}\nnodes:\n  - rows: {reshape: [8B, 16]}\n  - fc: {Linear: {out_features: 4}}\n"
        "  - {mean: 1}\n  - {reshape: [B, 8]}\n"
    )
    c = netspec.compile_spec(netspec.load_spec(text=text))
    assert [n.shape for n in c.graph.nodes] == ["(8B, 16)", "(8B, 4)", "(8B)", "(B, 8)"]


def test_a_node_other_than_a_reshape_that_changes_the_rows_is_refused() -> None:
    """What the shapes say of any node (a layer or op of a later version, a custom module)."""
    x = input_probe((4,), torch.float32)
    pairs = Probe(x.value.reshape(-1, 2), x.twin.reshape(-1, 2))  # (2B, 2): rows of two samples' halves
    with pytest.raises(ShapeError, match=r"holds 2 rows per sample in a dim; only reshape, view and flatten fold"):
        check_batch_kept([x], pairs, "custom")
    check_batch_kept([x], pairs, "reshape", folds=True)  # a reshape's own check keeps the samples apart


def test_the_swin_example_of_the_spec_language_page_compiles_as_its_comments_say() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "spec-language.md").read_text()
    block = page.split("### Folding dims into the batch")[1].split("```yaml\n")[1].split("```")[0]
    c = netspec.compile_spec(netspec.load_spec(text="name: swin\n" + block))
    shapes = {n.name: n.shape for n in c.graph.nodes}
    assert shapes["windows"] == "(64B, 49, 96)" and shapes["merged"] == "(B, 56, 56, 96)"
    assert "windows = torch.reshape(cells, (-1, 49, 96))" in c.module.code
