"""The named things of the training sections: ``loss``, ``optimizer``, ``scheduler``, ``init``
and the metrics of ``train``.

Anything that is "a torch thing with arguments" (a loss, an optimizer, a scheduler, an init
function, a metric) is written the same three ways::

    loss: CrossEntropyLoss                                  # name only, default arguments
    loss: {CrossEntropyLoss: {label_smoothing: 0.1}}        # name as the key, arguments as value
    loss: {name: CrossEntropyLoss, args: {label_smoothing: 0.1}}   # canonical (what is dumped)

Other keys sit beside the name: ``{Dice: {}, weight: 0.5}``.

Each entry is checked once, when the spec is loaded: the name against its registry (with a
did-you-mean), the arguments against the signature of what it names, and the values by making
it (an optimizer on a stand-in parameter). The rules that span sections (a loss names an output
that exists, a monitor a metric that will be produced) are in :mod:`netspec.training.rules`.
The JSON Schemas in ``schemas/`` are generated from these models.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError

from ..compiler.node_forms import normalize_at
from ..compiler.spec_base import SpecModel, reported_at_spec_path
from ..errors import did_you_mean

__all__ = [
    "Call",
    "LossSpec",
    "ParamGroupSpec",
    "OptimizerSpec",
    "SchedulerSpec",
    "SchedulerSpecs",
    "InitFnSpec",
    "InitRuleSpec",
    "WeightsSpec",
    "InitSpec",
    "MetricSpec",
    "from_names",
]

Mode = Literal["auto", "min", "max"]


class _Strict(SpecModel):
    """extra="forbid" with a did-you-mean for unknown keys (the compiler's base)."""


# --------------------------------------------------------------------------- name + args


class Call(BaseModel):
    """A named torch callable with keyword arguments, in any of the three written forms.

    >>> Call.model_validate({"SGD": {"lr": 0.1}}).args
    {'lr': 0.1}
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name of the torch class or function (e.g. `SGD`, `StepLR`).")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments passed to it.")

    # How the name was written: "str" (bare string), "key" (name as a mapping key) or
    # "canonical" ({name: ...}). Errors point at the key the user actually typed.
    _form: str = PrivateAttr(default="canonical")
    _kind: ClassVar[str] = "entry"

    @model_validator(mode="wrap")
    @classmethod
    def _shorthand(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, _Normalized):
            return handler(data)  # pydantic runs this validator twice on recursive models (LossSpec)
        form = "canonical"
        if isinstance(data, str):
            data, form = {"name": data}, "str"
        elif isinstance(data, dict) and "name" not in data:
            keys = cls._keys()
            extra = [k for k in data if k not in keys]
            for key in extra:  # a misspelt field is likelier than two names
                hint = did_you_mean(str(key), [f for f in keys if f not in ("name", "args")])
                if hint and len(extra) > 1:
                    raise _key_error("unknown_key", "unknown key `{key}`; {hint}", key, hint=hint)
            if len(extra) > 1:
                raise _key_error(
                    "bad_key",
                    f"expected one {cls._kind} name as a key, found {len(extra)}: " + ", ".join(map(str, extra)),
                    extra[1],
                )
            if len(extra) == 1:
                key = extra[0]
                args = data[key]
                if args is None:
                    args = {}
                if not isinstance(args, dict):
                    raise _key_error(
                        "bad_key",
                        f"the arguments of `{key}` must be a mapping such as "
                        f"{{{key}: {{arg: value}}}}, not {type(args).__name__}",
                        key,
                    )
                # `args:` beside the name key adds to (and wins over) the name's arguments: that
                # is what `--set optimizer.args.lr=0.1` writes into `{SGD: {lr: 0.01}}`.
                extra_args = data.get("args")
                if isinstance(extra_args, dict):
                    args = {**args, **extra_args}
                data = {k: v for k, v in data.items() if k != key}
                data.update(name=str(key), args=args)
                form = "key"
        obj = handler(_Normalized(data) if isinstance(data, dict) else data)
        if isinstance(obj, Call):
            obj._form = form
            with reported_at_spec_path():  # errors at paths relative to this entry
                obj._check()
        return obj

    def _check(self) -> None:
        """Check the entry against its registry (once, when the spec is loaded)."""

    @classmethod
    def _keys(cls) -> list[str]:
        """The keys the entry's fields are written with (``from`` for ``from_``)."""
        return [f.alias or name for name, f in cls.model_fields.items()]

    def __eq__(self, other: object) -> bool:
        # How the entry was written (`_form`) is not part of its value: `{SGD: {lr: 0.1}}` equals
        # its dumped canonical form, so a spec survives a to_yaml() / load round trip.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model

    def name_path(self, base: tuple[str | int, ...]) -> tuple[str | int, ...]:
        """Spec path of the name as written (for error messages)."""
        if self._form == "key":
            return (*base, self.name)
        if self._form == "canonical":
            return (*base, "name")
        return base

    def args_path(self, base: tuple[str | int, ...]) -> tuple[str | int, ...]:
        """Spec path of the arguments mapping as written."""
        return (*base, self.name) if self._form == "key" else (*base, "args")

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> JsonSchemaValue:
        canonical = handler(core_schema)
        target = handler.resolve_ref_schema(canonical)
        props = {k: v for k, v in target.get("properties", {}).items() if k not in ("name", "args")}
        shorthand = {
            "type": "object",
            "description": f"Shorthand: {{<{cls._kind} name>: {{args}}, ...other keys}}.",
            "properties": props,
            "additionalProperties": {"type": ["object", "null"]},
            "minProperties": 1,
        }
        bare = {"type": "string", "description": f"{cls._kind} name with default arguments"}
        return {"anyOf": [bare, canonical, shorthand]}


class _Normalized(dict):
    """An entry already brought to its canonical form by :meth:`Call._shorthand`."""


def _key_error(kind: str, message: str, key: Any, **ctx: Any) -> PydanticCustomError:
    """An error the compiler locates at the offending key (types `unknown_key` / `bad_key`)."""
    return PydanticCustomError(kind, message, {"key": str(key), **ctx})


# --------------------------------------------------------------------------- loss


class LossSpec(Call):
    """One loss, a weighted sum of losses, a loss per named output, or named terms over a loss graph.

    Exactly one of ``name`` (one torch.nn or registered loss), ``sum`` (a list of loss
    entries, each with its own ``weight``), ``outputs`` (output name -> loss entry) or
    ``terms`` (term name -> a loss entry that reads what its ``from`` names, or a value of the
    loss graph reduced to a number; each term is logged as ``loss_<name>``). ``nodes`` is the
    loss graph: the model's node language, over model outputs and named model nodes.

    >>> LossSpec.model_validate({"sum": ["CrossEntropyLoss", {"Dice": {}, "weight": 0.5}]}).sum[1].weight
    0.5
    >>> import netspec.compiler.spec  # registers the node model (any loaded spec has imported it)
    >>> vae = LossSpec.model_validate({"nodes": [{"kl": {"exp": {}, "from": "logvar"}}],
    ...                                "terms": {"kl": {"from": "kl", "reduction": "sum", "weight": -0.5}}})
    >>> vae.terms["kl"].reduction, vae.nodes[0].name
    ('sum', 'kl')
    """

    name: str | None = Field(  # type: ignore[assignment]
        default=None,
        description="A torch.nn loss class (`CrossEntropyLoss`, `BCELoss`, ...) or a registered "
        "netspec loss (`Dice`, `DiceBCE`, `IoU`, `Focal`, `NTXent`).",
    )
    sum: list[LossSpec] | None = Field(
        default=None, description="Weighted sum of these losses (each entry may set `weight`)."
    )
    outputs: dict[str, LossSpec] | None = Field(
        default=None,
        description="A loss per named model output: `{output name: loss}`; the total is the weighted sum.",
    )
    terms: dict[str, LossSpec] | None = Field(
        default=None,
        description="Named terms, the total is their weighted sum; each is logged as `loss_<name>` "
        "(`train_loss_kl`, `val_loss_kl`). A term is a loss reading what its `from` names "
        "(`{BCELoss: {}, from: recon}`: an output or node and the target; `from: [a, b]`: two "
        "values), or a value of the loss graph reduced to a number (`{from: kl, reduction: sum}`).",
    )
    nodes: list[Any] | None = Field(
        default=None,
        description="The loss graph (with `terms`): nodes as in the model's `nodes` (ops and "
        "layers without weights) reading model outputs, named model nodes and each other.",
    )
    from_: str | list[str] | None = Field(
        default=None,
        alias="from",
        description="In `terms`: what the term reads: one name (compared with the target), two "
        "names (compared with each other), or, without a loss name, the value to reduce. "
        "Names are model outputs, named model nodes (exposed to the loss, not to `predict`) or loss nodes.",
    )
    reduction: Literal["mean", "sum", "batchmean"] | None = Field(
        default=None,
        description="A term without a loss name: how its value becomes a number: `mean` (of every "
        "element, the default), `sum`, or `batchmean` (the sum divided by the batch size).",
    )
    weight: float = Field(default=1.0, description="Multiplier of this loss in a sum.")
    output: str | None = Field(
        default=None,
        description="Which model output this loss reads; needed when the model has several "
        "outputs (set automatically under `outputs:`).",
    )
    target: str | None = Field(
        default=None,
        description="Key of the target to compare with when the data yields a dict of targets; "
        "default: the output's name.",
    )
    _kind: ClassVar[str] = "loss"

    @field_validator("nodes", mode="before")
    @classmethod
    def _loss_nodes(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        with reported_at_spec_path():
            return [_node(raw, i) for i, raw in enumerate(value)]

    @model_validator(mode="after")
    def _exactly_one(self) -> LossSpec:
        given = [k for k in ("name", "sum", "outputs", "terms") if getattr(self, k) is not None]
        message = "a loss is exactly one of: a loss name, `sum: [...]`, `outputs: {...}` or `terms: {...}`"
        if len(given) > 1:
            raise _key_error("bad_key", f"{message}; found {' and '.join(given)}", given[1])
        if not given and self.from_ is None:
            raise ValueError(message)
        if self.sum == []:
            raise _key_error("bad_key", "`sum:` needs at least one loss", "sum")
        if self.outputs == {}:
            raise _key_error("bad_key", "`outputs:` needs at least one output", "outputs")
        if self.terms == {}:
            raise _key_error("bad_key", "`terms:` needs at least one term", "terms")
        self._check_graph_keys(given)
        return self

    def _check_graph_keys(self, given: list[str]) -> None:
        """`from`, `reduction` and `nodes` only where they mean something."""
        if self.nodes is not None and self.terms is None:
            raise _key_error("bad_key", "`nodes:` is the loss graph of `terms:`; add the terms that read it", "nodes")
        if self.from_ is not None and given and given[0] != "name":
            raise _key_error("bad_key", f"`from:` names what one term reads; it does not go with `{given[0]}`", "from")
        if self.from_ is not None and self.output is not None:
            raise _key_error("bad_key", "`from:` and `output:` both say what the loss reads; keep `from:`", "output")
        reads = [self.from_] if isinstance(self.from_, str) else list(self.from_ or [])
        if self.from_ is not None and not 1 <= len(reads) <= (2 if self.name else 1):
            many = "one or two names" if self.name else "one name (the value to reduce)"
            raise _key_error("bad_key", f"`from:` takes {many}, got {len(reads)}", "from")
        if self.reduction is not None and (self.name is not None or self.from_ is None):
            raise _key_error(
                "bad_key",
                "`reduction:` is for a term without a loss name; a named loss takes it among its arguments",
                "reduction",
            )
        for key in self.terms or {}:
            if not _IDENT.match(key):
                raise _key_error("bad_key", f"term name `{key}` must be an identifier (it names a metric)", key)

    def reads(self) -> list[str]:
        """The names this entry's ``from`` gives (empty when it has none).

        >>> LossSpec.model_validate({"MSELoss": {}, "from": ["a", "b"]}).reads()
        ['a', 'b']
        """
        return [self.from_] if isinstance(self.from_, str) else list(self.from_ or [])

    def model_reads(self) -> list[str]:
        """Every name the loss graph and the terms read that is not a loss node: model outputs
        and the model nodes the compiled model must expose to the loss (in order, once each).

        >>> import netspec.compiler.spec  # registers the node model
        >>> LossSpec.model_validate({"nodes": [{"d": {"sub": [], "from": ["a", "b"]}}],
        ...                          "terms": {"t": {"from": "d"}, "u": {"L1Loss": {}, "from": "c"}}}).model_reads()
        ['a', 'b', 'c']
        """
        own = {n.name for n in self.nodes or [] if n.name}
        names: list[str] = []
        for node in self.nodes or []:
            names += from_names(node.from_)
        for term in (self.terms or {}).values():
            names += term.reads()
        return [n for n in dict.fromkeys(names) if n not in own]

    def _check(self) -> None:
        if self.name is not None:
            from .losses import check_loss

            check_loss(self)


#: the model of a node (compiler/spec.py's NodeSpec, registered there: that module imports this one)
NODE_MODEL: list[type[BaseModel]] = []


def _node(raw: Any, i: int) -> Any:
    """A loss-graph node, read as the model's nodes are (errors at ``nodes[i]`` of the loss)."""
    from pydantic import ValidationError

    from ..compiler.source import Document
    from ..compiler.spec_errors import spec_error_from_pydantic
    from ..errors import SpecError

    if not NODE_MODEL:  # only a LossSpec made before any spec was loaded: import netspec.compiler.spec first
        raise RuntimeError("netspec.compiler.spec registers the node model; import it first")
    node = normalize_at(raw, {}, (i,))  # its errors carry their place below `nodes`
    try:
        return NODE_MODEL[0].model_validate(node)
    except ValidationError as e:
        err = spec_error_from_pydantic(e, Document(node))
        raise SpecError(err.message, path=(i, *err.path), hint=err.hint) from None


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def from_names(ref: Any) -> list[str]:
    """The node names a node's ``from`` holds (a name, a list, a mapping of names or lists)."""
    if ref is None:
        return []
    if isinstance(ref, str):
        return [ref]
    values = ref.values() if isinstance(ref, dict) else ref
    return [n for v in values for n in ([v] if isinstance(v, str) else v)]


# --------------------------------------------------------------------------- optimizer


class ParamGroupSpec(_Strict):
    """Parameters selected by name pattern, with their own learning rate / weight decay.

    >>> ParamGroupSpec(params="layer4.0.conv1.*", lr=1e-2).lr
    0.01
    """

    params: str | list[str] = Field(
        description="Pattern(s) on parameter names such as `fc.*` or `net.layer4.0.conv1.*` "
        "(shell-style globs, or regular expressions with `match: regex`)."
    )
    match: Literal["glob", "regex"] = Field(
        default="glob", description="How `params` patterns are read: `glob` (fnmatch) or `regex` (full match)."
    )
    lr: float | None = Field(default=None, description="Learning rate of this group (default: the optimizer's).")
    weight_decay: float | None = Field(default=None, description="Weight decay of this group.")
    args: dict[str, Any] = Field(
        default_factory=dict, description="Any other per-group optimizer option (e.g. `momentum`)."
    )

    def patterns(self) -> list[str]:
        """The group's patterns as a list."""
        return [self.params] if isinstance(self.params, str) else list(self.params)

    def options(self) -> dict[str, Any]:
        """The optimizer options the group sets: ``args`` plus ``lr`` and ``weight_decay``.

        >>> ParamGroupSpec(params="fc.*", lr=0.1, args={"momentum": 0.5}).options()
        {'momentum': 0.5, 'lr': 0.1}
        """
        own = {"lr": self.lr, "weight_decay": self.weight_decay}
        return {**self.args, **{k: v for k, v in own.items() if v is not None}}


class OptimizerSpec(Call):
    """Any ``torch.optim`` optimizer, optionally with parameter groups.

    >>> OptimizerSpec.model_validate({"SGD": {"lr": 1e-5}, "groups": [{"params": "fc.*"}]}).name
    'SGD'
    """

    name: str = Field(description="A torch.optim class: `SGD`, `Adam`, `AdamW`, `RMSprop`, ...")
    groups: list[ParamGroupSpec] = Field(
        default_factory=list,
        description="Parameter groups by name pattern; a parameter may match one group at most. "
        "Frozen parameters (requires_grad false) are always left out.",
    )
    ungrouped: Literal["default", "exclude"] = Field(
        default="default",
        description="Parameters that match no group: `default` trains them with the optimizer's "
        "own arguments; `exclude` leaves them out (and stops their gradients).",
    )
    _kind: ClassVar[str] = "optimizer"

    def _check(self) -> None:
        from .optimizers import check_optimizer

        check_optimizer(self)


# --------------------------------------------------------------------------- scheduler


class SchedulerSpec(Call):
    """Any ``torch.optim.lr_scheduler`` class; a list of them runs one after the other.

    >>> SchedulerSpec.model_validate({"StepLR": {"step_size": 30, "gamma": 0.1}}).interval
    'epoch'
    """

    name: str = Field(
        description="A torch.optim.lr_scheduler class: `StepLR`, `MultiStepLR`, `ExponentialLR`, "
        "`CosineAnnealingLR`, `CosineAnnealingWarmRestarts`, `CyclicLR`, `OneCycleLR`, `LinearLR`, "
        "`ReduceLROnPlateau`, ..."
    )
    interval: Literal["epoch", "step"] = Field(
        default="epoch",
        description="Call `scheduler.step()` after every epoch or after every optimizer step.",
    )
    monitor: str | None = Field(
        default=None,
        description="ReduceLROnPlateau only: the metric it watches, e.g. `val_loss` "
        "(default: `val_loss`, or `train_loss` when there is no validation data).",
    )
    duration: int | None = Field(
        default=None,
        ge=1,
        description="In a list of schedulers: how many intervals (epochs or steps) this one "
        "runs before the next takes over. Required on every entry but the last.",
    )
    _kind: ClassVar[str] = "scheduler"

    def _check(self) -> None:
        from .schedulers import check_scheduler

        check_scheduler(self)


SchedulerSpecs = SchedulerSpec | list[SchedulerSpec]


# --------------------------------------------------------------------------- init


class InitFnSpec(Call):
    """A ``torch.nn.init`` function (`kaiming_normal_`, `constant_`, ...) with its arguments."""

    name: str = Field(description="A torch.nn.init function, e.g. `kaiming_normal_`, `constant_`, `zeros_`.")
    _kind: ClassVar[str] = "init function"

    def _check(self) -> None:
        from .init import check_init_function

        check_init_function(self)


class InitRuleSpec(_Strict):
    """Initialise the weight and/or bias of every module matching a layer type and/or name.

    >>> InitRuleSpec.model_validate({"layer": "Conv2d", "weight": "kaiming_normal_"}).weight.name
    'kaiming_normal_'
    """

    layer: str | list[str] | None = Field(
        default=None,
        description="Module class name(s), matched with isinstance (`Conv2d`, `Linear`, "
        "`BatchNorm2d`), or a custom module's class name.",
    )
    name: str | list[str] | None = Field(
        default=None, description="Glob pattern(s) on module names, e.g. `fc*`, `net.layer4.*`."
    )
    weight: InitFnSpec | None = Field(default=None, description="Function applied to `weight`.")
    bias: InitFnSpec | None = Field(
        default=None, description="Function applied to `bias` (skipped when a module has none)."
    )

    @model_validator(mode="after")
    def _complete(self) -> InitRuleSpec:
        if self.layer is None and self.name is None:
            raise ValueError("an init rule needs `layer:` and/or `name:` to say which modules it applies to")
        if self.weight is None and self.bias is None:
            raise ValueError("an init rule needs `weight:` and/or `bias:`")
        return self


class WeightsSpec(_Strict):
    """Weights loaded from a local file (a state_dict, or a checkpoint holding one).

    >>> WeightsSpec.model_validate("w.pt").strict
    True
    """

    path: str = Field(description="File path, relative to the spec file's directory.")
    strict: bool = Field(
        default=True,
        description="true: every model key must be in the file and vice versa; false: load what "
        "matches and report missing/unexpected keys.",
    )
    key: str | None = Field(
        default=None,
        description="Entry of the file holding the state_dict (e.g. `model`, `state_dict`); "
        "default: found automatically.",
    )
    strip_prefix: str | None = Field(
        default=None, description="Remove this prefix from the file's keys (`module.` is always removed)."
    )
    add_prefix: str | None = Field(
        default=None, description="Prepend this to the file's keys, e.g. `net.` to load a backbone."
    )

    @model_validator(mode="before")
    @classmethod
    def _path_only(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> JsonSchemaValue:
        # `weights: file.pt` as well as the mapping.
        return {"anyOf": [{"type": "string", "description": "path"}, handler(core_schema)]}


class InitSpec(_Strict):
    """Initialisation rules, applied in order (later rules win), then weights from a file.

    >>> InitSpec.model_validate({"rules": [{"layer": "Linear", "bias": "zeros_"}]}).rules[0].layer
    'Linear'
    """

    rules: list[InitRuleSpec] = Field(default_factory=list, description="Init rules, applied in order.")
    weights: WeightsSpec | None = Field(default=None, description="Load weights from a local file after the rules.")


# --------------------------------------------------------------------------- train


class MetricSpec(Call):
    """A registered metric (`accuracy`, `top_k_accuracy`, `dice`, `iou`, `mse`, `mae`)."""

    name: str = Field(description="A metric from netspec.metrics: accuracy, top_k_accuracy, dice, iou, mse, mae.")
    output: str | None = Field(
        default=None, description="Model output it reads (needed with several outputs); its name prefixes the metric."
    )
    target: str | None = Field(default=None, description="Target key when the data yields a dict of targets.")
    _kind: ClassVar[str] = "metric"

    def _check(self) -> None:
        from .metrics import check_metric

        check_metric(self)
