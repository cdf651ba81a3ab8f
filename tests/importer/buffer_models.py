"""Small models whose forward reads buffers, a child's tensors and torch functions the spec has
ops for (issue 20): each is imported, compiled, loaded strictly and compared with itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def swin_index(h: int, w: int) -> torch.Tensor:
    """The relative position index as torchvision's Swin builds it, written out (the reference
    for ``relative_position_index_``)."""
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()  # (N, N, 2)
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)  # (N, N)


class Normalised(nn.Module):
    """Persistent buffers read in forward: a small one (its values written in the spec) and one
    of more than 4096 values (its values come from the state_dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1), persistent=False)
        self.register_buffer("table", torch.rand(3, 40, 40))
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):  # x: (B, 3, 40, 40)
        return self.conv((x - self.mean) / self.std + self.table)


class WindowBias(nn.Module):
    """Swin's relative position bias: a non-persistent index table (read whole and as
    ``index.view(-1)``, which fx computes while tracing) picks rows of a parameter; einsum for
    the scores."""

    def __init__(self, window: int = 3, heads: int = 2, dim: int = 8) -> None:
        super().__init__()
        self.heads, self.n = heads, window * window
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads))
        self.register_buffer("index", swin_index(window, window), persistent=False)
        self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.randn(dim))

    def forward(self, x):  # x: (B, N, C)
        B, N, C = x.shape
        bias = torch.cat((self.q_bias, self.k_bias, self.q_bias))
        qkv = F.linear(x, self.qkv.weight, bias)  # BEiT's: the child's weight, a bias of its own
        q, k, v = qkv.reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = torch.einsum("bhqd,bhkd->bhqk", q, k) * 0.5  # (B, heads, N, N)
        rel = self.table[self.index.view(-1)].view(self.n, self.n, -1).permute(2, 0, 1)  # (heads, N, N)
        again = self.table[self.index]  # (N, N, heads): the buffer itself
        attn = (attn + rel.unsqueeze(0) + again.permute(2, 0, 1)).softmax(-1)
        return (attn @ v).transpose(1, 2).reshape(B, N, C)


class Functions(nn.Module):
    """torch functions and methods with spec ops: roll, normalize, group_norm with the module's
    weights, tile, masked_fill, where, gather and indexing by a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(4)), nn.Parameter(torch.randn(4))
        self.register_buffer("pick", torch.tensor([2, 0, 1]), persistent=False)

    def forward(self, x):  # x: (B, 4, 6)
        y = torch.roll(x, shifts=(1, -2), dims=(1, 2)) + F.normalize(x, dim=-1)
        y = F.group_norm(y, 2, self.weight, self.bias, 1e-5)
        y = y.tile(1, 1, 2).masked_fill(y.tile(1, 1, 2) > 1.0, 0.5)  # (B, 4, 12)
        y = torch.where(y < 0, y * 2, y) + torch.where(y > 0, 1.0, y)
        picked = torch.gather(y, 2, torch.argmax(y, dim=2, keepdim=True))  # (B, 4, 1)
        return y[:, self.pick] + picked[:, :3]


def swin_mask(size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """Swin's shifted-window attention mask as timm's ``get_attn_mask`` builds it, written out
    (the reference for ``shifted_window_mask_``): (windows, h*w, h*w) of 0 and -100."""
    (H, W), (h, w), (sh, sw) = size, window, shift
    img = torch.zeros(1, H, W, 1)
    cnt = 0
    for rows in ((0, -h), (-h, -sh), (-sh, None)):
        for cols in ((0, -w), (-w, -sw), (-sw, None)):
            img[:, rows[0] : rows[1], cols[0] : cols[1], :] = cnt
            cnt += 1
    windows = img.view(1, H // h, h, W // w, w, 1).permute(0, 1, 3, 2, 4, 5).reshape(-1, h * w)  # (nW, h*w)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def bias_index(resolution: tuple[int, int]) -> torch.Tensor:
    """TinyViT's attention-bias index, its way: each new (|dy|, |dx|) offset gets the next
    column, in the order the pairs meet it (the reference for ``attention_bias_index_``)."""
    points = [(i, j) for i in range(resolution[0]) for j in range(resolution[1])]
    offsets: dict[tuple[int, int], int] = {}
    idxs = [offsets.setdefault((abs(p[0] - q[0]), abs(p[1] - q[1])), len(offsets)) for p in points for q in points]
    return torch.tensor(idxs).view(len(points), len(points))


def log_coords(h: int, w: int) -> torch.Tensor:
    """Swin V2 CR's pair-wise log-spaced relative coordinates, written out: ((h*w)**2, 2)."""
    coords = [(float(i), float(j)) for i in range(h) for j in range(w)]
    rel = torch.tensor([(p[0] - q[0], p[1] - q[1]) for p in coords for q in coords])  # (pairs, 2)
    return torch.sign(rel) * torch.log(1.0 + rel.abs())


class Tables(nn.Module):
    """Non-persistent tables a spec makes by an init: Swin's shifted-window mask (over 4,096
    values), LeViT's attention-bias index picking a parameter's columns, Swin V2's log-spaced
    coordinates fed to a layer; and LeViT's subsampling of the positions, ``x[:, ::2, ::2]``."""

    def __init__(self, heads: int = 20) -> None:
        super().__init__()
        self.register_buffer("mask", swin_mask((20, 16), (4, 4), (2, 2)), persistent=False)  # (20, 16, 16)
        self.register_buffer("idx", bias_index((4, 4)), persistent=False)  # (16, 16)
        self.register_buffer("coords", log_coords(4, 4), persistent=False)  # (256, 2)
        self.biases = nn.Parameter(torch.randn(heads, 16))
        self.mlp = nn.Linear(2, heads)

    def forward(self, x):  # x: (B, 20, 16, 16)
        scores = (x + self.mask).softmax(-1)
        bias = self.biases[:, self.idx]  # (heads, 16, 16)
        pos = self.mlp(self.coords).transpose(0, 1).reshape(-1, 16, 16)  # (heads, 16, 16)
        return (scores + bias + pos)[:, :, ::2, ::2]  # (B, heads, 8, 8)


class LogCoordsBias(nn.Module):
    """timm's RelPosMlp, in short: a bias an MLP computes from the module's own log-spaced
    coordinates, picked by its own index; its parent runs ``bias()``, a method, not forward."""

    def __init__(self, window: int = 3, heads: int = 2) -> None:
        super().__init__()
        self.heads, self.n = heads, window * window
        self.mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, heads))
        side = torch.arange(-(window - 1), window, dtype=torch.float32)
        table = torch.stack(torch.meshgrid(side, side, indexing="ij")).permute(1, 2, 0)  # (2w-1, 2w-1, 2)
        self.register_buffer("coords", torch.sign(table) * torch.log1p(table.abs()), persistent=False)
        self.register_buffer("index", swin_index(window, window).view(-1), persistent=False)

    def bias(self) -> torch.Tensor:
        table = self.mlp(self.coords).view(-1, self.heads)  # ((2w-1)**2, heads)
        return table[self.index].view(self.n, self.n, -1).permute(2, 0, 1).unsqueeze(0)  # (1, heads, N, N)

    def forward(self, attn):  # never called: the parent runs bias()
        return attn + self.bias()


class MethodAttention(nn.Module):
    """Attention whose bias is a child's method, ``self.rel_pos.bias()`` (timm's RelPosAttention)."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.rel_pos = LogCoordsBias(3, heads)

    def forward(self, x):  # x: (B, 9, C)
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.rel_pos.bias())
        return out.transpose(1, 2).reshape(B, N, C)
