"""Stage 2: plain data -> a validated :class:`Spec` (pydantic models, the single source of truth).

The JSON Schemas in ``schemas/`` are generated from these models (``netspec schema``).
Nodes accept a short form that reads like the forward pass::

    - Conv2d: {out_channels: 6, kernel_size: 5}        # unnamed: named conv2d, conv2d_1, ...
    - x1: {DoubleConv: {out: 64}}                      # named
    - {Up: {out: 64}, from: {x: x5, skip: x4}}         # inputs by name
    - cat: [skip, up]                                  # a list of names feeds a merge op

and are normalised here to ``name / op / args / from / when / repeat / freeze``.
"""

from __future__ import annotations

import copy
import keyword
import re
import weakref
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from .errors import SpecValidationError, did_you_mean
from .registry import all_op_names, op_kind
from .source import Document, _SpecLoader, load_document
from .spec_base import SpecModel
from .data.spec import DataSpec
from .training.options import TrainingRules, TrainSpec
from .training.spec import InitSpec, LossSpec, OptimizerSpec, SchedulerSpecs

FORMAT_VERSION = 1
NODE_KEYS = ("name", "op", "args", "from", "when", "repeat", "freeze")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # \Z: `$` would let a trailing newline through
DType = Literal["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"]
Scalar = bool | int | float | str | None
Ref = str | list[str] | dict[str, str]


def normalize_node(raw: Any, blocks: set[str]) -> dict[str, Any]:
    """Turn any accepted node form into ``{name, op, args, from, when, repeat, freeze}``.

    >>> normalize_node({"x1": {"Conv2d": {"out_channels": 8}}, "from": "image"}, set())
    {'from': 'image', 'name': 'x1', 'op': 'Conv2d', 'args': {'out_channels': 8}}
    >>> normalize_node({"cat": ["a", "b"]}, set())
    {'op': 'cat', 'args': None, 'from': ['a', 'b']}
    """
    if isinstance(raw, NodeSpec):  # built in Python already
        return raw  # type: ignore[return-value]
    if isinstance(raw, str):
        raw = {raw: None}  # "- ReLU" alone
    if not isinstance(raw, dict):
        raise PydanticCustomError("node_form", "a node is a mapping like `Conv2d: {out_channels: 8}`, "
                                               "got {got}", {"got": type(raw).__name__})
    if "op" in raw:  # explicit form
        op = raw["op"]
        if isinstance(op, str) and op_kind(op, blocks) is None:
            hint = did_you_mean(op, all_op_names(blocks)) or "see `netspec layers` for the list"
            raise PydanticCustomError("unknown_op", "unknown layer, op or block `{name}`; {hint}",
                                      {"name": op, "hint": hint, "subpath": ["op"]})
        return dict(raw)
    out = {k: v for k, v in raw.items() if k in NODE_KEYS}
    rest = [k for k in raw if k not in NODE_KEYS]
    if len(rest) > 1:
        # one op plus stray keys (`form: x` for `from: x`): name the stray key
        known = [k for k in rest if op_kind(k, blocks) is not None]
        strays = [k for k in rest if k not in known]
        if len(known) == 1:
            hint = did_you_mean(strays[0], NODE_KEYS) or f"node keys: {', '.join(NODE_KEYS)}"
            raise PydanticCustomError("unknown_node_key", "unknown node key `{key}` beside `{op}`; {hint}",
                                      {"key": strays[0], "op": known[0], "hint": hint, "subpath": [strays[0]]})
    if len(rest) != 1:
        what = "no layer, op or block name" if not rest else f"several names ({', '.join(rest)})"
        raise PydanticCustomError("node_form", "a node needs exactly one layer, op or block name; "
                                               "found {what}", {"what": what})
    key, value = rest[0], raw[rest[0]]
    if op_kind(key, blocks) is None:
        # `name: {Op: args}` -- a named node
        inner = value if isinstance(value, dict) else {}
        inner_ops = [k for k in inner if k not in NODE_KEYS]
        if isinstance(value, dict) and len(inner_ops) == 1 and op_kind(inner_ops[0], blocks):
            if op_kind(key, blocks) is None and not IDENT.match(key):
                raise PydanticCustomError("node_name", "node name `{key}` is not an identifier", {"key": key})
            out.update({k: v for k, v in inner.items() if k in NODE_KEYS})
            out.update(name=key, op=inner_ops[0], args=inner[inner_ops[0]])
        else:
            # `Linaer: {out_features: 2}` (the op misspelt) or `x1: {Cnov2d: {...}}` (a named
            # node whose op is misspelt): report whichever looks like a misspelt op name.
            names = all_op_names(blocks)
            inner_key = inner_ops[0] if isinstance(value, dict) and len(inner_ops) == 1 else None
            inner_hint = did_you_mean(inner_key, names) if inner_key is not None else None
            outer_hint = did_you_mean(key, names)
            if inner_key is not None and (inner_hint or (not outer_hint and IDENT.match(key) and
                                                         isinstance(inner[inner_key], (dict, type(None))))):
                unknown, hint = inner_key, inner_hint
            else:
                unknown, hint = key, outer_hint
            hint = hint or "see `netspec layers` for the list"
            raise PydanticCustomError("unknown_op", "unknown layer, op or block `{name}`; {hint}",
                                      {"name": unknown, "hint": hint,
                                       "subpath": [key] if unknown == key else [key, unknown]})
    else:
        out.update(op=key, args=value)
    # `cat: [a, b]` -- for merge ops a list of names is the inputs
    if op_kind(out["op"], blocks) == "op" and isinstance(out.get("args"), list) and "from" not in out \
            and out["op"] in ("cat", "stack", "add", "mul", "sub", "div", "matmul", "maximum"):
        out["from"], out["args"] = out["args"], None
    return out


class NodeSpec(SpecModel):
    """One node: a layer, op, block or torchvision model, its arguments and its inputs."""

    name: str | None = Field(None, description="Node name (an identifier); others refer to it in `from`.")
    op: str = Field(description="Layer (torch.nn class name), op, block or torchvision model name.")
    args: Any = Field(None, description="Arguments: a mapping, a list (positional), or one value.")
    from_: Ref | None = Field(None, alias="from", description=(
        "Inputs by node or input name: one name, a list, or a mapping for blocks with named "
        "inputs. Default: the previous node (the first node reads the first input)."))
    when: bool | str | None = Field(None, description="Keep the node only if this is true (`$bilinear`).")
    repeat: int | str | None = Field(None, description="Repeat the node N times in a chain.")
    freeze: bool | list[str] | None = Field(None, description=(
        "Freeze this node's parameters: true for all, or name patterns (`layer1.*`)."))

    @field_validator("args")
    @classmethod
    def _empty_args(cls, v: Any) -> Any:
        return None if v == {} else v  # `ReLU: {}` and `ReLU` are the same node

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        if v is not None and not IDENT.match(v):
            raise PydanticCustomError("node_name", "node name `{name}` must be an identifier "
                                                   "(letters, digits, _)", {"name": v})
        if v is not None and keyword.iskeyword(v):
            raise PydanticCustomError("node_name", "node name `{name}` is a Python keyword; "
                                                   "pick another name", {"name": v})
        return v

    @model_serializer(mode="wrap")
    def _dump_short_form(self, handler: Any) -> dict[str, Any]:
        body = {self.op: self.args if self.args is not None else {}}
        out: dict[str, Any] = {self.name: body} if self.name else dict(body)
        for key in ("from_", "when", "repeat", "freeze"):
            value = getattr(self, key)
            if value is not None:
                out[key.rstrip("_")] = value
        return out

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        from .schema import node_json_schema

        return node_json_schema()


class InputSpec(SpecModel):
    """A named model input: its per-sample shape (no batch dim) and dtype."""

    shape: list[int | str] = Field(description="Per-sample shape, e.g. [3, 224, 224]; [] for a scalar.")
    dtype: DType = Field("float32", description="Tensor dtype; int64 for class indices or token ids.")
    description: str | None = Field(None, description="What the input holds.")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"shape": data} if isinstance(data, list) else data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        full = handler.resolve_ref_schema(handler(core_schema))
        return {"anyOf": [{"type": "array", "items": {"type": ["integer", "string"]},
                           "description": "short form: the per-sample shape"}, full]}


class BlockSpec(SpecModel):
    """A reusable, parameterised sub-network, used like a layer."""

    description: str | None = Field(None, description="What the block does.")
    inputs: list[str] = Field(default_factory=lambda: ["x"], description="Names of the block's inputs.")
    params: dict[str, Scalar] = Field(default_factory=dict, description=(
        "Parameters with defaults; the value `required` makes one mandatory. Defaults may be "
        "expressions over earlier parameters (`mid: $out`)."))
    nodes: list[NodeSpec] = Field(description="The block's network, like the top-level `nodes`.")
    outputs: list[str] | None = Field(None, description="Which nodes the block returns (default: the last).")

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, v: list[str]) -> list[str]:
        for i, name in enumerate(v):
            _check_input_name(name, i)
            if name in v[:i]:
                raise PydanticCustomError("bad_key", "block input `{name}` is listed twice", {"key": i, "name": name})
        return v


class Spec(TrainingRules):
    """A netspec document: a network (inputs, blocks, nodes, outputs) and how to train it."""

    schema_: str | None = Field(None, alias="$schema", description="JSON Schema for editors.")
    netspec: Literal[1] = Field(FORMAT_VERSION, description="Format version of the spec language.")
    name: str = Field(description="Model name (used for the module class and run folders).")
    description: str = Field("", description="What the model is and where it comes from.")
    params: dict[str, Scalar] = Field(default_factory=dict, description=(
        "Spec parameters with defaults, used as `$name` or `${expr}`; override with --set name=value."))
    inputs: dict[str, InputSpec] = Field(description="Named inputs in forward order.")

    @field_validator("inputs", mode="before")
    @classmethod
    def _input_names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for name in v:
                _check_input_name(name, name)
        return v
    blocks: dict[str, BlockSpec] = Field(default_factory=dict, description=(
        "Reusable parameterised sub-networks by name, used in nodes like layers."))
    nodes: list[NodeSpec] = Field(min_length=1, description=(
        "The network, top to bottom; each node reads the previous one unless `from` says otherwise."))
    outputs: list[str] | dict[str, str] | None = Field(None, description=(
        "Node names returned by forward (a tuple in this order), or {output_name: node}. "
        "Default: the last node."))
    output_type: Literal["tuple", "dict"] = Field("tuple", description="Return several outputs as a tuple or a dict.")
    imports: list[str] = Field(default_factory=list, description=(
        "Python modules registering custom layers. Imported only when the user allows them "
        "(--allow-import MODULE or allow_imports=[...])."))
    data: DataSpec | None = Field(None, description="Data sources, transforms, loader, sampler, field mapping (runner).")
    loss: LossSpec | None = Field(None, description="Loss: a torch.nn loss, a netspec loss, a sum, or one per output.")
    optimizer: OptimizerSpec | None = Field(None, description="torch.optim optimizer with parameter groups.")
    scheduler: SchedulerSpecs | None = Field(None, description="LR scheduler, or a list run one after another (warm-up then decay).")
    init: InitSpec | None = Field(None, description="Weight initialisation rules and weights to load.")
    train: TrainSpec | None = Field(None, description="Epochs, device, precision, seed, metrics, stopping, checkpoints.")

    @model_validator(mode="before")
    @classmethod
    def _normalize_nodes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        blocks = data.get("blocks") if isinstance(data.get("blocks"), dict) else {}
        names = set(blocks)
        if isinstance(data.get("nodes"), list):
            data["nodes"] = [_norm_at(n, names, ("nodes", i)) for i, n in enumerate(data["nodes"])]
        if blocks:
            data["blocks"] = {k: _norm_block(v, names, k) for k, v in blocks.items()}
        return data

    @property
    def output_names(self) -> list[str]:
        """External names of the outputs, in order."""
        if isinstance(self.outputs, dict):
            return list(self.outputs)
        if isinstance(self.outputs, list):
            return list(self.outputs)
        return [self.nodes[-1].name or "output"]

    def to_yaml(self) -> str:
        """The spec as YAML (short node forms); ``load_spec(text=...)`` reads it back equal."""
        return yaml.safe_dump(self.dump(), sort_keys=False, allow_unicode=True)

    def dump(self) -> dict[str, Any]:
        """Plain data (JSON-compatible) of the spec, without defaults that were not set."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)


def _check_input_name(name: Any, key: str | int) -> None:
    """Input names become the arguments of the generated forward: identifiers only."""
    if not isinstance(name, str) or not IDENT.match(name) or keyword.iskeyword(name) or name == "self":
        why = ("is a Python keyword" if isinstance(name, str) and keyword.iskeyword(name) else
               "is reserved" if name == "self" else "must be an identifier (letters, digits, _)")
        raise PydanticCustomError("bad_key", "input name `{name}` " + why, {"name": str(name), "key": key})


def _norm_at(raw: Any, blocks: set[str], path: tuple) -> Any:
    """normalize_node, with the node's spec path added to any error."""
    try:
        return normalize_node(raw, blocks)
    except PydanticCustomError as e:
        ctx = dict(e.context or {})
        ctx["subpath"] = list(path) + list(ctx.get("subpath", []))
        raise PydanticCustomError(e.type, e.message_template, ctx) from None


def _norm_block(raw: Any, blocks: set[str], name: str) -> Any:
    if isinstance(raw, dict) and isinstance(raw.get("nodes"), list):
        raw = dict(raw)
        raw["nodes"] = [_norm_at(n, blocks, ("blocks", name, "nodes", i)) for i, n in enumerate(raw["nodes"])]
    return raw


# ---- loading -----------------------------------------------------------------------------

def _error_path(err: dict[str, Any], data: Any) -> tuple[str | int, ...]:
    """pydantic's loc, minus union/validator tags that do not index the data."""
    path: list[str | int] = []
    cur = data
    for part in err["loc"]:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
            path.append(part)
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            cur = cur[part]
            path.append(part)
        elif part == "from_" and isinstance(cur, dict) and "from" in cur:
            cur = cur["from"]
            path.append("from")
    return tuple(path)


def _message(err: dict[str, Any]) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return f"missing required key `{err['loc'][-1]}`"
    if kind == "extra_forbidden":
        return f"unknown key `{err['loc'][-1]}`"
    if kind in ("unknown_key", "unknown_op", "node_form", "node_name", "unknown_node_key", "bad_key", "netspec"):
        return msg
    if kind == "value_error":  # our validators' own sentences, without pydantic's frame
        return msg.removeprefix("Value error, ")
    if kind in ("too_short", "too_long"):  # "List should have at least 1 item after validation, not 0"
        return msg[0].lower() + msg[1:].replace(" after validation", "")
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    if len(shown) > 80:
        shown = shown[:77] + "..."
    msg = msg[0].lower() + msg[1:]
    if ", got " in msg:  # "input should be a valid integer, got a number with a fractional part"
        return f"{msg} ({shown})"
    return f"{msg}, got {shown}"


def spec_error_from_pydantic(e: ValidationError, doc: Document) -> SpecValidationError:
    """The first pydantic error as one located, readable SpecValidationError."""
    errors = e.errors()
    # Prefer the most specific error: our own messages first, then the deepest loc.
    own = ("netspec", "unknown_key", "unknown_op", "node_form", "unknown_node_key", "bad_key")
    errors.sort(key=lambda r: (r["type"] not in own, -len(r["loc"])))
    err = errors[0]
    path = _error_path(err, doc.data)
    ctx = err.get("ctx") or {}
    key_error = err["type"] in ("unknown_key", "extra_forbidden", "unknown_op", "unknown_node_key", "bad_key") \
        or bool(err["type"] == "netspec" and ctx.get("key"))
    if err["type"] in ("unknown_key", "bad_key"):
        path = path + (ctx["key"],)
    if err["type"] in ("unknown_op", "node_form", "node_name", "unknown_node_key", "netspec"):
        path = path + tuple(ctx.get("subpath", ()))
    message = _message(err)
    is_param = (len(path) == 2 and path[0] == "params") or (len(path) == 4 and path[0] == "blocks"
                                                              and path[2] == "params")
    if is_param and err["type"] not in own:
        # Scalar is a union: pydantic's first member error ("should be a valid boolean") misleads
        got = err.get("input")
        message = (f"parameter `{path[-1]}` must be a number, a string, true/false or null, "
                   f"got {type(got).__name__}")
    for opath, item in doc.overridden.items():
        if tuple(path[:len(opath)]) == tuple(opath):
            message += f" (set by --set {item})"
            break
    hint = ctx.get("hint") if err["type"] == "netspec" else None  # a SpecError raised in a validator
    out = SpecValidationError(message, path=path, hint=hint)
    return out.with_location(doc.locate(path, key=key_error))


def apply_overrides(doc: Document, overrides: list[str] | tuple[str, ...]) -> None:
    """Apply ``--set key=value`` overrides to the raw document, before validation.

    ``key`` is a spec parameter (``n_classes=5``) or a dotted path (``optimizer.lr=0.1``,
    ``train.epochs=3``); values are parsed as YAML (``true``, ``0.1``, ``[1, 2]``).

    >>> d = Document({"params": {"n": 1}, "train": {"epochs": 2}})
    >>> apply_overrides(d, ["n=3", "train.epochs=5"]); d.data["params"]["n"], d.data["train"]["epochs"]
    (3, 5)
    """
    for item in overrides:
        if "=" not in item:
            raise SpecValidationError(f"--set `{item}` is not key=value", hint="e.g. --set n_classes=5")
        key, _, text = item.partition("=")
        try:
            value = yaml.load(text, Loader=_SpecLoader)  # same number rules as spec files (1e-5 is a float)
        except yaml.YAMLError:
            value = text
        params = doc.data.get("params") if isinstance(doc.data, dict) else None
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
        if len(parts) == 1 and isinstance(params, dict) and parts[0] in params:
            parts = ["params", parts[0]]
        elif len(parts) == 1 and parts[0] not in Spec.model_fields:
            raise SpecValidationError(f"--set `{key}`: no such spec parameter", path=("params",),
                                      hint=did_you_mean(str(parts[0]), list(params or {})) or
                                      f"parameters: {', '.join(params or {}) or 'none'}; "
                                      "or use a dotted path like train.epochs=3")
        _set_path(doc.data, parts, value, key)
        doc.overridden[tuple(parts)] = item


def _set_path(data: Any, parts: list[str | int], value: Any, key: str) -> None:
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if len(parts) >= 3 and parts[0] == "inputs" and isinstance(inputs, dict) and isinstance(inputs.get(parts[1]), list):
        inputs[parts[1]] = {"shape": inputs[parts[1]]}  # short form -> full form, so `.shape`/`.dtype` can be set
    cur = data
    for i, part in enumerate(parts[:-1]):
        nxt = cur[part] if (isinstance(cur, dict) and part in cur) or \
            (isinstance(cur, list) and isinstance(part, int) and part < len(cur)) else None
        if isinstance(nxt, str) and isinstance(cur, dict) and IDENT.match(nxt):
            nxt = cur[part] = {"name": nxt}  # `loss: CrossEntropyLoss` -> explicit form, so `loss.args.x` can be set
        if nxt is None:
            if not isinstance(cur, dict):
                raise SpecValidationError(f"--set `{key}`: cannot set inside `{'.'.join(map(str, parts[:i + 1]))}`")
            nxt = cur[part] = {}
        cur = nxt
    last = parts[-1]
    if isinstance(cur, list) and isinstance(last, int) and last < len(cur):
        cur[last] = value
    elif isinstance(cur, dict):
        cur[last] = value
    else:
        raise SpecValidationError(f"--set `{key}`: cannot set `{last}` there")


def import_custom_modules(names: list[str], allowed: list[str] | tuple[str, ...] | None) -> None:
    """Import the spec's ``imports`` -- only those the user allowed explicitly."""
    import importlib

    for name in names:
        if allowed is None or (name not in allowed and "*" not in allowed):
            raise SpecValidationError(
                f"the spec wants to import Python module `{name}`; refused",
                path=("imports",),
                hint=f"a spec never runs code unless you allow it: pass --allow-import {name} "
                     f"(or allow_imports=['{name}'])")
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise SpecValidationError(f"cannot import `{name}`: {e}", path=("imports",)) from None


def parse_document(doc: Document, overrides: list[str] | tuple[str, ...] = (),
                   allow_imports: list[str] | tuple[str, ...] | None = None) -> Spec:
    """Validate a loaded document into a Spec, with located one-line errors."""
    from .errors import SpecError

    if not isinstance(doc.data, dict):
        got = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise SpecValidationError(f"the document is {got}; a spec is a mapping with `name`, `inputs` and `nodes`",
                                  location=doc.locate(()))
    try:
        doc.data = copy.deepcopy(doc.data)
        apply_overrides(doc, overrides)
        imports = doc.data.get("imports") or []
        if imports:
            import_custom_modules(list(imports), allow_imports)
        spec = Spec.model_validate(doc.data)
    except ValidationError as e:
        raise spec_error_from_pydantic(e, doc) from None
    except SpecError as e:
        raise e.with_location(doc.locate(e.path, key=e.key)) from None
    _remember_document(spec, doc)
    return spec


def load_spec(source: Any, *, text: str | None = None, overrides: list[str] | tuple[str, ...] = (),
              allow_imports: list[str] | tuple[str, ...] | None = None) -> Spec:
    """Load and validate a spec from a file path, YAML/JSON text, a dict, or a Spec.

    >>> spec = load_spec("demo.yaml", text="name: demo\\ninputs: {x: [4]}\\nnodes:\\n  - Linear: {out_features: 2}\\n")
    >>> spec.name, spec.nodes[0].op, spec.nodes[0].args
    ('demo', 'Linear', {'out_features': 2})
    """
    if isinstance(source, Spec) and not overrides:
        return source
    if isinstance(source, Spec):
        doc = Document(source.dump(), "<spec>")
    elif isinstance(source, dict):
        doc = Document(copy.deepcopy(source), "<dict>")
    elif text is not None:
        doc = load_document(source or "<text>", text=text)
    elif isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        doc = load_document("<text>", text=source)
    else:
        doc = load_document(source)
    return parse_document(doc, overrides, allow_imports)


# Where each loaded spec came from, kept beside the spec (not in it) so that two equal
# specs compare equal whatever file they were read from.
_DOCUMENTS: dict[int, Document] = {}


def _remember_document(spec: Spec, doc: Document) -> None:
    _DOCUMENTS[id(spec)] = doc
    weakref.finalize(spec, _DOCUMENTS.pop, id(spec), None)


def document_of(spec: Spec) -> Document:
    """The Document a spec was loaded from (positions for error messages)."""
    return _DOCUMENTS.get(id(spec)) or Document(spec.dump(), "<spec>")


def node(op: str, args: Any = None, *, name: str | None = None, from_: Ref | None = None,
         when: bool | str | None = None, repeat: int | str | None = None,
         freeze: bool | list[str] | None = None, **kwargs: Any) -> NodeSpec:
    """Build a NodeSpec in Python; keyword arguments are the op's arguments.

    >>> node("Conv2d", out_channels=8, kernel_size=3, name="c1").model_dump(by_alias=True)
    {'c1': {'Conv2d': {'out_channels': 8, 'kernel_size': 3}}}
    >>> node("cat", from_=["a", "b"]).model_dump(by_alias=True)
    {'cat': {}, 'from': ['a', 'b']}
    """
    if args is None and kwargs:
        args = kwargs
    elif kwargs:
        raise TypeError("give the op's arguments either as `args` or as keywords, not both")
    fields = {"op": op, "args": args, "name": name, "from": from_, "when": when, "repeat": repeat, "freeze": freeze}
    return NodeSpec.model_validate({k: v for k, v in fields.items() if v is not None})
