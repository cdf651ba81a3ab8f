"""Stage 2: plain data -> a validated :class:`Spec` (pydantic models, the single source of truth).

The JSON Schemas in ``schemas/`` are generated from these models (``netspec schema``).
Nodes accept short forms that read like the forward pass (``node_forms.py`` normalises them
to ``name / op / args / from / when / else / repeat / freeze / nodes`` before validation).
"""

from __future__ import annotations

import copy
import keyword
import weakref
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from ..data.spec import DataSpec
from ..errors import SpecValidationError, did_you_mean
from ..nodes.kinds import GROUP_OP
from ..sweep.spec import SweepSpec, check_sweep
from ..training.options import TrainingRules, TrainSpec
from ..training.spec import NODE_MODEL, InitSpec, LossSpec, OptimizerSpec, SchedulerSpecs
from .aliases import Aliases
from .node_forms import IDENT, NODE_KEY, NODE_NAME, normalize_at, normalize_block, normalize_node  # noqa: F401  (re-exported)
from .source import Document, _SpecLoader, load_document, nan_path
from .spec_base import DType, PinnedSpec, SpecModel, check_pinned, reported_at_spec_path
from .spec_errors import spec_error_from_pydantic

FORMAT_VERSION: Literal[1] = 1
Scalar = bool | int | float | str | None
Ref = str | list[str] | dict[str, str | list[str]]


class NodeSpec(SpecModel):
    """One node: a layer, op, block or torchvision model, its arguments and its inputs."""

    name: str | None = Field(None, description="Node name (an identifier, or a key: `convs.0`); `from` names it.")
    op: str = Field(
        description="Layer (torch.nn class name), op, block or torchvision model name; "
        "`Sequential` for a group of nodes, `Parameter` for a learnable tensor."
    )
    args: Any = Field(None, description="Arguments: a mapping, a list (positional), or one value.")
    from_: Ref | None = Field(
        None,
        alias="from",
        description=(
            "Inputs by node or input name: one name, a list, or a mapping: a block's named inputs, or a "
            "layer's forward arguments (`src_key_padding_mask: mask`, `hx: [h0, c0]`). "
            "Default: the previous node (the first node reads the first input)."
        ),
    )
    when: bool | str | None = Field(None, description="Keep the node only if this is true (`$bilinear`).")
    else_: str | None = Field(
        None,
        alias="else",
        description=(
            "With `when`: the input or node this name stands for when the node is left out "
            "(`else: x` makes an optional shortcut the identity)."
        ),
    )
    repeat: int | str | None = Field(
        None, description=("Repeat the node N times in a chain; the copies are named 0..N-1, as in nn.Sequential.")
    )
    freeze: bool | list[str] | None = Field(
        None, description=("Freeze this node's parameters: true for all, or name patterns (`layer1.*`).")
    )
    tie: dict[str, str] | None = Field(
        None,
        description=(
            "Parameters of this node that are another's, as `self.fc.weight = self.emb.weight` makes them: "
            "{weight: emb.weight} (this node's parameter: the other's path from the same module, or a "
            "Parameter node's name). Both state_dict keys stay, as torch writes them."
        ),
    )
    training_only: bool | None = Field(
        None,
        description=(
            "Compute this node only in training mode (`if self.training:`), as torchvision's GoogLeNet "
            "computes its auxiliary heads: an output naming it is returned only in training, for the loss."
        ),
    )
    nodes: list[NodeSpec] | None = Field(
        None,
        description=(
            "A group's nodes (op `Sequential`): a chain run as one sub-module; unnamed nodes are "
            "named 0, 1, ... by position, as in nn.Sequential; the values it is given (`from: [x, gamma]`) "
            "keep their names inside."
        ),
    )
    outputs: list[str] | None = Field(None, min_length=1, description="A group's values by name; read by `item`.")

    @field_validator("args")
    @classmethod
    def _empty_args(cls, v: Any) -> Any:
        return None if v == {} else v  # `ReLU: {}` and `ReLU` are the same node

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        if v is not None and not NODE_KEY.match(v):
            raise PydanticCustomError(
                "node_name",
                "node name `{name}` must be an identifier (letters, digits, _; `-` between them; `.` in a key)",
                {"name": v},
            )
        if v is not None and any(keyword.iskeyword(part) for part in v.split(".")):
            raise PydanticCustomError(
                "node_name", "node name `{name}` is a Python keyword; pick another name", {"name": v}
            )
        return v

    @model_validator(mode="after")
    def _else_and_group(self) -> NodeSpec:
        if self.else_ is not None and (self.when is None or self.name is None):
            raise PydanticCustomError(
                "node_form",
                "`else` names what this node stands for when its `when` is false: the node needs a name and a `when`",
                {"subpath": ["else"]},
            )
        if (self.nodes is not None) != (self.op == GROUP_OP) or (self.outputs and self.nodes is None):
            what = "a group is `{op}` with its `nodes` (or `name: [node, ...]`); only a group has `outputs`"
            raise PydanticCustomError("node_form", what, {"op": GROUP_OP})
        return self

    @model_serializer(mode="wrap")
    def _dump_short_form(self, handler: Any) -> dict[str, Any]:
        if self.nodes is not None:
            body: Any = [n.model_dump(mode="json", by_alias=True, exclude_none=True) for n in self.nodes]
            body = {GROUP_OP: body}
        else:
            body = {self.op: self.args if self.args is not None else {}}
        out: dict[str, Any] = {self.name: body} if self.name else dict(body)
        for key in ("from_", "when", "else_", "repeat", "freeze", "tie", "training_only", "outputs"):
            value = getattr(self, key)
            if value is not None:
                out[key.rstrip("_")] = value
        return out

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        from .node_schema import node_json_schema

        return node_json_schema()


# the loss graph's nodes (`loss: {nodes: [...]}`) are nodes too: the loss model reads them with
# this one (training/ cannot import it: this module imports training's models)
NODE_MODEL[:] = [NodeSpec]


class InputSpec(SpecModel):
    """A named model input: its per-sample shape (no batch dim) and dtype."""

    shape: list[int | str] = Field(description="Per-sample shape, e.g. [3, 224, 224]; [] for a scalar.")
    dtype: DType = Field("float32", description="Tensor dtype; int64 for class indices or token ids.")
    description: str | None = Field(None, description="What the input holds.")
    pinned: PinnedSpec | None = Field(
        None,
        description=(
            "Written by `netspec import` where the forward decided on a size (`if H % 7`, `int(N ** 0.5)`): "
            "the spec is right at this shape only, and another `shape` is refused."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"shape": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _pinned_shape(self) -> InputSpec:
        check_pinned(self.shape, self.pinned)
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        full = handler.resolve_ref_schema(handler(core_schema))
        return {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": ["integer", "string"]},
                    "description": "short form: the per-sample shape",
                },
                full,
            ]
        }


class BlockSpec(SpecModel):
    """A reusable, parameterised sub-network, used like a layer."""

    description: str | None = Field(None, description="What the block does.")
    inputs: list[str] = Field(default_factory=lambda: ["x"], description="Names of the block's inputs.")
    params: dict[str, Scalar] = Field(
        default_factory=dict,
        description=(
            "Parameters with defaults; the value `required` makes one mandatory. Defaults may be "
            "expressions over earlier parameters (`mid: $out`)."
        ),
    )
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


class ExtendsSpec(SpecModel):
    """Base spec file(s), and the keys whose mappings replace the base's instead of merging."""

    base: str | list[str] = Field(description="Base spec file(s), relative to this file; a list merges in order.")
    replace: list[str] = Field(
        default_factory=list,
        description=("Dotted keys this spec sets (`data`, `data.train`) whose mappings replace the base's whole."),
    )


class Spec(TrainingRules, Aliases):
    """A netspec document: a network (inputs, blocks, nodes, outputs) and how to train it."""

    schema_: str | None = Field(None, alias="$schema", description="JSON Schema for editors.")
    extends: str | list[str] | ExtendsSpec | None = Field(
        None,
        description=(
            "Base spec file(s) this one builds on, relative to this file, merged under it when it is loaded: "
            "mappings merge key by key, lists and other values replace (`nodes` whole)."
        ),
    )
    netspec: Literal[1] = Field(FORMAT_VERSION, description="Format version of the spec language.")
    name: str = Field(description="Model name (used for the module class and run folders).")
    description: str = Field("", description="What the model is and where it comes from.")
    params: dict[str, Scalar] = Field(
        default_factory=dict,
        description=("Spec parameters with defaults, used as `$name` or `${expr}`; override with --set name=value."),
    )
    inputs: dict[str, InputSpec] = Field(description="Named inputs in forward order.")

    @field_validator("inputs", mode="before")
    @classmethod
    def _input_names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for name in v:
                _check_input_name(name, name)
        return v

    blocks: dict[str, BlockSpec] = Field(
        default_factory=dict, description=("Reusable parameterised sub-networks by name, used in nodes like layers.")
    )
    nodes: list[NodeSpec] = Field(
        min_length=1,
        description=("The network, top to bottom; each node reads the previous one unless `from` says otherwise."),
    )
    outputs: list[str] | dict[str, str] | None = Field(
        None,
        description=(
            "Node names returned by forward (a tuple in this order), or {output_name: node}. Default: the last node."
        ),
    )
    output_type: Literal["tuple", "dict"] = Field("tuple", description="Return several outputs as a tuple or a dict.")
    imports: list[str] = Field(
        default_factory=list,
        description=(
            "Python modules registering custom layers. Imported only when the user allows them "
            "(--allow-import MODULE or allow_imports=[...])."
        ),
    )
    data: DataSpec | None = Field(
        None, description="Data sources, transforms, loader, sampler, field mapping (runner)."
    )
    loss: LossSpec | None = Field(None, description="Loss: a torch.nn loss, a netspec loss, a sum, or one per output.")
    optimizer: OptimizerSpec | None = Field(None, description="torch.optim optimizer with parameter groups.")
    scheduler: SchedulerSpecs | None = Field(
        None, description="LR scheduler, or a list run one after another (warm-up then decay)."
    )
    init: InitSpec | None = Field(None, description="Weight initialisation rules and weights to load.")
    train: TrainSpec | None = Field(
        None, description="Epochs, device, precision, seed, metrics, stopping, checkpoints."
    )
    sweep: SweepSpec | None = Field(
        None, description="A search over this spec's values: `netspec sweep SPEC` runs it (docs/sweeps.md)."
    )

    @model_validator(mode="before")
    @classmethod
    def _normalize_nodes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        blocks = data.get("blocks") if isinstance(data.get("blocks"), dict) else {}
        names = {
            k: list(v.get("params") or {}) if isinstance(v, dict) and isinstance(v.get("params"), dict) else []
            for k, v in blocks.items()
        }
        if isinstance(data.get("nodes"), list):
            data["nodes"] = [normalize_at(n, names, ("nodes", i)) for i, n in enumerate(data["nodes"])]
        if blocks:
            data["blocks"] = {k: normalize_block(v, names, k) for k, v in blocks.items()}
        return data

    @model_validator(mode="after")
    def _extends_resolved(self) -> Spec:
        if self.extends is not None:  # load_spec merges the bases and drops the key
            raise PydanticCustomError(
                "netspec",
                "`extends` is merged when a spec is loaded from a file or text; a Spec built in Python cannot extend",
                {"subpath": ["extends"]},
            )
        return self

    @model_validator(mode="after")
    def _sweep_spaces(self) -> Spec:
        if self.sweep is not None:
            with reported_at_spec_path():
                check_sweep(self, _sweep_probe(self))
        return self

    @property
    def output_names(self) -> list[str]:
        """External names of the outputs, in order."""
        if isinstance(self.outputs, dict):
            return list(self.outputs)
        if isinstance(self.outputs, list):
            return list(self.outputs)
        return [self.nodes[-1].name or "output"]

    def to_yaml(self, defaults: bool = False) -> str:
        """The spec as YAML (short node forms); ``load_spec(text=...)`` reads it back equal.

        ``defaults``: every key with its value, defaults filled in (``--print-config``).
        """
        return yaml.safe_dump(self.dump(defaults), sort_keys=False, allow_unicode=True)

    def dump(self, defaults: bool = False) -> dict[str, Any]:
        """Plain data (JSON-compatible) of the spec, without defaults that were not set (with
        ``defaults``: with them)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=not defaults)


def _sweep_probe(spec: Spec) -> Any:
    """``probe(["path=value"])``: validate the spec, without its sweep, with those values set
    (how a sweep's spaces are checked against the keys they set)."""
    data = spec.dump()
    data.pop("sweep", None)

    def probe(sets: list[str]) -> None:
        doc = Document(copy.deepcopy(data), "<sweep>")
        apply_overrides(doc, sets)
        doc.overridden.clear()  # the sweep's key is where the value comes from, not a --set
        try:
            Spec.model_validate(doc.data)
        except ValidationError as e:
            raise spec_error_from_pydantic(e, doc) from None

    return probe


def _check_input_name(name: Any, key: str | int) -> None:
    """Input names become the arguments of the generated forward: identifiers only."""
    if not isinstance(name, str) or not IDENT.match(name) or keyword.iskeyword(name) or name == "self":
        why = (
            "is a Python keyword"
            if isinstance(name, str) and keyword.iskeyword(name)
            else "is reserved"
            if name == "self"
            else "must be an identifier (letters, digits, _)"
        )
        raise PydanticCustomError("bad_key", "input name `{name}` " + why, {"name": str(name), "key": key})


# ---- loading -----------------------------------------------------------------------------


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
            raise SpecValidationError(
                f"--set `{key}`: no such spec parameter",
                path=("params",),
                hint=did_you_mean(str(parts[0]), list(params or {}))
                or f"parameters: {', '.join(params or {}) or 'none'}; or use a dotted path like train.epochs=3",
            )
        _set_path(doc.data, parts, value, key)
        doc.overridden[tuple(parts)] = item


def _set_path(data: Any, parts: list[str | int], value: Any, key: str) -> None:
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if len(parts) >= 3 and parts[0] == "inputs" and isinstance(inputs, dict) and isinstance(inputs.get(parts[1]), list):
        inputs[parts[1]] = {"shape": inputs[parts[1]]}  # short form -> full form, so `.shape`/`.dtype` can be set
    cur = data
    for i, part in enumerate(parts[:-1]):
        found = (isinstance(cur, dict) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and part < len(cur)
        )
        nxt = cur[part] if found else None
        if isinstance(nxt, str) and isinstance(cur, dict) and IDENT.match(nxt):
            nxt = cur[part] = {"name": nxt}  # `loss: CrossEntropyLoss` -> explicit form, so `loss.args.x` can be set
        if nxt is None:
            if not isinstance(cur, dict):
                raise SpecValidationError(f"--set `{key}`: cannot set inside `{'.'.join(map(str, parts[: i + 1]))}`")
            nxt = cur[part] = {}
        cur = nxt
    last = parts[-1]
    if isinstance(cur, list) and isinstance(last, int) and last < len(cur):  # noqa: SIM114 - one arm each, so mypy narrows `cur`
        cur[last] = value
    elif isinstance(cur, dict):
        cur[last] = value
    else:
        raise SpecValidationError(f"--set `{key}`: cannot set `{last}` there")


def _refuse_nan(doc: Document) -> None:
    """NaN is never a setting: one from ``--set x=.nan`` or a dict built in Python is refused at its
    path, like a `.nan` written in a file (which the loader refuses where it is written).

    >>> _refuse_nan(Document({"optimizer": {"SGD": {"lr": float("nan")}}}, "s.yaml"))
    Traceback (most recent call last):
    netspec.errors.SpecValidationError: s.yaml: optimizer.SGD.lr: `lr` is NaN (not a number); give a number
    """
    path = nan_path(doc.data)
    if path is None:
        return
    what = f"`{path[-1]}`" if path and isinstance(path[-1], str) else "a value"
    message = f"{what} is NaN (not a number)"
    for opath, item in doc.overridden.items():
        if tuple(path[: len(opath)]) == tuple(opath):
            message += f" (set by --set {item})"
            break
    raise SpecValidationError(message, path=path, hint="give a number", location=doc.locate(path))


def import_custom_modules(names: list[str], allowed: list[str] | tuple[str, ...] | None) -> None:
    """Import the spec's ``imports`` -- only those the user allowed explicitly."""
    import importlib

    for name in names:
        if allowed is None or (name not in allowed and "*" not in allowed):
            raise SpecValidationError(
                f"the spec wants to import Python module `{name}`; refused",
                path=("imports",),
                hint=f"a spec never runs code unless you allow it: pass --allow-import {name} "
                f"(or allow_imports=['{name}'])",
            )
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise SpecValidationError(f"cannot import `{name}`: {e}", path=("imports",)) from None


def parse_document(
    doc: Document, overrides: list[str] | tuple[str, ...] = (), allow_imports: list[str] | tuple[str, ...] | None = None
) -> Spec:
    """Validate a loaded document into a Spec (its ``extends`` bases merged), with located one-line errors."""
    from ..errors import SpecError
    from .extends import resolve_extends

    doc = resolve_extends(doc)
    if not isinstance(doc.data, dict):
        got = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise SpecValidationError(
            f"the document is {got}; a spec is a mapping with `name`, `inputs` and `nodes`", location=doc.locate(())
        )
    try:
        doc.data = copy.deepcopy(doc.data)
        apply_overrides(doc, overrides)
        _refuse_nan(doc)
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


def load_spec(
    source: Any = None,
    *,
    text: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    allow_imports: list[str] | tuple[str, ...] | None = None,
    roots: tuple[Path, ...] = (),
) -> Spec:
    """Load and validate a spec from a file path, YAML/JSON text, a dict, or a Spec. ``roots``
    are the folders it may read besides its own (:mod:`netspec.files.access`), its bases too.

    >>> spec = load_spec("demo.yaml", text="name: demo\\ninputs: {x: [4]}\\nnodes:\\n  - Linear: {out_features: 2}\\n")
    >>> spec.name, spec.nodes[0].op, spec.nodes[0].args
    ('demo', 'Linear', {'out_features': 2})
    """
    if source is None and text is None:
        raise TypeError("load_spec needs a path, text, a dict or a Spec")
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
    doc.roots = roots
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


def node(
    op: str,
    args: Any = None,
    *,
    name: str | None = None,
    from_: Ref | None = None,
    when: bool | str | None = None,
    else_: str | None = None,
    repeat: int | str | None = None,
    freeze: bool | list[str] | None = None,
    tie: dict[str, str] | None = None,
    training_only: bool | None = None,
    nodes: list[NodeSpec] | None = None,
    **kwargs: Any,
) -> NodeSpec:
    """Build a NodeSpec in Python; keyword arguments are the op's arguments.

    >>> node("Conv2d", out_channels=8, kernel_size=3, name="c1").model_dump(by_alias=True)
    {'c1': {'Conv2d': {'out_channels': 8, 'kernel_size': 3}}}
    >>> node("cat", from_=["a", "b"]).model_dump(by_alias=True)
    {'cat': {}, 'from': ['a', 'b']}
    >>> node("Sequential", name="head", nodes=[node("ReLU")], when="$on", else_="x").model_dump(by_alias=True)
    {'head': {'Sequential': [{'ReLU': {}}]}, 'when': '$on', 'else': 'x'}
    """
    if args is None and kwargs:
        args = kwargs
    elif kwargs:
        raise TypeError("give the op's arguments either as `args` or as keywords, not both")
    fields = {
        "op": op,
        "args": args,
        "name": name,
        "from": from_,
        "when": when,
        "else": else_,
        "repeat": repeat,
        "freeze": freeze,
        "tie": tie,
        "training_only": training_only,
        "nodes": nodes,
    }
    return NodeSpec.model_validate({k: v for k, v in fields.items() if v is not None})
