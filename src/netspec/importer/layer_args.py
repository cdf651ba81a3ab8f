"""A torch.nn layer instance -> the arguments a spec node writes to build the same layer.

torch layers keep most constructor arguments as attributes of the same name
(``Conv2d.stride``); the few that are not (``bias``, MultiheadAttention's ``add_bias_kv``) are
read from what they create. Every reading is checked by building the layer again from the
arguments and comparing it with the original (its repr and its state_dict's shapes), so a
layer read wrongly is reported, never written. Arguments equal to their default, and those
netspec infers from the input (``in_channels``...), are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..nodes.layers import BATCH_FIRST_DEFAULT, INFERRED, LAYERS
from .errors import ImportFailed

_MISSING = object()


def _bias(m: nn.Module) -> Any:
    for attr in ("bias", "in_proj_bias"):  # MultiheadAttention keeps its input bias as in_proj_bias
        if attr in m._parameters or hasattr(m, attr):
            value = getattr(m, attr)
            return value if isinstance(value, bool) else value is not None
    return _MISSING


# Arguments a layer does not keep under their own name: how to read them back.
_READERS = {
    "bias": _bias,
    "add_bias_kv": lambda m: getattr(m, "bias_k", _MISSING) is not None if hasattr(m, "bias_k") else _MISSING,
}


def _activation(m: Any) -> Any:  # a transformer layer: torch types its attributes as Tensor | Module
    """A transformer layer keeps its activation as a function; the spec names torch's two."""
    import torch.nn.functional as F

    return {F.relu: "relu", F.gelu: "gelu"}.get(m.activation, _MISSING)


# The transformer layers keep their arguments in their children: read them from there.
_TRANSFORMER = {
    "d_model": lambda m: m.self_attn.embed_dim,
    "nhead": lambda m: m.self_attn.num_heads,
    "dim_feedforward": lambda m: m.linear1.out_features,
    "dropout": lambda m: m.dropout.p,
    "layer_norm_eps": lambda m: m.norm1.eps,
    "batch_first": lambda m: m.self_attn.batch_first,
    "bias": lambda m: m.linear1.bias is not None,
    "activation": _activation,
}


def _first_encoder_layer(read: Callable[[Any], Any]) -> Callable[[Any], Any]:  # reads attributes by name
    return lambda m: read(m.encoder.layers[0])


# nn.Transformer: the same, read from its first encoder layer, and the depths.
_WHOLE_TRANSFORMER = {
    **{k: _first_encoder_layer(read) for k, read in _TRANSFORMER.items()},
    "norm_first": lambda m: m.encoder.layers[0].norm_first,
    "num_encoder_layers": lambda m: len(m.encoder.layers),
    "num_decoder_layers": lambda m: len(m.decoder.layers),
}
# GRU and RNN share LSTM's signature in torch but refuse `proj_size`, even at its default.
_NO_PROJ = {"proj_size": lambda m: _MISSING}
_CLASS_READERS = {
    "TransformerEncoderLayer": _TRANSFORMER,
    "TransformerDecoderLayer": _TRANSFORMER,
    "Transformer": _WHOLE_TRANSFORMER,
    "GRU": _NO_PROJ,
    "RNN": _NO_PROJ,
}


def _plain(value: Any) -> Any:
    """Tuples as lists (YAML); tensors and modules are not arguments a spec can write."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, (torch.Tensor, nn.Module, torch.dtype, torch.device)) or callable(value):
        return _MISSING
    return value


# Arguments that are a tensor's sizes, not one value per spatial dim: `[4, 4]` is not `4`.
_SIZES = {"normalized_shape", "unflattened_size"}


def _collapse(value: Any) -> Any:
    """``[3, 3]`` -> ``3``: torch layers take one number for every spatial dim."""
    if isinstance(value, list) and value and all(v == value[0] and isinstance(v, int) for v in value):
        return value[0]
    return value


def read_args(m: nn.Module) -> dict[str, Any]:
    """Every constructor argument of ``m``'s layer type that can be read from ``m``; ``[3, 3]``
    as ``3``, as Conv2d takes it, except in sizes (LayerNorm's ``[4, 4]`` is not ``4``).

    >>> read_args(nn.Conv2d(3, 8, 3, stride=2, bias=False))["stride"]
    2
    >>> read_args(nn.Conv2d(3, 8, 3, bias=False))["bias"]
    False
    >>> read_args(nn.TransformerEncoderLayer(16, 2, 32, activation="gelu"))["activation"]
    'gelu'
    """
    entry = LAYERS[type(m).__name__]
    readers = {**_READERS, **_CLASS_READERS.get(type(m).__name__, {})}
    out: dict[str, Any] = {}
    for name, p in entry.params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        reader = readers.get(name)
        value = reader(m) if reader else _plain(getattr(m, name, _MISSING))
        if value is not _MISSING:
            out[name] = value if name in _SIZES else _collapse(value)
    return out


def _config(m: nn.Module) -> Any:
    """What makes two layers the same: their settings, parameter shapes and children, with
    ``(1, 1)``, ``[1, 1]`` and ``1`` read alike."""
    settings = {
        k: _normal(v, k)
        for k, v in vars(m).items()
        if not k.startswith("_") and k != "training" and not isinstance(v, (torch.Tensor, nn.Module))
    }
    own = {k: (tuple(v.shape), v.dtype) for k, v in [*m._parameters.items(), *m._buffers.items()] if v is not None}
    return type(m), settings, own, {k: _config(c) for k, c in m.named_children()}


def _build(cls: type[nn.Module], args: dict[str, Any]) -> nn.Module | None:
    if cls.__name__ in BATCH_FIRST_DEFAULT and "batch_first" in LAYERS[cls.__name__].params:
        args = {"batch_first": True, **args}  # what netspec passes when a spec leaves it out
    try:
        with torch.device("meta"):
            return cls(**args)
    except Exception:
        return None


def node_args(m: nn.Module, in_shapes: Sequence[tuple[int, ...]], where: str) -> dict[str, Any]:
    """The arguments a spec node writes for layer ``m``: none that netspec infers from the per-sample
    input shapes ``in_shapes``, none whose default builds the same layer. Checked: the arguments
    build a layer equal to ``m``.

    >>> node_args(nn.Conv2d(3, 8, 3, padding=1, bias=False), [(3, 32, 32)], "conv1")
    {'out_channels': 8, 'kernel_size': 3, 'padding': 1, 'bias': False}
    >>> node_args(nn.MultiheadAttention(16, 2), [(5, 16)] * 3, "attn")
    {'num_heads': 2, 'batch_first': False}
    >>> node_args(nn.AdaptiveAvgPool2d((1, 1)), [(8, 7, 7)], "avgpool")
    {'output_size': 1}
    """
    cls, want = type(m), _config(m)
    full = read_args(m)
    if not _builds(cls, full, want):
        raise ImportFailed(
            f"cannot read the constructor arguments of this {cls.__name__} back from the layer "
            f"(read {full}, which builds a different layer)",
            where=where,
        )
    inferred = {
        k: value
        for k in full
        if k in INFERRED
        and in_shapes
        and (value := _inferred(k, in_shapes)) is not _MISSING
        and _builds(cls, {**full, k: value}, want)
    }
    written = {k: v for k, v in full.items() if k not in inferred}
    required = set(LAYERS[cls.__name__].required)
    for name in list(written):
        if name in required:
            continue
        trial = {k: v for k, v in written.items() if k != name}
        if _builds(cls, {**inferred, **trial}, want):
            written = trial
    return written


def _builds(cls: type[nn.Module], args: dict[str, Any], want: Any) -> bool:
    """Whether ``args`` build a layer the same as the one read (``want``: its :func:`_config`)."""
    again = _build(cls, args)
    return again is not None and _same_config(_config(again), want)


def _same_config(built: Any, want: Any) -> bool:
    """``built`` (a fresh layer's :func:`_config`) is ``want``; an attribute the layer read was given
    after it was made (Inception's ``AuxLogits.fc.stddev``, an init hint) is no setting of its forward."""
    (cls, settings, own, children), (wcls, wsettings, wown, wchildren) = built, want
    return (
        cls is wcls
        and own == wown
        and settings == {k: v for k, v in wsettings.items() if k in settings}
        and children.keys() == wchildren.keys()
        and all(_same_config(children[k], wchildren[k]) for k in children)
    )


def _inferred(name: str, shapes: Sequence[tuple[int, ...]]) -> Any:
    """The value netspec infers for argument ``name`` from the per-sample input shapes."""
    try:
        return INFERRED[name]([tuple(s) for s in shapes])
    except (IndexError, TypeError):
        return _MISSING


def _normal(value: Any, key: str = "") -> Any:
    """Compare ``(768,)``, ``[768]`` and ``768`` as torch reads them (``(1, 1)`` and ``1`` too,
    but not in sizes: LayerNorm's ``(4, 4)``)."""
    if isinstance(value, (list, tuple)):
        items = [_normal(v) for v in value]
        return items if key in _SIZES else _collapse(items)
    return value
