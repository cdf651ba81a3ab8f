"""Image transforms named in a spec: the :data:`TRANSFORMS` registry, built from
``torchvision.transforms.v2`` plus netspec's own ``ToTensor``.

A spec lists transforms as one-key mappings (or bare names)::

    transforms: [RandomHorizontalFlip, {Resize: 32}, {ToDtype: {dtype: float32, scale: true}}]

A scalar or list value is the single positional argument (``{Resize: 32}`` is ``Resize(32)``);
a mapping holds keyword arguments. Strings are turned into the objects torch expects where
the argument is a dtype (``float32``) or an interpolation mode (``bilinear``).

Every transform receives images as uint8 (or float) tensors ``C x H x W`` wrapped as
``tv_tensors.Image``, never PIL images, whatever the source: that is what lets the in-memory
path apply the deterministic ones to a whole ``N x C x H x W`` tensor at once and get exactly
the values the per-sample path would.

This module imports torchvision; the spec imports it only when a spec lists transforms.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from ..errors import SpecError, did_you_mean
from ..nodes.registry import Registry
from .standardize import METHODS

__all__ = [
    "TRANSFORMS",
    "ToTensor",
    "Standardize",
    "BATCHABLE",
    "CONTAINERS",
    "transform_name",
    "build_one",
    "build_list",
    "compose",
    "is_batchable",
    "drop_random",
    "apply",
    "unwrap",
]

#: Transforms that take a list of transforms as their first argument (nested specs).
CONTAINERS = {"Compose", "RandomApply", "RandomChoice", "RandomOrder"}

#: Deterministic transforms that give the same values on an ``N x C x H x W`` batch as on each
#: ``C x H x W`` sample: a source decoded into memory can apply these once to the whole tensor.
BATCHABLE = {
    "ToImage",
    "ToDtype",
    "ConvertImageDtype",
    "Normalize",
    "Resize",
    "CenterCrop",
    "Grayscale",
    "RGB",
    "Pad",
    "ToPureTensor",
    "Identity",
    "ToTensor",
    "Standardize",
    "WeightsTransforms",  # resize, crop, normalise: per image, batch dims kept
}


class ToTensor(v2.Transform):
    """uint8 image -> float32 in [0, 1], computed exactly as classic ``transforms.ToTensor`` does.

    The seeds use ToTensor everywhere. v2's own ToTensor leaves tensors untouched (it only
    converts PIL images and arrays), so on our tensor pipeline it would silently do nothing;
    and ``ToDtype(float32, scale=True)`` multiplies by 1/255, which differs from ToTensor's
    division by 255 in the last bit of about half the values. This one divides.
    """

    _transformed_types = (tv_tensors.Image, torch.Tensor)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask) or inpt.dtype != torch.uint8:
            return inpt  # masks keep their class indices; float images are already scaled
        out = inpt.as_subclass(torch.Tensor).float().div(255)  # (..., C, H, W)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


class Standardize(v2.Transform):
    """Per-feature standardisation of the model's inputs (tabular features), with statistics
    fitted on the training split only (:mod:`netspec.data.standardize`): ``zscore`` (mean and
    std, as scikit-learn's StandardScaler) or ``minmax`` (min and range, MinMaxScaler).

    It comes last in a transform list and reads its statistics from ``build_loaders``, which
    fits them (or takes a checkpoint's) and sets ``fields`` (field index -> (shift, scale));
    ``inputs`` names the model inputs to standardise (default: every floating-point one).

    >>> t = Standardize("minmax")
    >>> t.fields = {0: (torch.tensor([1.0]), torch.tensor([2.0]))}
    >>> [x.tolist() for x in t((torch.tensor([[5.0]]), torch.tensor([1])))]
    [[[2.0]], [1]]
    """

    def __init__(self, method: str = "zscore", inputs: list[str] | None = None) -> None:
        super().__init__()
        if method not in METHODS:
            hint = did_you_mean(str(method), METHODS)
            raise ValueError(f"method is {' or '.join(METHODS)}, not {method!r}" + (f"; {hint}" if hint else ""))
        if inputs is not None and not (isinstance(inputs, list) and all(isinstance(i, str) for i in inputs)):
            raise ValueError("inputs is a list of model input names")
        self.method, self.inputs = method, inputs
        self.fields: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None  # None: not fitted

    def forward(self, *inputs: Any) -> Any:
        sample = inputs[0] if len(inputs) == 1 else inputs  # the tuple of fields `apply` passes
        if self.fields is None:
            raise RuntimeError("Standardize has no statistics: it belongs last in `transforms`, not nested")
        fields = list(sample) if isinstance(sample, (tuple, list)) else [sample]
        for i, (shift, scale) in self.fields.items():
            x = fields[i].as_subclass(torch.Tensor) if isinstance(fields[i], tv_tensors.TVTensor) else fields[i]
            fields[i] = (x - shift.to(x.device)) / scale.to(x.device)  # as Standardizer: (N, F) or (F,)
        return tuple(fields) if isinstance(sample, (tuple, list)) else fields[0]


# torchvision transforms a spec may not name, with the reason it is told.
_REFUSED: dict[str, str] = {
    "Transform": "it is the base class of all transforms",
    "Lambda": "it runs arbitrary code",
    **dict.fromkeys(["ToPILImage", "PILToTensor"], "the pipeline is tensors only"),
    **dict.fromkeys(["MixUp", "CutMix"], "they work on batches, not samples"),
    **dict.fromkeys(["FiveCrop", "TenCrop"], "they return tuples of images"),
    "LinearTransformation": "it needs a tensor argument",
    **dict.fromkeys(
        [
            "ClampBoundingBoxes",
            "ConvertBoundingBoxFormat",
            "SanitizeBoundingBoxes",
            "ClampKeyPoints",
            "SanitizeKeyPoints",
            "SetClampingMode",
            "RandomIoUCrop",
        ],
        "it needs bounding boxes or key points, which no source gives",
    ),
    "UniformTemporalSubsample": "no source gives videos",
}


def _fill(registry: Registry[type]) -> None:
    """Every public ``v2.Transform`` subclass but the refused ones, then netspec's ToTensor.

    torchvision's own ToTensor is skipped: it leaves tensors untouched, netspec's replaces it.
    """
    for name, obj in sorted(vars(v2).items()):
        if isinstance(obj, type) and issubclass(obj, v2.Transform) and name not in _REFUSED and name != "ToTensor":
            registry.add(name, obj)
    registry.add("ToTensor", ToTensor)
    registry.add("Standardize", Standardize)
    from .preprocessing import NAME, WeightsTransforms  # the transforms pretrained weights were made with

    registry.add(NAME, WeightsTransforms)


#: transform name -> class; filled on first use from torchvision.transforms.v2, plus ToTensor.
TRANSFORMS: Registry[type] = Registry(
    "transform", fill=_fill, hint="transforms are torchvision.transforms.v2 class names, or ToTensor"
)
for _name, _why in _REFUSED.items():
    TRANSFORMS.refuse(_name, f"transform `{_name}` cannot be used in a spec: {_why}")

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "long": torch.int64,
    "bool": torch.bool,
}


def transform_name(item: Any) -> str:
    """The transform name of one list item (``"Resize"`` for ``{Resize: 32}``).

    >>> transform_name({"Resize": 32}), transform_name("ToImage")
    ('Resize', 'ToImage')
    """
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and len(item) == 1:
        return next(iter(item))
    raise SpecError(f"a transform is a name or a one-key mapping {{Name: args}}, got {item!r}")


def _convert(key: str, value: Any) -> Any:
    """Turn YAML strings into the objects torchvision expects for a few known argument names."""
    if key == "dtype" and isinstance(value, str):
        if value not in _DTYPES:
            raise SpecError(f"unknown dtype `{value}`", hint=did_you_mean(value, _DTYPES))
        return _DTYPES[value]
    if key == "interpolation" and isinstance(value, str):
        try:
            return InterpolationMode[value.upper()]
        except KeyError:
            names = [m.name.lower() for m in InterpolationMode]
            raise SpecError(f"unknown interpolation `{value}`; use one of {', '.join(names)}") from None
    return value


def _split_args(name: str, value: Any) -> tuple[list[Any], dict[str, Any]]:
    """Arguments of one transform: None/{} -> none, mapping -> kwargs, anything else -> one positional."""
    if value is None:
        return [], {}
    if isinstance(value, dict):
        return [], dict(value)
    return [value], {}


def _check_signature(name: str, cls: type, args: list[Any], kwargs: dict[str, Any]) -> None:
    """The arguments fit the constructor: unknown keyword arguments get a did-you-mean."""
    sig = inspect.signature(cls)
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        bad = [k for k in kwargs if k not in sig.parameters]
        if bad:
            hint = did_you_mean(bad[0], [p for p in sig.parameters if p not in ("self", "args", "kwargs")])
            raise SpecError(f"{name}: unknown argument `{bad[0]}`", hint=hint) from None
        raise SpecError(f"{name}: {e}") from None


def build_one(item: Any) -> Callable:
    """Construct the transform one spec item stands for.

    Raises a SpecError (no path: the item is the place) with a one-line message on an unknown
    name or bad arguments.

    >>> build_one({"Resize": 8}).size
    [8]
    >>> build_one("RandomHorizontalFlp")
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: unknown transform `RandomHorizontalFlp`; did you mean `RandomHorizontalFlip`?
    """
    name = transform_name(item)
    cls = TRANSFORMS.lookup(name)
    args, kwargs = _split_args(name, None if isinstance(item, str) else item[name])
    if name in CONTAINERS:  # the first argument is a nested transform list: build it recursively
        if args:
            args[0] = build_list(args[0])
        elif "transforms" in kwargs:
            kwargs["transforms"] = build_list(kwargs["transforms"])
    _check_signature(name, cls, args, kwargs)
    kwargs = {k: _convert(k, v) for k, v in kwargs.items()}
    args = [_convert("dtype", a) if name in ("ToDtype", "ConvertImageDtype") else a for a in args]
    try:
        return cls(*args, **kwargs)
    except SpecError:  # WeightsTransforms: an unknown weights name, said in netspec's words
        raise
    except Exception as e:  # torchvision validates argument values in __init__
        raise SpecError(f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def build_list(items: list[Any] | None) -> list[Callable]:
    """Construct every transform of a spec list, in order.

    >>> [type(t).__name__ for t in build_list(["RandomHorizontalFlip", "ToTensor"])]
    ['RandomHorizontalFlip', 'ToTensor']
    """
    return [build_one(item) for item in (items or [])]


def compose(
    items: list[Any] | None, standardize: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
) -> Callable | None:
    """One callable for a spec list, or None when the list is empty; ``standardize`` gives a
    :class:`Standardize` of the list its fitted statistics (field index -> (shift, scale)).

    >>> t = compose([{"ToDtype": {"dtype": "float32", "scale": True}}])
    >>> t(torch.full((1, 2, 2), 255, dtype=torch.uint8)).max().item()
    1.0
    """
    built = build_list(items)
    for t in built:
        if isinstance(t, Standardize) and standardize is not None:  # else it refuses to run: never silently raw
            t.fields = dict(standardize)
    return v2.Compose(built) if built else None


def is_batchable(items: list[Any] | None) -> bool:
    """True when every transform is deterministic and works on a whole ``N x C x H x W`` tensor.

    >>> is_batchable([{"Resize": 32}, "ToTensor"]), is_batchable(["RandomHorizontalFlip"])
    (True, False)
    """
    return all(transform_name(item) in BATCHABLE for item in (items or []))


def drop_random(items: list[Any] | None) -> list[Any]:
    """The deterministic part of a list: the default evaluation transforms.

    >>> drop_random(["RandomHorizontalFlip", {"Normalize": {"mean": [0.5], "std": [0.5]}}])
    [{'Normalize': {'mean': [0.5], 'std': [0.5]}}]
    """
    return [item for item in (items or []) if transform_name(item) in BATCHABLE]


def unwrap(x: Any) -> Any:
    """tv_tensors (Image, Mask) back to plain tensors, so models never see the subclasses.

    >>> type(unwrap(tv_tensors.Image(torch.zeros(1, 2, 2)))).__name__
    'Tensor'
    """
    if isinstance(x, tv_tensors.TVTensor):
        return x.as_subclass(torch.Tensor)
    return x


def _wrap(fields: Iterable[Any], kinds: tuple[str, ...]) -> tuple[Any, ...]:
    """Mark images and masks so v2 transforms know which field is which (labels pass through)."""
    out = []
    for x, kind in zip(fields, kinds):
        if kind == "image" and isinstance(x, torch.Tensor):
            x = tv_tensors.Image(x)
        elif kind == "mask" and isinstance(x, torch.Tensor):
            x = tv_tensors.Mask(x)
        out.append(x)
    return tuple(out)


def apply(transform: Callable, fields: Iterable[Any], kinds: tuple[str, ...]) -> tuple[Any, ...]:
    """Run a transform on one sample or one batch of fields; plain tensors out.

    ``kinds`` (from the source) says which field is an image or a mask: geometric transforms
    move masks with their images, and leave labels alone.

    >>> flip = build_one({"RandomHorizontalFlip": {"p": 1.0}})
    >>> image, mask, label = apply(flip, (torch.arange(2.).view(1, 1, 2), torch.tensor([[0, 1]]), 3),
    ...                            ("image", "mask", "label"))
    >>> image.tolist(), mask.tolist(), label
    ([[[1.0, 0.0]]], [[1, 0]], 3)
    """
    return tuple(unwrap(x) for x in transform(_wrap(fields, kinds)))
