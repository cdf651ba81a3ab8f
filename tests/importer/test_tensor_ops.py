"""Traced calls the ops of issue 20 stand for (importer/tensor_ops.py, layer_calls.py): windows
(``x.unfold``), im2col and col2im (``F.unfold``, ``F.fold``), ``repeat_interleave`` (along the
batch: each sample's copies together), ``x.max(dim)``, ``expand`` of a sample, ``type_as``,
``to(device=...)`` and timm's coordinate grid. Each small model is imported, its spec compiled,
its state_dict loaded strictly, and its outputs compared with the model's own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module


def _round_trip(model: nn.Module, shape: tuple[int, ...]) -> str:
    torch.manual_seed(0)
    imported = spec_from_module(model, {"x": shape}, name="m")
    module = compile_spec(load_spec(text=imported.text)).module
    module.load_state_dict(model.state_dict(), strict=True)  # the same keys and shapes
    for batch in (1, 3):
        x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            torch.testing.assert_close(module.eval()(x), model.eval()(x))
    return imported.text


class Halo(nn.Module):
    """Halo attention's overlapping windows: a padded map cut into 4x4 windows every 2 along
    height and width (``x.unfold`` twice), each window's rows broadcast (``expand``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):  # x: (B, 3, 6, 6)
        kv = F.pad(self.conv(x), [1, 1, 1, 1])  # (B, 4, 8, 8)
        windows = kv.unfold(2, 4, 2).unfold(3, 4, 2)  # (B, 4, 3, 3, 4, 4)
        rows = windows.mean(-1, keepdim=True).expand(-1, -1, -1, -1, -1, 2)  # (B, 4, 3, 3, 4, 2)
        return rows.flatten(1)


class Outlook(nn.Module):
    """VOLO's outlook attention in small: im2col by the layer and by the function, weighted,
    summed back with col2im; the largest entry of each column (``x.max(1)[0]``), ``min(dim=)``."""

    def __init__(self) -> None:
        super().__init__()
        self.unfold = nn.Unfold(kernel_size=3, padding=1)
        self.v = nn.Conv2d(2, 2, 1)

    def forward(self, x):  # x: (B, 2, 5, 5)
        cols = self.unfold(self.v(x)) * F.unfold(x, kernel_size=3, padding=1).sigmoid()  # (B, 18, 25)
        folded = F.fold(cols, output_size=(5, 5), kernel_size=3, padding=1)  # (B, 2, 5, 5)
        return (
            folded
            + cols.max(1)[0].view(-1, 1, 5, 5)
            - torch.min(cols, dim=2, keepdim=True).values.mean(1).view(-1, 1, 1, 1)
        )


class WindowAttention(nn.Module):
    """GCViT's window attention: the global query, one per sample, repeated for each of the
    sample's windows (``repeat_interleave`` along the batch, B -> 4B); the local form is given
    the query too and never reads it (its block has no such input)."""

    def __init__(self, use_global: bool) -> None:
        super().__init__()
        self.use_global = use_global
        self.proj = nn.Linear(8, 8)

    def forward(self, x, q_global):  # x: (4B, 4, 8), q_global: (B, 4, 8)
        if self.use_global:
            q = q_global.repeat_interleave(x.shape[0] // q_global.shape[0], dim=0)  # (4B, 4, 8)
            x = x * q.type_as(x)
        return self.proj(x)


class GlobalQuery(nn.Module):
    """Windows of each sample (a reshape folding the batch), a local and a global attention, the
    windows folded back."""

    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(8, 8)
        self.local = WindowAttention(use_global=False)
        self.glob = WindowAttention(use_global=True)

    def forward(self, x):  # x: (B, 16, 8)
        q = self.query(x[:, :4])  # (B, 4, 8)
        windows = x.reshape(-1, 4, 8)  # (4B, 4, 8)
        return self.glob(self.local(windows, q), q).reshape(-1, 16, 8)


def test_windows_of_a_padded_map_and_a_samples_broadcast_round_trip() -> None:
    text = _round_trip(Halo(), (3, 6, 6))
    assert "unfold: {dim: 2, size: 4, step: 2}" in text and "unfold: {dim: 3, size: 4, step: 2}" in text
    assert "expand: [-1, -1, -1, -1, 2]" in text


def test_im2col_col2im_and_max_round_trip() -> None:
    text = _round_trip(Outlook(), (2, 5, 5))
    assert "- Unfold: {kernel_size: 3, padding: 1}\n    from: x" in text  # F.unfold: the layer nn.Unfold
    assert "- Fold: {output_size: 5, kernel_size: 3, padding: 1}" in text
    assert "max: 1" in text and "min: {dim: 2, keepdim: true}" in text


def test_a_per_sample_query_repeated_for_its_windows_round_trips() -> None:
    text = _round_trip(GlobalQuery(), (16, 8))
    assert "- repeat_interleave: {repeats: 4, dim: 0}\n        from: q_global" in text
    local = text.split("  WindowAttention:")[1].split("  WindowAttention_2:")[0]
    assert "inputs:" not in local  # the local form never reads the query: its block takes x only
    assert "- local: {WindowAttention: {}}\n  - glob: {WindowAttention_2: {}}\n    from: [local, query]" in text


class Grid(nn.Module):
    """timm's rotary grid (``_build_grid``, which torch.fx keeps whole) added to a map."""

    def forward(self, x):  # x: (B, 3, 4, 2)
        from timm.layers import pos_embed_sincos  # its global: the function torch.fx keeps whole

        size = [x.shape[1], x.shape[2]]  # read from x: fx records the call (of numbers only, it runs it)
        grid = pos_embed_sincos._build_grid(size, grid_type="centered", grid_indexing="xy", normalize_coords="max")
        return x + grid.to(device=x.device, dtype=x.dtype)


def test_timms_coordinate_grid_is_its_axes_and_the_grid_op() -> None:
    pytest.importorskip("timm")
    text = _round_trip(Grid(), (3, 4, 2))
    assert "grid: xy" in text and "persistent: false" in text


class Meshgrid(nn.Module):
    """``torch.meshgrid``'s tuple unpacked (gemma4's default patch coordinates), in either indexing,
    the grids flattened and stacked, mixed into the features by a linear layer."""

    def __init__(self, indexing: str) -> None:
        super().__init__()
        self.indexing = indexing
        self.proj = nn.Linear(2, 5)

    def forward(self, x):  # x: (B, 12, 5)
        ys, xs = torch.arange(x.shape[1] // 4), torch.arange(x.shape[1] // 3) * 0.5  # sizes read: fx records them
        grid_a, grid_b = torch.meshgrid(ys.float(), xs, indexing=self.indexing)  # (3, 4) "ij", (4, 3) "xy"
        coords = torch.stack([grid_b.flatten(), grid_a.flatten()], dim=-1)  # (12, 2), the second grid first
        return x + self.proj(coords)  # (B, 12, 5)


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_a_meshgrids_grids_are_the_grid_op_read_piece_by_piece(indexing: str) -> None:
    model = Meshgrid(indexing)
    text = _round_trip(model, (12, 5))
    assert "grid:" in text and "select" in text  # the grids stacked last, each read as a select
    with torch.no_grad():  # the reference itself differs between the two: the test sees the indexing
        other = Meshgrid("xy" if indexing == "ij" else "ij")
        other.load_state_dict(model.state_dict())
        assert not torch.allclose(model(torch.zeros(1, 12, 5)), other(torch.zeros(1, 12, 5)))


def test_a_meshgrid_of_a_tensor_along_the_batch_is_refused_in_one_line() -> None:
    with pytest.raises(SpecError) as info:
        spec_from_module(
            Calls(lambda x: torch.meshgrid(x[:, 0, 0], x[:, 0, 1], indexing="ij")[0]), {"x": (4, 6)}, name="m"
        )
    assert "`torch.meshgrid` of a tensor along the batch has no spec op" in str(info.value)


class OneHot(nn.Module):
    """Gemma4's position table: positions (from sizes) one-hot, cast to the table's dtype with
    ``.to(table)`` and multiplied by it."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(6, 5))

    def forward(self, x):  # x: (B, 4, 5)
        pos = torch.arange(x.shape[1]).clamp(min=1) + 1  # (4,): 2, 2, 3, 4
        hot = F.one_hot(pos, num_classes=6).to(self.table)  # (4, 6)
        return x + hot @ self.table  # (B, 4, 5)


def test_a_one_hot_of_positions_is_the_one_hot_op() -> None:
    text = _round_trip(OneHot(), (4, 5))
    assert "one_hot: 6" in text


class Calls(nn.Module):
    """One call, given as a function of x."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize(
    "fn,line",
    [
        (lambda x: x.unfold(0, 1, 1), "`unfold` along the batch dim has no spec op (it would mix the samples)"),
        (lambda x: x.repeat_interleave(2), "`repeat_interleave` other than by a number along a dim has no spec op"),
        (lambda x: x.max(), "`max` over every dim has no spec op (it would mix the samples)"),
        (lambda x: x.max(0), "`max` along the batch dim has no spec op (it would mix the samples)"),
    ],
)
def test_calls_that_would_mix_the_samples_are_refused_in_one_line(fn, line: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_module(Calls(fn), {"x": (4, 6)}, name="m")
    assert line in str(info.value) and "\n" not in str(info.value)


class ResponseNorm(nn.Module):
    """ConvNeXt v2's (and CSATv2's) global response norm, channels last: a 2-norm over the
    spatial dims, divided by its mean over channels, then ``torch.addcmul``'s affine."""

    def __init__(self, channels: int = 6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels))
        self.bias = nn.Parameter(torch.randn(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        x_g = x.norm(p=2, dim=(1, 2), keepdim=True)  # (B, 1, 1, C)
        x_n = x_g / (x_g.mean(dim=-1, keepdim=True) + 1e-6)
        return x + torch.addcmul(self.bias.view(1, 1, 1, -1), self.weight.view(1, 1, 1, -1), x * x_n)


def test_a_norm_along_dims_and_addcmul_are_the_norm_mul_and_add_ops() -> None:
    text = _round_trip(ResponseNorm(), (4, 5, 6))
    assert "  - norm: {dim: [1, 2], keepdim: true}\n" in text  # p: 2 is the default
    assert "mul: [" in text


def test_the_norm_op_is_torchs() -> None:
    spec = "netspec: 1\nname: t\ninputs: {x: [3, 4]}\nnodes:\n  - n: {norm: {dim: 2, p: 3.0, keepdim: true}}\n"
    module = compile_spec(load_spec(text=spec)).module
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(module(x), torch.norm(x, p=3.0, dim=2, keepdim=True))


class Rotary(nn.Module):
    """timm's rotary embedding: a non-persistent table of bands, turned into sines and cosines."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("bands", torch.linspace(1.0, 4.0, 4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.bands.cos()


class ReadsTheBands(nn.Module):
    """DeepSeek's and Qwen3's ViT read ``self.rope.bands`` (via a method) and call the child too:
    the table is in no state_dict, so it is a Buffer of the parent's, its value the child's."""

    def __init__(self) -> None:
        super().__init__()
        self.rope = Rotary()
        self.norm = nn.Module()
        self.weight = nn.Parameter(torch.randn(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.rms_norm(x, (4,), self.weight, 1e-6)
        return self.rope(x) + self.rope.bands * x.new_ones(x.shape[1], 1)  # (B, T, 4)


def test_a_called_childs_table_outside_the_state_dict_and_rms_norm_round_trip() -> None:
    text = _round_trip(ReadsTheBands(), (3, 4))
    assert "  - rope_bands: {Buffer: {value: [1.0, 2.0, 3.0, 4.0], persistent: false}}\n" in text
    assert "rms_norm: {normalized_shape: [4], eps: 1.0e-06}" in text


def test_the_rms_norm_op_is_torchs() -> None:
    spec = (
        "netspec: 1\nname: t\ninputs: {x: [3, 4]}\nnodes:\n  - w: {Parameter: {shape: [4]}}\n"
        "  - n: {rms_norm: {normalized_shape: [4]}, from: [x, w]}\n"
    )
    module = compile_spec(load_spec(text=spec)).module
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(module(x), F.rms_norm(x, (4,), module.w))


class DtypeOnly(nn.Module):
    """Gemma4's rotary table: given ``x`` for its dtype and device alone, and the positions."""

    def forward(self, x, pos):
        return (pos.float() * 0.5).cos().to(device=x.device, dtype=x.dtype)


class UsesRotary(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rotary, self.proj = DtypeOnly(), nn.Linear(4, 4)

    def forward(self, x):  # x: (B, 3, 4)
        return self.proj(x) * self.rotary(x, x * 2)


def test_a_module_given_a_tensor_for_its_dtype_and_device_alone_is_not_given_it() -> None:
    text = _round_trip(UsesRotary(), (3, 4))
    assert "  DtypeOnly:" in text and "inputs: [pos]" in text
