"""Tensors declared in a spec that are not learnt: the ``Buffer`` node (``register_buffer``).

A buffer is a node whose value ops read like any other (normalisation constants, a
positional-encoding table, Swin's relative position index); it has no input and no batch dim::

    - mean: {Buffer: {value: [0.485, 0.456, 0.406], shape: [3, 1, 1]}}   # a value, reshaped
    - pe: {Buffer: {shape: [1, 5000, 200]}}                              # zeros (init: zeros_)
    - index: {Buffer: {file: rel_index.pt, persistent: false}}           # a tensor file
    - centered: {sub: [image, mean]}

It is registered on the (sub)module under the node's name, so its state_dict key is the node
name; ``persistent: false`` leaves it out of the state_dict, as torch does. ``file`` names a
``.pt`` file holding a tensor (or a mapping of tensors: pick one with ``key``), read with
``weights_only=True`` and only inside the folders the spec may read (``files/access.py``).
``dtype`` defaults to what torch makes of the value (integers int64, numbers float32), the
file's, or float32 for a shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..compiler.dims import Probe
from ..compiler.expr import substitute
from ..errors import AccessRefused, BuildError, CheckpointError, did_you_mean
from ..files.access import FileAccess
from ..files.torchfile import load_torch_file
from .functional import _DTYPES, DTYPE_NAMES
from .initializers import INIT_FUNCTIONS
from .kinds import BUFFER_ARGS, BUFFER_OP
from .parameters import MAX_ELEMENTS, _init, _shape

DEFAULT_INIT = "zeros_"
SOURCES = ("value", "file", "shape")  # where the values come from: one of them (value may take a shape)


def bind_buffer_args(
    raw: Any, env: Mapping[str, Any], path: tuple, node: str, base_dir: Path = Path("."), roots: tuple = ()
) -> dict[str, Any]:
    """``{value | file | shape, init, dtype, persistent}`` -> the buffer's tensor (or how to make
    it), checked; the file is read here, once.

    >>> args = bind_buffer_args({"value": [1, 2, 3, 4], "shape": [2, 2]}, {}, (), "b")
    >>> args["value"].tolist(), args["dtype"], args["persistent"]
    ([[1, 2], [3, 4]], 'int64', True)
    >>> bind_buffer_args({"shape": [3]}, {}, (), "b")["init"]
    'zeros_'
    """
    raw = substitute({"value": raw} if isinstance(raw, list) else raw, env, path)
    _check_keys(raw, path, node)
    given = [k for k in ("value", "file") if k in raw]
    if len(given) > 1 or not (given or "shape" in raw):
        raise BuildError(
            f"{BUFFER_OP} takes its values from one of `value`, `file` or `shape` (with `init`)"
            + (f"; got {' and '.join(given)}" if given else ""),
            path=path,
            node=node,
            hint="e.g. {value: [0.5, 0.5]}, {file: table.pt} or {shape: [4, 4], init: zeros_}",
        )
    dtype, persistent = _dtype_and_persistent(raw, path, node)
    if not given:
        shape = _shape(raw["shape"], path + ("shape",), node)
        name, init_args = _init(raw.get("init", DEFAULT_INIT), path + ("init",), node)
        _check_init(name, init_args, shape, dtype or "float32", path, node)
        dtype = dtype or "float32"
        return {
            "shape": shape,
            "dtype": dtype,
            "init": name,
            "init_args": init_args,
            "value": None,
            "persistent": persistent,
        }
    if "init" in raw:
        raise BuildError(f"`init` goes with `shape` alone, not with `{given[0]}`", path=path + ("init",), node=node)
    if given == ["value"]:
        value = _from_value(raw["value"], dtype, path + ("value",), node)
    else:
        value = _from_file(raw["file"], raw.get("key"), dtype, path, node, base_dir, roots)
    if "shape" in raw:
        value = _reshaped(value, _shape(raw["shape"], path + ("shape",), node), path + ("shape",), node)
    dtype = DTYPE_NAMES[value.dtype]
    return {
        "shape": list(value.shape),
        "dtype": dtype,
        "init": None,
        "init_args": {},
        "value": value,
        "persistent": persistent,
    }


def _dtype_and_persistent(raw: dict[str, Any], path: tuple, node: str) -> tuple[str | None, bool]:
    dtype = raw.get("dtype")
    if dtype is not None and dtype not in _DTYPES:
        raise BuildError(
            f"`dtype` {dtype!r} is not a dtype netspec knows",
            path=path + ("dtype",),
            node=node,
            hint=did_you_mean(str(dtype), _DTYPES) or f"one of {', '.join(_DTYPES)}",
        )
    persistent = raw.get("persistent", True)
    if not isinstance(persistent, bool):
        raise BuildError("`persistent` is true or false", path=path + ("persistent",), node=node)
    return dtype, persistent


def _check_keys(raw: Any, path: tuple, node: str) -> None:
    if not isinstance(raw, dict):
        raise BuildError(f"{BUFFER_OP} takes a mapping like {{value: [0.5, 0.5]}}, got {raw!r}", path=path, node=node)
    for key in raw:
        if key not in BUFFER_ARGS:
            raise BuildError(
                f"{BUFFER_OP} has no argument `{key}`",
                path=path + (key,),
                node=node,
                hint=did_you_mean(str(key), BUFFER_ARGS) or f"its arguments: {', '.join(BUFFER_ARGS)}",
            )
    if "key" in raw and "file" not in raw:
        raise BuildError("`key` picks a tensor of a `file`", path=path + ("key",), node=node)


def _check_init(name: str, init_args: dict[str, Any], shape: list[int], dtype: str, path: tuple, node: str) -> None:
    try:
        INIT_FUNCTIONS[name](torch.empty(shape, dtype=_DTYPES[dtype], device="meta"), **init_args)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
        raise BuildError(
            f"{name} cannot initialise a {dtype} tensor of shape {shape}: {e}", path=path + ("init",), node=node
        ) from None


def _from_value(value: Any, dtype: str | None, path: tuple, node: str) -> torch.Tensor:
    """``torch.tensor(value)``: numbers or (nested, rectangular) lists of them."""
    ok = _numbers(value)
    try:
        tensor = torch.tensor(value, dtype=_DTYPES[dtype] if dtype else None) if ok else None
    except (ValueError, TypeError, RuntimeError):
        tensor = None
    if tensor is None:
        raise BuildError(
            "`value` must be a number or a rectangular list of numbers",
            path=path,
            node=node,
            hint="e.g. [0.485, 0.456, 0.406] or [[1, 0], [0, 1]]",
        )
    return tensor


def _numbers(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) <= MAX_ELEMENTS and all(_numbers(v) for v in value)
    return isinstance(value, (int, float, bool))


def _from_file(
    name: Any, key: Any, dtype: str | None, path: tuple, node: str, base_dir: Path, roots: tuple
) -> torch.Tensor:
    """The tensor a ``.pt`` file holds (or ``key`` of the mapping it holds), inside the allowed folders."""
    if not isinstance(name, str):
        raise BuildError(f"`file` is a file name, got {name!r}", path=path + ("file",), node=node)
    try:
        file = FileAccess(base_dir, roots).resolve(name)
        data = load_torch_file(file, path + ("file",), CheckpointError, "buffer file")
    except (AccessRefused, CheckpointError) as e:
        e.path, e.node = path + ("file",), node
        raise
    if isinstance(data, dict) and key is not None:
        if key not in data:
            raise BuildError(
                f"`{name}` holds no tensor `{key}`",
                path=path + ("key",),
                node=node,
                hint=did_you_mean(str(key), [str(k) for k in data]) or f"it holds: {', '.join(map(str, data))}",
            )
        data = data[key]
    if not isinstance(data, torch.Tensor) or data.dtype not in _DTYPES.values():
        what = "a mapping: name one with `key`" if isinstance(data, dict) else f"a {type(data).__name__}"
        raise BuildError(
            f"`{name}` holds {what}, not a tensor of a dtype netspec knows", path=path + ("file",), node=node
        )
    return data.to(_DTYPES[dtype]) if dtype else data


def _reshaped(value: torch.Tensor, shape: list[int], path: tuple, node: str) -> torch.Tensor:
    if math.prod(shape) != value.numel():
        raise BuildError(
            f"`shape` {shape} holds {math.prod(shape)} values, the buffer's value has {value.numel()}",
            path=path,
            node=node,
            hint="give the value's shape (or leave `shape` out)",
        )
    return value.reshape(shape)


def buffer_probe(args: dict[str, Any]) -> Probe:
    """A buffer's value on meta: the same tensor at both batch sizes (it has no batch dim).

    >>> buffer_probe({"shape": [3, 1, 1], "dtype": "float32"}).value.shape
    torch.Size([3, 1, 1])
    """
    value = torch.empty(args["shape"], dtype=_DTYPES[args["dtype"]], device="meta")
    return Probe(value, value)


def make_buffer(args: dict[str, Any]) -> torch.Tensor:
    """The buffer's tensor on torch's default device: the value, or ``init`` drawn from torch's
    global RNG (as parameters are); a meta build makes no values.

    >>> make_buffer({"shape": [2], "dtype": "float32", "init": "ones_", "init_args": {}, "value": None})
    tensor([1., 1.])
    """
    empty = torch.empty(args["shape"], dtype=_DTYPES[args["dtype"]])
    if empty.is_meta:
        return empty
    if args["value"] is not None:
        return args["value"].to(empty.device, copy=True)
    with torch.no_grad():
        INIT_FUNCTIONS[args["init"]](empty, **args["init_args"])
    return empty
