"""timm's ``Conv2dSame`` (TensorFlow's SAME padding) -> a ``Conv2d`` layer, with a ``pad`` node
before it where the padding is not the same on both sides.

``Conv2dSame`` is an ``nn.Conv2d`` whose forward pads its input so that the output has
``ceil(size / stride)`` positions, then convolves with its own weight. Along a dim, the padding
is ``max((ceil(i / s) - 1) * s + (k - 1) * d + 1 - i, 0)``, the first half (rounded down) before.
At stride 1 that is ``(k - 1) * d`` at every size: an even one is the ``Conv2d``'s own
``padding``, an odd one (an even kernel) a ``pad: [left, right, top, bottom]`` node first. At a
larger stride it depends on the input size, so it is written at the traced size and the spec is
pinned there (``kinds.same_padded``). The ``Conv2d`` is named after the module: its keys stay.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from torch import fx, nn

from .errors import ImportFailed
from .ir import Ref, SNode
from .norm_act import plain_copy
from .trace import TensorMeta, Traced

if TYPE_CHECKING:
    from .convert import Converter


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    """The total padding of a dim, as timm's ``get_same_padding`` computes it.

    >>> same_padding(16, 4, 1, 1), same_padding(165, 5, 2, 1), same_padding(112, 5, 2, 1)
    (3, 4, 3)
    """
    return max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def same_conv_nodes(c: Converter, n: fx.Node, name: str, sub: Traced, args: tuple, kwargs: dict) -> list[SNode]:
    """The ``Conv2d`` node (named ``name``), after a ``pad`` node where one side gets more."""
    x = (list(args) + list(kwargs.values()))[0] if len(args) + len(kwargs) == 1 else None
    if not isinstance(x, Ref) or len(x.shape) != 4:
        raise ImportFailed("Conv2dSame called other than on one (B, C, H, W) tensor", where=sub.path)
    conv = sub.module
    assert isinstance(conv, nn.Conv2d)
    h, w = x.shape[-2:]
    ph, pw = (
        same_padding(size, k, s, d) for size, k, s, d in zip((h, w), conv.kernel_size, conv.stride, conv.dilation)
    )
    plain: Any = plain_copy(conv, nn.Conv2d)  # a Conv2d: its padding is set below
    plain.padding_mode = "zeros"  # Conv2dSame's forward pads with zeros whatever its padding_mode says
    nodes: list[SNode] = []
    if ph % 2 or pw % 2:  # more after than before: a pad node first, the conv then pads nothing
        pad = SNode(
            "pad", c.namer.fresh(f"{name}_pad"), {"pad": [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]}, [x.name]
        )
        padded = tuple(TensorMeta((*m.shape[:-2], m.shape[-2] + ph, m.shape[-1] + pw), m.dtype) for m in x.meta)
        nodes.append(pad)
        x = Ref(str(pad.name), (padded[0], padded[1]))
        plain.padding = (0, 0)
    else:
        plain.padding = (ph // 2, pw // 2)
    nodes.append(c._layer(name, Traced(sub.path, plain, "layer"), (x,), {}))
    return nodes
