"""The ``data:`` section of a spec as pydantic models (``extra="forbid"``), validated once.

A source mapping is validated with the options model its ``source:`` names (the
:data:`~netspec.data.sources.SOURCES` registry), a ``sampler:`` with the options model of its
one key (:data:`~netspec.data.samplers.SAMPLERS`), every transform by building it
(:data:`~netspec.data.transforms.TRANSFORMS`). Loading a spec imports no torchvision and no
loader code: the transforms module is imported only when a spec lists transforms.

>>> spec = DataSpec.model_validate({"train": {"source": "random", "n": 8},
...                                 "sampler": {"RandomSampler": {"num_samples": 4}}})
>>> spec.train.n, spec.sampler.name, spec.sampler.options.num_samples
(8, 'RandomSampler', 4)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    WrapValidator,
    create_model,
    field_validator,
    model_validator,
)

from ..compiler.spec_base import SpecModel, reported_at_spec_path
from ..errors import SpecError
from .samplers import SAMPLERS
from .sources import SOURCES, SourceOptions

__all__ = [
    "DataSpec",
    "LoaderSpec",
    "FieldsSpec",
    "FieldRef",
    "FractionSplit",
    "SamplerSpec",
    "SourceSpec",
    "ValSpec",
    "TransformList",
]


# ---------------------------------------------------------------------------------------------
# Sources and the validation split
# ---------------------------------------------------------------------------------------------


def _validate_source(v: Any, handler: Any) -> Any:
    """Validate a source mapping with the options model its `source:` names.

    Dispatching by hand (not a pydantic discriminated union) keeps error locations equal to
    spec paths (``train.bogus``, not ``train.csv.bogus``) and gives a did-you-mean.
    """
    if isinstance(v, SourceOptions):
        return v
    if not isinstance(v, dict):
        raise ValueError("expected a mapping with a `source:` key")
    name = v.get("source")
    if name is None:
        raise ValueError("missing `source:` (one of " + ", ".join(SOURCES) + ")")
    with reported_at_spec_path():  # at the `source:` key, as the compiler's own key errors
        entry = SOURCES.lookup(str(name), ("source",), key=True)
    return entry.options.model_validate(v)


_SOURCE_MODELS = tuple(dict.fromkeys(entry.options for entry in SOURCES.values()))

#: Any registered source's options, chosen by the `source:` key.
# Union[a tuple] is the union of its models; `|` cannot spell that, so UP007 does not apply here or below.
SourceSpec = Annotated[Union[_SOURCE_MODELS], WrapValidator(_validate_source)]  # type: ignore[valid-type]  # noqa: UP007


class FractionSplit(SpecModel):
    """Split the validation set off the training source."""

    fraction: float = Field(gt=0, lt=1, description="Share of the training samples held out for validation.")
    seed: int | None = Field(None, description="Seed of the split; default: the run seed.")


def _validate_val(v: Any, handler: Any) -> Any:
    """`{fraction: ...}` (no `source:`) splits train; anything else is a source."""
    if isinstance(v, FractionSplit):
        return v
    if isinstance(v, dict) and "source" not in v:
        return FractionSplit.model_validate(v)
    return _validate_source(v, handler)


_VAL_MODELS = (FractionSplit, *_SOURCE_MODELS)  # a tuple first: mypy reads `X[(a, *b)]` as 3.11's `X[a, *b]`
ValSpec = Annotated[Union[_VAL_MODELS], WrapValidator(_validate_val)]  # type: ignore[valid-type]  # noqa: UP007


# ---------------------------------------------------------------------------------------------
# Loader, sampler, fields, transforms
# ---------------------------------------------------------------------------------------------


class LoaderSpec(SpecModel):
    """DataLoader options."""

    shuffle: bool | None = Field(
        None,
        description="Shuffle the training set every epoch (default true; "
        "a sampler replaces it). Validation and test are never shuffled.",
    )
    num_workers: int = Field(
        0,
        ge=0,
        description="Worker processes for the per-sample path (unused in memory); they persist from epoch to epoch.",
    )
    drop_last: bool = Field(
        False,
        description="Drop the last, short training batch (data-parallel: the last short "
        "global batch; without it, the epoch is padded with its first samples, as "
        "DistributedSampler pads it).",
    )
    pin_memory: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "Pin batches in page-locked memory (faster, asynchronous copies to a GPU); auto: when training on CUDA."
        ),
    )
    in_memory: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "auto: keep tensor sources in memory and batch by indexing when the transforms allow it; "
            "false: always the per-sample DataLoader path; true: require the in-memory path."
        ),
    )
    eval_batch_size: int | None = Field(
        None, ge=1, description="Batch size for validation and test; default batch_size."
    )


class _OneSampler(SpecModel):
    """Base of :data:`SamplerSpec`: one key, a registered sampler's name, with its options."""

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        """Replaces SpecModel's check: a key is a sampler name, looked up in the registry."""
        if isinstance(data, dict):
            with reported_at_spec_path():
                for key in data:
                    SAMPLERS.lookup(str(key), (str(key),), key=True)
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> _OneSampler:
        """One sampler, named by its key."""
        if sum(getattr(self, name) is not None for name in type(self).model_fields) != 1:
            raise ValueError("give exactly one sampler: " + " or ".join(type(self).model_fields))
        return self

    @property
    def name(self) -> str:
        """The sampler's registry name."""
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @property
    def options(self) -> SpecModel:
        """The sampler's validated options."""
        return getattr(self, self.name)


# One optional key per sampler registered when this module is first imported (a sampler
# registered later is unknown to specs: register it before loading any spec).
SamplerSpec = create_model(  # type: ignore[call-overload]
    "SamplerSpec",
    __base__=_OneSampler,
    __module__=__name__,
    __doc__="How the training loader picks samples; exactly one key.",
    **{name: (entry.options | None, Field(None, description=entry.description)) for name, entry in SAMPLERS.items()},
)

FieldRef = int | str


class FieldsSpec(SpecModel):
    """Which field of each sample feeds which model input, and which is the target."""

    inputs: dict[str, FieldRef] | None = Field(
        None,
        description=(
            "Model input name -> field (index or name). Default: by name when every input is a field name, "
            "else the fields before the target, in order."
        ),
    )
    target: FieldRef | dict[str, FieldRef] | None = Field(
        None, description=("The target field, or output name -> field for several targets. Default: the last field.")
    )


def _check_transform(item: Any) -> Any:
    """Validate one transform item by building it (did-you-mean on names and arguments)."""
    from . import transforms  # torchvision: imported only for specs that list transforms

    with reported_at_spec_path():
        transforms.build_one(item)
    return item


TransformList = Annotated[
    list[Annotated[str | dict[str, Any], AfterValidator(_check_transform)]],
    Field(
        json_schema_extra={
            "examples": [["RandomHorizontalFlip", {"Resize": 32}, {"ToDtype": {"dtype": "float32", "scale": True}}]]
        }
    ),
]


# ---------------------------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------------------------


class DataSpec(SpecModel):
    """The `data:` section: where samples come from and how they are batched."""

    train: SourceSpec | None = Field(None, description="Training source.")
    val: ValSpec | None = Field(None, description="Validation: `{fraction, seed}` split off train, or a source.")
    test: SourceSpec | None = Field(None, description="Test source.")
    transforms: TransformList | None = Field(
        None,
        description=(
            "torchvision.transforms.v2 names with arguments, for training: `Name`, `{Name: arg}` or "
            "`{Name: {kwarg: value}}`. Images arrive as uint8 C x H x W tensors. Default for image sources: "
            "[ToTensor] (uint8 -> float32 in [0, 1], divided by 255 exactly as transforms.ToTensor); for a "
            "model whose pretrained weights carry their preprocessing (a torchvision node naming a weights "
            "enum member, a timm node with weights), when eval_transforms is not given either: "
            "[{WeightsTransforms: <those weights>}]."
        ),
    )
    eval_transforms: TransformList | None = Field(
        None,
        description=("Transforms for validation and test; default: the training list without its random transforms."),
    )
    batch_size: int = Field(
        64,
        ge=1,
        description="Samples per training batch; in a data-parallel run the global "
        "batch, shared equally by the processes.",
    )
    loader: LoaderSpec = Field(default_factory=LoaderSpec, description="DataLoader options.")
    sampler: SamplerSpec | None = Field(None, description="Training sampler (replaces shuffling).")
    fields: FieldsSpec | None = Field(None, description="Map sample fields to model inputs and the target.")

    @field_validator("transforms", "eval_transforms")
    @classmethod
    def _standardize_last(cls, v: Any) -> Any:
        """Standardize works on the model's inputs as they are fed: after every other transform."""
        names = [_item_name(item) for item in v or []]
        if "Standardize" in names[:-1]:
            raise ValueError(
                "Standardize comes last: it standardises the model's inputs as the other transforms leave them"
            )
        return v

    @field_validator("val")
    @classmethod
    def _val_needs_train(cls, v: Any, info: ValidationInfo) -> Any:
        """A fraction split needs a training source to split."""
        if isinstance(v, FractionSplit) and info.data.get("train") is None:
            raise ValueError("`val: {fraction: ...}` splits the training set, so `train` is needed")
        return v

    @field_validator("sampler")
    @classmethod
    def _sampler_or_shuffle(cls, v: Any, info: ValidationInfo) -> Any:
        """DataLoader refuses both; say so at the spec's line."""
        loader = info.data.get("loader")
        if v is not None and loader is not None and loader.shuffle:
            raise ValueError("a sampler replaces shuffling: remove `loader.shuffle: true` or the sampler")
        return v

    @model_validator(mode="after")
    def _check(self) -> DataSpec:
        """Something to load; `loader.in_memory: true` only where it can hold."""
        if self.train is None and self.test is None and not isinstance(self.val, SourceOptions):
            raise ValueError("give at least one of train, val, test")
        if self.loader.in_memory is True:
            with reported_at_spec_path():
                _check_in_memory(self)
        ends = [
            bool(items) and _item_name(items[-1]) == "Standardize" for items in (self.transforms, self.eval_transforms)
        ]
        if (
            self.eval_transforms is not None and ends[0] != ends[1]
        ):  # the model would see other inputs than it learnt on
            with reported_at_spec_path():
                raise SpecError(
                    "Standardize ends `transforms` but not `eval_transforms`"
                    if ends[0]
                    else "Standardize ends `eval_transforms` but not `transforms`",
                    path=("eval_transforms",),
                    hint="standardise both the training and the evaluation inputs, or neither",
                )
        return self


def _item_name(item: Any) -> Any:
    """A transform item's name without building it (``{Resize: 32}`` -> ``Resize``)."""
    return next(iter(item)) if isinstance(item, dict) and len(item) == 1 else item


def _in_memory_refusal(source: Any, items: list[Any]) -> str | None:
    """Why one split cannot be kept in memory with these transforms, or None when it can."""
    # every source's model has its `source` name; their base does not (so getattr: B009 would fail mypy)
    if isinstance(source, SourceOptions) and SOURCES[getattr(source, "source")].in_memory is False:  # noqa: B009
        return "this source is read per sample"
    if source is None or not items:
        return None
    from .transforms import BATCHABLE, transform_name  # torchvision: only for specs that list transforms

    random = [transform_name(item) for item in items if transform_name(item) not in BATCHABLE]
    return "these transforms are random: " + ", ".join(random) if random else None


def _check_in_memory(spec: DataSpec) -> None:
    """`in_memory: true` needs sources read into memory and deterministic transforms, split by split.

    Default transforms (ToTensor, or the training list without its random ones) always allow it.
    """
    eval_items = spec.eval_transforms or []
    for source, items in ((spec.train, spec.transforms or []), (spec.val, eval_items), (spec.test, eval_items)):
        why = _in_memory_refusal(source, items)
        if why:
            raise SpecError(f"`in_memory: true` is impossible: {why}", path=("loader", "in_memory"))
