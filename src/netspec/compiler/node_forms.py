"""The short node forms of the spec language, normalised to one explicit form.

A node is written the way it reads in a forward pass::

    - Conv2d: {out_channels: 6, kernel_size: 5}        # unnamed: named conv2d, conv2d_1, ...
    - x1: {DoubleConv: {out: 64}}                      # named
    - relu: ReLU                                       # named, no arguments
    - {Up: {out: 64}, from: {x: x5, skip: x4}}         # inputs by name
    - cat: [skip, up]                                  # a list of names feeds a multi-input op
    - downsample: [{Conv2d: {...}}, BatchNorm2d]       # a group: a chain as one sub-module

and becomes ``{name, op, args, from, when, else, repeat, freeze, nodes}`` here, before pydantic
validates it as a ``NodeSpec``. Errors are pydantic custom errors carrying the spec sub-path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from ..errors import did_you_mean
from ..nodes.kinds import GROUP_OP, TIMM_PREFIX
from ..nodes.names import all_op_names, op_kind

# The registries (layers, ops, zoo) are imported where a node is read, not here: they import
# torch, and the spec models (and `netspec schema`) must not.

NODE_KEYS = (
    "name",
    "op",
    "args",
    "from",
    "when",
    "else",
    "repeat",
    "freeze",
    "tie",
    "training_only",
    "nodes",
    "outputs",
)
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # \Z: `$` would let a trailing newline through
# A node name: an identifier, or identifiers joined by `-` (`block1-0`), as PyTorch lets a module
# name its children (torchvision's RegNet does), so an imported model keeps its state_dict keys.
# Such a node's variable in the generated forward has `_` for `-`; `from` names it as written.
NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*\Z")
# A node at a key: node names joined by `.` (`convs.0`, `head.fc`), a node whose module lives at
# that state_dict key, inside holders the names before it make (compiler/keys.py); a loop over
# two nn.ModuleLists in step (`zip(self.convs, self.bns)`) keeps both lists' keys this way.
NODE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*(?:\.[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)*\Z")


Blocks = Mapping[str, Any]  # block name -> its parameter names (a set of names will do)


def normalize_node(raw: Any, blocks: Blocks) -> dict[str, Any]:
    """Turn any accepted node form into ``{name, op, args, from, when, else, repeat, freeze, nodes}``.

    In ``key: value`` the value decides: ``key`` is a node name when the value names a layer,
    op or block (``squeeze: {Conv2d: {...}}``, ``relu: ReLU``) or is a list of nodes (a group);
    otherwise ``key`` is the op and the value its arguments.

    >>> normalize_node({"x1": {"Conv2d": {"out_channels": 8}}, "from": "image"}, set())
    {'from': 'image', 'name': 'x1', 'op': 'Conv2d', 'args': {'out_channels': 8}}
    >>> normalize_node({"cat": ["a", "b"]}, set())
    {'op': 'cat', 'args': None, 'from': ['a', 'b']}
    >>> normalize_node({"squeeze": "ReLU"}, set())
    {'name': 'squeeze', 'op': 'ReLU', 'args': None}
    """
    if isinstance(raw, BaseModel):  # a NodeSpec built in Python already
        return raw  # type: ignore[return-value]
    if isinstance(raw, str):
        raw = {raw: None}  # "- ReLU" alone
    if not isinstance(raw, dict):
        raise PydanticCustomError(
            "node_form", "a node is a mapping like `Conv2d: {out_channels: 8}`, got {got}", {"got": type(raw).__name__}
        )
    if "op" in raw:  # explicit form
        _check_op(raw["op"], blocks, ["op"])
        out = dict(raw)
    else:
        key, value = _op_key(raw, blocks)
        out = {k: v for k, v in raw.items() if k in NODE_KEYS}
        named = _named(key, value, blocks)
        if named is not None:
            out.update(named)
        elif op_kind(key, blocks) is not None:
            out.update(op=key, args=value)
        else:
            raise _unknown_op(key, value, blocks)
    return _group_and_merge_inputs(out, blocks)


def _check_op(op: Any, blocks: Blocks, subpath: list[Any]) -> None:
    if isinstance(op, str) and op_kind(op, blocks) is None:
        raise _unknown_error(op, blocks, subpath)


def _unknown_error(name: str, blocks: Blocks, subpath: list[Any]) -> PydanticCustomError:
    if name.startswith(TIMM_PREFIX):  # not installed, or not one of timm's models
        from ..nodes.timm_zoo import unknown_timm_model

        return PydanticCustomError("unknown_op", "{message}", {"message": unknown_timm_model(name), "subpath": subpath})
    return PydanticCustomError(
        "unknown_op",
        "unknown layer, op or block `{name}`; {hint}",
        {"name": name, "hint": _op_hint(name, blocks), "subpath": subpath},
    )


def _op_hint(name: str, blocks: Blocks) -> str:
    from ..nodes.layers import LAYERS

    if name in LAYERS.refused:
        return LAYERS.refused[name]
    return did_you_mean(name, all_op_names(blocks)) or "see `netspec layers` for the list"


def _op_key(raw: dict[str, Any], blocks: Blocks) -> tuple[str, Any]:
    """The one key of a short-form node that is not a node key (from, when, ...)."""
    rest = [k for k in raw if k not in NODE_KEYS]
    if len(rest) > 1:
        # one op plus stray keys (`form: x` for `from: x`): name the stray key
        known = [k for k in rest if op_kind(k, blocks) is not None]
        strays = [k for k in rest if k not in known]
        if len(known) == 1:
            hint = did_you_mean(strays[0], NODE_KEYS) or f"node keys: {', '.join(NODE_KEYS)}"
            raise PydanticCustomError(
                "unknown_node_key",
                "unknown node key `{key}` beside `{op}`; {hint}",
                {"key": strays[0], "op": known[0], "hint": hint, "subpath": [strays[0]]},
            )
    if len(rest) != 1:
        what = "no layer, op or block name" if not rest else f"several names ({', '.join(rest)})"
        raise PydanticCustomError(
            "node_form", "a node needs exactly one layer, op or block name; found {what}", {"what": what}
        )
    return rest[0], raw[rest[0]]


def _names_a_node(key: str, inner: str, blocks: Blocks) -> bool:
    """In `key: {inner: ...}`, is `key` a node name and `inner` its op?

    Yes when `inner` is an op and not an argument of `key` (`pad: {pad: [1, 1]}` is the op
    pad). When `key` is itself a layer, block or model, only a layer, block, group or
    parameter inside makes it a name: `Linear: {scale: 2}` is a misspelt argument.
    """
    inner_kind, kind = op_kind(inner, blocks), op_kind(key, blocks)
    if inner_kind is None:
        return False
    if kind is None:
        return True
    if kind == "op":
        from ..nodes.ops import OPS

        return inner not in OPS[key].params
    return inner_kind in ("layer", "block", "group", "param", "buffer", "shared") and inner not in _arguments(
        key, kind, blocks
    )


def _arguments(key: str, kind: str, blocks: Blocks) -> Any:
    from ..nodes.layers import LAYERS
    from ..nodes.model_nodes import model_params

    if kind == "layer":
        return LAYERS[key].params
    if kind == "block":
        return blocks[key] if isinstance(blocks, Mapping) else ()
    return model_params(key) if kind in ("zoo", "timm") else ()


def _named(key: str, value: Any, blocks: Blocks) -> dict[str, Any] | None:
    """``{name, op, args, ...}`` when `key: value` is a named node, else None (`key` is the op)."""
    if isinstance(value, str) and op_kind(value, blocks) is not None:
        return _with_name(key, {"op": value, "args": None})  # `relu: ReLU`
    if isinstance(value, list) and (op_kind(key, blocks) is None or any(isinstance(v, dict) for v in value)):
        return _with_name(key, {"op": GROUP_OP, "args": value})  # `downsample: [Conv2d..., BatchNorm2d]`
    if not isinstance(value, dict):
        return None
    inner = [k for k in value if k not in NODE_KEYS]
    ops = [k for k in inner if _names_a_node(key, k, blocks)]
    if len(inner) == 1 and ops:
        body = {k: v for k, v in value.items() if k in NODE_KEYS}
        return _with_name(key, {**body, "op": ops[0], "args": value[ops[0]]})
    if len(ops) == 1 and op_kind(key, blocks) is not None:
        stray = next(k for k in inner if k != ops[0])
        raise PydanticCustomError(
            "node_form",
            f"node `{key}` holds `{ops[0]}` and `{stray}`; a named node is "
            f"`{key}: {{{ops[0]}: {{...}}}}` plus node keys (from, when, ...): move `{stray}` into "
            f"{ops[0]}'s arguments",
            {"subpath": [key, stray]},
        )
    return None


def _with_name(key: str, body: dict[str, Any]) -> dict[str, Any]:
    if not NODE_KEY.match(key):
        raise PydanticCustomError("node_name", "node name `{key}` is not an identifier", {"key": key})
    return {"name": key, **body}


def _unknown_op(key: str, value: Any, blocks: Blocks) -> PydanticCustomError:
    """`Linaer: {out_features: 2}` (the op misspelt) or `x1: {Cnov2d: {...}}` (a named node
    whose op is misspelt): report whichever looks like a misspelt op name."""
    names = all_op_names(blocks)
    inner = value if isinstance(value, dict) else {}
    inner_ops = [k for k in inner if k not in NODE_KEYS]
    inner_key = inner_ops[0] if len(inner_ops) == 1 else None
    inner_hint = did_you_mean(inner_key, names) if inner_key is not None else None
    outer_hint = did_you_mean(key, names)
    timm_model = inner_key is not None and inner_key.startswith(TIMM_PREFIX)  # `net: {timm.resnet_nope: {}}`
    if inner_key is not None and (
        inner_hint
        or timm_model
        or (not outer_hint and IDENT.match(key) and isinstance(inner[inner_key], (dict, type(None))))
    ):
        unknown = inner_key
    else:
        unknown = key
    return _unknown_error(unknown, blocks, [key] if unknown == key else [key, unknown])


def _group_and_merge_inputs(out: dict[str, Any], blocks: Blocks) -> dict[str, Any]:
    """A group's node list becomes `nodes`; for multi-input ops a list of names is the inputs."""
    kind = op_kind(out["op"], blocks) if isinstance(out.get("op"), str) else None
    if kind == "group" and "nodes" not in out:
        items = out.pop("args", None)
        if not isinstance(items, list):
            raise PydanticCustomError(
                "node_form", "a group is a list of nodes, e.g. `downsample: [{Conv2d: {...}}, BatchNorm2d]`", {}
            )
        out["nodes"] = items
    if kind == "group" and isinstance(out.get("nodes"), list):
        # nested paths read `nodes[i].nodes[j]`; Document.raw_path finds the list as written
        out["nodes"] = [normalize_at(n, blocks, ("nodes", j)) for j, n in enumerate(out["nodes"])]
    if kind == "op" and isinstance(out.get("args"), list) and "from" not in out:
        from ..nodes.ops import OPS

        entry = OPS[out["op"]]
        if entry.max_inputs is None or entry.max_inputs > 1:
            out["from"], out["args"] = out["args"], None
    return out


def normalize_at(raw: Any, blocks: Blocks, path: tuple) -> Any:
    """normalize_node, with the node's spec path added to any error.

    >>> normalize_at({"relu": "ReLU"}, set(), ("nodes", 3))
    {'name': 'relu', 'op': 'ReLU', 'args': None}
    """
    try:
        return normalize_node(raw, blocks)
    except PydanticCustomError as e:
        ctx = dict(e.context or {})
        ctx["subpath"] = list(path) + list(ctx.get("subpath", []))
        raise PydanticCustomError(e.type, e.message_template, ctx) from None


def normalize_block(raw: Any, blocks: Blocks, name: str) -> Any:
    """A block definition with its nodes normalised (errors at ``blocks.<name>.nodes[i]``).

    >>> normalize_block({"nodes": ["ReLU"]}, {"B": []}, "B")["nodes"]
    [{'op': 'ReLU', 'args': None}]
    """
    if isinstance(raw, dict) and isinstance(raw.get("nodes"), list):
        raw = dict(raw)
        raw["nodes"] = [normalize_at(n, blocks, ("blocks", name, "nodes", i)) for i, n in enumerate(raw["nodes"])]
    return raw
