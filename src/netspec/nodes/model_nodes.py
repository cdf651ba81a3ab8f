"""A torchvision or timm model as a node: its family (``zoo.py``, ``timm_zoo.py``), the arguments a
spec may give it, the model built on meta with its replacements and truncation, and its output
inferred (``infer_zoo``, called by shape inference).

>>> family_of("resnet18").label
'torchvision'
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compiler.binding import bind_layer_args
from ..compiler.dims import Probe, build_on_meta, construct_meta, run_probe
from ..compiler.expr import substitute
from ..compiler.typed import Options, TypedNode, ZooPlan
from ..errors import BuildError, did_you_mean
from .kinds import TIMM_PREFIX, ZOO_EXTRA_ARGS
from .layers import INFERRED, LAYERS
from .zoo import (
    TORCHVISION,
    WEIGHTS_SUFFIXES,
    ModelFamily,
    cached_weights_file,
    get_submodule,
    incoming_shape_of,
    is_weights_file,
    local_weights_file,
    set_submodule,
    weights_enum,
)


def family_of(name: str) -> ModelFamily:
    """The family a model node's name belongs to.

    >>> family_of("resnet18").label, family_of("timm.resnet34").label
    ('torchvision', 'timm')
    """
    if name.startswith(TIMM_PREFIX):
        from .timm_zoo import TIMM_FAMILY  # imports timm itself only when its registry is read

        return TIMM_FAMILY
    return TORCHVISION


def model_params(name: str) -> dict[str, inspect.Parameter]:
    """The constructor arguments a spec may give a torchvision or timm model node."""
    return family_of(name).params(name)


def _zoo_args(op: str, raw: Any, options: Options, path: tuple, node: str) -> tuple[dict[str, Any], Path | None]:
    """The builder's keyword arguments (checked) and the `weights` file named, if any (a file the
    spec may read: under its folder or a data root)."""
    base_dir = options.base_dir
    if not isinstance(raw, dict):
        raise BuildError(f"`{op}` takes a mapping of arguments", path=path, node=node)
    family = family_of(op)
    allowed = family.params(op)
    kwargs = {k: v for k, v in raw.items() if k not in ZOO_EXTRA_ARGS}
    for key in list(kwargs):
        if key in family.refused and kwargs[key] in (None, False):
            del kwargs[key]  # `pretrained: false` says what netspec does anyway
        elif key in family.refused:
            raise BuildError(
                family.refused[key].format(name=op.removeprefix(TIMM_PREFIX)), path=path + (key,), node=node
            )
        elif key not in allowed:
            raise BuildError(
                f"{family.label} `{op}` has no argument `{key}`",
                path=path + (key,),
                node=node,
                hint=did_you_mean(key, [*allowed, *ZOO_EXTRA_ARGS])
                or f"its arguments: {', '.join([*allowed, *sorted(ZOO_EXTRA_ARGS)])}",
            )
    weights = raw.get("weights")
    if isinstance(weights, str) and family is TORCHVISION and not is_weights_file(weights):
        member = weights_enum(op, weights, path + ("weights",), node)  # ResNet18_Weights.IMAGENET1K_V1
        return kwargs, cached_weights_file(member, op, path + ("weights",), node)
    if weights is not None and not (isinstance(weights, str) and (base_dir / weights).suffix in WEIGHTS_SUFFIXES):
        raise BuildError(
            f"`weights` must be a local .pt/.pth/.safetensors file, got {weights!r}",
            path=path + ("weights",),
            node=node,
            hint="weights are never downloaded; save a state_dict and name the file",
        )
    if weights is None:
        return kwargs, None
    return kwargs, local_weights_file(weights, base_dir, options.roots, path + ("weights",), node)


def infer_zoo(
    op: str, raw: Any, ins: list[Probe], env: Mapping[str, Any], options: Options, path: tuple, node: str
) -> TypedNode:
    """Build a torchvision or timm model on meta (with its replacements) and infer its output.

    >>> from netspec.compiler.dims import input_probe
    >>> x = input_probe((3, 32, 32), torch.float32)
    >>> infer_zoo("resnet18", {"num_classes": 7}, [x], {}, Options(Path(".")), ("nodes", 0), "net").shape
    '(B, 7)'
    """
    apath = path + (op,)
    raw = substitute(raw or {}, env, apath)
    kwargs, weights_file = _zoo_args(op, raw, options, apath, node)
    try:
        model = build_on_meta(family_of(op).build, name=op, **kwargs)
    except Exception as e:
        raise BuildError(
            f"{family_of(op).label} {op}({kwargs}) failed: {str(e).splitlines()[0]}", path=apath, node=node
        ) from None
    truncate = raw.get("truncate")
    if truncate is not None:
        model = truncate_model(model, str(truncate), apath + ("truncate",), node)
    replace: list[tuple[str, TypedNode]] = []
    if not isinstance(raw.get("replace") or {}, dict):
        raise BuildError(
            "`replace` maps submodule names to layers, e.g. {fc: {Linear: {out_features: 10}}}",
            path=apath + ("replace",),
            node=node,
        )
    for target, rspec in (raw.get("replace") or {}).items():
        rnode = _replacement(model, str(target), rspec, env, apath + ("replace", target), node)
        with torch.device("meta"):
            set_submodule(model, str(target), rnode.layer_cls(**rnode.args))  # type: ignore[misc]
        replace.append((str(target), rnode))
    out = run_probe(model.eval(), ins, {}, op, path, node)
    plan = ZooPlan(op, kwargs, weights_file, bool(raw.get("strict", True)), truncate, replace)
    notes = [f"weights: {raw['weights']}" if weights_file else "random init (no weights file)"]
    notes += [f"replaced {t} with {r.op}" for t, r in replace]
    params = sum(p.numel() for p in model.parameters())
    return TypedNode(node, "zoo", op, path, [], kwargs, out.value, out.twin, notes, zoo=plan, params=params)


def _replacement(
    model: nn.Module, target: str, rspec: Any, env: Mapping[str, Any], path: tuple, node: str
) -> TypedNode:
    try:
        old = get_submodule(model, target)
    except BuildError as e:
        e.path, e.node = path, node
        raise
    if isinstance(rspec, str):
        rspec = {rspec: {}}
    if not isinstance(rspec, dict) or len(rspec) != 1:
        raise BuildError("a replacement is one layer, e.g. {Linear: {out_features: 10}}", path=path, node=node)
    ((op, args),) = rspec.items()
    entry = LAYERS.get(op)
    if entry is None:
        raise BuildError(f"unknown layer `{op}`", path=path, node=node, hint=did_you_mean(op, LAYERS))
    kwargs, _ = bind_layer_args(entry, args, [], env, path + (op,), node)
    for key, value in incoming_shape_of(old).items():
        if key in entry.params and key not in kwargs:
            kwargs[key] = value
    missing = [
        p
        for p in entry.params
        if p in INFERRED and p not in kwargs and entry.params[p].default is inspect.Parameter.empty
    ]
    if missing:
        raise BuildError(
            f"cannot infer `{missing[0]}` for the replacement of `{target}`",
            path=path,
            node=node,
            hint=f"give it: {op}: {{{missing[0]}: ...}}",
        )
    construct_meta(entry.cls, kwargs, op, path, node)
    return TypedNode(target, "layer", op, path, [], kwargs, None, layer_cls=entry.cls)


def truncate_model(model: nn.Module, until: str, path: tuple, node: str) -> nn.Module:
    """Keep the top-level children of ``model`` up to ``until`` (inclusive), as an nn.Sequential.

    >>> list(truncate_model(nn.Sequential(nn.ReLU(), nn.Tanh(), nn.ReLU()), "1", (), "n")._modules)
    ['0', '1']
    """
    children = dict(model.named_children())
    if until not in children:
        raise BuildError(
            f"cannot truncate at `{until}`: no such top-level child",
            path=path,
            node=node,
            hint=did_you_mean(until, children) or f"children: {', '.join(children)}",
        )
    kept: dict[str, nn.Module] = {}
    for name, child in children.items():
        kept[name] = child
        if name == until:
            break
    return nn.Sequential(OrderedDict(kept))
