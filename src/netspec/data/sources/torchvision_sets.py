"""Sources: torchvision's data sets (the MNIST family and CIFAR), read into memory.

Files are found in torchvision's folder layout and read by netspec (IDX files) or by
torchvision (CIFAR pickles, checked against their MD5 sums). torchvision is imported only when
one of these sources is loaded; nothing is downloaded unless the spec or the command asks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ...errors import DataError
from ..readers import first_line, read_idx, show_path
from .base import LoadContext, SourceData, SourceOptions, register_source


class MNISTSource(SourceOptions):
    """A torchvision MNIST-format data set, read from its IDX files into memory."""

    source: Literal["MNIST", "FashionMNIST", "KMNIST"] = Field(description="torchvision data set class name.")
    root: str = Field(
        description="Folder that holds `<source>/raw/` (the torchvision layout), relative to the spec file."
    )
    split: Literal["train", "test"] = Field("train", description="Which official split.")
    download: bool = Field(False, description="Download the files when missing (needs network).")


class EMNISTSource(SourceOptions):
    """EMNIST (torchvision layout), read from its IDX files into memory."""

    source: Literal["EMNIST"] = Field(description="torchvision data set class name.")
    root: str = Field(description="Folder that holds `EMNIST/raw/`, relative to the spec file.")
    split: Literal["train", "test"] = Field("train", description="Which official split.")
    variant: Literal["byclass", "bymerge", "balanced", "letters", "digits", "mnist"] = Field(
        "balanced", description="EMNIST sub-dataset (torchvision's `split` argument)."
    )
    download: bool = Field(False, description="Download the files when missing (needs network).")


def _mnist_files(name: str, split: str, variant: str | None) -> tuple[str, str]:
    """Raw file names (without .gz) of one split, as torchvision names them.

    >>> _mnist_files("MNIST", "test", None)
    ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')
    """
    if name == "EMNIST":
        prefix = f"emnist-{variant}-{split}"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find_raw(raw: Path, base: str) -> Path | None:
    """The uncompressed file if present, else the .gz one, else None."""
    for candidate in (raw / base, raw / (base + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _download(cls_name: str, root: Path, **kwargs: Any) -> None:
    """Let torchvision download a data set; any failure becomes one DataError."""
    import torchvision.datasets as tvd

    try:
        getattr(tvd, cls_name)(str(root), download=True, **kwargs)
    except Exception as e:
        raise DataError(f"downloading {cls_name} into {show_path(root)} failed: {first_line(e)}") from None


def _mnist_paths(opts: MNISTSource | EMNISTSource, ctx: LoadContext) -> tuple[Path, Path]:
    """The (images, labels) files of the split, downloaded first when missing and allowed."""
    name = opts.source
    root = ctx.resolve(opts.root)
    raw = root / name / "raw"
    variant = getattr(opts, "variant", None)
    bases = _mnist_files(name, opts.split, variant)
    if any(_find_raw(raw, b) is None for b in bases) and (opts.download or ctx.download):
        extra = {"split": variant} if name == "EMNIST" else {}
        _download(name, root, train=opts.split == "train", **extra)
    missing = [b for b in bases if _find_raw(raw, b) is None]
    if missing:
        where = ", ".join(f"{show_path(raw / b)}(.gz)" for b in missing)
        raise DataError(
            f"{name} {opts.split} files not found: expected {where}; put the {name} files there "
            "(gzipped or not), or set `download: true`"
        )
    images, labels = (_find_raw(raw, b) for b in bases)
    assert images is not None and labels is not None
    return ctx.check(images), ctx.check(labels)  # a file may be a link that leads out


@register_source(MNISTSource)
@register_source(EMNISTSource)
def load_mnist(opts: MNISTSource | EMNISTSource, ctx: LoadContext) -> SourceData:
    """MNIST-family IDX files -> uint8 images ``(N, 1, 28, 28)`` and int64 labels ``(N,)``.

    >>> load_mnist(MNISTSource(source="MNIST", root="nowhere"), LoadContext(Path("."), 0, False))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    netspec.errors.DataError: <spec>: MNIST train files not found: expected nowhere/MNIST/raw/train-images-idx3-ubyte(.gz), ...
    """
    import torchvision.datasets as tvd

    images_path, labels_path = _mnist_paths(opts, ctx)
    images = read_idx(images_path, expect_magic=2051)  # (N, 28, 28) uint8
    labels = read_idx(labels_path, expect_magic=2049).long()  # (N,)
    if len(images) != len(labels):
        raise DataError(
            f"{show_path(images_path)} has {len(images)} images but {show_path(labels_path)} has {len(labels)} labels"
        )
    cls = getattr(tvd, opts.source)
    variant = getattr(opts, "variant", None)
    classes = list(cls.classes_split_dict[variant]) if opts.source == "EMNIST" else list(cls.classes)
    return SourceData(
        ("image", "label"),
        ("image", "label"),
        tensors=(images.unsqueeze(1), labels),
        labels=labels,
        classes=classes,
        num_classes=len(classes),
        files=[str(images_path), str(labels_path)],
        locate=lambda i, field: f"{show_path(labels_path if field == 'label' else images_path)}, item {i}",
    )


class CIFARSource(SourceOptions):
    """CIFAR-10/100 in torchvision's layout (python pickles, checked against their MD5 sums)."""

    source: Literal["CIFAR10", "CIFAR100"] = Field(description="torchvision data set class name.")
    root: str = Field(description="Folder that holds `cifar-10-batches-py/` or `cifar-100-python/`.")
    split: Literal["train", "test"] = Field("train", description="Which official split.")
    download: bool = Field(False, description="Download the files when missing (needs network).")


@register_source(CIFARSource)
def load_cifar(opts: CIFARSource, ctx: LoadContext) -> SourceData:
    """CIFAR batches -> uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``.

    >>> load_cifar(CIFARSource(source="CIFAR10", root="nowhere"), LoadContext(Path("."), 0, False))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    netspec.errors.DataError: <spec>: CIFAR10 train files not found: expected nowhere/cifar-10-batches-py/data_batch_1, ...
    """
    import torch
    import torchvision.datasets as tvd

    cls = getattr(tvd, opts.source)
    root = ctx.resolve(opts.root)
    folder = root / cls.base_folder
    entries = cls.train_list if opts.split == "train" else cls.test_list
    missing = [n for n, _ in entries if not (folder / n).is_file()]
    if missing and (opts.download or ctx.download):
        _download(opts.source, root, train=opts.split == "train")
        missing = [n for n, _ in entries if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{opts.source} {opts.split} files not found: expected "
            f"{', '.join(show_path(folder / n) for n in missing)}; extract the official archive "
            f"({cls.filename}) into {show_path(root)}, or set `download: true`"
        )
    for name in [n for n, _ in entries] + [cls.meta["filename"]]:
        ctx.check(folder / name)  # a file may be a link that leads out
    try:
        ds = cls(str(root), train=opts.split == "train", download=False)
    except Exception as e:  # torchvision checks MD5 sums: a changed file is reported here
        raise DataError(f"{show_path(folder)}: {first_line(e)} (the files must be the official ones)") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    labels = torch.tensor(ds.targets, dtype=torch.int64)
    return SourceData(
        ("image", "label"),
        ("image", "label"),
        tensors=(images, labels),
        labels=labels,
        classes=list(ds.classes),
        num_classes=len(ds.classes),
        files=[str(folder / n) for n, _ in entries],
    )
