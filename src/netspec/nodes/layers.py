"""Registry of layer types: every ``torch.nn`` module by class name, found by introspection.

Each entry knows its constructor's arguments (for validation and did-you-mean), which of
them netspec infers from the incoming shape (``in_channels``, ``in_features``, ...), and
how many tensor inputs its forward takes. Custom modules registered with
:func:`netspec.register_module` join the same registry.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from torch import nn

from .registry import Registry

Shape = tuple[int, ...]  # per-sample shape (batch dim excluded)

# Constructor arguments netspec fills from the input's per-sample shape. The function
# gets the per-sample shapes of all inputs.
INFERRED: dict[str, Callable[[list[Shape]], Any]] = {
    "in_channels": lambda s: s[0][0],
    "num_features": lambda s: s[0][0],
    "num_channels": lambda s: s[0][0],  # GroupNorm
    "in_features": lambda s: s[0][-1],
    "input_size": lambda s: s[0][-1],  # RNN, LSTM, GRU
    "embed_dim": lambda s: s[0][-1],  # MultiheadAttention
    "d_model": lambda s: s[0][-1],  # Transformer layers
    "normalized_shape": lambda s: [s[0][-1]],  # LayerNorm: the last dim by default
    "in1_features": lambda s: s[0][-1],  # Bilinear
    "in2_features": lambda s: s[1][-1] if len(s) > 1 else s[0][-1],
}

# netspec shapes are batch-first everywhere, so recurrent and attention layers default
# to batch_first=True (torch's default is False). Shown in the summary's log.
BATCH_FIRST_DEFAULT = {
    "RNN",
    "LSTM",
    "GRU",
    "MultiheadAttention",
    "Transformer",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
}

_SKIP_ARGS = {"self", "device", "dtype", "factory_kwargs"}
_EXCLUDED = {"Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Container"}
# torch.nn classes that cannot be written as a spec node, and what to write instead.
REFUSED = {
    "RNNBase": "it is the base class of RNN, LSTM and GRU; use one of those",
    "RNNCellBase": "it is the base class of RNNCell, LSTMCell and GRUCell; use one of those",
    "TransformerEncoder": "it takes a layer object; write `- TransformerEncoderLayer: {...}` with `repeat: N`",
    "TransformerDecoder": "it takes a layer object; write `- TransformerDecoderLayer: {...}` with `repeat: N`",
    "AdaptiveLogSoftmaxWithLoss": "it computes a loss from the targets, and which rows each cluster gets "
    "depends on their values, so no shape can be inferred before the data",
}


@dataclass
class LayerType:
    """One entry of the layer registry."""

    name: str
    cls: type[nn.Module]
    params: dict[str, inspect.Parameter]
    min_inputs: int = 1
    max_inputs: int | None = 1
    custom: bool = False
    hints: dict[str, Any] = field(default_factory=dict)
    forward_params: dict[str, inspect.Parameter] = field(default_factory=dict)

    @property
    def tensor_inputs(self) -> list[str]:
        """Forward arguments that take tensors (or tuples of them, like LSTM's ``hx``): what
        ``from`` may name. Flags such as ``need_weights: bool`` are not inputs."""
        return [
            n
            for n, p in self.forward_params.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and (p.annotation is inspect.Parameter.empty or "Tensor" in str(p.annotation))
        ]

    @property
    def inferable(self) -> list[str]:
        """Constructor arguments netspec can fill in from the input shape."""
        return [p for p in self.params if p in INFERRED]

    @property
    def required(self) -> list[str]:
        """Arguments without a default that netspec cannot infer."""
        return [
            n
            for n, p in self.params.items()
            if p.default is inspect.Parameter.empty
            and n not in INFERRED
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    @property
    def accepts_var_kwargs(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in self.params.values())


def _constructor_params(cls: type[Any]) -> dict[str, inspect.Parameter]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return {}
    return {n: p for n, p in sig.parameters.items() if n not in _SKIP_ARGS and p.kind is not p.VAR_POSITIONAL}


def _forward_params(cls: type[Any]) -> dict[str, inspect.Parameter]:
    try:
        return dict(list(inspect.signature(cls.forward).parameters.items())[1:])
    except (TypeError, ValueError):
        return {}


def _forward_arity(cls: type) -> tuple[int, int | None]:
    """(min, max) positional tensor inputs of ``cls.forward``: its required arguments (optional
    ones are given by name in a ``from`` mapping)."""
    params = list(_forward_params(cls).values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 1, None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is inspect.Parameter.empty)
    return max(required, 1), max(required, 1)


def _type_hints(cls: type[Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # torch annotations sometimes name private or missing types
        return {}


def _make_entry(name: str, cls: type[nn.Module], custom: bool = False) -> LayerType:
    lo, hi = _forward_arity(cls)
    params, hints = _constructor_params(cls), _type_hints(cls)
    if issubclass(cls, nn.RNNBase) and "input_size" not in params:
        # RNN/LSTM/GRU take *args/**kwargs; their real arguments live on RNNBase.
        params = {n: p for n, p in _constructor_params(nn.RNNBase).items() if n != "mode"}
        hints = {n: h for n, h in _type_hints(nn.RNNBase).items() if n != "mode"}
        if name == "RNN":
            params["nonlinearity"] = inspect.Parameter("nonlinearity", inspect.Parameter.KEYWORD_ONLY, default="tanh")
    return LayerType(name, cls, params, lo, hi, custom, hints, _forward_params(cls))


def torch_layer_types() -> dict[str, LayerType]:
    """torch.nn's layers a spec can name, sorted (what ``netspec.nodes.catalog`` records).

    >>> entry = torch_layer_types()["Conv2d"]
    >>> entry.inferable, entry.required
    (['in_channels'], ['out_channels', 'kernel_size'])
    """
    loss_base = nn.modules.loss._Loss
    out: dict[str, LayerType] = {}
    for name in sorted(getattr(nn.modules, "__all__", dir(nn))):
        cls = getattr(nn, name, None)
        if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
            continue
        if name in _EXCLUDED or name in REFUSED or name.startswith("Lazy") or issubclass(cls, loss_base):
            continue
        out[name] = _make_entry(name, cls)
    return out


def _fill(registry: Registry[LayerType]) -> None:
    """torch.nn's layers (sorted), then the modules installed packages declare."""
    for name, entry in torch_layer_types().items():
        registry.add(name, entry)
    load_entry_points()


#: layer name -> entry: every torch.nn layer, custom modules (`@register_module`) and the modules
#: installed packages declare under the ``netspec.modules`` entry-point group.
LAYERS: Registry[LayerType] = Registry("layer", fill=_fill, hint="see `netspec layers` for the list")
for _name, _why in REFUSED.items():
    LAYERS.refuse(_name, f"torch.nn.{_name} cannot be a node: {_why}")


_M = TypeVar("_M", bound=nn.Module)


@overload
def register_module(cls: type[_M], *, name: str | None = None) -> type[_M]: ...
@overload
def register_module(cls: None = None, *, name: str | None = None) -> Callable[[type[_M]], type[_M]]: ...


def register_module(
    cls: type[_M] | None = None, *, name: str | None = None
) -> type[_M] | Callable[[type[_M]], type[_M]]:
    """Register a custom ``nn.Module`` class so specs can use it by name.

    Usable as ``@register_module`` or ``@register_module(name="MyBlock")``. Arguments
    named like torch's (``in_channels``, ``in_features``, ...) are inferred as usual. Registering
    a name again replaces the earlier custom entry (re-running a notebook cell).

    >>> import torch.nn as nn
    >>> @register_module
    ... class Scale(nn.Module):
    ...     def __init__(self, factor: float = 2.0):
    ...         super().__init__(); self.factor = factor
    ...     def forward(self, x):
    ...         return x * self.factor
    >>> "Scale" in LAYERS
    True
    """

    def wrap(c: type[_M]) -> type[_M]:
        if not (inspect.isclass(c) and issubclass(c, nn.Module)):
            raise TypeError(f"register_module expects an nn.Module subclass, got {c!r}")
        key = name or c.__name__
        LAYERS.add(key, _make_entry(key, c, custom=True), replace=True)
        return c

    return wrap(cls) if cls is not None else wrap


def load_entry_points() -> None:
    """Import installed packages that declare ``netspec.modules`` entry points.

    Installed packages are trusted code the user chose to install; a *spec* never triggers
    an import by itself.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="netspec.modules"):
        if ep.name in LAYERS and LAYERS[ep.name].custom:
            continue  # registered in code already
        try:
            obj = ep.load()
        except Exception as e:  # a broken plug-in must not break every spec
            import warnings

            warnings.warn(f"netspec.modules entry point `{ep.name}` ({ep.value}) failed to load: {e}", stacklevel=2)
            continue
        if inspect.isclass(obj) and issubclass(obj, nn.Module):
            register_module(obj, name=ep.name)
