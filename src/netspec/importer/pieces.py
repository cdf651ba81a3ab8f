"""``x.unbind(dim)`` and ``torch.split(x, size, dim)``: a tuple of pieces, each read by index.

The call itself makes no node: it gives a :class:`Pieces`, and reading piece ``k``
(``q, k, v = qkv.unbind(0)`` traces as ``qkv.unbind(0)[0]``...) is a ``select`` (unbind) or a
``narrow`` (split) node of the source, so the spec computes only the pieces the forward uses.
"""

from __future__ import annotations

from typing import Any

from .call import Call, Result, const
from .errors import ImportFailed
from .functions import handles
from .ir import Pieces, Ref


def _dim(c: Call, source: Ref, dim: Any, what: str) -> int:
    dim = const(c, dim, "a dim")
    if not isinstance(dim, int) or not -len(source.shape) <= dim < len(source.shape):
        raise ImportFailed(f"`{what}` along dim {dim!r} has no spec op", where=c.where)
    dim %= len(source.shape)
    if dim in source.batch_dims:
        raise ImportFailed(f"`{what}` along the batch dim has no spec op (it would part the samples)", where=c.where)
    return dim


@handles("torch.unbind", "Tensor.unbind")
def _unbind(c: Call, input: Ref, dim: int = 0) -> Result:
    d = _dim(c, input, dim, "unbind")
    return Pieces(input, d, tuple((k, 1) for k in range(input.shape[d])), drop_dim=True)


@handles("torch.split", "Tensor.split")
def _split(c: Call, tensor: Ref, split_size_or_sections: Any, dim: int = 0) -> Result:
    d = _dim(c, tensor, dim, "split")
    size, total = const(c, split_size_or_sections, "a size"), tensor.shape[d]
    lengths = (
        list(size) if isinstance(size, list) else [size] * (total // size) + ([total % size] if total % size else [])
    )
    starts = [sum(lengths[:k]) for k in range(len(lengths))]
    return Pieces(tensor, d, tuple(zip(starts, lengths)), drop_dim=False)
