"""The JSON Schema of one node (``NodeSpec``'s, used by the spec models and so by ``schema.py``).

Nodes get a hand-made schema (their short form, ``- Conv2d: {...}``, has the op name as the
key), listing every layer, op and torchvision model with its argument names so editors can
complete them. The names come from ``netspec.nodes.catalog`` (no torch import when cached).
"""

from __future__ import annotations

from typing import Any

from ..nodes.catalog import catalog
from ..nodes.kinds import BUFFER_ARGS, BUFFER_OP, GROUP_OP, PARAM_ARGS, PARAM_OP, SHARED_OP, ZOO_EXTRA_ARGS

_ANY_ARGS = {"description": "arguments: a mapping, a list (positional) or one value"}


def _layer_args_schema(params: list[str], doc: str) -> dict[str, Any]:
    return {
        "description": doc,
        "anyOf": [
            {"type": "object", "properties": {p: {} for p in params}, "additionalProperties": False},
            {"type": ["array", "number", "string", "boolean", "null"]},
        ],
    }


# Definitions pydantic does not generate: references to them are markers while pydantic
# generates (it refuses hand-written "$ref"s it does not know) and become "$ref"s afterwards.
_NODE = {"netspec_ref": "NodeSpec"}  # a node inside a node: a group's nodes, a named node's body
_KEY = {"netspec_ref": "NodeKey"}  # a key a node mapping may hold: a layer, op, model or node key


def link_refs(schema: Any) -> Any:
    """Replace the markers by references to the definitions.

    >>> link_refs({"items": [{"netspec_ref": "NodeSpec"}]})
    {'items': [{'$ref': '#/$defs/NodeSpec'}]}
    """
    if isinstance(schema, dict):
        if "netspec_ref" in schema:
            return {"$ref": f"#/$defs/{schema['netspec_ref']}"}
        return {k: link_refs(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [link_refs(v) for v in schema]
    return schema


# The body of `name: {...}`: checked as a node when every key is a known layer, op or node key
# (`stem: {Conv2d: {kernal_size: 3}}` is underlined); a block's name or arguments pass.
_NAMED_BODY = {
    "anyOf": [
        {"type": "array", "items": _NODE},
        {"type": ["string", "null", "number", "boolean"]},
        {"type": "object", "if": {"propertyNames": _KEY}, "then": _NODE},
    ]
}
# A lowercase op's key may also be a node name (`squeeze: {Conv2d: ...}`): its value is the op's
# arguments, or a named node's body made of known keys.
_OP_AS_NAME = [{"type": "object", "propertyNames": _KEY, "allOf": [_NODE]}, {"type": "array", "items": _NODE}]


def _op_schemas() -> dict[str, Any]:
    """Every name a node may use, with the arguments editors can check and complete (from
    netspec.nodes.catalog: no torch import when the catalog is cached)."""
    cat = catalog()
    ops: dict[str, Any] = {}
    for name, layer in sorted(cat.layers.items()):
        doc = f"torch.nn.{name}" + (f"; inferred: {', '.join(layer.inferable)}" if layer.inferable else "")
        ops[name] = _layer_args_schema(list(layer.params), doc) if not layer.var_kwargs else {"description": doc}
    for name, op in sorted(cat.ops.items()):
        schema = _layer_args_schema(list(op.params), op.doc)
        ops[name] = {**schema, "anyOf": schema["anyOf"] + _OP_AS_NAME}
    for name in cat.models:
        ops[name] = {
            "description": f"torchvision.models.{name}; extra keys: {', '.join(sorted(ZOO_EXTRA_ARGS))}",
            "type": ["object", "null"],
        }
    ops[GROUP_OP] = {
        "description": "a group: nodes run as a chain, one sub-module (unnamed ones named 0, 1, ...)",
        "type": "array",
        "items": _NODE,
    }
    ops[PARAM_OP] = _layer_args_schema(list(PARAM_ARGS), "a learnable tensor: {shape: [4, 4], init: normal_}")
    ops[BUFFER_OP] = _layer_args_schema(
        list(BUFFER_ARGS),
        "a tensor that is not learnt: {value: [0.5, 0.5]}, {file: t.pt} or {shape: [4], init: zeros_}",
    )
    ops[SHARED_OP] = {"description": "the name of a node whose module this node calls again", "type": "string"}
    return ops


def node_json_schema() -> dict[str, Any]:
    """The schema of one node in short, named or explicit form.

    In the named form (``stem: {Conv2d: {...}}``) the value is itself checked as a node, so a
    misspelt layer argument is underlined there too; a list value is a group of nodes.

    >>> s = node_json_schema(); "Conv2d" in s["properties"], "from" in s["properties"]
    (True, True)
    """
    ref = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {
                "type": "object",
                "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            },
        ]
    }
    reserved = {
        "from": {
            **ref,
            "description": "inputs by name (default: the previous node); a mapping names a "
            "block's inputs or a layer's forward arguments",
        },
        "when": {"type": ["boolean", "string"], "description": "keep the node only if true"},
        "else": {"type": "string", "description": "with `when`: what the name stands for when the node is left out"},
        "repeat": {"type": ["integer", "string"], "description": "repeat the node N times (copies named 0..N-1)"},
        "freeze": {
            "anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}],
            "description": "freeze parameters: true, or name patterns",
        },
        "tie": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "parameters that are another's: {weight: emb.weight} (tied embeddings)",
        },
        "training_only": {"type": "boolean", "description": "compute the node only in training mode (aux heads)"},
        "name": {"type": "string", "description": "node name, in the explicit form"},
        "op": {"type": "string", "description": "layer, op, block or model name, in the explicit form"},
        "args": _ANY_ARGS,
        "nodes": {"type": "array", "items": _NODE, "description": "a group's nodes (op: Sequential)"},
        "outputs": {"type": "array", "items": {"type": "string"}, "description": "a group's values, read by `item`"},
    }
    named = {"description": "node name: {LayerName: args}, a layer name, or a list of nodes (a group)", **_NAMED_BODY}
    # timm's models are not listed: the schema must not depend on an optional package
    timm = {
        "description": "a timm model (`pip install 'netspec[timm]'`), e.g. `timm.resnet34: {num_classes: 10, "
        f"in_chans: 1}}`; extra keys: {', '.join(sorted(ZOO_EXTRA_ARGS))}",
        "type": ["object", "null"],
    }
    return {
        "description": "A node: `LayerName: args`, or `node_name: {LayerName: args}`, plus "
        "from/when/else/repeat/freeze/tie/training_only; a list of nodes under a name is a group.",
        "type": ["object", "string"],
        "properties": {**reserved, **_op_schemas()},
        "patternProperties": {r"^timm\.[A-Za-z0-9_.]+$": timm},
        "additionalProperties": named,
    }
