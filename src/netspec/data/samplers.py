"""Training samplers: the :data:`SAMPLERS` registry (options model + builder), and the epoch
order a sampler draws.

A spec names one sampler as the only key of ``sampler:``, its options as the value::

    sampler: {WeightedRandomSampler: {class_weights: {1: 0.85}, default_weight: 0.1}}

Adding a sampler is one options model and one builder ``(options, SamplerContext) ->
torch.utils.data.Sampler``, registered with :func:`register_sampler`; the spec's
``SamplerSpec`` (:mod:`netspec.data.spec`) gets one key per registered sampler. A builder
draws only from the context's generator (the training loader's), so that set_epoch can replay
an epoch's order exactly. No torchvision here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..compiler.spec_base import SpecModel
from ..errors import DataError, did_you_mean
from ..nodes.registry import Registry

if TYPE_CHECKING:  # torch is imported where a sampler is built: the spec models do without it
    import torch
    from torch import Tensor
    from torch.utils.data import Sampler

__all__ = ["SAMPLERS", "SamplerEntry", "SamplerContext", "register_sampler", "sampler_order", "balanced_class_weights"]


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler builder may use: the training split and the loader's generator."""

    size: int  # samples in the training split
    labels: Tensor | None  # (N,) class index of each sample, when the target is a class
    classes: list[str] | None  # class names, when the source knows them
    generator: torch.Generator  # the training loader's: every draw replays on set_epoch
    path: tuple[str, ...]  # ("data", "sampler", <name>): where errors point


Builder = Callable[[Any, SamplerContext], "Sampler"]


@dataclass(frozen=True)
class SamplerEntry:
    """A registered sampler: its options model, its builder, and its line in the spec reference."""

    name: str
    options: type[SpecModel]
    build: Builder
    description: str


#: sampler name (the key under `sampler:`) -> entry; written by :func:`register_sampler`.
SAMPLERS: Registry[SamplerEntry] = Registry("sampler")


def register_sampler(name: str, options: type[SpecModel], *, description: str) -> Callable[[Builder], Builder]:
    """Register a sampler builder under ``name``, with the options model a spec's value must fit.

    >>> sorted(SAMPLERS)
    ['RandomSampler', 'WeightedRandomSampler']
    """

    def deco(fn: Builder) -> Builder:
        SAMPLERS.add(name, SamplerEntry(name, options, fn, description))
        return fn

    return deco


# ---------------------------------------------------------------------------------------------
# WeightedRandomSampler
# ---------------------------------------------------------------------------------------------


class WeightedRandomSamplerSpec(SpecModel):
    """Draw training samples with per-class weights (seed 004: 0.85 for class 1, 0.1 for the rest)."""

    class_weights: dict[int | str, float] | Literal["balanced"] = Field(
        description=(
            "Class (index or class name) -> weight of each of its samples; `balanced`: n_samples / (n_classes * class count), as scikit-learn's."
        )
    )
    default_weight: float | None = Field(None, ge=0, description="Weight of classes not listed.")
    num_samples: int | None = Field(None, ge=1, description="Samples per epoch; default the training set size.")
    replacement: bool = Field(True, description="Draw with replacement.")


def _class_index(key: int | str, classes: list[str] | None, n_classes: int, path: tuple[str, ...]) -> int:
    """The class a ``class_weights`` key names: an index (also written as a string) or a class name."""
    if isinstance(key, int) or key.lstrip("-").isdigit():
        c = int(key)
    elif classes and key in classes:
        c = classes.index(key)
    else:
        raise DataError(f"unknown class `{key}`", path=(*path, str(key)), hint=did_you_mean(key, classes or []))
    if not 0 <= c < n_classes:
        raise DataError(f"class {c} does not occur in the training labels (0..{n_classes - 1})", path=(*path, str(key)))
    return c


def balanced_class_weights(counts: Tensor) -> Tensor:
    """scikit-learn's ``balanced`` class weights from samples per class: ``n_samples / (n_classes *
    count)``, ``n_classes`` counting the classes that occur; 0 for a class with no samples.
    The sampler's ``class_weights: balanced`` and the losses' ``weight: balanced`` both use it.

    >>> import torch
    >>> balanced_class_weights(torch.tensor([3, 1, 0])).tolist()
    [0.6666666666666666, 2.0, 0.0]
    """
    import torch

    counts = counts.double()  # (C,)
    present = counts > 0
    n_samples, n_classes = counts.sum(), present.sum()
    return torch.where(present, n_samples / (n_classes * counts.clamp(min=1)), torch.zeros_like(counts))


def _per_class_weights(
    opts: WeightedRandomSamplerSpec, labels: Tensor, classes: list[str] | None, path: tuple[str, ...]
) -> Tensor:
    """Weight of each class ``(n_classes,)`` float64; 0 for classes absent from the labels."""
    import torch

    n_classes = int(labels.max()) + 1 if len(labels) else 0
    counts = torch.bincount(labels, minlength=n_classes)  # (n_classes,)
    if opts.class_weights == "balanced":
        return balanced_class_weights(counts)
    per_class = torch.full((n_classes,), float("nan"), dtype=torch.float64)
    if opts.default_weight is not None:
        per_class.fill_(opts.default_weight)
    for key, w in opts.class_weights.items():
        per_class[_class_index(key, classes, n_classes, path)] = w
    unset = [c for c in range(n_classes) if counts[c] > 0 and math.isnan(per_class[c])]
    if unset:
        raise DataError(
            f"no weight for class(es) {', '.join(map(str, unset))}", path=path, hint="list them or set `default_weight`"
        )
    return per_class.nan_to_num(0.0)


@register_sampler("WeightedRandomSampler", WeightedRandomSamplerSpec, description="Per-class weights.")
def weighted_random_sampler(opts: WeightedRandomSamplerSpec, ctx: SamplerContext) -> Sampler:
    """torch's WeightedRandomSampler with each sample weighted by its class.

    >>> import torch
    >>> ctx = SamplerContext(4, torch.tensor([0, 0, 0, 1]), None, torch.Generator(), ("data", "sampler"))
    >>> weighted_random_sampler(WeightedRandomSamplerSpec(class_weights="balanced"), ctx).weights.tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    from torch.utils.data import WeightedRandomSampler

    path = (*ctx.path, "class_weights")
    if ctx.labels is None:
        raise DataError("per-class weights need integer class labels as the target", path=path)
    weights = _per_class_weights(opts, ctx.labels, ctx.classes, path)[ctx.labels]  # (N,) weight of each sample
    per_sample: Any = weights  # torch's stub says Sequence[float]; a tensor is what it uses
    return WeightedRandomSampler(
        per_sample, opts.num_samples or ctx.size, replacement=opts.replacement, generator=ctx.generator
    )


# ---------------------------------------------------------------------------------------------
# RandomSampler
# ---------------------------------------------------------------------------------------------


class RandomSamplerSpec(SpecModel):
    """Uniform random order, optionally with replacement or a different epoch length."""

    replacement: bool = Field(False, description="Draw with replacement.")
    num_samples: int | None = Field(None, ge=1, description="Samples per epoch; default the training set size.")


@register_sampler("RandomSampler", RandomSamplerSpec, description="Uniform random sampling.")
def random_sampler(opts: RandomSamplerSpec, ctx: SamplerContext) -> Sampler:
    """torch's RandomSampler over the training split.

    >>> import torch
    >>> ctx = SamplerContext(5, None, None, torch.Generator(), ("data", "sampler"))
    >>> len(random_sampler(RandomSamplerSpec(replacement=True, num_samples=8), ctx))
    8
    """
    from torch.utils.data import RandomSampler

    return RandomSampler(
        range(ctx.size), replacement=opts.replacement, num_samples=opts.num_samples, generator=ctx.generator
    )


# ---------------------------------------------------------------------------------------------
# One epoch's order
# ---------------------------------------------------------------------------------------------


def sampler_order(sampler: Sampler) -> Tensor:
    """One epoch of a sampler's indices ``(num_samples,)``, drawn as the sampler itself draws them.

    For torch's RandomSampler and WeightedRandomSampler this makes the same generator calls as
    their ``__iter__`` (so the order and the generator state afterwards are identical), in tensor
    form instead of one Python int at a time; the equivalence tests hold it to that.

    >>> import torch
    >>> from torch.utils.data import RandomSampler
    >>> g = torch.Generator().manual_seed(0)
    >>> sampler_order(RandomSampler(range(5), generator=g)).sort().values.tolist()
    [0, 1, 2, 3, 4]
    """
    import torch
    from torch.utils.data import RandomSampler, WeightedRandomSampler

    g = getattr(sampler, "generator", None)
    if type(sampler) is RandomSampler and g is not None:
        n, num = len(sampler.data_source), sampler.num_samples
        if sampler.replacement:  # torch draws in chunks of 32
            parts = [torch.randint(high=n, size=(32,), dtype=torch.int64, generator=g) for _ in range(num // 32)]
            parts.append(torch.randint(high=n, size=(num % 32,), dtype=torch.int64, generator=g))
        else:  # whole permutations, then a (possibly empty) slice of one more
            parts = [torch.randperm(n, generator=g) for _ in range(num // n)]
            parts.append(torch.randperm(n, generator=g)[: num % n])
        return torch.cat(parts)
    if type(sampler) is WeightedRandomSampler:
        return torch.multinomial(sampler.weights, sampler.num_samples, sampler.replacement, generator=g)
    return torch.as_tensor(list(sampler), dtype=torch.int64)
