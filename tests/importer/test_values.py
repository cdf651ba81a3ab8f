"""Values the importer reads that are not one tensor: a number that follows the batch size given
to a module (XCiT's ``pos_embed(B, H, W)``, EdgeNeXt's ``pos_embd((B, H, W))``), a reshape that
keeps dims in front of the batch (SAM's ``qkv.reshape(3, B * heads, N, -1)``), a tuple another
module returns passed on whole (SelecSLS's, PiT's blocks), a dict passed on whole (torchvision's
LRASPP head reading its backbone's features by key), and a module that returns sizes beside
its tensors (XCiT's ``x, (Hp, Wp)``). Each hand-written module is imported, its spec compiled,
its state_dict loaded strictly and its outputs compared at two batch sizes and two input sizes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netspec.api import compile_spec, load_spec
from netspec.importer.api import spec_from_module
from netspec.importer.check import other_size
from netspec.importer.trace import example_inputs


def _round_trip(model: nn.Module, inputs: dict[str, tuple[int, ...]], free: bool | None = True) -> str:
    """Import, then compare by hand at batch 3 and 4 at the declared size and, where the spec
    stays ``free`` of its input size, at the round trip's second size (``False``: the round trip
    found the spec right at its size only; ``None``: the model itself takes no other size)."""
    imported = spec_from_module(model, inputs, name="m")
    assert imported.checked is not None and imported.checked.tensors == len(model.state_dict())
    if free is not None:
        assert (imported.checked.fixed_by is None) == free, imported.checked.fixed_by
    sizes = [inputs, {k: other_size(v) for k, v in inputs.items()}] if free else [inputs]
    for at in sizes:
        overrides = [f"inputs.{k}.shape={list(v)}" for k, v in at.items()] if at != inputs else []
        module = compile_spec(load_spec(text=imported.text, overrides=overrides)).module
        module.load_state_dict(model.state_dict(), strict=True)
        for batch in (3, 4):
            xs = example_inputs(model, at, None, batch, torch.Generator().manual_seed(batch))
            with torch.no_grad():
                want, got = model.eval()(*xs), module.eval()(*xs)
            torch.testing.assert_close(got, want)
    return imported.text


# ---- a value that follows the batch size ---------------------------------------------------


class Fourier(nn.Module):
    """XCiT's PositionalEncodingFourier: given the batch size and the grid as numbers, no tensor."""

    def __init__(self, hidden: int = 8, dim: int = 16) -> None:
        super().__init__()
        self.proj = nn.Conv2d(hidden * 2, dim, 1)
        self.hidden = hidden

    def forward(self, B: int, H: int, W: int) -> torch.Tensor:
        device = self.proj.weight.device  # read for where to compute, not as a value
        y = torch.arange(1, H + 1, device=device).to(torch.float32).unsqueeze(1).repeat(1, 1, W)  # (1, H, W)
        x = torch.arange(1, W + 1, device=device).to(torch.float32).repeat(1, H, 1)  # (1, H, W)
        y, x = y / (y[:, -1:, :] + 1e-6) * 2 * math.pi, x / (x[:, :, -1:] + 1e-6) * 2 * math.pi
        t = torch.arange(self.hidden, device=device).to(torch.float32)
        t = 10000.0 ** (2 * torch.div(t, 2, rounding_mode="floor") / self.hidden)  # (hidden,)
        px, py = x[:, :, :, None] / t, y[:, :, :, None] / t  # (1, H, W, hidden)
        px = torch.stack([px[:, :, :, 0::2].sin(), px[:, :, :, 1::2].cos()], dim=4).flatten(3)
        py = torch.stack([py[:, :, :, 0::2].sin(), py[:, :, :, 1::2].cos()], dim=4).flatten(3)
        pos = torch.cat((py, px), dim=3).permute(0, 3, 1, 2)  # (1, 2 * hidden, H, W)
        return self.proj(pos).repeat(B, 1, 1, 1)  # (B, dim, H, W)


class MaskFourier(nn.Module):
    """EdgeNeXt's: given the shape ``(B, H, W)``, it counts positions over a mask of ones."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.proj = nn.Conv2d(2, dim, 1)

    def forward(self, shape: tuple[int, int, int]) -> torch.Tensor:
        ones = ~torch.zeros(shape).to(device=self.proj.weight.device, dtype=torch.bool)  # (B, H, W)
        y, x = ones.cumsum(1, dtype=torch.float32), ones.cumsum(2, dtype=torch.float32)
        return self.proj(torch.stack([y / y[:, -1:, :], x / x[:, :, -1:]], dim=1))  # (B, dim, H, W)


class PatchEmbed(nn.Module):
    """XCiT's ConvPatchEmbed: the tokens and, beside them, the grid's size as numbers."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 4, stride=4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        Hp, Wp = x.shape[2], x.shape[3]
        return x.flatten(2).transpose(1, 2), (Hp, Wp)  # (B, N, dim), (Hp, Wp)


class XCiTLike(nn.Module):
    def __init__(self, mask: bool = False) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.pos_embed = MaskFourier() if mask else Fourier()
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        x, (Hp, Wp) = self.patch_embed(x)
        given = ((B, Hp, Wp),) if isinstance(self.pos_embed, MaskFourier) else (B, Hp, Wp)
        pos = self.pos_embed(*given).reshape(B, -1, x.shape[1]).permute(0, 2, 1)  # (B, N, dim)
        return self.head(x + pos)


@pytest.mark.parametrize("mask", [False, True], ids=["numbers", "shape"])
def test_a_module_given_the_batch_size_reads_it_from_the_tensor_it_came_from(mask: bool) -> None:
    """The batch size is read from `x` when the forward runs (the module is given `x` in its
    place); the grid's size, a number, pins the spec to its input size, as it pins the model."""
    text = _round_trip(XCiTLike(mask), {"x": (3, 16, 16)}, free=False)
    assert "- pos_embed: {Fourier: {}}\n    from: x" in text or "- pos_embed: {MaskFourier: {}}\n    from: x" in text
    assert "expand_batch" in text


class Positions(nn.Module):
    """A learnt table for every sample: the batch size is all it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(1, 4, 1))

    def forward(self, batch: int) -> torch.Tensor:
        return self.table.repeat(batch, 1, 1)  # (batch, 4, 1)


class BatchArgument(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos = Positions()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos(x.shape[0])


def test_the_batch_size_alone_keeps_the_spec_free_of_its_input_size() -> None:
    text = _round_trip(BatchArgument(), {"x": (4, 8)})  # compared at (4, 16) too
    assert "    inputs: [batch]\n" in text and "op: expand_batch\n        args: {like: batch}" in text


# ---- a reshape that keeps dims in front of the batch --------------------------------------


class SamAttention(nn.Module):
    """SAM's attention: the heads folded into the batch behind the q/k/v dim."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.qkv, self.proj, self.heads = nn.Linear(dim, dim * 3), nn.Linear(dim, dim), heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, heads, N, d)
        q, k, v = qkv.reshape(3, B * self.heads, N, -1).unbind(0)  # (B * heads, N, d) each
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).view(B, self.heads, N, -1).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


def test_a_reshape_behind_dims_in_front_of_the_batch_moves_them_around_a_batch_first_reshape() -> None:
    text = _round_trip(SamAttention(), {"x": (6, 16)}, free=None)  # its Linear takes 16 channels only
    assert "{permute: [1, 2, 3, 4, 0]}" in text and "{reshape: [2B, 6, 8, 3]}" in text
    assert "{permute: [3, 0, 1, 2]}" in text


# ---- a tuple another module returns, passed on whole ---------------------------------------


class ListBlock(nn.Module):
    """SelecSLS's block: a list in, a list out; the first makes the skip, the others carry it."""

    def __init__(self, c: int, first: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c if first else 2 * c, c, 3, padding=1)
        self.first = first

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.first:
            out = self.conv(x[0]).relu()
            return [out, out]
        return [self.conv(torch.cat([x[0], x[1]], 1)).relu(), x[1]]


class ListChain(nn.Sequential):
    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        for module in self:
            x = module(x)
        return x


class Select(nn.Module):
    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return x[0]


class SelecSLSLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.features = ListChain(ListBlock(4, True), ListBlock(4, False), ListBlock(4, False))
        self.select = Select()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.select(self.features([self.stem(x)])).mean((2, 3))


def test_a_tuple_another_module_returns_is_given_by_its_items() -> None:
    """Each block takes the previous one's tensors by name (`item` nodes); the selector, which
    reads only the first, is given only that one."""
    text = _round_trip(SelecSLSLike(), {"x": (3, 8, 8)})
    assert "    inputs: [x_1, x_2]\n" in text  # the blocks after the first take the two tensors
    assert "        from: [n0_0, n0_1]\n" in text and "      - n0_1: {item: 1}\n        from: '0'\n" in text
    assert "  - features_0: {item: 0}\n  - mean" in text  # `select` reads x[0] only: no item 1


# ---- a dict another module returns, passed on whole ----------------------------------------


class Features(nn.Module):
    """torchvision's IntermediateLayerGetter: a dict of two stages' outputs, one key unread."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.stem(x).relu()
        high = self.down(low).relu()
        return {"low": low, "high": high, "unused": high.sigmoid()}


class TwoKeyHead(nn.Module):
    """LRASPP's head: reads the dict by key, the second key first."""

    def __init__(self) -> None:
        super().__init__()
        self.high_proj = nn.Conv2d(6, 4, 1)
        self.low_proj = nn.Conv2d(4, 4, 1)

    def forward(self, input: dict[str, torch.Tensor]) -> torch.Tensor:
        high = nn.functional.interpolate(self.high_proj(input["high"]), scale_factor=2.0, mode="nearest")
        return self.low_proj(input["low"]) + high


class DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = Features()
        self.classifier = TwoKeyHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


def test_a_dict_another_module_returns_is_given_by_its_keys() -> None:
    """The head takes the tensors it reads as inputs named by their keys, given by `item` nodes;
    the key it never reads is given to nothing."""
    text = _round_trip(DictNet(), {"x": (3, 8, 8)})
    assert "  TwoKeyHead:" in text and "    inputs: [low, high]\n" in text
    assert "  - backbone_low: {item: 0}\n  - backbone_high: {item: 1}\n    from: backbone\n" in text
    assert "    from: [backbone_low, backbone_high]\n" in text and "item: 2" not in text


class MadeDict(DictNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        return self.classifier({"high": features["high"], "low": features["low"] * 2})


def test_a_dict_the_forward_makes_is_given_by_its_keys() -> None:
    text = _round_trip(MadeDict(), {"x": (3, 8, 8)})
    assert "    inputs: [high, low]\n" in text and "    from: [getitem, mul]\n" in text


# ---- sizes returned beside tensors -----------------------------------------------------------


class Embed(nn.Module):
    """Tensors and sizes: the caller reads the sizes as numbers, the block returns the tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 2, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor]:
        x = self.proj(x)
        return x.flatten(2), (x.shape[2], x.shape[3]), x.mean((2, 3))


class Sizes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = Embed()
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, (h, w), pooled = self.embed(x)
        return self.head(tokens.reshape(-1, 8, h, w).amax((2, 3)) + pooled)


def test_a_module_returning_sizes_beside_tensors_returns_the_tensors() -> None:
    text = _round_trip(Sizes(), {"x": (3, 8, 8)}, free=False)  # h and w are numbers in the reshape
    assert "- embed_0: {item: 0}\n  - embed_2: {item: 1}\n    from: embed\n" in text


class RelativeBias(nn.Module):
    """SAM's ``get_rel_pos``: table rows picked by float coordinates made integers (``.long()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.rel = nn.Parameter(torch.randn(7, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]  # a size: the positions are computed in the traced forward
        coords = torch.arange(n, dtype=torch.float32)[:, None] - torch.arange(n, dtype=torch.float32)[None, :] + n - 1
        return x + self.rel[coords.long()].sum(-1)  # (B, 4, 4) + (4, 4)


def test_float_coordinates_made_integers_pick_table_rows() -> None:
    text = _round_trip(RelativeBias(), {"x": (4, 4)}, free=None)  # the table is 4x4: x's size only
    assert "- long: {to: int64}\n" in text
