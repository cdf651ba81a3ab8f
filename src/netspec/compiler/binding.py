"""Arguments of layers and ops: checked against their signatures, sizes inferred from shapes.

A layer's constructor arguments are checked by name (did-you-mean) and type, and the sizes
netspec infers (``in_channels``, ``in_features``, ...) are filled from the incoming shape or
checked against it; an op's arguments are checked against the parameters its registry entry
declares.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError

from ..errors import BuildError, ShapeError, did_you_mean
from ..nodes.layers import BATCH_FIRST_DEFAULT, INFERRED, LayerType
from ..nodes.ops import OpType
from .dims import Probe, per_sample
from .expr import substitute


@lru_cache(maxsize=4096)
def _adapter(hint: Any) -> TypeAdapter | None:
    try:
        return TypeAdapter(hint)
    except Exception:  # torch hints may include Tensor or callables: not checkable here
        return None


def _type_name(hint: Any) -> str:
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    text = text.replace("typing.", "").replace("torch.", "")
    return text if len(text) < 60 else text[:57] + "..."


def _check_type(name: str, value: Any, hint: Any, where: str, path: tuple) -> Any:
    adapter = _adapter(hint) if hint is not None and hint is not inspect.Parameter.empty else None
    if adapter is None or (isinstance(value, str) and "$" in value):
        return value
    try:
        adapter.validate_python(value)
    except ValidationError:
        raise BuildError(f"{where}: `{name}` must be {_type_name(hint)}, got {value!r}", path=path) from None
    except Exception:
        return value
    return value


def _kwargs_from(raw: Any, params: list[str], positional_ok: list[str], where: str, path: tuple) -> dict[str, Any]:
    """Mapping -> kwargs; a single value -> the first positional parameter; a list -> in order."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    if not positional_ok:
        raise BuildError(f"{where} takes no positional arguments; use a mapping", path=path)
    if isinstance(raw, list) and len(positional_ok) > 1 and len(raw) > 1:
        if len(raw) > len(positional_ok):
            raise BuildError(
                f"{where} takes at most {len(positional_ok)} positional arguments "
                f"({', '.join(positional_ok)}), got {len(raw)}",
                path=path,
            )
        return dict(zip(positional_ok, raw))
    return {positional_ok[0]: raw}


def _infer_sizes(entry: LayerType, kwargs: dict[str, Any], ins: list[Probe], path: tuple, node: str) -> list[str]:
    """Fill in the sizes the input gives (in place), checking the ones given against it; a note
    for each size filled in."""
    where = entry.name
    notes: list[str] = []
    shapes = [tuple(p.value.shape[1:]) for p in ins if isinstance(p.value, torch.Tensor)]
    for key in entry.inferable:
        if not shapes or (len(shapes[0]) == 0 and key != "in2_features"):
            continue
        try:
            inferred = INFERRED[key](shapes)
        except IndexError:
            continue
        if key in kwargs:
            if kwargs[key] != inferred and not (key == "normalized_shape"):
                raise ShapeError(
                    f"{where} has {key}={kwargs[key]} but its input is {per_sample(ins[0].value, ins[0].twin)}, "
                    f"which gives {key}={inferred}",
                    path=path + (key,),
                    node=node,
                    hint=f"remove `{key}` (netspec infers it) or fix the layer before",
                )
        else:
            kwargs[key] = inferred
            notes.append(f"{key}={inferred} (inferred)")
    return notes


def bind_layer_args(
    entry: LayerType, raw: Any, ins: list[Probe], env: Mapping[str, Any], path: tuple, node: str
) -> tuple[dict[str, Any], list[str]]:
    """Validate a layer's arguments against its constructor and infer what can be inferred.

    Sizes are inferred as torch reads them: ``in_channels`` is dim 1 of the input tensor,
    ``in_features`` its last dim.

    >>> from netspec.compiler.dims import input_probe
    >>> from netspec.nodes.layers import LAYERS
    >>> x = input_probe((3, 8, 8), torch.float32)
    >>> bind_layer_args(LAYERS["Conv2d"], {"out_channels": 4, "kernel_size": 3}, [x], {}, (), "c")
    ({'out_channels': 4, 'kernel_size': 3, 'in_channels': 3}, ['in_channels=3 (inferred)'])
    """
    where = entry.name
    inferable = entry.inferable
    free = [p for p in entry.params if p not in inferable]
    if isinstance(raw, list) and inferable and len(raw) > 1:
        raise BuildError(
            f"{where}: positional arguments are ambiguous because netspec infers {', '.join(inferable)}",
            path=path,
            node=node,
            hint="use a mapping, e.g. {" + ", ".join(f"{p}: ..." for p in free[:2]) + "}",
        )
    kwargs = substitute(_kwargs_from(raw, list(entry.params), free, where, path), env, path)
    for key in kwargs:
        if key not in entry.params and not entry.accepts_var_kwargs:
            raise BuildError(
                f"{where} has no argument `{key}`",
                path=path + (key,),
                node=node,
                hint=did_you_mean(key, list(entry.params)) or f"its arguments: {', '.join(entry.params)}",
            )
    for key, value in kwargs.items():
        kwargs[key] = _check_type(key, value, entry.hints.get(key), where, path + (key,))
    notes: list[str] = _infer_sizes(entry, kwargs, ins, path, node)
    if entry.name in BATCH_FIRST_DEFAULT and "batch_first" in entry.params and "batch_first" not in kwargs:
        kwargs["batch_first"] = True
        notes.append("batch_first=True (netspec default)")
    missing = [p for p in entry.required if p not in kwargs]
    if missing:
        raise BuildError(
            f"{where} needs `{missing[0]}`", path=path, node=node, hint=f"e.g. {entry.name}: {{{missing[0]}: ...}}"
        )
    return kwargs, notes


def bind_op_args(entry: OpType, raw: Any, env: Mapping[str, Any], path: tuple, node: str) -> dict[str, Any]:
    """Validate an op's arguments against its declared parameters.

    >>> from netspec.nodes.ops import OPS
    >>> bind_op_args(OPS["softmax"], -1, {}, (), "s")
    {'dim': -1}
    """
    names = [n for n in entry.params if n not in entry.refs]
    positional = [entry.positional] if entry.positional else []
    if raw is not None and not isinstance(raw, dict) and not positional:
        raise BuildError(
            f"`{entry.name}` takes no positional value; use a mapping",
            path=path,
            node=node,
            hint=f"its arguments: {', '.join(names) or 'none'}",
        )
    kwargs = substitute(_kwargs_from(raw, names, positional, entry.name, path), env, path)
    for key, value in kwargs.items():
        if key not in names:
            raise BuildError(
                f"`{entry.name}` has no argument `{key}`",
                path=path + (key,),
                node=node,
                hint=did_you_mean(key, names) or f"its arguments: {', '.join(names) or 'none'}",
            )
        kwargs[key] = _check_type(key, value, entry.params[key][0], entry.name, path + (key,))
    for key in names:
        if key not in kwargs and entry.params[key][1] is inspect.Parameter.empty:
            raise BuildError(f"`{entry.name}` needs `{key}`", path=path, node=node)
    return kwargs
