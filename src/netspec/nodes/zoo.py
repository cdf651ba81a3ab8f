"""torchvision models as nodes: ``resnet50``, ``vgg16``, ``alexnet``, ... by builder name.

Weights are never downloaded: ``weights`` names a local file, a state_dict saved with
``torch.save`` (loaded with ``torch.load(weights_only=True)``) or a ``.safetensors`` file. Heads are replaced
(``replace: {fc: {Linear: {out_features: 10}}}``), the network can be truncated after a
top-level child (``truncate: avgpool``), and parameters are frozen with the node-level
``freeze`` key. timm's models (``timm.resnet34``) get the same treatment through their
:class:`ModelFamily` in ``timm_zoo.py``; ``model_nodes.py`` makes either kind a node.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compiler.dims import build_on_meta
from ..errors import AccessRefused, BuildError, CheckpointError, did_you_mean
from ..files.access import FileAccess
from ..files.torchfile import load_torch_file
from .catalog import catalog, torchvision_model_names
from .registry import Registry

#: the suffixes a node's `weights` file may have: torch's pickles (read weights-only) and safetensors
WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def _torchvision_models(registry: Registry[Callable[..., nn.Module]]) -> None:
    import torchvision.models as tvm

    for name in torchvision_model_names():
        registry.add(name, tvm.get_model_builder(name))


def _catalogued_names() -> tuple[str, ...]:
    return catalog().models


#: model name -> builder: torchvision's classification models (``resnet18``, ``vgg16``, ...),
#: imported on first use (only a spec that names one pays for torchvision: the names alone
#: come from netspec.nodes.catalog).
ZOO: Registry[Callable[..., nn.Module]] = Registry(
    "torchvision model", fill=_torchvision_models, names=_catalogued_names
)


@dataclass(frozen=True)
class ModelFamily:
    """Where a model node comes from (torchvision, timm): how its arguments are found, how it is
    built and how a local weights file is loaded into it. Truncating, replacing layers and
    freezing are the same for every family."""

    label: str  # "torchvision", "timm"
    registry: Registry[Callable[..., nn.Module]]
    params: Callable[[str], dict[str, inspect.Parameter]]  # the arguments a spec may give
    load: Callable[[nn.Module, Path, bool], list[str]]  # (model, file, strict) -> report lines
    refused: Mapping[str, str] = field(default_factory=dict)  # argument -> why not and the fix ({name}: the model)

    def build(self, name: str, **kwargs: Any) -> nn.Module:
        return self.registry[name](**kwargs)


def zoo_params(name: str) -> dict[str, inspect.Parameter]:
    """Constructor keyword arguments a builder accepts (``num_classes``, ``dropout`` ...).

    torchvision builders take ``**kwargs`` passed to the model class, so the class's own
    signature is merged in.
    """
    builder = ZOO[name]
    params = {
        n: p
        for n, p in inspect.signature(builder).parameters.items()
        if p.kind is not p.VAR_KEYWORD and n not in ("weights", "progress")
    }
    return {**class_params(_model_class(name)), **params}


def class_params(cls: type[Any] | None, skip: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """The keyword arguments with defaults of a model class (those without are set by its builder).

    >>> list(class_params(nn.Linear, skip=("device", "dtype")))
    ['bias']
    """
    if cls is None:
        return {}
    return {
        n: p
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if n != "self"
        and n not in skip
        and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        and p.default is not inspect.Parameter.empty
    }


def model_class(annotated: Callable[..., Any], build: Callable[[], nn.Module]) -> type | None:
    """The class a builder instantiates: its return annotation, else built on the meta device
    (free). RegNet's builders cannot be built on the meta device; their annotation names the class.

    >>> model_class(ZOO["resnet18"], ZOO["resnet18"]).__name__
    'ResNet'
    """
    try:
        cls = typing.get_type_hints(annotated).get("return")
    except Exception:  # annotations naming something the library does not import
        cls = None
    if inspect.isclass(cls) and issubclass(cls, nn.Module) and cls is not nn.Module:
        return cls
    try:
        return type(build_on_meta(build))
    except Exception:
        return None


@cache
def _model_class(name: str) -> type | None:
    return model_class(ZOO[name], ZOO[name])


def parse_module_path(path: str) -> list[str]:
    """``classifier[6]`` or ``classifier.6`` -> ``["classifier", "6"]``."""
    return [p for p in re.split(r"[.\[\]]+", path) if p]


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    mod = root
    for part in parse_module_path(path):
        children = dict(mod.named_children())
        if part not in children:
            raise BuildError(
                f"no submodule `{path}` (at `{part}`)",
                hint=did_you_mean(part, list(children)) or f"children here: {', '.join(children) or 'none'}",
            )
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
    may read (:mod:`netspec.files.access`), symlinks resolved.

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
        raise CheckpointError(
            f"weights file `{weights}` does not exist (relative to {base_dir})",
            path=path,
            node=node,
            hint="weights are never downloaded; save a state_dict with torch.save (or safetensors) and "
            "name that file (relative paths are relative to the spec file)",
        )
    return file


def is_weights_file(value: str) -> bool:
    """Whether a node's ``weights`` names a file (by its suffix) rather than a weights enum.

    >>> is_weights_file("r18.safetensors"), is_weights_file("IMAGENET1K_V1")
    (True, False)
    """
    return Path(value).suffix.lower() in WEIGHTS_SUFFIXES


def weights_enum(name: str, value: str, path: tuple = (), node: str | None = None) -> Any:
    """The torchvision weights enum member ``value`` names for model ``name``: the member alone
    (``IMAGENET1K_V1``, ``DEFAULT``) or with its class (``ResNet18_Weights.IMAGENET1K_V1``).
    Reading it downloads nothing: the enum holds the URL, the metadata and the transforms.

    >>> weights_enum("resnet18", "DEFAULT")
    ResNet18_Weights.IMAGENET1K_V1
    """
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(name)
    except Exception:  # a builder without a weights enum
        raise BuildError(f"torchvision `{name}` has no pretrained weights to name", path=path, node=node) from None
    cls_name, _, member = value.rpartition(".")
    members = list(enum.__members__)
    if cls_name and cls_name != enum.__name__:
        raise BuildError(
            f"`{value}` are not weights of `{name}`, whose weights are {enum.__name__}",
            path=path,
            node=node,
            hint=f"one of: {', '.join(f'{enum.__name__}.{m}' for m in members)}",
        )
    if member not in members:
        raise BuildError(
            f"`{value}` is neither a weights file (.pt, .pth, .safetensors) nor one of {enum.__name__}'s weights",
            path=path,
            node=node,
            hint=did_you_mean(member, members) or f"its weights: {', '.join(members)}",
        )
    return enum[member]


def cached_weights_file(member: Any, builder: str, path: tuple = (), node: str | None = None) -> Path:
    """The file torchvision keeps ``member``'s weights in (torch's hub cache,
    ``$TORCH_HOME/hub/checkpoints``): used when present, never downloaded."""
    from urllib.parse import urlparse

    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(member.url).path).name
    if not file.is_file():
        raise CheckpointError(
            f"{type(member).__name__}.{member.name} is not in torch's cache ({file}) and netspec never downloads",
            path=path,
            node=node,
            hint=f"fetch it once with: python -c \"import torchvision; torchvision.models.get_model('{builder}', "
            f"weights='{type(member).__name__}.{member.name}')\", or save the weights and name the file",
        )
    return file


def read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """A local state_dict (or a netspec checkpoint's model), read with ``weights_only=True``
    through :mod:`netspec.files.torchfile` (bounded, tensors only, one line on failure), or a
    ``.safetensors`` file."""
    state = load_torch_file(file, (), CheckpointError, "weights file")  # tensors only, never code
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} does not hold a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], file: Path, strict: bool = True, left_out: tuple[str, ...] = ()
) -> list[str]:
    """Load ``state`` (read from ``file``) into ``model``; returns report lines.

    ``left_out`` names tensors the caller dropped on purpose (a classifier of another size):
    missing them is no reason to refuse a strict load.
    """
    own = model.state_dict()
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointError(f"{file}: `{k}` has shape {tuple(v.shape)} but the model's is {tuple(own[k].shape)}")
    result = model.load_state_dict(dict(state), strict=False)
    missing = [k for k in result.missing_keys if k not in left_out]
    if strict and (missing or result.unexpected_keys):
        raise CheckpointError(
            f"{file} does not fit: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}",
            hint="set `strict: false` on the node to load what fits",
        )
    report = [f"loaded {len(state) - len(result.unexpected_keys)} tensors from {file}"]
    if missing:
        report.append(f"missing (left as initialised): {', '.join(missing)}")
    if result.unexpected_keys:
        report.append(f"unexpected (ignored): {', '.join(result.unexpected_keys)}")
    return report


def load_local_weights(model: nn.Module, file: Path, strict: bool = True) -> list[str]:
    """Load a local state_dict into ``model``; returns report lines. Never downloads."""
    return load_state(model, read_state_dict(file), file, strict)


TORCHVISION = ModelFamily("torchvision", ZOO, zoo_params, load_local_weights)
