"""The front door: :func:`build_loaders` turns a validated :class:`DataSpec` into the train /
val / test loaders, choosing per split between the in-memory and the per-sample path.

The spec was validated when it was loaded; what is checked here is what only the data can
tell (files, field names, class labels), each raised as a :class:`DataError` at the spec
path it is about. Building loaders never touches the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import RandomSampler, Sampler

from ..errors import DataError, SpecError, did_you_mean
from . import transforms as T
from .checks import ClassCount, Declared, check_batch_classes, check_classes, check_finite, check_sample
from .fields import FieldMap, class_counts_of, class_labels, describe_sample, resolve_fields, split_indices
from .loaders import SampleDataset, SampleLoader, TensorLoader
from .readers import first_line
from .samplers import SAMPLERS, SamplerContext
from .sources import SOURCES, BadSample, LoadContext, SourceData
from .spec import DataSpec, FractionSplit
from .standardize import Statistics, fit

__all__ = ["Loaders", "build_loaders", "PRECOMPUTE_BYTES", "DEVICE_RESERVE"]

# Deterministic transforms are applied once to the whole data set when the result is at most
# this big; above it (say Fashion-MNIST resized to 224x224: 12 GB) they run per batch instead.
PRECOMPUTE_BYTES = 1 << 30

# In-memory data moves to the accelerator when it leaves this much of its memory free for the
# model, its activations and the optimizer: a quarter of the device, and at least 4 GiB.
DEVICE_RESERVE = (0.25, 4 << 30)

_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}  # generated splits differ unless seeded explicitly

Loader = TensorLoader | SampleLoader


@dataclass
class Loaders:
    """What :func:`build_loaders` returns; a split not in the spec is None."""

    train: Loader | None
    val: Loader | None
    test: Loader | None
    info: dict[str, Any]  # num_classes, classes, fields, and per split: samples, batches, path, transforms, shapes

    def close(self) -> None:
        """Stop every split's worker processes (see :meth:`SampleLoader.close`)."""
        for loader in (self.train, self.val, self.test):
            if loader is not None:
                loader.close()


# ---------------------------------------------------------------------------------------------
# Raw samples of each split
# ---------------------------------------------------------------------------------------------


def _load_split(spec: Any, split: str, ctx: LoadContext) -> SourceData:
    """Run a source's load function; errors get the spec path of the split."""
    entry = SOURCES[spec.source]
    try:
        raw = entry.load(spec, ctx)
    except SpecError as e:
        if not e.path:  # point at the file option when there is one: its line is the useful one
            e.path = _file_path(spec, split)
        raise
    if entry.in_memory is not None:
        assert (raw.tensors is not None) == entry.in_memory, (
            f"source {spec.source} is registered with the wrong in_memory"
        )
    if spec.limit is not None and spec.limit < len(raw):
        raw = raw.subset(torch.arange(spec.limit))
    if len(raw) == 0:
        raise DataError(f"the {split} data has no samples", path=("data", split))
    return raw


def _file_path(source: Any, split: str) -> tuple[str, ...]:
    """The spec path of a split's file option (``data.train.path``), else of the split.

    >>> _file_path(DataSpec.model_validate({"train": {"source": "csv", "path": "x.csv"}}).train, "train")
    ('data', 'train', 'path')
    """
    key = next((k for k in ("path", "root") if k in type(source).model_fields), None)
    return ("data", split) + ((key,) if key else ())


def _load_splits(
    spec: DataSpec,
    base_dir: Path,
    seed: int,
    allow_download: bool,
    roots: tuple[Path, ...] = (),
    channels: int | None = None,
) -> dict[str, SourceData]:
    """The raw samples of every split the spec names; ``val: {fraction}`` is cut off train.
    ``channels``: of the model's image input, for sources that convert images (ImageFolder)."""

    def ctx(split: str) -> LoadContext:
        return LoadContext(
            base_dir=base_dir, seed=seed + _SPLIT_OFFSET[split], download=allow_download, roots=roots, channels=channels
        )

    raws: dict[str, SourceData] = {}
    if spec.train is not None:
        raws["train"] = _load_split(spec.train, "train", ctx("train"))
    if isinstance(spec.val, FractionSplit):
        train_idx, val_idx = split_indices(
            len(raws["train"]), spec.val.fraction, seed if spec.val.seed is None else spec.val.seed
        )
        if len(val_idx) == 0 or len(train_idx) == 0:
            raise DataError(
                f"a fraction of {spec.val.fraction} of {len(raws['train'])} samples leaves an empty split",
                path=("data", "val", "fraction"),
            )
        raws["val"] = raws["train"].subset(val_idx)
        raws["train"] = raws["train"].subset(train_idx)
    elif spec.val is not None:
        raws["val"] = _load_split(spec.val, "val", ctx("val"))
    if spec.test is not None:
        raws["test"] = _load_split(spec.test, "test", ctx("test"))
    return raws


def _check_field_counts(raws: dict[str, SourceData]) -> None:
    """Every split's samples have as many fields as the first split's: one field map serves all."""
    first_split, first = next(iter(raws.items()))
    for split, raw in raws.items():
        if len(raw.names) != len(first.names):
            raise DataError(
                f"{split} samples have {len(raw.names)} fields ({', '.join(raw.names)}) but "
                f"{first_split} samples have {len(first.names)}",
                path=("data", split),
            )


def _check_values(spec: DataSpec, raws: dict[str, SourceData], fmap: FieldMap, classes: list[ClassCount]) -> None:
    """NaN/inf and unusable class labels, split by split, before any transform (one pass each)."""
    for split, raw in raws.items():
        source = spec.train if split == "val" and isinstance(spec.val, FractionSplit) else getattr(spec, split)
        path = _file_path(source, "train" if source is spec.train else split)
        check_finite(raw, path)
        check_classes(raw, fmap, classes, path)


def _default_transforms(raw: SourceData) -> list[Any]:
    """uint8 images become float32 in [0, 1] unless the spec says otherwise."""
    images = [t for t, k in zip(raw.tensors or (), raw.kinds) if k == "image"]
    if raw.tensors is None and "image" in raw.kinds:
        return ["ToTensor"]  # image files decode to uint8
    if any(t.dtype == torch.uint8 for t in images):
        return ["ToTensor"]
    return []


# ---------------------------------------------------------------------------------------------
# One split's loader
# ---------------------------------------------------------------------------------------------


def _shapes(fields: tuple[Any, ...], fmap: FieldMap) -> dict[str, Any]:
    """Per-sample shapes and dtypes of the model inputs and target, for the log and shape checks."""

    def one(x: Any) -> dict[str, Any]:
        x = torch.as_tensor(x)
        return {"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}

    inputs, target = fmap(list(fields))
    return {
        "inputs": {k: one(v) for k, v in inputs.items()},
        "target": {k: one(v) for k, v in target.items()} if isinstance(target, dict) else one(target),
    }


def _train_sampler(spec: DataSpec, raw: SourceData, fmap: FieldMap, generator: torch.Generator) -> Sampler | None:
    """The spec's sampler, else a shuffling RandomSampler, else None (sequential); all draw from ``generator``."""
    if spec.sampler is not None:
        name = spec.sampler.name
        ctx = SamplerContext(len(raw), class_labels(raw, fmap), raw.classes, generator, ("data", "sampler", name))
        return SAMPLERS[name].build(spec.sampler.options, ctx)
    if spec.loader.shuffle is not False:
        return RandomSampler(range(len(raw)), generator=generator)
    return None


def _pretransform(
    tensors: tuple[Tensor, ...], raw: SourceData, transform: Callable, path: tuple[str, ...]
) -> tuple[tuple[Tensor, ...], Callable | None, str]:
    """Apply deterministic transforms once to the whole data set when the result fits the budget."""
    try:
        probe = T.apply(transform, tuple(t[:1] for t in tensors), raw.kinds)  # first sample, batched
    except Exception as e:
        raise DataError(
            f"transforms failed on sample 0 ({describe_sample(tuple(t[0] for t in tensors), raw.names)}): "
            f"{first_line(e)}",
            path=path,
        ) from None
    per_sample = sum(t.element_size() * t[0].numel() for t in probe)
    if per_sample * len(tensors[0]) > PRECOMPUTE_BYTES:
        return tensors, transform, "in memory (transforms applied per batch)"
    chunks = [
        T.apply(transform, tuple(t[i : i + 4096] for t in tensors), raw.kinds) for i in range(0, len(tensors[0]), 4096)
    ]  # bounded peak memory for big intermediates
    out = tuple(torch.cat([c[f] for c in chunks]) for f in range(len(tensors)))
    return out, None, "in memory (transforms applied once)"


def _to_device(tensors: tuple[Tensor, ...], device: torch.device, info: dict[str, Any]) -> tuple[Tensor, ...]:
    """Move in-memory data to the accelerator once, when it fits and leaves the reserve free
    (:data:`DEVICE_RESERVE`); otherwise it stays on the host and batches are prefetched from
    page-locked memory (:mod:`netspec.data.prefetch`)."""
    size = sum(t.numel() * t.element_size() for t in tensors)
    try:
        free, total = torch.cuda.mem_get_info(device) if device.type == "cuda" else (0, 0)
    except Exception:
        free, total = 0, 0
    if size <= free - max(DEVICE_RESERVE[0] * total, DEVICE_RESERVE[1]):
        info["path"] += f", on {device}"
        return tuple(t.to(device) for t in tensors)
    info["path"] += ", on the host (prefetched)" if device.type == "cuda" else ""
    return tensors


def _tensor_loader(
    raw: SourceData,
    transform: Callable | None,
    spec: DataSpec,
    device: torch.device | None,
    common: dict[str, Any],
    info: dict[str, Any],
) -> tuple[TensorLoader, tuple[Any, ...]]:
    """The in-memory loader (transforms applied up front, or per batch; data moved to ``device``)
    and its first sample as the model will see it."""
    tensors = raw.tensors
    assert tensors is not None
    batch_transform = None
    if transform is not None:
        tensors, batch_transform, info["path"] = _pretransform(tensors, raw, transform, common["path"])
    else:
        info["path"] = "in memory"
    # each sample's values side by side (a transform or a column-wise reader may leave a sample
    # strided across the whole set): a batch then gathers whole rows, about twice as fast
    tensors = tuple(t.contiguous() for t in tensors)
    if device is not None and device.type != "cpu":
        tensors = _to_device(tensors, device, info)
    loader = TensorLoader(
        tensors, kinds=raw.kinds, batch_transform=batch_transform, pin_memory=_pin(spec, device), **common
    )
    first = tuple(t[:1] for t in tensors)
    if batch_transform is not None:
        first = T.apply(batch_transform, first, raw.kinds)
    return loader, tuple(t[0] for t in first)


def _why_per_sample(raw: SourceData) -> str:
    """Why an image source that may be kept in memory was not (its dataset says)."""
    from .sources.files import KEEP_DECODED_BYTES, DecodedImages

    if isinstance(raw.dataset, DecodedImages):
        return "differ in size"
    return f"take more than {KEEP_DECODED_BYTES >> 20} MiB decoded"


def _pin(spec: DataSpec, device: torch.device | None) -> bool:
    """``pin_memory``: as the spec says, or (``auto``) when training on a CUDA device."""
    if spec.loader.pin_memory != "auto":
        return bool(spec.loader.pin_memory)
    return device is not None and device.type == "cuda" and torch.cuda.is_available()


def _sample_loader(
    raw: SourceData,
    transform: Callable | None,
    spec: DataSpec,
    device: torch.device | None,
    common: dict[str, Any],
    info: dict[str, Any],
    classes: list[ClassCount],
) -> tuple[SampleLoader, tuple[Any, ...]]:
    """The per-sample loader (a DataLoader over a Dataset that transforms each sample) and its
    first sample, read once here."""
    dataset = SampleDataset(raw, transform)
    workers = spec.loader.num_workers
    path = common["path"]
    check = None  # labels not known until read: checked batch by batch, on the CPU
    if classes and raw.tensors is None and raw.labels is None:

        def check(batch: Any) -> None:
            check_batch_classes(batch[1], classes, path)

    loader = SampleLoader(dataset, num_workers=workers, pin_memory=_pin(spec, device), check=check, **common)
    info["path"] = "per sample (DataLoader)" + (f", {workers} workers" if workers else "")
    with torch.random.fork_rng(devices=[]):  # peeking at sample 0 must not move the global RNG
        first_sample = dataset[0]
    if isinstance(first_sample, BadSample):
        raise DataError(first_sample.message, path=first_sample.path(common["path"]))
    return loader, first_sample


def _make_loader(
    raw: SourceData,
    items: list[Any],
    *,
    spec: DataSpec,
    split: str,
    fmap: FieldMap,
    train: bool,
    seed: int,
    device: torch.device | None,
    classes: list[ClassCount],
    inputs: dict[str, Declared],
    standardize: dict[int, tuple[Tensor, Tensor]] | None = None,
) -> tuple[Loader, dict[str, Any]]:
    """One split's loader and its info entry; its first sample must fit the model (``inputs``,
    ``classes``: :func:`~netspec.data.checks.check_sample`)."""
    in_memory = raw.tensors is not None and T.is_batchable(items) and spec.loader.in_memory is not False
    if not in_memory and spec.loader.in_memory is True:  # DataSpec refused the rest when it was loaded
        raise DataError(
            f"`in_memory: true` is impossible: the {split} images " + _why_per_sample(raw),
            path=("data", "loader", "in_memory"),
            hint="remove `in_memory: true`, or resize the images to one size beforehand",
        )
    generator = torch.Generator().manual_seed(seed) if train else None
    sampler = _train_sampler(spec, raw, fmap, generator) if generator is not None else None
    common = dict(
        batch_size=spec.batch_size if train else (spec.loader.eval_batch_size or spec.batch_size),
        drop_last=spec.loader.drop_last and train,
        sampler=sampler,
        generator=generator,
        seed=seed if train else None,
        fmap=fmap,
        path=("data", split),
    )
    info: dict[str, Any] = {"samples": len(raw), "transforms": items}
    transform = T.compose(items, standardize)
    loader, first = (
        _tensor_loader(raw, transform, spec, device, common, info)
        if in_memory
        else _sample_loader(raw, transform, spec, device, common, info, classes)
    )
    source = spec.train if split == "val" and isinstance(spec.val, FractionSplit) else getattr(spec, split)
    named = "train" if source is spec.train else split  # a val fraction is read from data.train
    check_sample(first, raw, fmap, inputs, classes, _file_path(source, named), source, named)
    info["shapes"] = _shapes(first, fmap)
    info["batches"] = len(loader)
    if train and spec.sampler is not None:
        info["sampler"] = type(sampler).__name__
    return loader, info


# ---------------------------------------------------------------------------------------------
# All splits
# ---------------------------------------------------------------------------------------------


def _split_transforms(spec: DataSpec, first: SourceData, default: list[Any] | None) -> tuple[Any, Any]:
    """The training transforms and the evaluation ones (given, else the training ones without
    their random steps, else ``default`` (the model's weights' transforms) or the defaults for the data)."""
    fallback = default if default is not None else _default_transforms(first)
    train_items = spec.transforms if spec.transforms is not None else fallback
    eval_items = (
        spec.eval_transforms
        if spec.eval_transforms is not None
        else (T.drop_random(spec.transforms) if spec.transforms is not None else fallback)
    )
    return train_items, eval_items


def image_channels(inputs: dict[str, Declared]) -> int | None:
    """The channels of the model's image input: the input named ``image`` if it is declared
    ``[C, H, W]``, else the one input declared so; None when there is none (or several).

    >>> image_channels({"image": Declared((1, 8, 8), torch.float32), "x": Declared((3, 4, 4), torch.float32)})
    1
    >>> image_channels({"a": Declared((3, 4, 4), torch.float32), "b": Declared((1, 4, 4), torch.float32)}) is None
    True
    """
    if "image" in inputs and len(inputs["image"].shape) == 3:
        return inputs["image"].shape[0]
    images = [d.shape[0] for d in inputs.values() if len(d.shape) == 3]
    return images[0] if len(images) == 1 else None


def _standardize(
    spec: DataSpec, raws: dict[str, SourceData], fmap: FieldMap, fitted: Statistics | None
) -> Statistics | None:
    """The statistics of a ``Standardize`` transform: ``fitted`` (a checkpoint's, never fitted
    again), else fitted on the training split as the transforms before it leave it."""
    found = [(key, items) for key in ("transforms", "eval_transforms") if (items := getattr(spec, key))]
    found = [(key, items) for key, items in found if T.transform_name(items[-1]) == "Standardize"]
    if not found:
        return None
    key, items = found[0]  # the training list's, when it has one: the eval list's reuses its statistics
    t = T.build_one(items[-1])
    assert isinstance(t, T.Standardize)
    path = ("data", key, len(items) - 1)
    for name in t.inputs or ():
        if name not in fmap.inputs:
            raise DataError(
                f"Standardize: the model has no input `{name}`", path=path, hint=did_you_mean(name, fmap.inputs)
            )
    if fitted is not None:
        return fitted
    raw = raws.get("train")
    if raw is None or raw.tensors is None:
        why = "the data has no `train` split" if raw is None else "the training source is read per sample"
        raise DataError(
            f"Standardize is fitted on the training data in memory, and {why}",
            path=path,
            hint="a csv, tensors or generated source as `data.train` (or a checkpoint of a run that fitted it)",
        )
    before = T.compose(T.drop_random(items[:-1]))
    tensors = T.apply(before, raw.tensors, raw.kinds) if before is not None else raw.tensors
    stats: Statistics = {}
    for name in t.inputs or list(fmap.inputs):
        x = tensors[fmap.inputs[name]]  # (N, ...) the whole training split
        if not x.is_floating_point():
            if t.inputs:  # named, so meant
                raise DataError(f"Standardize: input `{name}` is {x.dtype}, not floating point", path=path)
            continue
        shift, scale = fit(x, t.method)
        stats[name] = {"method": t.method, "shift": shift, "scale": scale}
    return stats


def _num_classes(first: SourceData, fmap: FieldMap) -> int | None:
    """The source's class count, else one more than the largest label (None without labels)."""
    if first.num_classes is not None:
        return first.num_classes
    labels = class_labels(first, fmap)
    return int(labels.max()) + 1 if labels is not None and len(labels) and labels.min() >= 0 else None


def _each_split(
    raws: dict[str, SourceData],
    spec: DataSpec,
    fmap: FieldMap,
    items: tuple[list[Any], list[Any]],
    seed: int,
    device: torch.device | None,
    classes: Any,
    inputs: dict[str, Declared] | None,
    stats: Statistics | None,
    info: dict[str, Any],
) -> dict[str, Loader]:
    """Every split's loader (``items``: the training and the evaluation transforms); each
    split's info entry goes into ``info``."""
    by_field = {fmap.inputs[k]: (v["shift"], v["scale"]) for k, v in (stats or {}).items()}
    built: dict[str, Loader] = {}
    for split, raw in raws.items():
        train = split == "train"
        built[split], info[split] = _make_loader(
            raw,
            items[0] if train else items[1],
            spec=spec,
            split=split,
            fmap=fmap,
            train=train,
            seed=seed,
            device=device,
            classes=list(classes),
            inputs=dict(inputs or {}),
            standardize=by_field,
        )
        info[split]["source"] = (
            spec.train.source if split == "val" and isinstance(spec.val, FractionSplit) else getattr(spec, split).source
        )
        info[split]["files"] = raw.files
    return built


def build_loaders(
    spec: DataSpec,
    *,
    base_dir: Path,
    input_names: list[str],
    seed: int,
    device: torch.device | None = None,
    allow_download: bool = False,
    roots: tuple[Path, ...] = (),
    classes: list[ClassCount] | tuple[ClassCount, ...] = (),
    inputs: dict[str, Declared] | None = None,
    count_classes: bool = False,
    standardize: Statistics | None = None,
    class_counts: list[int] | None = None,
    default_transforms: list[Any] | None = None,
) -> Loaders:
    """Build the train/val/test loaders of a data section.

    ``base_dir`` is the spec file's folder (relative paths resolve against it; files are read
    only under it and the data ``roots``, :mod:`netspec.files.access`); ``input_names``
    are the model's inputs in order; ``seed`` seeds the training order (a ``torch.Generator``
    seeded with exactly ``seed``), the validation split and generated data. A source downloads
    missing files when its spec says ``download: true`` or ``allow_download`` is set.
    Every in-memory floating-point value must be finite, and every label a class of the loss
    that reads it (``classes``, from the model's output size); each split's first sample, after
    its transforms, must have the shape and dtype of the model's ``inputs`` (declared per sample:
    :func:`~netspec.data.checks.declared_inputs`) and a target the classification losses can read.
    ``info["class_counts"]`` (``count_classes``): samples per class, ``class_counts`` or counted
    on train; ``info["standardize"]``: the Standardize statistics, ``standardize`` or fitted on train.
    ``default_transforms``: the model's weights' (:mod:`~netspec.data.preprocessing`), where none are named.
    Raises :class:`DataError` / :class:`SpecError` with ``path=("data", ...)``.

    >>> spec = DataSpec.model_validate({"train": {"source": "gaussian_clusters"}, "batch_size": 50})
    >>> loaders = build_loaders(spec, base_dir=Path("."), input_names=["x"], seed=0)
    >>> inputs, target = next(iter(loaders.train))
    >>> len(loaders.train), inputs["x"].shape, target.shape
    (4, torch.Size([50, 2]), torch.Size([50]))
    """
    raws = _load_splits(spec, Path(base_dir), seed, allow_download, tuple(roots), image_channels(inputs or {}))
    first = next(iter(raws.values()))
    fmap = resolve_fields(spec.fields, first.names, input_names)
    _check_field_counts(raws)
    _check_values(spec, raws, fmap, list(classes))
    train_items, eval_items = _split_transforms(spec, first, default_transforms)
    info: dict[str, Any] = {"fields": fmap.describe(first.names)}
    stats = _standardize(spec, raws, fmap, standardize)
    built = _each_split(raws, spec, fmap, (train_items, eval_items), seed, device, classes, inputs, stats, info)
    info["num_classes"], info["classes"] = _num_classes(first, fmap), first.classes
    if stats is not None:
        info["standardize"] = stats
    if count_classes:
        counted = class_counts_of(raws["train"], fmap) if class_counts is None and "train" in raws else None
        info["class_counts"] = class_counts if class_counts is not None else counted
    return Loaders(built.get("train"), built.get("val"), built.get("test"), info)
