"""Reading a torch.nn layer's constructor arguments back (``layer_args.node_args``): every layer
type netspec has, as netspec builds it from its example, and layers built with arguments away
from their defaults, each written as a spec node and compiled back to the same layer."""

from __future__ import annotations

import warnings

import pytest
from layer_examples import LAYER_EXAMPLES, Example
from torch import nn

from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module
from netspec.importer.layer_args import node_args
from netspec.nodes.layers import LAYERS

from .toy_models import one_module

LAYER_NAMES = sorted(n for n, e in LAYERS.items() if not e.custom)


def test_every_layer_netspec_builds_is_read_back() -> None:
    """A layer compiled from a spec node gives arguments that build it again (node_args checks
    that itself, and raises when they do not)."""
    failed = {}
    for name in LAYER_NAMES:
        ex = LAYER_EXAMPLES.get(name) or Example()
        names = [f"in{i}" for i in range(len(ex.inputs))]
        inputs = {n: {"shape": list(i.shape), "dtype": i.dtype} for n, i in zip(names, ex.inputs)}
        spec = {"name": "t", "inputs": inputs, "nodes": [{"node": {name: ex.args}, "from": names}]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notes on some constructors
            layer = compile_spec(load_spec(spec)).module.node
        try:
            node_args(layer, [i.shape for i in ex.inputs], name)
        except SpecError as e:  # collected, so one run names every layer that fails
            failed[name] = str(e)
    assert failed == {}


# (layer, per-sample input shapes, dtypes of the inputs when not float32)
VARIANTS = [
    (
        nn.TransformerEncoderLayer(
            8, 2, 16, dropout=0.0, norm_first=True, bias=False, layer_norm_eps=1e-6, batch_first=True
        ),
        [(5, 8)],
    ),
    (nn.TransformerDecoderLayer(8, 2, 16, activation="gelu", batch_first=True), [(5, 8), (4, 8)]),
    (nn.Transformer(8, 2, 1, 2, 16, batch_first=True, norm_first=True), [(5, 8), (4, 8)]),
    (nn.LSTM(8, 6, num_layers=2, proj_size=3, batch_first=True), [(5, 8)]),
    (nn.RNN(8, 6, nonlinearity="relu", batch_first=True), [(5, 8)]),
    (nn.GRU(8, 6, num_layers=2, bias=False, batch_first=True), [(5, 8)]),
    (nn.MultiheadAttention(8, 2, kdim=4, vdim=6, batch_first=True, add_bias_kv=True), [(5, 8), (3, 4), (3, 6)]),
    (nn.ConvTranspose2d(4, 3, 3, stride=2, output_padding=1, dilation=2), [(4, 8, 8)]),
    (nn.LayerNorm([4, 5], elementwise_affine=False), [(3, 4, 5)]),
    (nn.LayerNorm([4, 4]), [(3, 4, 4)]),  # [4, 4] is not 4 (nor the inferred [4])
    (nn.Unflatten(1, (2, 2)), [(4,)]),
    (nn.Embedding(10, 4, padding_idx=0), [(5,)]),
    (nn.Conv2d(4, 4, 3, groups=4, padding="same", padding_mode="reflect"), [(4, 8, 8)]),
    (nn.BatchNorm2d(4, momentum=None, track_running_stats=False), [(4, 3, 3)]),
]


@pytest.mark.parametrize("layer, shapes", VARIANTS, ids=[type(v[0]).__name__ for v in VARIANTS])
def test_layers_away_from_their_defaults_round_trip(layer: nn.Module, shapes: list[tuple[int, ...]]) -> None:
    model = one_module(layer, len(shapes))
    names = [f"x{i}" for i in range(len(shapes))]
    dtypes = {"x0": "int64"} if isinstance(layer, nn.Embedding) else None
    imported = spec_from_module(model, dict(zip(names, shapes)), dtypes=dtypes)  # checks the round trip
    assert imported.checked.tensors == len(model.state_dict())
    assert compile_spec(load_spec(text=imported.text)).module.layer.__class__ is type(layer)


def test_an_activation_module_is_not_read_as_an_argument() -> None:
    with pytest.raises(SpecError, match="cannot read the constructor arguments of this TransformerEncoderLayer"):
        node_args(nn.TransformerEncoderLayer(8, 2, 16, activation=nn.GELU()), [(3, 8)], "enc")
