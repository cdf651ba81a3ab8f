"""The ``data:`` section of a spec: sources, transforms, splits, samplers, loaders.

One front door, :func:`build_loaders`, turns a validated :class:`DataSpec` into loaders that
yield ``(inputs by model input name, target)`` batches::

    data:
      train: {source: FashionMNIST, root: data/fashion, split: train}
      val: {fraction: 0.1, seed: 0}
      test: {source: FashionMNIST, root: data/fashion, split: test}
      transforms: [RandomHorizontalFlip, ToTensor]     # training only
      eval_transforms: [ToTensor]                       # val / test
      batch_size: 256
      loader: {num_workers: 0}
      sampler: {WeightedRandomSampler: {class_weights: {1: 0.85}, default_weight: 0.1}}
      fields: {inputs: {image: 0}, target: 1}

Sources are a registry (:data:`SOURCES`, filled by :func:`register_source`): adding one is one
options model plus one load function. A source returns :class:`SourceData`: either tensors
held in memory (MNIST family, CIFAR, CSV, tensor files, generated data) or a per-sample
``Dataset`` (ImageFolder).

Two loader paths, chosen per split:

* in memory (:class:`TensorLoader`): the data is one tensor per field; deterministic
  transforms are applied once to the whole tensor (or per batch when the result would be
  too big), and batches are cut by indexing. No per-sample Python work.
* per sample (:class:`SampleLoader`): a ``torch.utils.data.DataLoader`` over a Dataset that
  applies the transforms to each sample; used for random augmentation and image folders.

Both draw from their ``torch.Generator`` exactly what a ``DataLoader`` draws, so a train
loader yields the same batches, in the same order, as
``DataLoader(TensorDataset(*fields), batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))``
(and eval loaders the same as ``DataLoader(TensorDataset(*fields), batch_size)``, which draws
one number from the global RNG per epoch, as ours do). Building loaders never touches the
global RNG.
"""

from __future__ import annotations

import csv
import gzip
import math
import struct
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Iterator, Literal, Union, get_args

import numpy as np
import torch
from pydantic import (AfterValidator, BeforeValidator, Field, ValidationInfo, WithJsonSchema, WrapValidator,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, WeightedRandomSampler
from torch.utils.data._utils.collate import default_collate
from torchvision import tv_tensors

from . import transforms as T
from .errors import DataError, SpecError, did_you_mean
from .spec_base import SpecModel

#: One batch: model inputs by name, and the target (or targets by output name).
Batch = tuple[dict[str, Tensor], Union[Tensor, dict[str, Tensor]]]

# Deterministic transforms are applied once to the whole data set when the result is at most
# this big; above it (say Fashion-MNIST resized to 224x224: 12 GB) they run per batch instead.
PRECOMPUTE_BYTES = 1 << 30

_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}  # generated splits differ unless seeded explicitly


# ---------------------------------------------------------------------------------------------
# What a source gives back
# ---------------------------------------------------------------------------------------------

@dataclass
class SourceData:
    """The raw (untransformed) samples of one split.

    Exactly one of ``tensors`` (in memory: one tensor per field, all of length N) and
    ``dataset`` (per sample: ``dataset[i]`` is a tuple with one value per field) is set.
    ``kinds`` says how transforms see each field: ``image`` (``C x H x W`` per sample),
    ``mask`` (segmentation target, transformed geometrically with the image), ``label`` or
    ``value`` (passed through).
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

    def __post_init__(self) -> None:
        assert (self.tensors is None) != (self.dataset is None), "exactly one of tensors/dataset"
        if self.tensors is not None:
            self.length = len(self.tensors[0])
            assert all(len(t) == self.length for t in self.tensors)
        else:
            self.length = len(self.dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.length

    def subset(self, indices: Tensor) -> "SourceData":
        """The samples at ``indices`` (a 1-D int64 tensor), same fields and classes."""
        labels = self.labels[indices] if self.labels is not None else None
        if self.tensors is not None:
            return replace(self, tensors=tuple(t[indices] for t in self.tensors), labels=labels)
        sub = torch.utils.data.Subset(self.dataset, indices.tolist())
        return replace(self, dataset=sub, labels=labels)


@dataclass
class LoadContext:
    """What a source's load function may use besides its options."""

    base_dir: Path
    seed: int  # already offset per split: generated train/val/test data differ
    download: bool

    def resolve(self, p: str) -> Path:
        """A spec path, relative to the spec file's folder unless absolute."""
        path = Path(p).expanduser()
        return path if path.is_absolute() else self.base_dir / path


# ---------------------------------------------------------------------------------------------
# Registry of sources
# ---------------------------------------------------------------------------------------------

class SourceOptions(SpecModel):
    """Options every source accepts."""


    limit: int | None = Field(None, ge=1, description="Use only the first `limit` samples (quick runs).")


@dataclass(frozen=True)
class SourceEntry:
    """A registered source: its options model, the function that loads it, an example."""

    name: str
    options: type[SourceOptions]
    load: Callable[[Any, LoadContext], SourceData]
    in_memory: bool


#: source name -> entry. Filled by :func:`register_source`.
SOURCES: dict[str, SourceEntry] = {}


def register_source(options: type[SourceOptions], *, in_memory: bool = True
                    ) -> Callable[[Callable[[Any, LoadContext], SourceData]], Callable[[Any, LoadContext], SourceData]]:
    """Register a load function under every name in ``options.source``'s Literal.

    >>> sorted(n for n in SOURCES if "MNIST" in n)[:2]
    ['EMNIST', 'FashionMNIST']
    """
    names = get_args(options.model_fields["source"].annotation)
    assert names, f"{options.__name__}.source must be a Literal of source names"

    def deco(fn: Callable[[Any, LoadContext], SourceData]) -> Callable[[Any, LoadContext], SourceData]:
        for name in names:
            assert name not in SOURCES, f"source {name} registered twice"
            SOURCES[name] = SourceEntry(name, options, fn, in_memory)
        return fn
    return deco


def _show(path: Path) -> str:
    """A path as the user will recognise it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message (messages from libraries can be long)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---------------------------------------------------------------------------------------------
# File readers (each raises a one-line DataError naming the file)
# ---------------------------------------------------------------------------------------------

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "the IDX file format")
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when it ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read {_show(path)}: {_first_line(e)}") from None


def read_idx(path: Path, *, expect_magic: int | None = None) -> Tensor:
    """Read an IDX file (the MNIST format; gzipped if named .gz) into a tensor.

    Checks the magic number and that the data size matches the header.

    >>> import tempfile, os
    >>> p = Path(tempfile.mkdtemp()) / "l"
    >>> _ = p.write_bytes(struct.pack(">IIBB", 2049, 2, 3, 7))
    >>> read_idx(p, expect_magic=2049).tolist()
    [3, 7]
    """
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{_show(path)}: file is {len(raw)} bytes, too short for an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    type_byte, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_byte not in _IDX_TYPES or not 1 <= ndim <= 4:
        want = f" (expected {expect_magic})" if expect_magic else ""
        raise DataError(f"{_show(path)}: not an IDX file: bad magic number {magic}{want}")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{_show(path)}: wrong magic number {magic}, expected {expect_magic} "
                        "(images are 2051, labels 2049: are the files swapped?)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{_show(path)}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    dtype = np.dtype(_IDX_TYPES[type_byte])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{_show(path)}: header says shape {list(dims)} ({expected} data bytes) but the file "
                        f"has {len(raw) - header}: truncated or corrupt")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(arr.astype(dtype.newbyteorder("="), copy=True))


def _is_number(text: str) -> bool:
    """Whether a CSV cell parses as a number."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def _locate_csv_error(path: Path, delimiter: str, skip: int) -> str:
    """Find the first bad row of a CSV file (only on the error path: slow but exact)."""
    width = None
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter=delimiter), start=1):
            if line_no <= skip or not row:
                continue
            if width is None:
                width = len(row)
            if len(row) != width:
                return f"line {line_no} has {len(row)} columns, expected {width}"
            for col, cell in enumerate(row, start=1):
                if not _is_number(cell):
                    return f"line {line_no}, column {col}: `{cell.strip()[:30]}` is not a number"
    return "cannot parse the file as numbers"


def read_csv(path: Path, *, delimiter: str = ",", header: bool | Literal["auto"] = "auto"
             ) -> tuple[list[str] | None, np.ndarray]:
    """Read a numeric CSV file: (column names or None, ``rows x columns`` float64 array).

    ``header="auto"`` treats the first line as column names when any cell is not a number.
    """
    if not path.is_file():
        raise DataError(f"{_show(path)}: no such file")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            first = next(csv.reader(f, delimiter=delimiter), None)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {_show(path)}: {_first_line(e)}") from None
    if first is None:
        raise DataError(f"{_show(path)}: the file is empty")
    has_header = (not all(_is_number(c) for c in first)) if header == "auto" else bool(header)
    names = [c.strip() for c in first] if has_header else None
    skip = 1 if has_header else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below instead
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64,
                             encoding="utf-8")
    except ValueError:
        raise DataError(f"{_show(path)}: {_locate_csv_error(path, delimiter, skip)}") from None
    if arr.size == 0:
        raise DataError(f"{_show(path)}: no data rows")
    return names, arr


def read_tensor_file(path: Path, arrays: list[str] | None) -> tuple[list[str], list[Tensor]]:
    """Read named arrays from ``.npz`` (no pickles) or ``.pt`` (``weights_only``) files.

    A ``.pt`` file may hold a dict of tensors, a list/tuple of tensors (named ``"0"``, ``"1"``,
    ...) or one tensor. ``arrays`` picks and orders them; default: all, in file order.
    """
    if not path.is_file():
        raise DataError(f"{_show(path)}: no such file")
    found: dict[str, Tensor] = {}
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                wanted = arrays if arrays is not None else list(npz.files)
                for name in wanted:
                    if name not in npz.files:
                        raise DataError(f"{_show(path)}: no array `{name}` (it has: {', '.join(npz.files) or 'none'})")
                    arr = npz[name]
                    if arr.dtype.kind not in "biuf":
                        raise DataError(f"{_show(path)}: array `{name}` has dtype {arr.dtype}; numbers only")
                    found[name] = torch.from_numpy(np.ascontiguousarray(arr))
        except DataError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise DataError(f"{_show(path)}: not a readable .npz file ({_first_line(e)})") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # unpickling errors come in many types; all mean "not usable"
            raise DataError(f"{_show(path)}: not a readable tensor file ({_first_line(e)})") from None
        if isinstance(obj, Tensor):
            obj = {"0": obj}
        elif isinstance(obj, (list, tuple)):
            obj = {str(i): t for i, t in enumerate(obj)}
        if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
            raise DataError(f"{_show(path)}: expected a tensor, a list of tensors or a dict of tensors")
        wanted = arrays if arrays is not None else list(obj)
        for name in wanted:
            if name not in obj:
                raise DataError(f"{_show(path)}: no tensor `{name}` (it has: {', '.join(map(str, obj)) or 'none'})")
            found[name] = obj[name]
    if not found:
        raise DataError(f"{_show(path)}: holds no arrays")
    lengths = {name: (t.shape[0] if t.dim() else 0) for name, t in found.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        desc = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        raise DataError(f"{_show(path)}: arrays must have the same number of samples (first dimension): {desc}")
    return list(found), list(found.values())


# ---------------------------------------------------------------------------------------------
# Sources: torchvision data sets
# ---------------------------------------------------------------------------------------------

class MNISTSource(SourceOptions):
    """A torchvision MNIST-format data set, read from its IDX files into memory."""

    source: Literal["MNIST", "FashionMNIST", "KMNIST"] = Field(description="torchvision data set class name.")
    root: str = Field(description="Folder that holds `<source>/raw/` (the torchvision layout), "
                                  "relative to the spec file.")
    split: Literal["train", "test"] = Field("train", description="Which official split.")
    download: bool = Field(False, description="Download the files when missing (needs network).")


class EMNISTSource(SourceOptions):
    """EMNIST (torchvision layout), read from its IDX files into memory."""

    source: Literal["EMNIST"] = Field(description="torchvision data set class name.")
    root: str = Field(description="Folder that holds `EMNIST/raw/`, relative to the spec file.")
    split: Literal["train", "test"] = Field("train", description="Which official split.")
    variant: Literal["byclass", "bymerge", "balanced", "letters", "digits", "mnist"] = Field(
        "balanced", description="EMNIST sub-dataset (torchvision's `split` argument).")
    download: bool = Field(False, description="Download the files when missing (needs network).")


def _mnist_files(name: str, split: str, variant: str | None) -> tuple[str, str]:
    """Raw file names (without .gz) of one split, as torchvision names them."""
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
        raise DataError(f"downloading {cls_name} into {_show(root)} failed: {_first_line(e)}") from None


@register_source(MNISTSource)
@register_source(EMNISTSource)
def load_mnist(opts: MNISTSource | EMNISTSource, ctx: LoadContext) -> SourceData:
    """MNIST-family IDX files -> uint8 images ``(N, 1, 28, 28)`` and int64 labels ``(N,)``."""
    import torchvision.datasets as tvd
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
        where = ", ".join(f"{_show(raw / b)}(.gz)" for b in missing)
        raise DataError(f"{name} {opts.split} files not found: expected {where}; put the {name} files there "
                        "(gzipped or not), or set `download: true`")
    images_path, labels_path = (_find_raw(raw, b) for b in bases)
    images = read_idx(images_path, expect_magic=2051)  # (N, 28, 28) uint8
    labels = read_idx(labels_path, expect_magic=2049).long()  # (N,)
    if len(images) != len(labels):
        raise DataError(f"{_show(images_path)} has {len(images)} images but {_show(labels_path)} has "
                        f"{len(labels)} labels")
    cls = getattr(tvd, name)
    classes = list(cls.classes_split_dict[variant]) if name == "EMNIST" else list(cls.classes)
    return SourceData(("image", "label"), ("image", "label"), tensors=(images.unsqueeze(1), labels),
                      labels=labels, classes=classes, num_classes=len(classes),
                      files=[str(images_path), str(labels_path)])


class CIFARSource(SourceOptions):
    """CIFAR-10/100 in torchvision's layout (python pickles, checked against their MD5 sums)."""

    source: Literal["CIFAR10", "CIFAR100"] = Field(description="torchvision data set class name.")
    root: str = Field(description="Folder that holds `cifar-10-batches-py/` or `cifar-100-python/`.")
    split: Literal["train", "test"] = Field("train", description="Which official split.")
    download: bool = Field(False, description="Download the files when missing (needs network).")


@register_source(CIFARSource)
def load_cifar(opts: CIFARSource, ctx: LoadContext) -> SourceData:
    """CIFAR batches -> uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``."""
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
        raise DataError(f"{opts.source} {opts.split} files not found: expected {', '.join(_show(folder / n) for n in missing)}; "
                        f"extract the official archive ({cls.filename}) into {_show(root)}, or set `download: true`")
    try:
        ds = cls(str(root), train=opts.split == "train", download=False)
    except Exception as e:  # torchvision checks MD5 sums: a changed file is reported here
        raise DataError(f"{_show(folder)}: {_first_line(e)} (the files must be the official ones)") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    labels = torch.tensor(ds.targets, dtype=torch.int64)
    return SourceData(("image", "label"), ("image", "label"), tensors=(images, labels), labels=labels,
                      classes=list(ds.classes), num_classes=len(ds.classes),
                      files=[str(folder / n) for n, _ in entries])


# ---------------------------------------------------------------------------------------------
# Sources: image folders, CSV, tensor files
# ---------------------------------------------------------------------------------------------

class ImageFolderSource(SourceOptions):
    """Images in one sub-folder per class (torchvision's ImageFolder layout), read per sample."""

    source: Literal["ImageFolder"] = Field(description="Source type.")
    root: str = Field(description="Folder with one sub-folder per class, relative to the spec file.")
    mode: Literal["RGB", "L"] = Field("RGB", description="Convert every image to RGB (3 channels) or L (1).")


@dataclass
class _Bad:
    """A sample or batch that could not be made; travels back from worker processes.

    ``key``: the source option naming the bad file (``root``), so the error points at it.
    """

    message: str
    key: str | None = None

    def path(self, split_path: tuple[str, ...]) -> tuple[str, ...]:
        return split_path + ((self.key,) if self.key else ())


class _ImageFiles(Dataset):
    """``(uint8 C x H x W image, class index)`` per file; unreadable files give a :class:`_Bad`."""

    def __init__(self, samples: list[tuple[str, int]], mode: str):
        self.samples = samples
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int] | _Bad:
        from PIL import Image
        from torchvision.transforms.v2.functional import pil_to_tensor
        path, label = self.samples[i]
        try:
            with Image.open(path) as im:
                image = pil_to_tensor(im.convert(self.mode))  # (C, H, W) uint8
        except Exception as e:  # PIL raises many types for a bad file; all mean "unreadable"
            why = _first_line(e).replace(f" {path!r}", "").replace(f" {path}", "")  # PIL repeats the path
            return _Bad(f"cannot read image {_show(Path(path))}: {why} (a corrupt or non-image file)", key="root")
        return image, label


@register_source(ImageFolderSource, in_memory=False)
def load_image_folder(opts: ImageFolderSource, ctx: LoadContext) -> SourceData:
    """Scan ``root/<class>/<image>`` files (decoded later, per sample)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
    root = ctx.resolve(opts.root)
    if not root.is_dir():
        raise DataError(f"{_show(root)}: no such folder (expected one sub-folder per class)")
    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as e:
        raise DataError(f"{_show(root)}: {_first_line(e)}") from None
    labels = torch.tensor([s[1] for s in samples], dtype=torch.int64)
    return SourceData(("image", "label"), ("image", "label"), dataset=_ImageFiles(samples, opts.mode),
                      labels=labels, classes=classes, num_classes=len(classes), files=[str(root)])


def _parse_scale(v: Any) -> Any:
    """Accept ``1/255`` written as a string (YAML has no fractions)."""
    if isinstance(v, str):
        try:
            return float(Fraction(v.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"scale must be a number or a fraction like 1/255, got `{v}`") from None
    return v


class CSVSource(SourceOptions):
    """A numeric CSV file: one label column, the other columns are features or pixels (seed 003's FMDataset)."""

    source: Literal["csv"] = Field(description="Source type.")
    path: str = Field(description="CSV file, relative to the spec file.")
    label: int | str | None = Field(0, description="Label column: index (negative counts from the end) "
                                                   "or header name; null for no label column.")
    image_shape: list[int] | None = Field(None, description="Reshape the feature columns of each row to this "
                                                            "per-sample shape, e.g. [1, 28, 28]: an image field.")
    scale: Annotated[float, BeforeValidator(_parse_scale),
                     WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*-?[0-9.]+\s*/\s*[0-9.]+\s*$"}]})] = Field(
        1.0, description="Multiply features by this, e.g. 1/255 (float32 output only).")
    dtype: Literal["float32", "uint8"] = Field("float32", description="Feature dtype; uint8 keeps raw pixels "
                                                                       "for image transforms.")
    label_dtype: Literal["auto", "int64", "float32"] = Field(
        "auto", description="auto: int64 when every label is a whole number, else float32.")
    header: bool | Literal["auto"] = Field("auto", description="First line holds column names; auto: when it "
                                                                "is not all numbers.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="Column separator.")

    @model_validator(mode="after")
    def _check(self) -> "CSVSource":
        """uint8 pixels cannot carry a scale."""
        if self.dtype == "uint8" and self.scale != 1.0:
            raise ValueError("`scale` needs dtype float32 (uint8 pixels cannot be scaled)")
        return self


@register_source(CSVSource)
def load_csv(opts: CSVSource, ctx: LoadContext) -> SourceData:
    """CSV -> features ``(N, F)`` or images ``(N, *image_shape)``, plus labels ``(N,)``."""
    path = ctx.resolve(opts.path)
    names, table = read_csv(path, delimiter=opts.delimiter, header=opts.header)  # (N, columns)
    ncols = table.shape[1]
    label_col: int | None = None
    if isinstance(opts.label, str):
        if names is None:
            raise DataError(f"{_show(path)}: label column `{opts.label}` named, but the file has no header line")
        if opts.label not in names:
            hint = did_you_mean(opts.label, names)
            raise DataError(f"{_show(path)}: no column `{opts.label}`" + (f"; {hint}" if hint else ""))
        label_col = names.index(opts.label)
    elif isinstance(opts.label, int):
        if not -ncols <= opts.label < ncols:
            raise DataError(f"{_show(path)}: label column {opts.label} is out of range ({ncols} columns)")
        label_col = opts.label % ncols
    feature_cols = [c for c in range(ncols) if c != label_col]
    feats = table[:, feature_cols]  # (N, F)
    if opts.image_shape is not None and math.prod(opts.image_shape) != feats.shape[1]:
        raise DataError(f"{_show(path)}: rows have {feats.shape[1]} feature columns, which do not fit "
                        f"image_shape {opts.image_shape} ({math.prod(opts.image_shape)} values)")
    if opts.dtype == "uint8":
        if ((feats < 0) | (feats > 255) | (feats != np.round(feats))).any():
            raise DataError(f"{_show(path)}: dtype uint8 needs whole numbers 0..255 in every feature column")
        x = torch.from_numpy(feats.astype(np.uint8))
    else:
        x = torch.from_numpy((feats * opts.scale).astype(np.float32))
    kind = "value"
    if opts.image_shape is not None:
        x = x.reshape(len(x), *opts.image_shape)  # (N, C, H, W)
        kind = "image"
    fields, kinds, tensors = [("image" if kind == "image" else "x")], [kind], [x]
    labels = None
    if label_col is not None:
        y = table[:, label_col]
        whole = bool(np.all(y == np.round(y)))
        as_int = opts.label_dtype == "int64" or (opts.label_dtype == "auto" and whole)
        if as_int and not whole:
            raise DataError(f"{_show(path)}: label_dtype int64, but the label column has fractional values")
        target = torch.from_numpy(y.astype(np.int64 if as_int else np.float32))
        fields.append(names[label_col] if names else "label")
        kinds.append("label")
        tensors.append(target)
        labels = target if as_int else None
    return SourceData(tuple(fields), tuple(kinds), tensors=tuple(tensors), labels=labels, files=[str(path)])


class TensorFileSource(SourceOptions):
    """Named arrays from a `.npz` file (never pickles) or a `.pt` file (loaded with weights_only)."""

    source: Literal["tensors"] = Field(description="Source type.")
    path: str = Field(description="`.npz` or `.pt` file, relative to the spec file.")
    arrays: list[str] | None = Field(None, description="Arrays to use, in field order; default all, in file "
                                                       "order (a .pt list's items are named 0, 1, ...).")
    images: list[str] | None = Field(None, description="Arrays that are images (N x C x H x W) for transforms; "
                                                       "default every 4-D array.")
    masks: list[str] | None = Field(None, description="Arrays that are segmentation masks (transformed "
                                                      "geometrically with the images).")


@register_source(TensorFileSource)
def load_tensor_file(opts: TensorFileSource, ctx: LoadContext) -> SourceData:
    """A tensor file -> one field per array, in order."""
    path = ctx.resolve(opts.path)
    names, tensors = read_tensor_file(path, opts.arrays)
    for group in (opts.images or []) + (opts.masks or []):
        if group not in names:
            hint = did_you_mean(group, names)
            raise DataError(f"{_show(path)}: `{group}` is not one of the arrays ({', '.join(names)})"
                            + (f"; {hint}" if hint else ""))
    images = set(opts.images) if opts.images is not None else {n for n, t in zip(names, tensors) if t.dim() == 4}
    masks = set(opts.masks or [])
    kinds = tuple("mask" if n in masks else "image" if n in images else
                  "label" if t.dim() == 1 and not t.is_floating_point() else "value"
                  for n, t in zip(names, tensors))
    return SourceData(tuple(names), kinds, tensors=tuple(tensors), files=[str(path)])


# ---------------------------------------------------------------------------------------------
# Sources: generated data (the seeds' toy problems, and random data for smoke runs)
# ---------------------------------------------------------------------------------------------

def _generator(opts_seed: int | None, ctx: LoadContext) -> torch.Generator:
    """A private generator: generated data never depends on, nor disturbs, the global RNG."""
    return torch.Generator().manual_seed(ctx.seed if opts_seed is None else opts_seed)


class GaussianClustersSource(SourceOptions):
    """Two Gaussian clusters (seed 000): class 0 around +mean+bias, class 1 around -mean+bias."""

    source: Literal["gaussian_clusters"] = Field(description="Source type.")
    n_per_class: int = Field(100, ge=1, description="Samples per class.")
    mean: float = Field(1.7, description="Class 0 is centred on +mean, class 1 on -mean (before the bias).")
    bias: float = Field(1.0, description="Added to every coordinate.")
    std: float = Field(1.0, gt=0, description="Standard deviation of each cluster.")
    dim: int = Field(2, ge=1, description="Features per sample.")
    label_dtype: Literal["float32", "int64"] = Field("float32", description="float32 for BCELoss (the seed), "
                                                                          "int64 for CrossEntropyLoss.")
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")


@register_source(GaussianClustersSource)
def load_gaussian_clusters(opts: GaussianClustersSource, ctx: LoadContext) -> SourceData:
    """x ``(2n, dim)``, y ``(2n,)``: exactly seed 000's tensors when seeded like it (seed 10)."""
    g = _generator(opts.seed, ctx)
    ones = torch.ones(opts.n_per_class, opts.dim)
    x0 = torch.normal(opts.mean * ones, opts.std, generator=g) + opts.bias   # (n, dim), class 0
    x1 = torch.normal(-opts.mean * ones, opts.std, generator=g) + opts.bias  # (n, dim), class 1
    dtype = torch.float32 if opts.label_dtype == "float32" else torch.int64
    y = torch.cat([torch.zeros(opts.n_per_class, dtype=dtype), torch.ones(opts.n_per_class, dtype=dtype)])
    x = torch.cat([x0, x1])  # (2n, dim)
    return SourceData(("x", "y"), ("value", "label"), tensors=(x, y), num_classes=2,
                      labels=y.long(), classes=["0", "1"])


_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "square": lambda x: x.pow(2), "cube": lambda x: x.pow(3), "sin": torch.sin, "cos": torch.cos,
    "abs": torch.abs, "linear": lambda x: x, "exp": torch.exp, "tanh": torch.tanh,
}


class FunctionRegressionSource(SourceOptions):
    """y = f(x) + noise on x = linspace(low, high, n) (seeds 002/003): a 1-D regression toy."""

    source: Literal["function_regression"] = Field(description="Source type.")
    function: Literal["square", "cube", "sin", "cos", "abs", "linear", "exp", "tanh"] = Field(
        "square", description="f, from a fixed safe set (no code in specs).")
    n: int = Field(1000, ge=1, description="Number of points.")
    low: float = Field(-1.0, description="Smallest x.")
    high: float = Field(1.0, description="Largest x.")
    noise: float = Field(0.1, ge=0, description="Standard deviation of the added Gaussian noise.")
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")


@register_source(FunctionRegressionSource)
def load_function_regression(opts: FunctionRegressionSource, ctx: LoadContext) -> SourceData:
    """x ``(n, 1)``, y ``(n, 1)``, as seed 003: ``y = x.pow(2) + 0.1 * torch.normal(torch.zeros(x.size()))``."""
    g = _generator(opts.seed, ctx)
    x = torch.linspace(opts.low, opts.high, opts.n).unsqueeze(1)  # (n, 1)
    y = _FUNCTIONS[opts.function](x) + opts.noise * torch.normal(torch.zeros(x.size()), 1.0, generator=g)
    return SourceData(("x", "y"), ("value", "value"), tensors=(x, y))


class RandomSource(SourceOptions):
    """Random inputs of the declared shapes and random labels: for smoke runs, learns nothing."""

    source: Literal["random"] = Field(description="Source type.")
    n: int = Field(64, ge=1, description="Number of samples.")
    shapes: dict[str, list[int]] = Field(default_factory=lambda: {"x": [8]}, description=(
        "Field name -> per-sample shape of a standard-normal float32 input, e.g. {image: [1, 28, 28]}."))
    n_classes: int = Field(10, ge=1, description="Labels are uniform in 0..n_classes-1 (int64).")
    target_shape: list[int] | None = Field(None, description="Give float32 regression targets of this "
                                                             "per-sample shape instead of labels.")
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")

    @field_validator("shapes")
    @classmethod
    def _not_empty(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        """At least one field, every size positive."""
        if not v:
            raise ValueError("give at least one field shape")
        if any(d < 1 for shape in v.values() for d in shape):
            raise ValueError("shape sizes must be at least 1")
        return v


@register_source(RandomSource)
def load_random(opts: RandomSource, ctx: LoadContext) -> SourceData:
    """One ``(n, *shape)`` float tensor per declared field, then labels ``(n,)`` or targets."""
    g = _generator(opts.seed, ctx)
    tensors = [torch.randn(opts.n, *shape, generator=g) for shape in opts.shapes.values()]
    kinds = ["image" if len(shape) == 3 else "value" for shape in opts.shapes.values()]
    if opts.target_shape is not None:
        target, name, kind, num_classes = torch.randn(opts.n, *opts.target_shape, generator=g), "target", "value", None
    else:
        target = torch.randint(0, opts.n_classes, (opts.n,), generator=g)
        name, kind, num_classes = "label", "label", opts.n_classes
    return SourceData((*opts.shapes, name), (*kinds, kind), tensors=(*tensors, target), num_classes=num_classes,
                      labels=target if kind == "label" else None)


def _masks_for(n_classes: int, mask: Tensor) -> tuple[Tensor, str]:
    """int64 class masks ``(N, H, W)``; for one class a float ``(N, 1, H, W)`` foreground mask (BCE/Dice)."""
    if n_classes == 1:
        return (mask > 0).float().unsqueeze(1), "mask"
    return mask, "mask"


class RandomSegmentationSource(SourceOptions):
    """Random images with random masks: for smoke runs of segmentation models."""

    source: Literal["random_segmentation"] = Field(description="Source type.")
    n: int = Field(16, ge=1, description="Number of samples.")
    image_shape: list[int] = Field([3, 64, 64], min_length=3, max_length=3, description="C, H, W of each image.")
    n_classes: int = Field(2, ge=1, description="Mask classes (int64 masks H x W); 1 gives float 1 x H x W masks.")
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")


@register_source(RandomSegmentationSource)
def load_random_segmentation(opts: RandomSegmentationSource, ctx: LoadContext) -> SourceData:
    """image ``(n, C, H, W)`` uniform in [0, 1), mask ``(n, H, W)``."""
    g = _generator(opts.seed, ctx)
    c, h, w = opts.image_shape
    image = torch.rand(opts.n, c, h, w, generator=g)
    mask, kind = _masks_for(opts.n_classes, torch.randint(0, max(opts.n_classes, 2), (opts.n, h, w), generator=g))
    return SourceData(("image", "mask"), ("image", kind), tensors=(image, mask), num_classes=opts.n_classes)


class ShapesSource(SourceOptions):
    """A learnable toy segmentation task: circles and squares on a noisy background."""

    source: Literal["shapes"] = Field(description="Source type.")
    n: int = Field(256, ge=1, description="Number of images.")
    size: int = Field(64, ge=16, description="Image height and width.")
    channels: int = Field(1, ge=1, description="Image channels (the same picture in each).")
    max_shapes: int = Field(3, ge=1, description="At most this many shapes per image (at least one).")
    n_classes: Literal[1, 2, 3] = Field(3, description="3: background/circle/square; 2: background/shape "
                                                       "(int64 masks); 1: float 1 x H x W foreground mask.")
    noise: float = Field(0.1, ge=0, description="Standard deviation of the pixel noise.")
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")


@register_source(ShapesSource)
def load_shapes(opts: ShapesSource, ctx: LoadContext) -> SourceData:
    """image ``(n, C, S, S)`` float in [0, 1], mask ``(n, S, S)`` (0 background, 1 circle, 2 square)."""
    g = _generator(opts.seed, ctx)
    n, s = opts.n, opts.size
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32),
                            indexing="ij")  # (S, S) each
    image = torch.zeros(n, s, s)
    mask = torch.zeros(n, s, s, dtype=torch.int64)
    for k in range(opts.max_shapes):  # one shape slot at a time, vectorised over the n images
        present = torch.rand(n, generator=g) < (1.0 if k == 0 else 0.6)                   # (n,)
        kind = torch.randint(0, 2, (n,), generator=g)                                       # 0 circle, 1 square
        r = torch.randint(s // 10, s // 5 + 1, (n,), generator=g).float()                   # (n,)
        cy = r + torch.rand(n, generator=g) * (s - 1 - 2 * r)
        cx = r + torch.rand(n, generator=g) * (s - 1 - 2 * r)
        brightness = 0.6 + 0.4 * torch.rand(n, generator=g)
        dy = yy - cy[:, None, None]                                                          # (n, S, S)
        dx = xx - cx[:, None, None]
        circle = dy.pow(2) + dx.pow(2) <= r[:, None, None].pow(2)
        half = 0.886 * r[:, None, None]  # a square of the circle's area: side sqrt(pi) * r
        square = (dy.abs() <= half) & (dx.abs() <= half)
        inside = torch.where((kind == 0)[:, None, None], circle, square) & present[:, None, None]
        mask = torch.where(inside, (kind + 1)[:, None, None], mask)
        image = torch.where(inside, brightness[:, None, None], image)
    image = (image + opts.noise * torch.randn(n, s, s, generator=g)).clamp(0, 1)
    image = image.unsqueeze(1).expand(n, opts.channels, s, s).contiguous()              # (n, C, S, S)
    if opts.n_classes == 2:
        mask = (mask > 0).long()
    target, kind_name = _masks_for(opts.n_classes, mask)
    return SourceData(("image", "mask"), ("image", kind_name), tensors=(image, target), num_classes=opts.n_classes,
                      classes=["background", "circle", "square"][: max(opts.n_classes, 1)]
                      if opts.n_classes == 3 else None)


# ---------------------------------------------------------------------------------------------
# The data section of a spec
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
    if not isinstance(name, str) or name not in SOURCES:
        hint = did_you_mean(str(name), SOURCES)
        message = f"unknown source `{name}`" + (f"; {hint}" if hint else f"; one of {', '.join(SOURCES)}")
        # located at the `source:` key (not the whole mapping), as the compiler's own key errors
        raise PydanticCustomError("bad_key", "{message}", {"key": "source", "message": message})
    return SOURCES[name].options.model_validate(v)


_SOURCE_MODELS = tuple(dict.fromkeys(entry.options for entry in SOURCES.values()))

#: Any registered source's options, chosen by the `source:` key.
SourceSpec = Annotated[Union[_SOURCE_MODELS], WrapValidator(_validate_source)]  # type: ignore[valid-type]


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


ValSpec = Annotated[Union[(FractionSplit, *_SOURCE_MODELS)], WrapValidator(_validate_val)]  # type: ignore[valid-type]


class LoaderSpec(SpecModel):
    """DataLoader options."""


    shuffle: bool | None = Field(None, description="Shuffle the training set every epoch (default true; "
                                                   "a sampler replaces it). Validation and test are never shuffled.")
    num_workers: int = Field(0, ge=0, description="Worker processes for the per-sample path (unused in memory).")
    drop_last: bool = Field(False, description="Drop the last, short training batch.")
    pin_memory: bool = Field(False, description="Pin batches in page-locked memory (faster copies to a GPU).")
    in_memory: bool | Literal["auto"] = Field("auto", description=(
        "auto: keep tensor sources in memory and batch by indexing when the transforms allow it; "
        "false: always the per-sample DataLoader path; true: require the in-memory path."))
    eval_batch_size: int | None = Field(None, ge=1, description="Batch size for validation and test; default batch_size.")


class WeightedRandomSamplerSpec(SpecModel):
    """Draw training samples with per-class weights (seed 004: 0.85 for class 1, 0.1 for the rest)."""


    class_weights: dict[int | str, float] | Literal["balanced"] = Field(description=(
        "Class (index or class name) -> weight of each of its samples; `balanced`: 1 / class count."))
    default_weight: float | None = Field(None, ge=0, description="Weight of classes not listed.")
    num_samples: int | None = Field(None, ge=1, description="Samples per epoch; default the training set size.")
    replacement: bool = Field(True, description="Draw with replacement.")


class RandomSamplerSpec(SpecModel):
    """Uniform random order, optionally with replacement or a different epoch length."""


    replacement: bool = Field(False, description="Draw with replacement.")
    num_samples: int | None = Field(None, ge=1, description="Samples per epoch; default the training set size.")


class SamplerSpec(SpecModel):
    """How the training loader picks samples; exactly one key."""


    WeightedRandomSampler: WeightedRandomSamplerSpec | None = Field(None, description="Per-class weights.")
    RandomSampler: RandomSamplerSpec | None = Field(None, description="Uniform random sampling.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SamplerSpec":
        """One sampler, named by its key."""
        if sum(v is not None for v in (self.WeightedRandomSampler, self.RandomSampler)) != 1:
            raise ValueError("give exactly one sampler: WeightedRandomSampler or RandomSampler")
        return self


FieldRef = Union[int, str]


class FieldsSpec(SpecModel):
    """Which field of each sample feeds which model input, and which is the target."""


    inputs: dict[str, FieldRef] | None = Field(None, description=(
        "Model input name -> field (index or name). Default: by name when every input is a field name, "
        "else the fields before the target, in order."))
    target: FieldRef | dict[str, FieldRef] | None = Field(None, description=(
        "The target field, or output name -> field for several targets. Default: the last field."))


def _check_transform(item: Any) -> Any:
    """Validate one transform item by building it (did-you-mean on names and arguments)."""
    T.build_one(item)
    return item


TransformList = Annotated[list[Annotated[Union[str, dict[str, Any]], AfterValidator(_check_transform)]],
                          Field(json_schema_extra={"examples": [["RandomHorizontalFlip", {"Resize": 32},
                                                                 {"ToDtype": {"dtype": "float32", "scale": True}}]]})]


class DataSpec(SpecModel):
    """The `data:` section: where samples come from and how they are batched."""


    train: SourceSpec | None = Field(None, description="Training source.")
    val: ValSpec | None = Field(None, description="Validation: `{fraction, seed}` split off train, or a source.")
    test: SourceSpec | None = Field(None, description="Test source.")
    transforms: TransformList | None = Field(None, description=(
        "torchvision.transforms.v2 names with arguments, for training: `Name`, `{Name: arg}` or "
        "`{Name: {kwarg: value}}`. Images arrive as uint8 C x H x W tensors. Default for image sources: "
        "[ToTensor] (uint8 -> float32 in [0, 1], divided by 255 exactly as transforms.ToTensor)."))
    eval_transforms: TransformList | None = Field(None, description=(
        "Transforms for validation and test; default: the training list without its random transforms."))
    batch_size: int = Field(64, ge=1, description="Samples per training batch.")
    loader: LoaderSpec = Field(default_factory=LoaderSpec, description="DataLoader options.")
    sampler: SamplerSpec | None = Field(None, description="Training sampler (replaces shuffling).")
    fields: FieldsSpec | None = Field(None, description="Map sample fields to model inputs and the target.")

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
    def _check(self) -> "DataSpec":
        """Something to load."""
        if self.train is None and self.test is None and not isinstance(self.val, SourceOptions):
            raise ValueError("give at least one of train, val, test")
        return self


# ---------------------------------------------------------------------------------------------
# Splits, fields, samplers
# ---------------------------------------------------------------------------------------------

def split_indices(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train, val) indices: a seeded permutation, the first ``round(n * fraction)`` to val, both sorted.

    >>> tr, va = split_indices(10, 0.2, seed=0)
    >>> len(tr), len(va), sorted(tr.tolist() + va.tolist()) == list(range(10))
    (8, 2, True)
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


@dataclass(frozen=True)
class FieldMap:
    """Field index of each model input and of the target(s)."""

    inputs: dict[str, int]
    target: int | dict[str, int]

    def __call__(self, fields: list[Tensor] | tuple[Tensor, ...]) -> Batch:
        """Collated fields -> ``(inputs by name, target)``."""
        inputs = {name: fields[i] for name, i in self.inputs.items()}
        if isinstance(self.target, dict):
            return inputs, {name: fields[i] for name, i in self.target.items()}
        return inputs, fields[self.target]

    def describe(self, names: tuple[str, ...]) -> dict[str, Any]:
        """For the log: ``{"inputs": {"image": "image"}, "target": "label"}``."""
        target = ({k: names[i] for k, i in self.target.items()} if isinstance(self.target, dict)
                  else names[self.target])
        return {"inputs": {k: names[i] for k, i in self.inputs.items()}, "target": target}


def resolve_fields(spec: FieldsSpec | None, names: tuple[str, ...], input_names: list[str]) -> FieldMap:
    """Map the model's inputs and the target to field indices (see :class:`FieldsSpec` for defaults).

    >>> resolve_fields(None, ("f1", "f2", "label"), ["image", "extra"])
    FieldMap(inputs={'image': 0, 'extra': 1}, target=2)
    """
    def index(ref: FieldRef, where: tuple[str | int, ...]) -> int:
        if isinstance(ref, int):
            if not -len(names) <= ref < len(names):
                raise DataError(f"field {ref} is out of range: samples have {len(names)} fields "
                                f"({', '.join(names)})", path=("data", "fields", *where))
            return ref % len(names)
        if ref.isdigit():
            return index(int(ref), where)
        if ref not in names:
            hint = did_you_mean(ref, names)
            raise DataError(f"no field `{ref}`: samples have fields {', '.join(names)}", path=("data", "fields", *where),
                            hint=hint)
        return names.index(ref)

    spec = spec or FieldsSpec()
    if isinstance(spec.target, dict):
        target: int | dict[str, int] = {k: index(v, ("target", k)) for k, v in spec.target.items()}
        used = set(target.values())
    else:
        target = index(spec.target, ("target",)) if spec.target is not None else len(names) - 1
        used = {target}
    if spec.inputs is not None:
        unknown = [k for k in spec.inputs if k not in input_names]
        if unknown:
            hint = did_you_mean(unknown[0], input_names)
            raise DataError(f"the model has no input `{unknown[0]}` (inputs: {', '.join(input_names)})",
                            path=("data", "fields", "inputs", unknown[0]), hint=hint)
        missing = [k for k in input_names if k not in spec.inputs]
        if missing:
            raise DataError(f"model input `{missing[0]}` is fed by no field; add it to `fields.inputs`",
                            path=("data", "fields", "inputs"))
        return FieldMap({k: index(spec.inputs[k], ("inputs", k)) for k in input_names}, target)
    if input_names and all(name in names for name in input_names):
        return FieldMap({k: names.index(k) for k in input_names}, target)
    rest = [i for i in range(len(names)) if i not in used]
    if len(rest) != len(input_names):
        raise DataError(f"samples have {len(rest)} field(s) besides the target ({', '.join(names[i] for i in rest) or 'none'}) "
                        f"but the model has {len(input_names)} input(s) ({', '.join(input_names)})",
                        path=("data", "fields"), hint="map them with `fields: {inputs: {...}, target: ...}`")
    return FieldMap(dict(zip(input_names, rest)), target)


def _class_labels(raw: SourceData, fmap: FieldMap) -> Tensor | None:
    """Class index per sample ``(N,)``, from the source or from an integer 1-D target field."""
    if raw.labels is not None:
        return raw.labels
    if raw.tensors is not None and not isinstance(fmap.target, dict):
        t = raw.tensors[fmap.target]
        if t.dim() == 1 and not t.is_floating_point():
            return t.long()
    return None


def _make_sampler(spec: SamplerSpec, raw: SourceData, fmap: FieldMap, generator: torch.Generator) -> Sampler:
    """The torch sampler for the training set, drawing from the loader's generator."""
    n = len(raw)
    if spec.RandomSampler is not None:
        rs = spec.RandomSampler
        return RandomSampler(range(n), replacement=rs.replacement, num_samples=rs.num_samples, generator=generator)
    ws = spec.WeightedRandomSampler
    assert ws is not None
    path = ("data", "sampler", "WeightedRandomSampler", "class_weights")
    labels = _class_labels(raw, fmap)
    if labels is None:
        raise DataError("per-class weights need integer class labels as the target", path=path)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    if ws.class_weights == "balanced":
        counts = torch.bincount(labels, minlength=n_classes).double()
        per_class = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
    else:
        per_class = torch.full((n_classes,), float("nan"), dtype=torch.float64)
        if ws.default_weight is not None:
            per_class.fill_(ws.default_weight)
        for key, w in ws.class_weights.items():
            if isinstance(key, int) or key.lstrip("-").isdigit():
                c = int(key)
            elif raw.classes and key in raw.classes:
                c = raw.classes.index(key)
            else:
                hint = did_you_mean(key, raw.classes or [])
                raise DataError(f"unknown class `{key}`", path=(*path, str(key)), hint=hint)
            if not 0 <= c < n_classes:
                raise DataError(f"class {c} does not occur in the training labels (0..{n_classes - 1})",
                                path=(*path, str(key)))
            per_class[c] = w
        present = torch.bincount(labels, minlength=n_classes) > 0
        unset = [c for c in range(n_classes) if present[c] and math.isnan(per_class[c])]
        if unset:
            raise DataError(f"no weight for class(es) {', '.join(map(str, unset))}", path=path,
                            hint="list them or set `default_weight`")
    weights = per_class.nan_to_num(0.0)[labels]  # (N,) weight of each sample
    return WeightedRandomSampler(weights, ws.num_samples or n, replacement=ws.replacement, generator=generator)


# ---------------------------------------------------------------------------------------------
# Applying transforms
# ---------------------------------------------------------------------------------------------

def _wrap(fields: Iterable[Any], kinds: tuple[str, ...]) -> tuple[Any, ...]:
    """Mark images and masks so v2 transforms know which field is which (labels pass through)."""
    out = []
    for x, kind in zip(fields, kinds):
        if kind == "image" and isinstance(x, Tensor):
            x = tv_tensors.Image(x)
        elif kind == "mask" and isinstance(x, Tensor):
            x = tv_tensors.Mask(x)
        out.append(x)
    return tuple(out)


def _apply(transform: Callable, fields: Iterable[Any], kinds: tuple[str, ...]) -> tuple[Any, ...]:
    """Run a transform on one sample or one batch of fields; plain tensors out."""
    return tuple(T.unwrap(x) for x in transform(_wrap(fields, kinds)))


def _describe(fields: Iterable[Any], names: tuple[str, ...]) -> str:
    """``image 1x28x28 uint8, label int`` for error messages."""
    parts = []
    for name, x in zip(names, fields):
        if isinstance(x, Tensor):
            parts.append(f"{name} {'x'.join(map(str, x.shape)) or 'scalar'} {str(x.dtype).removeprefix('torch.')}")
        else:
            parts.append(f"{name} {type(x).__name__}")
    return ", ".join(parts)


class _SampleDataset(Dataset):
    """Per-sample path: raw sample -> transformed tuple of tensors (or a :class:`_Bad`)."""

    def __init__(self, raw: SourceData, transform: Callable | None):
        self.raw = raw
        self.transform = transform

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int) -> tuple[Any, ...] | _Bad:
        raw = self.raw
        sample = tuple(t[i] for t in raw.tensors) if raw.tensors is not None else raw.dataset[i]  # type: ignore[index]
        if isinstance(sample, _Bad) or self.transform is None:
            return sample
        try:
            return _apply(self.transform, sample, raw.kinds)
        except Exception as e:  # any failure inside torchvision is the spec's transforms not fitting the data
            return _Bad(f"transforms failed on sample {i} ({_describe(sample, raw.names)}): {_first_line(e)}")


def _collate(samples: list[Any]) -> Any:
    """default_collate, but bad samples and size mismatches come back as a :class:`_Bad`."""
    for s in samples:
        if isinstance(s, _Bad):
            return s
    try:
        return default_collate(samples)
    except RuntimeError as e:
        shapes = sorted({"x".join(map(str, s[0].shape)) for s in samples if isinstance(s[0], Tensor)})
        hint = " (add a Resize or CenterCrop transform)" if len(shapes) > 1 else ""
        return _Bad(f"cannot batch samples of different shapes {', '.join(shapes[:3])}{hint}: {_first_line(e)}")


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------

def sampler_order(sampler: Sampler) -> Tensor:
    """One epoch of a sampler's indices ``(num_samples,)``, drawn as the sampler itself draws them.

    For torch's RandomSampler and WeightedRandomSampler this makes the same generator calls as
    their ``__iter__`` (so the order and the generator state afterwards are identical), in tensor
    form instead of one Python int at a time; the equivalence tests hold it to that.

    >>> g = torch.Generator().manual_seed(0)
    >>> sampler_order(RandomSampler(range(5), generator=g)).sort().values.tolist()
    [0, 1, 2, 3, 4]
    """
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


class _EpochLoader:
    """Shared epoch bookkeeping: the generator, and :meth:`set_epoch` for exact resume.

    The generator is seeded once with ``seed`` and then advances across epochs exactly as a
    ``DataLoader``'s does. ``set_epoch(e)`` makes the next iteration yield epoch ``e`` (0-based)
    as if epochs ``0..e-1`` had been iterated in full, by re-seeding and replaying the cheap
    index draws (no data is touched).
    """

    def __init__(self, n: int, batch_size: int, drop_last: bool, sampler: Sampler | None,
                 generator: torch.Generator | None, seed: int | None, fmap: FieldMap, path: tuple[str, ...]):
        self.dataset_size = n
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.generator = generator
        self.seed = seed
        self.fmap = fmap
        self.path = path
        self._epochs_started = 0
        self._complete = True

    def __len__(self) -> int:
        """Batches per epoch."""
        total = len(self.sampler) if self.sampler is not None else self.dataset_size  # type: ignore[arg-type]
        return total // self.batch_size if self.drop_last else math.ceil(total / self.batch_size)

    def _draw_order(self) -> Tensor | None:
        """The generator calls a DataLoader makes for one epoch; the epoch's sample order.

        A DataLoader draws a base seed for its workers when the epoch's iterator is made (from
        its generator, or from the global RNG when it has none), then the sampler draws.
        """
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        if self.sampler is None:
            return None  # sequential
        return sampler_order(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration yield epoch ``epoch`` (0-based), for exact resume."""
        if self.generator is None or self.seed is None:
            return  # eval loaders: always the same sequential order
        if epoch == self._epochs_started and self._complete:
            return
        self.generator.manual_seed(self.seed)
        for _ in range(epoch):
            self._draw_order()
        self._epochs_started = epoch
        self._complete = True


class TensorLoader(_EpochLoader):
    """In-memory loader: one tensor per field, batches cut by indexing.

    Yields the same batches as ``DataLoader(TensorDataset(*tensors), batch_size, shuffle/sampler,
    drop_last, generator)`` with the transforms applied to each sample.
    """

    def __init__(self, tensors: tuple[Tensor, ...], *, kinds: tuple[str, ...], batch_transform: Callable | None,
                 pin_memory: bool = False, **kwargs: Any):
        super().__init__(len(tensors[0]), **kwargs)
        self.tensors = tensors
        self.kinds = kinds
        self.batch_transform = batch_transform  # deterministic transforms too big to apply up front
        # Pinning only helps copies to a GPU, and needs one; data already on the device needs none.
        self.pin_memory = pin_memory and tensors[0].device.type == "cpu" and torch.cuda.is_available()

    def __iter__(self) -> Iterator[Batch]:
        order = self._draw_order()
        self._epochs_started += 1
        self._complete = False
        device = self.tensors[0].device
        if order is not None and order.device != device:
            order = order.to(device)
        total = len(order) if order is not None else self.dataset_size
        bs = self.batch_size
        for b in range(len(self)):
            lo, hi = b * bs, min((b + 1) * bs, total)
            if order is None:
                # Clone: a view would let a model's in-place op on its input change the data set.
                fields = [t[lo:hi].clone() for t in self.tensors]
            else:
                idx = order[lo:hi]
                fields = [t.index_select(0, idx) for t in self.tensors]  # a copy; ~4x faster than t[idx]
            if self.batch_transform is not None:
                try:
                    fields = list(_apply(self.batch_transform, fields, self.kinds))
                except Exception as e:
                    raise DataError(f"transforms failed on a batch: {_first_line(e)}", path=self.path) from None
            if self.pin_memory:
                fields = [f.pin_memory() for f in fields]
            yield self.fmap(fields)
        self._complete = True


def _ignore_sigint(_worker_id: int) -> None:
    """Workers leave Ctrl-C to the main process, which saves a checkpoint before exiting."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SampleLoader(_EpochLoader):
    """Per-sample loader: a ``DataLoader`` over a Dataset that transforms each sample."""

    def __init__(self, dataset: Dataset, *, num_workers: int, pin_memory: bool, **kwargs: Any):
        super().__init__(len(dataset), **kwargs)  # type: ignore[arg-type]
        self.loader = DataLoader(dataset, batch_size=self.batch_size, sampler=self.sampler, drop_last=self.drop_last,
                                 num_workers=num_workers, pin_memory=pin_memory, collate_fn=_collate,
                                 generator=self.generator,
                                 worker_init_fn=_ignore_sigint if num_workers else None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        self._epochs_started += 1
        self._complete = False
        for batch in self.loader:
            if isinstance(batch, _Bad):
                raise DataError(batch.message, path=batch.path(self.path))
            yield self.fmap(batch)
        self._complete = True


@dataclass
class Loaders:
    """What :func:`build_loaders` returns; a split not in the spec is None."""

    train: TensorLoader | SampleLoader | None
    val: TensorLoader | SampleLoader | None
    test: TensorLoader | SampleLoader | None
    info: dict[str, Any]  # num_classes, classes, fields, and per split: samples, batches, path, transforms, shapes


def _load_split(spec: Any, split: str, ctx: LoadContext) -> SourceData:
    """Run a source's load function; errors get the spec path of the split."""
    entry = SOURCES[spec.source]
    try:
        raw = entry.load(spec, ctx)
    except SpecError as e:
        if not e.path:  # point at the file option when there is one: its line is the useful one
            key = next((k for k in ("path", "root") if k in type(spec).model_fields), None)
            e.path = ("data", split) + ((key,) if key else ())
        raise
    if spec.limit is not None and spec.limit < len(raw):
        raw = raw.subset(torch.arange(spec.limit))
    if len(raw) == 0:
        raise DataError(f"the {split} data has no samples", path=("data", split))
    return raw


def _default_transforms(raw: SourceData) -> list[Any]:
    """uint8 images become float32 in [0, 1] unless the spec says otherwise."""
    images = [t for t, k in zip(raw.tensors or (), raw.kinds) if k == "image"]
    if raw.tensors is None and "image" in raw.kinds:
        return ["ToTensor"]  # image files decode to uint8
    if any(t.dtype == torch.uint8 for t in images):
        return ["ToTensor"]
    return []


def _shapes(fields: tuple[Any, ...], fmap: FieldMap) -> dict[str, Any]:
    """Per-sample shapes and dtypes of the model inputs and target, for the log and shape checks."""
    def one(x: Any) -> dict[str, Any]:
        x = torch.as_tensor(x)
        return {"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}
    inputs, target = fmap(list(fields))
    return {"inputs": {k: one(v) for k, v in inputs.items()},
            "target": {k: one(v) for k, v in target.items()} if isinstance(target, dict) else one(target)}


def _make_loader(raw: SourceData, items: list[Any], *, spec: DataSpec, split: str, fmap: FieldMap, train: bool,
                 seed: int, device: torch.device | None) -> tuple[TensorLoader | SampleLoader, dict[str, Any]]:
    """One split's loader and its info entry."""
    path = ("data", split)
    try:
        transform = T.compose(items)
    except ValueError as e:  # validated with the spec already; kept for specs built in code
        raise SpecError(str(e), path=("data", "transforms" if train else "eval_transforms")) from None
    batchable = T.is_batchable(items)
    in_memory = raw.tensors is not None and batchable and spec.loader.in_memory is not False
    if spec.loader.in_memory is True and not in_memory:
        why = ("this source is read per sample" if raw.tensors is None else
               "these transforms are random: " + ", ".join(T.transform_name(i) for i in items
                                                           if T.transform_name(i) not in T.BATCHABLE))
        raise SpecError(f"`in_memory: true` is impossible: {why}", path=("data", "loader", "in_memory"))
    generator = torch.Generator().manual_seed(seed) if train else None
    sampler: Sampler | None = None
    if train and spec.sampler is not None:
        sampler = _make_sampler(spec.sampler, raw, fmap, generator)  # type: ignore[arg-type]
    elif train and spec.loader.shuffle is not False:
        sampler = RandomSampler(range(len(raw)), generator=generator)
    common = dict(batch_size=spec.batch_size if train else (spec.loader.eval_batch_size or spec.batch_size),
                  drop_last=spec.loader.drop_last and train, sampler=sampler, generator=generator,
                  seed=seed if train else None, fmap=fmap, path=path)
    info: dict[str, Any] = {"samples": len(raw), "transforms": items}
    if in_memory:
        tensors = raw.tensors
        assert tensors is not None
        batch_transform = None
        if transform is not None:
            tensors, batch_transform, info["path"] = _pretransform(tensors, raw, transform, path)
        else:
            info["path"] = "in memory"
        if device is not None and device.type != "cpu":
            tensors = _to_device(tensors, device, info)
        loader: TensorLoader | SampleLoader = TensorLoader(tensors, kinds=raw.kinds, batch_transform=batch_transform,
                                                           pin_memory=spec.loader.pin_memory,
                                                           **common)  # type: ignore[arg-type]
        first = tuple(t[:1] for t in tensors)
        if batch_transform is not None:
            first = _apply(batch_transform, first, raw.kinds)
        info["shapes"] = _shapes(tuple(t[0] for t in first), fmap)
    else:
        dataset = _SampleDataset(raw, transform)
        loader = SampleLoader(dataset, num_workers=spec.loader.num_workers, pin_memory=spec.loader.pin_memory,
                              **common)  # type: ignore[arg-type]
        info["path"] = "per sample (DataLoader)" + (f", {spec.loader.num_workers} workers" if spec.loader.num_workers else "")
        with torch.random.fork_rng(devices=[]):  # peeking at sample 0 must not move the global RNG
            first_sample = dataset[0]
        if isinstance(first_sample, _Bad):
            raise DataError(first_sample.message, path=first_sample.path(path))
        info["shapes"] = _shapes(first_sample, fmap)
    info["batches"] = len(loader)
    if train and spec.sampler is not None:
        info["sampler"] = type(sampler).__name__
    return loader, info


def _pretransform(tensors: tuple[Tensor, ...], raw: SourceData, transform: Callable, path: tuple[str, ...]
                  ) -> tuple[tuple[Tensor, ...], Callable | None, str]:
    """Apply deterministic transforms once to the whole data set when the result fits the budget."""
    try:
        probe = _apply(transform, tuple(t[:1] for t in tensors), raw.kinds)  # first sample, batched
    except Exception as e:
        raise DataError(f"transforms failed on sample 0 ({_describe(tuple(t[0] for t in tensors), raw.names)}): "
                        f"{_first_line(e)}", path=path) from None
    per_sample = sum(t.element_size() * t[0].numel() for t in probe)
    if per_sample * len(tensors[0]) > PRECOMPUTE_BYTES:
        return tensors, transform, "in memory (transforms applied per batch)"
    chunks = [_apply(transform, tuple(t[i:i + 4096] for t in tensors), raw.kinds)
              for i in range(0, len(tensors[0]), 4096)]  # bounded peak memory for big intermediates
    out = tuple(torch.cat([c[f] for c in chunks]) for f in range(len(tensors)))
    return out, None, "in memory (transforms applied once)"


def _to_device(tensors: tuple[Tensor, ...], device: torch.device, info: dict[str, Any]) -> tuple[Tensor, ...]:
    """Move in-memory data to the accelerator once, when it takes at most half of the free memory."""
    size = sum(t.numel() * t.element_size() for t in tensors)
    try:
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 0
    except Exception:
        free = 0
    if size * 2 <= free:
        info["path"] += f", on {device}"
        return tuple(t.to(device) for t in tensors)
    return tensors


def build_loaders(spec: DataSpec, *, base_dir: Path, input_names: list[str], seed: int,
                  device: torch.device | None = None, allow_download: bool = False) -> Loaders:
    """Build the train/val/test loaders of a data section.

    ``base_dir`` is the spec file's folder (relative paths resolve against it); ``input_names``
    are the model's inputs in order; ``seed`` seeds the training order (a ``torch.Generator``
    seeded with exactly ``seed``), the validation split and generated data. A source downloads
    missing files when its spec says ``download: true`` or ``allow_download`` is set.
    Raises :class:`DataError` / :class:`SpecError` with ``path=("data", ...)``.

    >>> spec = DataSpec.model_validate({"train": {"source": "gaussian_clusters"}, "batch_size": 50})
    >>> loaders = build_loaders(spec, base_dir=Path("."), input_names=["x"], seed=0)
    >>> inputs, target = next(iter(loaders.train))
    >>> len(loaders.train), inputs["x"].shape, target.shape
    (4, torch.Size([50, 2]), torch.Size([50]))
    """
    base_dir = Path(base_dir)

    def ctx(split: str) -> LoadContext:
        return LoadContext(base_dir=base_dir, seed=seed + _SPLIT_OFFSET[split], download=allow_download)

    raws: dict[str, SourceData] = {}
    if spec.train is not None:
        raws["train"] = _load_split(spec.train, "train", ctx("train"))
    if isinstance(spec.val, FractionSplit):
        train_idx, val_idx = split_indices(len(raws["train"]), spec.val.fraction,
                                           seed if spec.val.seed is None else spec.val.seed)
        if len(val_idx) == 0 or len(train_idx) == 0:
            raise DataError(f"a fraction of {spec.val.fraction} of {len(raws['train'])} samples leaves an empty split",
                            path=("data", "val", "fraction"))
        raws["val"] = raws["train"].subset(val_idx)
        raws["train"] = raws["train"].subset(train_idx)
    elif spec.val is not None:
        raws["val"] = _load_split(spec.val, "val", ctx("val"))
    if spec.test is not None:
        raws["test"] = _load_split(spec.test, "test", ctx("test"))

    first = next(iter(raws.values()))
    fmap = resolve_fields(spec.fields, first.names, input_names)
    for split, raw in raws.items():
        if len(raw.names) != len(first.names):
            raise DataError(f"{split} samples have {len(raw.names)} fields ({', '.join(raw.names)}) but "
                            f"{next(iter(raws))} samples have {len(first.names)}", path=("data", split))

    train_items = spec.transforms if spec.transforms is not None else _default_transforms(first)
    eval_items = spec.eval_transforms if spec.eval_transforms is not None else (
        T.drop_random(spec.transforms) if spec.transforms is not None else _default_transforms(first))
    info: dict[str, Any] = {"fields": fmap.describe(first.names)}
    built: dict[str, TensorLoader | SampleLoader] = {}
    for split, raw in raws.items():
        train = split == "train"
        built[split], info[split] = _make_loader(raw, train_items if train else eval_items, spec=spec, split=split,
                                                 fmap=fmap, train=train, seed=seed, device=device)
        info[split]["source"] = (spec.train.source if split == "val" and isinstance(spec.val, FractionSplit)
                                 else getattr(spec, split).source)  # type: ignore[union-attr]
        info[split]["files"] = raw.files
    labels = _class_labels(first, fmap)
    info["num_classes"] = first.num_classes if first.num_classes is not None else (
        int(labels.max()) + 1 if labels is not None and len(labels) and labels.min() >= 0 else None)
    info["classes"] = first.classes
    return Loaders(built.get("train"), built.get("val"), built.get("test"), info)


def source_names() -> list[str]:
    """Every registered source name.

    >>> "FashionMNIST" in source_names() and "shapes" in source_names()
    True
    """
    return list(SOURCES)
