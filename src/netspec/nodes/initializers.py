"""The registry of ``torch.nn.init`` functions a spec may name, shared by the two places that
initialise tensors: ``init:`` rules of the training sections (:mod:`netspec.training.init`) and
declared ``Parameter`` nodes (:mod:`netspec.nodes.parameters`).

>>> sorted(n for n in INIT_FUNCTIONS if n.startswith("kaiming"))
['kaiming_normal_', 'kaiming_uniform_']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .registry import Registry

__all__ = ["INIT_FUNCTIONS"]


def _torch_init_functions(registry: Registry[Callable[..., Any]]) -> None:
    from torch import nn

    for name, fn in vars(nn.init).items():
        if name.endswith("_") and not name.startswith("_") and callable(fn):
            registry.add(name, fn)
    registry.add("sinusoidal_", sinusoidal_)
    registry.add("relative_position_index_", relative_position_index_)
    registry.add("shifted_window_mask_", shifted_window_mask_)
    registry.add("attention_bias_index_", attention_bias_index_)
    registry.add("log_relative_coords_", log_relative_coords_)
    registry.add("log_offsets_", log_offsets_)


def sinusoidal_(tensor: Any, base: float = 10000.0) -> Any:
    """The Transformer's positional-encoding table, in place, over the last two dims (position,
    feature): sin(p / base ** (2i / d)) at feature 2i, cos at 2i + 1 -- the ``pe`` buffer of
    pytorch/examples' word language model, built the same way (so the values are equal).

    >>> import torch; t = sinusoidal_(torch.empty(3, 4)); t[0].tolist(), round(t[1, 0].item(), 4)
    ([0.0, 1.0, 0.0, 1.0], 0.8415)
    """
    import math

    import torch

    if tensor.dim() < 2:
        raise ValueError("sinusoidal_ fills (positions, features): the tensor needs at least 2 dims")
    length, d = tensor.shape[-2:]
    position = torch.arange(0, length, dtype=torch.float).unsqueeze(1)  # (L, 1)
    div_term = torch.exp(torch.arange(0, d, 2).float() * (-math.log(base) / d))  # (ceil(d / 2),)
    pe = torch.zeros(length, d)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d // 2])
    with torch.no_grad():
        return tensor.copy_(pe.expand_as(tensor))


def relative_position_index_(tensor: Any, window: list[int], class_token: bool = False) -> Any:
    """Swin's and BEiT's relative position index, in place: for each pair of positions (p, q) of
    an h x w window (row-major), the row of the bias table for their offset,
    (dy + h - 1) * (2w - 1) + (dx + w - 1); with ``class_token`` a first row and column for the
    class token (table rows (2h-1)(2w-1), +1, and +2 for the token with itself), as BEiT's. The
    table is (h*w [+1])**2 numbers, laid out in the tensor's shape (flat or square).

    >>> import torch; relative_position_index_(torch.empty(2, 2, dtype=torch.long), [1, 2]).tolist()
    [[1, 0], [2, 1]]
    """
    import torch

    h, w = window
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)  # (2, h*w)
    offsets = coords[:, :, None] - coords[:, None, :]  # (2, h*w, h*w): dy, dx of each pair
    index = (offsets[0] + h - 1) * (2 * w - 1) + offsets[1] + w - 1
    if class_token:
        rows = (2 * h - 1) * (2 * w - 1)
        index = torch.nn.functional.pad(index, [1, 0, 1, 0])
        index[0, :], index[:, 0], index[0, 0] = rows, rows + 1, rows + 2
    if index.numel() != tensor.numel():
        raise ValueError(f"a {h}x{w} window{' and a class token' if class_token else ''} has {index.numel()} pairs")
    if tensor.is_meta:
        return tensor
    with torch.no_grad():
        return tensor.copy_(index.reshape(tensor.shape))


def shifted_window_mask_(
    tensor: Any, size: list[int], window: list[int], shift: list[int], fill: float = -100.0
) -> Any:
    """Swin's attention mask for shifted windows, in place: an H x W map (``size``, a multiple of
    the window) cut into the 9 regions a cyclic shift by ``shift`` makes, split into h x w windows;
    for each window and pair of its positions, 0 where both lie in one region, else ``fill``. The
    (H/h * W/w, h*w, h*w) numbers are laid out in the tensor's shape (timm's ``attn_mask``).

    >>> import torch; shifted_window_mask_(torch.empty(1, 4, 4), [2, 2], [2, 2], [1, 1])[0, 0].tolist()
    [0.0, -100.0, -100.0, -100.0]
    """
    import torch

    (height, width), (h, w), (dy, dx) = size, window, shift
    if height % h or width % w:
        raise ValueError(f"a {height}x{width} map is no whole number of {h}x{w} windows")
    regions = torch.zeros(height, width)
    # the slices timm's get_attn_mask writes (a shift of 0 makes its last one the whole side)
    for i, rows in enumerate((slice(0, -h), slice(-h, -dy), slice(-dy, None))):
        for j, cols in enumerate((slice(0, -w), slice(-w, -dx), slice(-dx, None))):
            regions[rows, cols] = 3 * i + j
    windows = regions.reshape(height // h, h, width // w, w).permute(0, 2, 1, 3).reshape(-1, h * w)  # (nW, h*w)
    differ = windows[:, None, :] != windows[:, :, None]  # (nW, h*w, h*w)
    mask = torch.zeros(differ.shape).masked_fill(differ, fill)
    return _laid_out(tensor, mask, f"a {height}x{width} map of {h}x{w} windows")


def attention_bias_index_(tensor: Any, resolution: list[int], stride: int = 1) -> Any:
    """LeViT's and TinyViT's attention-bias index, in place: for each query position (an r0 x r1
    grid taken every ``stride``) and key position (the whole grid), the column of the bias table for
    their absolute offset, |dy| * r1 + |dx|: a (ceil(r0/s) * ceil(r1/s), r0 * r1) table.

    >>> import torch; attention_bias_index_(torch.empty(2, 2, dtype=torch.long), [1, 2]).tolist()
    [[0, 1], [1, 0]]
    """
    import torch

    r0, r1 = resolution
    keys = torch.stack(torch.meshgrid(torch.arange(r0), torch.arange(r1), indexing="ij")).flatten(1)  # (2, r0*r1)
    grid = torch.meshgrid(torch.arange(0, r0, stride), torch.arange(0, r1, stride), indexing="ij")
    queries = torch.stack(grid).flatten(1)  # (2, Nq)
    offsets = (queries[:, :, None] - keys[:, None, :]).abs()  # (2, Nq, r0*r1)
    index = offsets[0] * r1 + offsets[1]
    return _laid_out(tensor, index, f"a {r0}x{r1} grid at stride {stride}")


def log_relative_coords_(tensor: Any, window: list[int]) -> Any:
    """Swin V2's (timm's ``cr`` form) log-spaced relative coordinates, in place: for each pair
    (p, q) of positions of an h x w window, sign(d) * log(1 + |d|) of their offset d = p - q in
    rows and in columns: a ((h*w)**2, 2) table.

    >>> import torch; log_relative_coords_(torch.empty(4, 2), [1, 2])[1].tolist()
    [0.0, -0.6931471824645996]
    """
    import torch

    h, w = window
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1).float()
    offsets = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).reshape(-1, 2)  # (pairs, 2): dy, dx
    table = torch.sign(offsets) * torch.log(1.0 + offsets.abs())
    return _laid_out(tensor, table, f"a {h}x{w} window")


def log_offsets_(tensor: Any, window: list[int], mode: str = "cr") -> Any:
    """Swin V2's table of log-spaced offsets, in place: for each offset (dy, dx) of an h x w
    window, rows then columns from -(h-1) to h-1, the pair sign(d) * log(1 + |d|) (``mode: cr``,
    timm's RelPosMlp) or, with ``mode: swin`` (Swin V2's ``relative_coords_table``), d scaled to
    [-8, 8] and sign(d) * log2(1 + |d|) / 3: a (2h-1, 2w-1, 2) table.

    >>> import torch; log_offsets_(torch.empty(3, 1, 2), [2, 1])[0].tolist()
    [[-0.6931471824645996, 0.0]]
    """
    import math

    import torch

    if mode not in ("cr", "swin"):
        raise ValueError(f"mode is cr or swin, not {mode!r}")
    rows, cols = (torch.arange(-(n - 1), n).to(torch.float32) for n in window)
    table = torch.stack(torch.meshgrid(rows, cols, indexing="ij")).permute(1, 2, 0).contiguous()  # (2h-1, 2w-1, 2)
    if mode == "cr":
        return _laid_out(tensor, torch.sign(table) * torch.log(1.0 + table.abs()), f"a {window} window")
    for i, n in enumerate(window):
        table[:, :, i] /= max(n - 1, 1)  # timm's order of operations, so the float32 values are equal
    table *= 8
    table = torch.sign(table) * torch.log2(1.0 + table.abs()) / math.log2(8)
    return _laid_out(tensor, table, f"a {window} window")


def _laid_out(tensor: Any, table: Any, what: str) -> Any:
    """``tensor`` filled with ``table``'s numbers in its own shape (a meta tensor is only checked)."""
    import torch

    if table.numel() != tensor.numel():
        raise ValueError(f"{what} makes {table.numel()} numbers, the tensor holds {tensor.numel()}")
    if tensor.is_meta:
        return tensor
    with torch.no_grad():
        return tensor.copy_(table.reshape(tensor.shape))


#: init function name -> the in-place function of torch.nn.init (`kaiming_normal_`, `zeros_`, ...), and
#: netspec's tables: `sinusoidal_` (a positional encoding), `relative_position_index_` (Swin's, BEiT's),
#: `shifted_window_mask_` (Swin's), `attention_bias_index_` (LeViT's), `log_relative_coords_` and `log_offsets_` (Swin V2's).
INIT_FUNCTIONS: Registry[Callable[..., Any]] = Registry("init function", fill=_torch_init_functions, passed=("tensor",))
