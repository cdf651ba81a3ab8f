"""torchvision models as nodes: ``resnet50``, ``vgg16``, ``alexnet``, ... by builder name.

Weights are never downloaded: ``weights`` names a local file (a state_dict saved with
``torch.save``) and is loaded with ``torch.load(weights_only=True)``. Heads are replaced
(``replace: {fc: {Linear: {out_features: 10}}}``), the network can be truncated after a
top-level child (``truncate: avgpool``), and parameters are frozen with the node-level
``freeze`` key.
"""

from __future__ import annotations

import inspect
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .access import FileAccess
from .errors import AccessRefused, BuildError, CheckpointError, did_you_mean
from .torchfile import load_torch_file

# netspec's own arguments on a torchvision node, beside the builder's constructor args.
ZOO_EXTRA_ARGS = {"weights", "replace", "truncate", "strict"}


@lru_cache(maxsize=1)
def zoo_names() -> tuple[str, ...]:
    """Names of the torchvision classification models (``resnet18``, ``vgg16``, ...)."""
    import torchvision.models as tvm

    return tuple(sorted(tvm.list_models(module=tvm)))


def zoo_builder(name: str) -> Callable[..., nn.Module]:
    import torchvision.models as tvm

    return tvm.get_model_builder(name)


def zoo_params(name: str) -> dict[str, inspect.Parameter]:
    """Constructor keyword arguments a builder accepts (``num_classes``, ``dropout`` ...).

    torchvision builders take ``**kwargs`` passed to the model class, so the class's own
    signature is merged in.
    """
    builder = zoo_builder(name)
    params = {n: p for n, p in inspect.signature(builder).parameters.items()
              if p.kind is not p.VAR_KEYWORD and n not in ("weights", "progress")}
    model_cls = _model_class(name)
    if model_cls is not None:
        for n, p in inspect.signature(model_cls.__init__).parameters.items():
            if (n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n not in params
                    and p.default is not inspect.Parameter.empty):  # no default: set by the builder
                params[n] = p
    return params


@lru_cache(maxsize=None)
def _model_class(name: str) -> type | None:
    """The class a builder instantiates, found by building it on the meta device (free)."""
    try:
        with torch.device("meta"):
            return type(zoo_builder(name)())
    except Exception:
        return None


def parse_module_path(path: str) -> list[str]:
    """``classifier[6]`` or ``classifier.6`` -> ``["classifier", "6"]``."""
    return [p for p in re.split(r"[.\[\]]+", path) if p]


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    mod = root
    for part in parse_module_path(path):
        children = dict(mod.named_children())
        if part not in children:
            raise BuildError(f"no submodule `{path}` (at `{part}`)",
                             hint=did_you_mean(part, list(children)) or
                             f"children here: {', '.join(children) or 'none'}")
        mod = children[part]
    return mod


def set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parts = parse_module_path(path)
    parent = get_submodule(root, ".".join(parts[:-1])) if len(parts) > 1 else root
    get_submodule(parent, parts[-1])  # raises a good error when missing
    if isinstance(parent, nn.Sequential) and parts[-1].isdigit():
        parent[int(parts[-1])] = new
    else:
        setattr(parent, parts[-1], new)


def incoming_shape_of(module: nn.Module) -> dict[str, int]:
    """What a replacement layer can infer from the module it replaces."""
    out: dict[str, int] = {}
    for attr in ("in_features", "in_channels", "num_features"):
        if isinstance(getattr(module, attr, None), int):
            out[attr] = getattr(module, attr)
    return out


def local_weights_file(weights: str, base_dir: Path, roots: tuple[Path, ...], path: tuple, node: str) -> Path:
    """The weights file a torchvision node names: an existing file under the folders the spec
    may read (:mod:`netspec.access`), symlinks resolved.

    >>> local_weights_file("/etc/w.pt", Path("."), (), ("nodes", 0), "net")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    netspec.errors.AccessRefused: <spec>: nodes[0] (net): `/etc/w.pt` is outside the folders this spec may read ...
    """
    try:
        file = FileAccess(base_dir, roots).resolve(weights)
    except AccessRefused as e:
        e.path, e.node = path, node
        raise
    if not file.is_file():
        raise CheckpointError(f"weights file `{weights}` does not exist (relative to {base_dir})", path=path, node=node,
                              hint="weights are never downloaded; save a state_dict with torch.save and name "
                                   "that file (relative paths are relative to the spec file)")
    return file


def load_local_weights(model: nn.Module, file: Path, strict: bool = True) -> list[str]:
    """Load a local state_dict into ``model``; returns report lines. Never downloads."""
    state = load_torch_file(file, (), CheckpointError, "weights file")  # tensors only, never code
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} does not hold a state_dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointError(f"{file}: `{k}` has shape {tuple(v.shape)} but the model's is {tuple(own[k].shape)}")
    result = model.load_state_dict(state, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise CheckpointError(f"{file} does not fit: missing {result.missing_keys[:3]}, "
                              f"unexpected {result.unexpected_keys[:3]}",
                              hint="set `strict: false` on the node to load what fits")
    report = [f"loaded {len(state) - len(result.unexpected_keys)} tensors from {file}"]
    if result.missing_keys:
        report.append(f"missing (left as initialised): {', '.join(result.missing_keys)}")
    if result.unexpected_keys:
        report.append(f"unexpected (ignored): {', '.join(result.unexpected_keys)}")
    return report
