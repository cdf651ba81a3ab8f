"""timm models as nodes: ``timm.resnet34: {num_classes: 10, in_chans: 1}``, like torchvision's.

Everything a torchvision node has works the same (``zoo.py``): arguments checked against the
model class, shapes inferred on the meta device, ``weights`` from a local file only,
``replace``, ``truncate``, node-level ``freeze``. What is timm's own:

- timm is optional (``pip install 'netspec[timm]'``) and takes seconds to import, so nothing
  here imports it until a spec names a ``timm.`` model; without it, such a spec gets one line
  with the install command.
- ``pretrained`` would download; it is refused with the fix (save the weights once, name the
  file). A weights file is loaded the way timm loads pretrained weights: a first convolution
  saved for 3 channels is adapted to ``in_chans`` (timm's ``adapt_input_conv``), and a
  classifier saved for another number of classes is left as initialised. Both are reported.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import did_you_mean
from .kinds import TIMM_PREFIX
from .registry import Registry
from .zoo import ModelFamily, class_params, load_state, model_class, read_state_dict

INSTALL = "pip install 'netspec[timm]'"
# Arguments of timm.create_model a spec may give besides the model class's own.
CREATE_ARGS = ("features_only", "out_indices")
# Save-once fix for every way timm has of fetching weights.
_SAVE_ONCE = (
    "netspec never downloads weights: save them once with torch.save(timm.create_model("
    "'{name}', pretrained=True).state_dict(), '{name}.pth') and write `weights: {name}.pth` "
    "(a 3-channel first conv and a classifier of another size are adapted as timm does)"
)
REFUSED = {
    arg: f"`{arg}` would fetch weights; " + _SAVE_ONCE
    for arg in ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir")
}


def _import_timm() -> ModuleType | None:
    try:
        import timm
    except ImportError:  # the optional extra is not installed
        return None
    return timm


def _timm_models(registry: Registry[Callable[..., nn.Module]]) -> None:
    timm = _import_timm()
    if timm is None:
        return
    for name in timm.list_models():
        registry.add(TIMM_PREFIX + name, functools.partial(timm.create_model, name))


#: ``timm.<name>`` -> builder, for every model of ``timm.list_models()``; empty without timm.
TIMM: Registry[Callable[..., nn.Module]] = Registry("timm model", fill=_timm_models)


def unknown_timm_model(name: str) -> str:
    """The one line for a ``timm.`` name that is not a model here: timm missing, or a typo.

    >>> unknown_timm_model("timm.resnet34") if _import_timm() is None else INSTALL
    "pip install 'netspec[timm]'"
    """
    if _import_timm() is None:
        return f"`{name}` is a timm model and timm is not installed; install it with {INSTALL}"
    hint = did_you_mean(name, list(TIMM)) or "see `netspec layers timm` for the list"
    return f"unknown timm model `{name}`; {hint}"


@functools.cache
def _model_class(name: str) -> type | None:
    timm = _import_timm()
    assert timm is not None  # op_kind found the name in TIMM
    return model_class(timm.models.model_entrypoint(name.removeprefix(TIMM_PREFIX)), TIMM[name])


def timm_params(name: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments a spec may give ``timm.<name>``: its class's (``num_classes``,
    ``in_chans``, ``drop_rate``, ``global_pool``, ...) and ``features_only``/``out_indices``.

    >>> "in_chans" in timm_params("timm.resnet34") if _import_timm() else True
    True
    """
    params = class_params(_model_class(name), skip=("device", "dtype"))
    for n in CREATE_ARGS:
        params[n] = inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None)
    return params


# ---- weights ------------------------------------------------------------------------------


def _names(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ())


def adapt_state(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Fit pretrained tensors to the model as timm's ``load_pretrained`` does, in place.

    The first convolution (``pretrained_cfg['first_conv']``) saved for other input channels is
    adapted with timm's ``adapt_input_conv``; a classifier (``pretrained_cfg['classifier']``)
    of another size is dropped, so it stays as initialised. Returns report lines and the names
    of the dropped tensors.
    """
    from timm.models._manipulate import adapt_input_conv

    cfg = getattr(model, "pretrained_cfg", None) or {}
    own = model.state_dict()
    report: list[str] = []
    for conv in _names(cfg.get("first_conv")):
        key = f"{conv}.weight"
        if key in state and key in own and state[key].ndim == 4 and state[key].shape[1] != own[key].shape[1]:
            saved = state[key].shape[1]
            state[key] = adapt_input_conv(own[key].shape[1], state[key], base_chans=saved)
            report.append(f"{key} adapted from {saved} to {own[key].shape[1]} input channels (as timm does)")
    dropped: list[str] = []
    for head in _names(cfg.get("classifier")):
        keys = [k for k in (f"{head}.weight", f"{head}.bias") if k in state and k in own]
        if any(state[k].shape != own[k].shape for k in keys):
            dropped += keys
            report.append(
                f"{head} left as initialised: the file's has {state[keys[0]].shape[0]} outputs, "
                f"the node's {own[keys[0]].shape[0]}"
            )
    for key in dropped:
        del state[key]
    return report, dropped


def load_timm_weights(model: nn.Module, file: Path, strict: bool = True) -> list[str]:
    """Load a local state_dict into a timm model, adapting it as timm would; report lines."""
    state = read_state_dict(file)
    notes, dropped = adapt_state(model, state)
    return load_state(model, state, file, strict, left_out=tuple(dropped)) + notes


TIMM_FAMILY = ModelFamily("timm", TIMM, timm_params, load_timm_weights, REFUSED)
