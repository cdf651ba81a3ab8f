"""Learnable tensors declared in a spec: the ``Parameter`` node.

Seed 003's custom layers hold their weights in ``nn.ParameterList`` / ``nn.ParameterDict``;
in a spec each weight is a node, used by ops like any other value::

    - w0: {Parameter: {shape: [4, 4]}}                          # nn.Parameter(torch.randn(4, 4))
    - b: {Parameter: {shape: [10], init: zeros_}}
    - gain: {Parameter: {shape: [1], init: {constant_: {val: 0.5}}}}
    - h: {matmul: [x, w0]}

The tensor has exactly the declared shape (no batch dim: it is shared by every sample) and is
registered on the (sub)module under the node's name, so its state_dict key is the node name.
``init`` names a ``torch.nn.init`` function (the registry :data:`~netspec.nodes.initializers.INIT_FUNCTIONS`,
which ``init:`` rules use too), with its arguments; the draw
comes from torch's global RNG, so ``train.seed`` decides it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..compiler.dims import Probe
from ..compiler.expr import substitute
from ..errors import BuildError, SpecError, did_you_mean
from .initializers import INIT_FUNCTIONS
from .kinds import PARAM_ARGS, PARAM_OP
from .registry import check_args

DEFAULT_INIT = "normal_"  # mean 0, std 1: what the seed's torch.randn gives

MAX_ELEMENTS = 2**34  # a bigger tensor would fail anyway; the message is clearer here


def bind_parameter_args(raw: Any, env: Mapping[str, Any], path: tuple, node: str) -> dict[str, Any]:
    """``{shape: [4, 4], init: ...}`` (or the shape alone) -> ``{shape, init, init_args}``, checked.

    >>> bind_parameter_args([4, 1], {}, (), "w")
    {'shape': [4, 1], 'init': 'normal_', 'init_args': {}}
    >>> bind_parameter_args({"shape": [3], "init": {"constant_": {"val": 0.5}}}, {}, (), "b")["init_args"]
    {'val': 0.5}
    """
    raw = substitute({"shape": raw} if isinstance(raw, list) else raw, env, path)
    if not isinstance(raw, dict):
        raise BuildError(
            f"{PARAM_OP} takes a mapping like {{shape: [4, 4], init: normal_}}, got {raw!r}", path=path, node=node
        )
    for key in raw:
        if key not in PARAM_ARGS:
            raise BuildError(
                f"{PARAM_OP} has no argument `{key}`",
                path=path + (key,),
                node=node,
                hint=did_you_mean(str(key), PARAM_ARGS) or "its arguments: shape, init",
            )
    shape = _shape(raw.get("shape"), path + ("shape",), node)
    name, init_args = _init(raw.get("init", DEFAULT_INIT), path + ("init",), node)
    try:
        INIT_FUNCTIONS[name](torch.empty(shape, device="meta"), **init_args)  # fan-based inits need 2+ dims
    except (ValueError, TypeError, RuntimeError) as e:
        raise BuildError(
            f"{name} cannot initialise a tensor of shape {shape}: {e}",
            path=path + ("init",),
            node=node,
            hint="pick another init (normal_, uniform_, zeros_, ...)",
        ) from None
    return {"shape": shape, "init": name, "init_args": init_args}


def _shape(shape: Any, path: tuple, node: str) -> list[int]:
    ok = isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    if shape is None:
        raise BuildError(f"{PARAM_OP} needs `shape`", path=path[:-1], node=node, hint="e.g. {shape: [4, 4]}")
    if not ok:
        raise BuildError(
            f"`shape` must be a list of positive integers, got {shape!r}",
            path=path,
            node=node,
            hint="the full shape of the tensor, e.g. [4, 4]; it has no batch dim",
        )
    if math.prod(shape) > MAX_ELEMENTS:
        raise BuildError(
            f"`shape` {shape} has {math.prod(shape):,} elements", path=path, node=node, hint="check the sizes"
        )
    return list(shape)


def _init(init: Any, path: tuple, node: str) -> tuple[str, dict[str, Any]]:
    if isinstance(init, dict) and len(init) == 1:
        ((name, args),) = init.items()
        args = args if args is not None else {}
    else:
        name, args = init, {}
    if not isinstance(name, str) or not isinstance(args, dict):
        raise BuildError(
            f"`init` is a torch.nn.init name or {{name: {{args}}}}, got {init!r}",
            path=path,
            node=node,
            hint="e.g. init: zeros_, or init: {normal_: {std: 0.01}}",
        )
    try:
        fn = INIT_FUNCTIONS.lookup(name, path)
        check_args(fn, args, path + (name,), what=name, skip=INIT_FUNCTIONS.passed)
    except SpecError as e:
        raise BuildError(e.message, path=e.path, node=node, hint=e.hint) from None
    return name, dict(args)


def parameter_probe(args: dict[str, Any]) -> Probe:
    """A declared parameter's value: the same tensor at both batch sizes (it has no batch dim).

    >>> parameter_probe({"shape": [4, 1]}).twin.shape
    torch.Size([4, 1])
    """
    value = torch.empty(args["shape"], device="meta")
    return Probe(value, value)


def make_parameter(args: dict[str, Any]) -> nn.Parameter:
    """The real, initialised parameter (drawn from torch's global RNG).

    >>> _ = torch.manual_seed(0); a = make_parameter({"shape": [2], "init": "normal_", "init_args": {}})
    >>> _ = torch.manual_seed(0); bool((a == torch.randn(2)).all())
    True
    """
    param = nn.Parameter(torch.empty(args["shape"]))
    if param.is_meta:  # a meta build (build_module(device="meta")): no values to draw
        return param
    with torch.no_grad():
        INIT_FUNCTIONS[args["init"]](param, **args["init_args"])
    return param
