"""Example arguments and inputs for every registered layer and op (``test_registry.py``).

A layer that needs arguments, or a particular input, has an entry here; a layer without one
is tried with no arguments on a ``3x8x8`` input. A new layer that needs arguments and has no
entry fails its test ("add an example to tests/layer_examples.py"): nothing is skipped. Ops
always need an entry (``OP_EXAMPLES``), so a new op fails the same way.

Inputs are per-sample shapes, as in a spec; ``I(shape, "int64", high=10)`` makes integer
inputs drawn below ``high`` (token ids, class indices, pooling indices); float inputs are
uniform in [0, 1), so log, sqrt and bernoulli get valid values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class I:  # noqa: E742 - the one-letter input marker every example row is written with
    """One input: per-sample shape, dtype, and for integers the exclusive upper bound."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    high: int | None = None


@dataclass
class Example:
    """How to exercise one layer or op: its arguments, positional inputs and keyword inputs."""

    args: Any = None
    inputs: list[I] = field(default_factory=lambda: [I((3, 8, 8))])
    kw: dict[str, I | list[I]] = field(default_factory=dict)  # forward keyword -> input(s)
    slow: bool = False  # marks the test `slow` (run with -m slow); none is today: each runs in < 1 s


def _x(*shape: int) -> list[I]:
    return [I(shape)]


SEQ = _x(5, 8)  # (B, T, F): batch-first sequences
VEC = _x(8)  # (B, F)
IMG1D, IMG2D, IMG3D = _x(3, 8), _x(3, 8, 8), _x(3, 4, 6, 6)

LAYER_EXAMPLES: dict[str, Example] = {
    **{f"AdaptiveAvgPool{d}d": Example({"output_size": 2}, x) for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))},
    **{f"AdaptiveMaxPool{d}d": Example({"output_size": 2}, x) for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))},
    **{f"AvgPool{d}d": Example({"kernel_size": 2}, x) for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))},
    **{f"MaxPool{d}d": Example({"kernel_size": 2}, x) for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))},
    **{f"LPPool{d}d": Example({"norm_type": 2, "kernel_size": 2}, x) for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))},
    **{f"Conv{d}d": Example({"out_channels": 4, "kernel_size": 3}, x) for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))},
    **{
        f"ConvTranspose{d}d": Example({"out_channels": 4, "kernel_size": 3, "stride": 2}, x)
        for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))
    },
    **{
        f"{kind}Pad{d}d": Example({"padding": 1}, x)
        for kind in ("Circular", "Reflection", "Replication", "Zero")
        for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))
    },
    **{f"ConstantPad{d}d": Example({"padding": 1, "value": 0.5}, x) for d, x in ((1, IMG1D), (2, IMG2D), (3, IMG3D))},
    **{
        f"MaxUnpool{d}d": Example({"kernel_size": 2}, [I(s), I(s, "int64", high=1)])  # indices 0: all in range
        for d, s in ((1, (3, 4)), (2, (3, 4, 4)), (3, (3, 2, 3, 3)))
    },
    **{f"BatchNorm{d}d": Example(None, x) for d, x in ((1, IMG1D), (3, IMG3D))},
    **{f"InstanceNorm{d}d": Example(None, x) for d, x in ((1, IMG1D), (3, IMG3D))},
    "Dropout1d": Example(None, IMG1D),
    "Bilinear": Example({"out_features": 4}, [I((8,)), I((6,))]),
    "ChannelShuffle": Example({"groups": 3}, _x(6, 4, 4)),
    "CosineSimilarity": Example(None, [I((8,)), I((8,))]),
    "PairwiseDistance": Example(None, [I((8,)), I((8,))]),
    "CrossMapLRN2d": Example({"size": 3}, IMG2D),
    "LocalResponseNorm": Example({"size": 3}, IMG2D),
    "Embedding": Example({"num_embeddings": 10, "embedding_dim": 4}, [I((5,), "int64", high=10)]),
    "EmbeddingBag": Example({"num_embeddings": 10, "embedding_dim": 4}, [I((5,), "int64", high=10)]),
    "Fold": Example({"output_size": [4, 4], "kernel_size": 2}, _x(12, 9)),
    "Unfold": Example({"kernel_size": 2}, IMG2D),
    "FractionalMaxPool2d": Example({"kernel_size": 2, "output_size": 3}, IMG2D),
    "FractionalMaxPool3d": Example({"kernel_size": 2, "output_size": 2}, IMG3D),
    "GroupNorm": Example({"num_groups": 3}, _x(6, 4, 4)),
    "Linear": Example({"out_features": 4}, VEC),
    "PixelShuffle": Example({"upscale_factor": 2}, _x(8, 3, 3)),
    "PixelUnshuffle": Example({"downscale_factor": 2}, IMG2D),
    "Threshold": Example({"threshold": 0.1, "value": 0.0}, IMG2D),
    "Unflatten": Example({"dim": 1, "unflattened_size": [2, 4]}, VEC),
    "Upsample": Example({"scale_factor": 2}, IMG2D),
    "UpsamplingBilinear2d": Example({"scale_factor": 2}, IMG2D),
    "UpsamplingNearest2d": Example({"scale_factor": 2}, IMG2D),
    # recurrent: h_n and c_n put num_layers * directions first, (L, B, H), even with batch_first
    "RNN": Example({"hidden_size": 6, "num_layers": 2}, SEQ),
    "LSTM": Example({"hidden_size": 6, "num_layers": 2, "bidirectional": True}, SEQ),
    "GRU": Example({"hidden_size": 6, "num_layers": 3}, SEQ),
    "RNNCell": Example({"hidden_size": 6}, VEC),
    "LSTMCell": Example({"hidden_size": 6}, VEC),
    "GRUCell": Example({"hidden_size": 6}, VEC),
    # attention (batch_first: the netspec default)
    "MultiheadAttention": Example(
        {"num_heads": 2}, [I((5, 8)), I((7, 8)), I((7, 8))], kw={"key_padding_mask": I((7,), "bool", high=2)}
    ),
    "TransformerEncoderLayer": Example(
        {"nhead": 2, "dim_feedforward": 16, "dropout": 0.0}, SEQ, kw={"src_key_padding_mask": I((5,), "bool", high=2)}
    ),
    "TransformerDecoderLayer": Example({"nhead": 2, "dim_feedforward": 16}, [I((5, 8)), I((7, 8))]),
    "Transformer": Example(
        {"nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1, "dim_feedforward": 16}, [I((5, 8)), I((7, 8))]
    ),
}

OP_EXAMPLES: dict[str, Example] = {
    # merges and arithmetic
    "cat": Example({"dim": 1}, [I((3, 4)), I((2, 4))]),
    "stack": Example({"dim": 1}, [I((3, 4)), I((3, 4))]),
    "add": Example(None, [I((3, 4)), I((1, 4))]),
    "mul": Example(None, [I((3, 4)), I((3, 4)), I((3, 4))]),
    "sub": Example(1.5, [I((3, 4))]),
    "div": Example(None, [I((3, 4)), I((1, 4))]),
    "matmul": Example(None, [I((3, 4)), I((4, 5))]),
    "attention": Example(None, [I((2, 5, 4)), I((2, 6, 4)), I((2, 6, 3))]),
    "maximum": Example(None, [I((3, 4)), I((3, 4))]),
    "minimum": Example(None, [I((3, 4)), I((3, 4))]),
    "pow": Example(2, [I((3, 4))]),
    "where": Example(None, [I((3, 4), "bool", high=2), I((3, 4)), I((3, 4))]),
    **{name: Example(0.0, [I((3, 4))]) for name in ("eq", "ne", "lt", "le", "gt", "ge")},
    **{
        name: Example(None, [I((3, 4), "bool", high=2), I((3, 4), "bool", high=2)])
        for name in ("logical_and", "logical_or")
    },
    # reshaping
    "flatten": Example(None, [I((3, 4, 5))]),
    "reshape": Example([4, -1], [I((3, 4, 5))]),
    "view": Example([12, 5], [I((3, 4, 5))]),
    "permute": Example([0, 2, 1], [I((3, 4))]),
    "transpose": Example({"dim0": 1, "dim1": 2}, [I((3, 4))]),
    "squeeze": Example(2, [I((3, 1, 4))]),
    "unsqueeze": Example(1, [I((3, 4))]),
    "contiguous": Example(None, [I((3, 4))]),
    "select": Example({"dim": 1, "index": -1}, [I((3, 4))]),
    "narrow": Example({"dim": 2, "start": 1, "length": 2}, [I((3, 4))]),
    "chunk": Example({"chunks": 2, "dim": 2}, [I((3, 4))]),
    "item": Example(1, [I((3, 4))]),  # the test feeds it a chunk's tuple
    # padding and resizing
    "pad": Example([1, 2], [I((3, 4))]),
    "pad_to": Example(None, [I((2, 4, 4)), I((2, 5, 7))]),
    "expand_batch": Example(None, [I((1, 4)), I((3, 4))]),
    "interpolate": Example({"scale_factor": 2}, [I((2, 4, 4))]),
    # reductions and normalisations
    **{
        name: Example({"dim": [2, 3]}, [I((2, 4, 4))])
        for name in ("mean", "sum", "amax", "amin", "logsumexp", "std", "var", "norm")
    },
    "layer_norm": Example({"normalized_shape": [4]}, [I((3, 4))]),
    "rms_norm": Example({"normalized_shape": [4], "eps": 1.0e-6}, [I((3, 4))]),
    "group_norm": Example(2, [I((4, 3, 3))]),
    # weights as inputs (ops_weights.py); here a kernel per sample, as torch reads it: (B, 3, 3, 3)
    "conv2d": Example({"padding": 1}, [I((3, 8, 8)), I((3, 3, 3))]),
    "batch_norm": Example({"use_input_stats": True}, [I((4, 3, 3))]),
    "normalize": Example(-1, [I((3, 4))]),
    "softmax": Example(-1, [I((3, 4))]),
    "log_softmax": Example(-1, [I((3, 4))]),
    "clamp": Example({"min": -0.5, "max": 0.5}, [I((3, 4))]),
    "scale": Example(0.5, [I((3, 4))]),
    "to": Example("float64", [I((3, 4))]),
    # element-wise and random
    "randint_like": Example({"high": 5}, [I((3, 4))]),
    "full_like": Example(2.5, [I((3, 4))]),
    "bernoulli": Example(None, [I((3, 4))]),  # inputs are uniform in [0, 1): probabilities
    # indexing, gathers, masks, positions (ops_index.py)
    "index": Example("[:, 1:in1.size(1), None, 0]", [I((3, 4)), I((2,))]),
    "gather": Example(1, [I((3, 4)), I((2, 4), "int64", high=3)]),
    "masked_fill": Example(-1.0, [I((3, 4)), I((1, 4), "bool", high=2)]),
    "put": Example("[:, 1:, None, -2:]", [I((3, 4)), I((2, 1, 2))]),
    "arange": Example(2, [I((3, 4))]),
    "expand": Example([3, -1], [I((1, 4))]),
    "expand_as": Example(None, [I((1, 4)), I((3, 4))]),
    "tile": Example([2, 1], [I((3, 4))]),
    "roll": Example({"shifts": 1, "dims": 2}, [I((3, 4))]),
    "flip": Example([1, 2], [I((3, 4))]),
    "cumsum": Example(2, [I((3, 4))]),
    "cumprod": Example(2, [I((3, 4))]),
    "argmax": Example(2, [I((3, 4))]),
    "one_hot": Example(5, [I((3, 4), "int64", high=5)]),
    "triu": Example(1, [I((3, 4))]),
    "tril": Example(-1, [I((3, 4))]),
    "einsum": Example("bij,bkj->bik", [I((3, 4)), I((5, 4))]),
    "unfold": Example({"dim": 2, "size": 3, "step": 2}, [I((3, 7))]),
    "repeat_interleave": Example({"repeats": 2, "dim": 1}, [I((3, 4))]),
    "grid": Example("xy", [I((4, 3, 2))]),  # the test makes its two axes (Buffer nodes of 3 and 4 values)
    "max": Example(2, [I((3, 4))]),
    "min": Example({"dim": 1, "keepdim": True}, [I((3, 4))]),
}
UNARY_OPS = (
    "abs",
    "neg",
    "sign",
    "exp",
    "expm1",
    "log",
    "log1p",
    "sqrt",
    "rsqrt",
    "square",
    "reciprocal",
    "sigmoid",
    "tanh",
    "relu",
    "sin",
    "cos",
    "erf",
    "floor",
    "ceil",
    "round",
    "logical_not",
    "randn_like",
    "rand_like",
    "zeros_like",
    "ones_like",
)
OP_EXAMPLES.update({name: Example(None, [I((3, 4))]) for name in UNARY_OPS})
