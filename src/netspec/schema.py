"""JSON Schema generation: ``schemas/netspec.schema.json`` comes from the pydantic models.

Nodes get a hand-made schema (their short form, ``- Conv2d: {...}``, has the op name as
the key), listing every layer, op and torchvision model with its argument names so editors
can complete them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_FILE = "netspec.schema.json"
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
_NODE = {"netspec_ref": "NodeSpec"}     # a node inside a node: a group's nodes, a named node's body
_KEY = {"netspec_ref": "NodeKey"}       # a key a node mapping may hold: a layer, op, model or node key


def _link(schema: Any) -> Any:
    """Replace the markers by references to the definitions."""
    if isinstance(schema, dict):
        if "netspec_ref" in schema:
            return {"$ref": f"#/$defs/{schema['netspec_ref']}"}
        return {k: _link(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_link(v) for v in schema]
    return schema


# The body of `name: {...}`: checked as a node when every key is a known layer, op or node key
# (`stem: {Conv2d: {kernal_size: 3}}` is underlined); a block's name or arguments pass.
_NAMED_BODY = {"anyOf": [
    {"type": "array", "items": _NODE},
    {"type": ["string", "null", "number", "boolean"]},
    {"type": "object", "if": {"propertyNames": _KEY}, "then": _NODE},
]}
# A lowercase op's key may also be a node name (`squeeze: {Conv2d: ...}`): its value is the op's
# arguments, or a named node's body made of known keys.
_OP_AS_NAME = [{"type": "object", "propertyNames": _KEY, "allOf": [_NODE]}, {"type": "array", "items": _NODE}]


def _op_schemas() -> dict[str, Any]:
    """Every name a node may use, with the arguments editors can check and complete (from
    netspec.catalog: no torch import when the catalog is cached)."""
    from .catalog import catalog
    from .registry import GROUP_OP, PARAM_ARGS, PARAM_OP, ZOO_EXTRA_ARGS

    cat = catalog()
    ops: dict[str, Any] = {}
    for name, layer in sorted(cat.layers.items()):
        doc = f"torch.nn.{name}" + (f"; inferred: {', '.join(layer.inferable)}" if layer.inferable else "")
        ops[name] = _layer_args_schema(list(layer.params), doc) if not layer.var_kwargs else {"description": doc}
    for name, op in sorted(cat.ops.items()):
        schema = _layer_args_schema(list(op.params), op.doc)
        ops[name] = {**schema, "anyOf": schema["anyOf"] + _OP_AS_NAME}
    for name in cat.models:
        ops[name] = {"description": f"torchvision.models.{name}; extra keys: {', '.join(sorted(ZOO_EXTRA_ARGS))}",
                     "type": ["object", "null"]}
    ops[GROUP_OP] = {"description": "a group: nodes run as a chain, one sub-module (unnamed ones named 0, 1, ...)",
                     "type": "array", "items": _NODE}
    ops[PARAM_OP] = _layer_args_schema(list(PARAM_ARGS), "a learnable tensor: {shape: [4, 4], init: normal_}")
    return ops


def node_json_schema() -> dict[str, Any]:
    """The schema of one node in short, named or explicit form.

    In the named form (``stem: {Conv2d: {...}}``) the value is itself checked as a node, so a
    misspelt layer argument is underlined there too; a list value is a group of nodes.
    """
    ref = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}},
                     {"type": "object", "additionalProperties": {
                         "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}]}
    reserved = {
        "from": {**ref, "description": "inputs by name (default: the previous node); a mapping names a "
                                       "block's inputs or a layer's forward arguments"},
        "when": {"type": ["boolean", "string"], "description": "keep the node only if true"},
        "else": {"type": "string", "description": "with `when`: what the name stands for when the node is left out"},
        "repeat": {"type": ["integer", "string"], "description": "repeat the node N times (copies named 0..N-1)"},
        "freeze": {"anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}],
                   "description": "freeze parameters: true, or name patterns"},
        "name": {"type": "string", "description": "node name, in the explicit form"},
        "op": {"type": "string", "description": "layer, op, block or model name, in the explicit form"},
        "args": _ANY_ARGS,
        "nodes": {"type": "array", "items": _NODE, "description": "a group's nodes (op: Sequential)"},
    }
    named = {"description": "node name: {LayerName: args}, a layer name, or a list of nodes (a group)",
             **_NAMED_BODY}
    from .registry import ZOO_EXTRA_ARGS

    # timm's models are not listed: the schema must not depend on an optional package
    timm = {"description": "a timm model (`pip install 'netspec[timm]'`), e.g. `timm.resnet34: {num_classes: 10, "
                           f"in_chans: 1}}`; extra keys: {', '.join(sorted(ZOO_EXTRA_ARGS))}",
            "type": ["object", "null"]}
    return {
        "description": "A node: `LayerName: args`, or `node_name: {LayerName: args}`, plus "
                       "from/when/else/repeat/freeze; a list of nodes under a name is a group.",
        "type": ["object", "string"],
        "properties": {**reserved, **_op_schemas()},
        "patternProperties": {r"^timm\.[A-Za-z0-9_.]+$": timm},
        "additionalProperties": named,
    }


def spec_json_schema() -> dict[str, Any]:
    """The whole spec's JSON Schema (draft 2020-12), generated from :class:`netspec.spec.Spec`."""
    from .spec import Spec

    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    node = schema["$defs"]["NodeSpec"]
    schema["$defs"]["NodeKey"] = {"enum": sorted(node["properties"]), "description": "a key of a node mapping"}
    # a spec that extends a base may leave out what the base has (name, inputs, nodes)
    schema["if"], schema["else"] = {"required": ["extends"]}, {"required": schema.pop("required")}
    schema = _link(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://netspec.dev/schemas/" + SCHEMA_FILE
    schema["title"] = "netspec spec"
    schema["$comment"] = (f"generated by `netspec schema --write schemas/` with torch {torch_version()}: the layers "
                          "and their arguments come from that torch.nn")
    return schema


def torch_version() -> str:
    """torch's version without its build tag (``2.14.1``, not ``2.14.1+cu130``).

    Read from the installed package's metadata: importing torch here would cost `netspec schema`
    seconds, and the layers themselves come from the catalog (which is keyed on this version).

    >>> torch_version().count(".") >= 1 and "+" not in torch_version()
    True
    """
    from importlib.metadata import version

    return version("torch").split("+")[0]


def schema_text() -> str:
    """The committed schema file's exact text."""
    return json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> Path:
    """Write (replace, by design: it is generated) the schema file in ``folder``, atomically;
    returns its path. ``folder`` must be a folder and the file no link (``--write``).

    >>> import tempfile
    >>> write_schemas(Path(tempfile.mkdtemp())).name == SCHEMA_FILE
    True
    """
    from .outputs import output_folder, output_path, write_file

    path = output_path(output_folder(folder, option="--write") / SCHEMA_FILE, option="--write", force=True)
    write_file(path, schema_text(), option="--write")
    return path


def _type_text(s: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in s:
        return s["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in s:
        parts = [_type_text(x, defs) for x in s["anyOf"]]
        return " \\| ".join(dict.fromkeys(p for p in parts if p != "null")) + (" \\| null" if "null" in parts else "")
    if "enum" in s:
        return " \\| ".join(f"`{v}`" for v in s["enum"])
    if "const" in s:
        return f"`{s['const']}`"
    t = s.get("type", "any")
    if isinstance(t, list):
        return " \\| ".join(t)
    if t == "array" and "items" in s:
        return f"list[{_type_text(s['items'], defs)}]"
    if t == "object" and isinstance(s.get("additionalProperties"), dict):
        return f"map[{_type_text(s['additionalProperties'], defs)}]"
    return t


def reference_markdown() -> str:
    """A Markdown reference of every spec key, generated from the schema (so it stays true)."""
    schema = spec_json_schema()
    defs = schema.get("$defs", {})
    sections = [("Spec (top level)", schema)] + sorted(defs.items())
    out = []
    for title, s in sections:
        props = s.get("properties")
        if not props:
            continue
        out.append(f"#### {title}\n")
        if s.get("description"):
            out.append(" ".join(s["description"].split()) + "\n")
        out.append("| key | type | default | meaning |\n| --- | --- | --- | --- |")
        required = set(s.get("required", s.get("else", {}).get("required", [])))
        if title.startswith("NodeSpec"):  # the node keys; layer and op names are listed by `netspec layers`
            from .node_forms import NODE_KEYS

            props = {k: v for k, v in props.items() if k in NODE_KEYS}
        for key, p in props.items():
            default = "required" if key in required else (
                f"`{json.dumps(p['default'])}`" if p.get("default") not in (None, "", [], {}) else "")
            desc = " ".join((p.get("description") or "").split()).replace("|", "\\|")
            out.append(f"| `{key}` | {_type_text(p, defs)} | {default} | {desc} |")
        out.append("")
    return "\n".join(out)
