"""Small tensor functions the generated forward calls where torch has no one-liner.

They are plain functions of tensors (no state), so the generated code stays traceable by
torch.compile, torch.export and torch.jit.trace.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_match(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Zero-pad dims 2.. of ``x`` to ``like``'s size, half before and half after.

    This is U-Net's ``Up`` step: ``diffY // 2, diffY - diffY // 2`` per side.

    >>> pad_to_match(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 5, 7)).shape
    torch.Size([1, 2, 5, 7])
    """
    pads: list[int] = []
    for dim in range(x.dim() - 1, 1, -1):  # F.pad lists the last dim first
        diff = like.shape[dim] - x.shape[dim]
        pads += [diff // 2, diff - diff // 2]
    return F.pad(x, pads)


def reshape_batch(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Reshape each sample to ``shape`` (which may contain -1), keeping the batch dim.

    >>> reshape_batch(torch.zeros(2, 3, 4), (-1, 2)).shape
    torch.Size([2, 6, 2])
    """
    return x.reshape(x.shape[0], *shape)


def expand_to_batch(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` (dim 0 of size 1) expanded to ``like``'s batch, without copying: ViT's class token.

    >>> expand_to_batch(torch.zeros(1, 1, 8), torch.zeros(4, 49, 8)).shape
    torch.Size([4, 1, 8])
    """
    return x.expand(like.shape[0], *([-1] * (x.dim() - 1)))


def add_n(*xs: torch.Tensor) -> torch.Tensor:
    """Sum of several tensors: ``add_n(a, b, c) == a + b + c``."""
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def mul_n(*xs: torch.Tensor) -> torch.Tensor:
    """Product of several tensors."""
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def contiguous(x: torch.Tensor) -> torch.Tensor:
    """``x.contiguous()`` as a function."""
    return x.contiguous()


_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}
DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}  # torch's dtype -> the spec's name


def cast(x: torch.Tensor, dtype: str) -> torch.Tensor:
    """``x.to(dtype)`` with the dtype named as in specs ("float32", "int64", ...)."""
    return x.to(_DTYPES[dtype])


def arange_like(x: torch.Tensor, dim: int, start: int = 0, step: int = 1) -> torch.Tensor:
    """``torch.arange(start, x.size(dim), step)`` on ``x``'s device: positions of a sequence,
    counted at run time (so any length works, not only the one the spec was compiled at).

    >>> arange_like(torch.zeros(2, 5, 8), 1)
    tensor([0, 1, 2, 3, 4])
    """
    return torch.arange(start, x.size(dim), step, device=x.device)


def expand_sample(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``x.expand(batch, *shape)``: each sample broadcast to ``shape`` (-1 keeps a size), no copy.

    >>> expand_sample(torch.zeros(2, 1, 4), (3, -1)).shape
    torch.Size([2, 3, 4])
    """
    return x.expand(x.shape[0], *shape)


def unfold_windows(x: torch.Tensor, dim: int, size: int, step: int) -> torch.Tensor:
    """``x.unfold(dim, size, step)`` as a function: windows of ``size`` entries every ``step``
    along ``dim``, as a new last dim (a view, no copy).

    >>> unfold_windows(torch.arange(5.0).reshape(1, 5), 1, 3, 2)
    tensor([[[0., 1., 2.],
             [2., 3., 4.]]])
    """
    return x.unfold(dim, size, step)


def coordinate_grid(*axes: torch.Tensor, indexing: str = "ij") -> torch.Tensor:
    """The grid of the 1-d ``axes``' coordinates, one channel per axis, last:
    ``torch.stack(torch.meshgrid(*axes, indexing=indexing), dim=-1)`` (the positions sin-cos
    and rotary embeddings are computed over).

    >>> coordinate_grid(torch.tensor([0.0, 1.0]), torch.tensor([5.0, 6.0, 7.0])).shape
    torch.Size([2, 3, 2])
    """
    return torch.stack(torch.meshgrid(*axes, indexing=indexing), dim=-1)


def put(x: torch.Tensor, index: tuple, value: torch.Tensor | float) -> torch.Tensor:
    """A copy of ``x`` with ``value`` written at ``index``: ``x[index] = value`` without changing
    ``x`` (torch's item assignment, as a function of tensors). A slice is written as the tuple
    ``(start, stop, step)``, which generated code can hold (fx writes a slice as ``a:b``).

    >>> put(torch.zeros(2, 3), ((None, None, None), (1, None, None)), 1.0)
    tensor([[0., 1., 1.],
            [0., 1., 1.]])
    """
    out = x.clone()
    out[tuple(slice(*p) if isinstance(p, tuple) else p for p in index)] = value
    return out
