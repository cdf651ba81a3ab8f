"""A torch.nn layer instance -> the arguments a spec node writes to build the same layer.

torch layers keep most constructor arguments as attributes of the same name
(``Conv2d.stride``); the few that are not (``bias``, MultiheadAttention's ``add_bias_kv``) are
read from what they create. Every reading is checked by building the layer again from the
arguments and comparing it with the original (its repr and its state_dict's shapes), so a
layer read wrongly is reported, never written. Arguments equal to their default, and those
netspec infers from the input (``in_channels``...), are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..layers import BATCH_FIRST_DEFAULT, INFERRED, LAYERS
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


def _activation(m: nn.Module) -> Any:
    """A transformer layer keeps its activation as a function; the spec names torch's two."""
    return {1: "relu", 2: "gelu"}.get(getattr(m, "activation_relu_or_gelu", 0), _MISSING)


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
# GRU and RNN share LSTM's signature in torch but refuse `proj_size`, even at its default.
_NO_PROJ = {"proj_size": lambda m: _MISSING}
_CLASS_READERS = {"TransformerEncoderLayer": _TRANSFORMER, "TransformerDecoderLayer": _TRANSFORMER, "GRU": _NO_PROJ,
                  "RNN": _NO_PROJ}


def _plain(value: Any) -> Any:
    """Tuples as lists (YAML); tensors and modules are not arguments a spec can write."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, (torch.Tensor, nn.Module, torch.dtype, torch.device)) or callable(value):
        return _MISSING
    return value


def _collapse(value: Any) -> Any:
    """``[3, 3]`` -> ``3``: torch layers take one number for every spatial dim."""
    if isinstance(value, list) and value and all(v == value[0] and isinstance(v, int) for v in value):
        return value[0]
    return value


def read_args(m: nn.Module) -> dict[str, Any]:
    """Every constructor argument of ``m``'s layer type that can be read from ``m``.

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
            out[name] = _collapse(value)
    return out


def _config(m: nn.Module) -> Any:
    """What makes two layers the same: their settings, parameter shapes and children, with
    ``(1, 1)``, ``[1, 1]`` and ``1`` read alike."""
    settings = {k: _normal(v) for k, v in vars(m).items()
                if not k.startswith("_") and k != "training" and not isinstance(v, (torch.Tensor, nn.Module))}
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
    rebuilt = _build(cls, full)
    if rebuilt is None or _config(rebuilt) != want:
        raise ImportFailed(f"cannot read the constructor arguments of this {cls.__name__} back from the layer "
                           f"(read {full}, which builds a different layer)", where=where)
    inferred = {k: v for k, v in full.items() if k in INFERRED and in_shapes and _inferred(k, in_shapes) == _normal(v)}
    written = {k: v for k, v in full.items() if k not in inferred}
    required = set(LAYERS[cls.__name__].required)
    for name in list(written):
        if name in required:
            continue
        trial = {k: v for k, v in written.items() if k != name}
        again = _build(cls, {**inferred, **trial})
        if again is not None and _config(again) == want:
            written = trial
    return written


def _inferred(name: str, shapes: Sequence[tuple[int, ...]]) -> Any:
    try:
        return _normal(INFERRED[name]([list(s) for s in shapes]))
    except (IndexError, TypeError):
        return _MISSING


def _normal(value: Any) -> Any:
    """Compare ``(768,)``, ``[768]`` and ``768`` as torch reads them."""
    if isinstance(value, (list, tuple)):
        return _collapse([_normal(v) for v in value])
    return value
