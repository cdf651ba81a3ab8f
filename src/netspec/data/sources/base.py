"""What every source shares: the registry, the options base model, and what a source returns.

Adding a source is one options model (a :class:`SourceOptions` whose ``source`` field is a
Literal of the names it answers to) and one load function ``(options, LoadContext) ->
SourceData``, registered with :func:`register_source`. The spec validates a source mapping
with the options model its ``source:`` names (:mod:`netspec.data.spec`); the load function
then trusts its options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import Field

from ...compiler.spec_base import SpecModel
from ...files.access import FileAccess
from ...nodes.registry import Registry

if TYPE_CHECKING:  # torch is imported where data is loaded: the spec models do without it
    import torch
    from torch import Tensor
    from torch.utils.data import Dataset

__all__ = [
    "SourceData",
    "LoadContext",
    "SourceOptions",
    "SourceEntry",
    "SOURCES",
    "register_source",
    "source_names",
    "BadSample",
]


@dataclass
class SourceData:
    """The raw (untransformed) samples of one split.

    Exactly one of ``tensors`` (in memory: one tensor per field, all of length N) and
    ``dataset`` (per sample: ``dataset[i]`` is a tuple with one value per field) is set.
    ``kinds`` says how transforms see each field: ``image`` (``C x H x W`` per sample),
    ``mask`` (segmentation target, transformed geometrically with the image), ``label`` or
    ``value`` (passed through).

    :meth:`where` names the place of a sample in its file, for messages about bad values
    (``data/x.csv, line 7``); a source that knows better than "field[i]" sets ``locate``.
    Subsets remember the original sample numbers, so a validation split cut off the training
    data still names the right line.

    >>> import torch
    >>> raw = SourceData(("x", "y"), ("value", "label"), tensors=(torch.zeros(4, 2), torch.arange(4)))
    >>> len(raw), raw.subset(torch.tensor([1, 3])).tensors[1].tolist()
    (4, [1, 3])
    >>> raw.subset(torch.tensor([1, 3])).where(1, "y")
    'y[3]'
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    tensors: tuple[Tensor, ...] | None = None
    dataset: Dataset | None = None
    length: int = 0
    labels: Tensor | None = None  # (N,) class of each sample, when known without reading samples
    classes: list[str] | None = None
    num_classes: int | None = None
    files: list[str] = field(default_factory=list)
    locate: Callable[[int, str], str] | None = None  # (sample number in the file, field) -> place
    origin: Tensor | None = None  # sample numbers in the file of a subset's samples

    def __post_init__(self) -> None:
        assert (self.tensors is None) != (self.dataset is None), "exactly one of tensors/dataset"
        if self.tensors is not None:
            self.length = len(self.tensors[0])
            assert all(len(t) == self.length for t in self.tensors)
        else:
            self.length = len(self.dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.length

    def subset(self, indices: Tensor) -> SourceData:
        """The samples at ``indices`` (a 1-D int64 tensor), same fields and classes."""
        labels = self.labels[indices] if self.labels is not None else None
        origin = self.origin[indices] if self.origin is not None else indices
        if self.tensors is not None:
            return replace(self, tensors=tuple(t[indices] for t in self.tensors), labels=labels, origin=origin)
        from torch.utils.data import Subset

        assert self.dataset is not None  # a source holds its tensors or a dataset
        sub = Subset(self.dataset, indices.tolist())
        return replace(self, dataset=sub, labels=labels, origin=origin)

    def where(self, i: int, name: str) -> str:
        """Where sample ``i`` (of this subset) of field ``name`` is: for one-line messages."""
        n = int(self.origin[i]) if self.origin is not None else i
        return self.locate(n, name) if self.locate is not None else f"{name}[{n}]"


@dataclass
class LoadContext:
    """What a source's load function may use besides its options.

    Every file a source opens goes through :meth:`resolve` (a path the spec names) or
    :meth:`check` (a file found inside such a folder): the file-access policy of
    :mod:`netspec.files.access` -- the spec's folder and the user's data roots, symlinks resolved.
    """

    base_dir: Path
    seed: int  # already offset per split: generated train/val/test data differ
    download: bool
    roots: tuple[Path, ...] = ()  # data roots the user allowed, besides base_dir
    channels: int | None = None  # channels of the model's declared image input, when known (image modes)

    def resolve(self, p: str) -> Path:
        """A spec path, relative to the spec file's folder unless absolute, symlinks resolved;
        refused (:class:`~netspec.errors.AccessRefused`) outside the allowed folders.

        >>> LoadContext(Path("specs"), 0, False).resolve("data/x.csv") == Path("specs/data/x.csv").resolve()
        True
        """
        return FileAccess(self.base_dir, self.roots).resolve(p)

    def check(self, file: Path) -> Path:
        """A file found inside an allowed folder: its real path, refused if a link leads out."""
        return FileAccess(self.base_dir, self.roots).check(file)

    def generator(self, seed: int | None) -> torch.Generator:
        """A private generator seeded with ``seed`` (default: the split's seed).

        Generated data never depends on, nor disturbs, the global RNG.

        >>> import torch
        >>> ctx = LoadContext(Path("."), 7, False)
        >>> torch.equal(torch.rand(2, generator=ctx.generator(None)), torch.rand(2, generator=ctx.generator(7)))
        True
        """
        import torch

        return torch.Generator().manual_seed(self.seed if seed is None else seed)


class SourceOptions(SpecModel):
    """Options every source accepts."""

    limit: int | None = Field(None, ge=1, description="Use only the first `limit` samples (quick runs).")


@dataclass(frozen=True)
class SourceEntry:
    """A registered source: its options model, the function that loads it, and whether that
    function gives tensors in memory (True), a per-sample Dataset (False), or either, as the
    data decides (None: image folders are kept in memory when they fit)."""

    name: str
    options: type[SourceOptions]
    load: Callable[[Any, LoadContext], SourceData]
    in_memory: bool | None


#: source name (the spec's `source:`) -> entry; written by :func:`register_source`.
SOURCES: Registry[SourceEntry] = Registry("source")

LoadFn = Callable[[Any, LoadContext], SourceData]


def register_source(options: type[SourceOptions], *, in_memory: bool | None = True) -> Callable[[LoadFn], LoadFn]:
    """Register a load function under every name in ``options.source``'s Literal.

    >>> sorted(n for n in SOURCES if "MNIST" in n)[:2]
    ['EMNIST', 'FashionMNIST']
    """
    names = get_args(options.model_fields["source"].annotation)
    assert names, f"{options.__name__}.source must be a Literal of source names"

    def deco(fn: LoadFn) -> LoadFn:
        for name in names:
            SOURCES.add(name, SourceEntry(name, options, fn, in_memory))
        return fn

    return deco


def source_names() -> list[str]:
    """Every registered source name.

    >>> "FashionMNIST" in source_names() and "shapes" in source_names()
    True
    """
    return list(SOURCES)


@dataclass
class BadSample:
    """A sample or batch that could not be made; travels back from worker processes.

    A per-sample Dataset returns one instead of raising, so that the main process can raise a
    one-line DataError with the spec path (an exception raised in a worker arrives wrapped in
    a multi-line traceback). ``key``: the source option naming the bad file (``root``), so the
    error points at it.
    """

    message: str
    key: str | None = None

    def path(self, split_path: tuple[str, ...]) -> tuple[str, ...]:
        """The spec path of the error: the split's, plus the option naming the file."""
        return split_path + ((self.key,) if self.key else ())
