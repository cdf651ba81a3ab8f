"""``F.scaled_dot_product_attention`` (timm's fused attention) -> the ``attention`` op.

In eval mode it is ``softmax(q @ k^T * scale + mask) @ v`` (the mask a 4th input, or none). It is not written as
those matmuls and softmax: torch's fused kernel sums in another order, and a transformer's
layer norms grow the rounding to more than the round trip's tolerance.
"""

from __future__ import annotations

from typing import Any

from .call import Call, Result, const
from .errors import ImportFailed
from .functions import handles
from .ir import Ref


@handles("F.scaled_dot_product_attention")
def _sdpa(
    c: Call,
    query: Ref,
    key: Ref,
    value: Ref,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: Any = None,
    enable_gqa: bool = False,
) -> Result:
    if (
        not (attn_mask is None or isinstance(attn_mask, Ref))
        or is_causal
        or enable_gqa
        or const(c, dropout_p, "a probability") != 0.0
    ):
        raise ImportFailed(
            "`scaled_dot_product_attention` with is_causal, enable_gqa or dropout has no spec op "
            "(without them it is written as its matmuls and softmax)",
            where=c.where,
        )
    mask = [attn_mask] if attn_mask is not None else []  # a relative position bias (BEiT's), added
    return c.op("attention", [query, key, value, *mask], scale=None if scale is None else const(c, scale, "a number"))
