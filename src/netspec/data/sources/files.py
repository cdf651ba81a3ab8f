"""Sources: the user's own files -- image folders, numeric CSV files, tensor files.

Image folders are decoded once into memory when they fit (else per sample, in the loader's
workers); CSV and tensor files are read into memory at once.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from ...errors import DataError, did_you_mean
from ...files.access import not_regular
from ..readers import csv_line, read_csv, read_tensor_file, show_path
from .base import BadSample, LoadContext, SourceData, SourceOptions, register_source

if TYPE_CHECKING:  # numpy and torch are imported where files are read: the spec models do without them
    import numpy as np
    from torch import Tensor

# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


class ImageFolderSource(SourceOptions):
    """Images in one sub-folder per class (torchvision's ImageFolder layout), decoded once and
    kept in memory when they fit, else read per sample."""

    source: Literal["ImageFolder"] = Field(description="Source type.")
    root: str = Field(description="Folder with one sub-folder per class, relative to the spec file.")
    mode: Literal["RGB", "L"] | None = Field(
        None,
        description="Convert every image to RGB (3 channels) or L (1); default: L for a model whose "
        "image input is declared with 1 channel, else RGB.",
    )


#: decoded images kept in memory up to this many bytes per split (uint8); a bigger folder is
#: decoded per sample, in the loader's workers
KEEP_DECODED_BYTES = 1 << 30

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: image modes torchvision.io decodes to without a conversion of its own (others go through PIL)
_TV_MODES = {"L": "GRAY", "RGB": "RGB"}


def image_mode(mode: str | None, channels: int | None) -> str:
    """The mode images are converted to: the one given, else the declared channels' (1: L).

    >>> image_mode(None, 1), image_mode(None, 3), image_mode("RGB", 1), image_mode(None, None)
    ('L', 'RGB', 'RGB', 'RGB')
    """
    if mode is not None:
        return mode
    return "L" if channels == 1 else "RGB"


def decode_image_file(path: str, mode: str) -> Tensor | BadSample:
    """One image file as a ``(C, H, W)`` uint8 tensor in ``mode``; a :class:`BadSample` for an
    unreadable file or one whose header declares more than PIL's ``MAX_IMAGE_PIXELS`` (about
    89 megapixels: a 12 kB PNG can declare 100 megapixels, gigabytes once decoded).

    The header is read first (a PNG's by hand, else with PIL; no pixels decoded). An image
    already in ``mode`` is decoded by torchvision.io (straight into a tensor); any other (a colour image read as L, a palette, 16-bit
    pixels, a format torchvision.io does not read) is converted by PIL, as torchvision's
    ImageFolder converts it, so the pixels are PIL's either way.
    """
    from PIL import Image

    try:
        with open(path, "rb") as f:
            data = f.read()
        if _png_in_mode(data, mode, Image.MAX_IMAGE_PIXELS):  # its header says enough: no PIL parse
            image = _decode_tv(data, mode)
            if image is not None:
                return image
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # over the limit: refuse, not warn
            with Image.open(io.BytesIO(data)) as im:
                if im.mode == mode and im.format in ("PNG", "JPEG"):
                    image = _decode_tv(data, mode)
                    if image is not None:
                        return image
                from torchvision.transforms.v2.functional import pil_to_tensor

                return pil_to_tensor(im.convert(mode))  # (C, H, W) uint8
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return BadSample(
            f"image {show_path(Path(path))} declares more than {Image.MAX_IMAGE_PIXELS:,} pixels; "
            "refused before decoding (a decompression bomb?)",
            key="root",
        )
    except Exception:  # PIL raises many types for a bad file; all mean "unreadable"
        return BadSample(f"cannot read image {show_path(Path(path))}: a corrupt or non-image file", key="root")


def _png_in_mode(data: bytes, mode: str, max_pixels: int | None) -> bool:
    r"""Whether ``data`` is a PNG whose header (IHDR) declares 8-bit pixels in ``mode`` (colour
    type 0: L, 2: RGB) and at most ``max_pixels`` of them: decoded as it is, with no conversion.

    >>> import struct
    >>> ihdr = struct.pack(">IIBBBBB", 4, 3, 8, 0, 0, 0, 0)
    >>> png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
    >>> _png_in_mode(png, "L", 100), _png_in_mode(png, "RGB", 100), _png_in_mode(png, "L", 11)
    (True, False, False)
    """
    if len(data) < 29 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return False
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    fits = max_pixels is None or width * height <= max_pixels
    return fits and depth == 8 and colour == {"L": 0, "RGB": 2}.get(mode)


def _decode_tv(data: bytes, mode: str) -> Tensor | None:
    """torchvision.io's decoding of a PNG or JPEG already in ``mode``; None where it gives other
    than uint8 pixels in that many channels (PIL then decodes it)."""
    import torch

    try:
        from torchvision.io import ImageReadMode, decode_image
    except ImportError:  # a torchvision without image decoding (deprecated in 0.29, for TorchCodec)
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # said on every call since 0.29
            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            image = decode_image(raw, getattr(ImageReadMode, _TV_MODES[mode]))
    except RuntimeError:
        return None
    return image if image.dtype == torch.uint8 and image.shape[0] == len(mode) else None


class ImageFiles:
    """``(uint8 C x H x W image, class index)`` per file, decoded when asked for; unreadable files
    give a :class:`BadSample` (:func:`decode_image_file`).

    A map-style data set: DataLoader needs only ``__len__`` and ``__getitem__``, so it does not
    subclass torch's Dataset (which would import torch with the spec models).
    """

    def __init__(self, samples: list[tuple[str, int]], mode: str):
        self.samples = samples
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int] | BadSample:
        path, label = self.samples[i]
        image = decode_image_file(path, self.mode)
        return image if isinstance(image, BadSample) else (image, label)


class DecodedImages:
    """Images decoded once and kept, of different sizes (per-sample transforms make them one):
    ``(uint8 C x H x W image, class index)``, as :class:`ImageFiles` gives them."""

    def __init__(self, images: list[Tensor], labels: list[int]):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.images[i], self.labels[i]


def _image_files(folder: Path, ctx: LoadContext) -> list[str]:
    """Image files under ``folder`` in torchvision's order (by folder, then by name). A link is
    followed only where it stays inside the allowed folders, and only regular files are kept
    (a FIFO would block the reader); links back up are walked once."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    found: list[tuple[str, str, str]] = []  # (folder as walked, name, file to open)
    seen: set[str] = set()

    def walk(shown: str, real: str) -> None:
        if real in seen:
            return
        seen.add(real)
        with os.scandir(real) as entries:
            for e in entries:
                link = e.is_symlink()  # the entry's own type costs nothing; a link's target is checked
                target = str(ctx.check(Path(e.path))) if link else e.path
                if os.path.isdir(target) if link else e.is_dir(follow_symlinks=False):
                    walk(os.path.join(shown, e.name), target)
                elif e.name.lower().endswith(IMG_EXTENSIONS):
                    regular = not_regular(Path(target)) is None if link else e.is_file(follow_symlinks=False)
                    if not regular:
                        raise DataError(f"{show_path(Path(e.path))} {not_regular(Path(target)) or 'is not a file'}")
                    found.append((shown, e.name, target))

    walk(str(folder), str(folder))
    return [file for _, _, file in sorted(found)]


def _scan_image_folder(root: Path, ctx: LoadContext) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted sub-folders) and ``(file, class index)`` samples of an image folder."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise DataError(f"{show_path(root)}: no class folders (expected one sub-folder per class)")
    samples: list[tuple[str, int]] = []
    for index, name in enumerate(classes):
        files = _image_files(ctx.check(root / name), ctx)
        if not files:
            raise DataError(f"{show_path(root / name)}: no image files in this class folder")
        samples += [(f, index) for f in files]
    return classes, samples


@register_source(ImageFolderSource, in_memory=None)
def load_image_folder(opts: ImageFolderSource, ctx: LoadContext) -> SourceData:
    """Scan ``root/<class>/<image>`` files and decode them once, into one uint8 tensor when they
    have one size (batches are then cut by indexing, like any tensor source), into a list when
    they differ; a folder over :data:`KEEP_DECODED_BYTES` decoded is read per sample instead.

    >>> load_image_folder(ImageFolderSource(source="ImageFolder", root="nowhere"), LoadContext(Path("."), 0, False))
    Traceback (most recent call last):
    netspec.errors.DataError: <spec>: nowhere: no such folder (expected one sub-folder per class)
    """
    root = ctx.resolve(opts.root)
    if not root.is_dir():
        raise DataError(f"{show_path(root)}: no such folder (expected one sub-folder per class)")
    classes, samples = _scan_image_folder(root, ctx)
    import torch

    labels = torch.tensor([s[1] for s in samples], dtype=torch.int64)
    mode = image_mode(opts.mode, ctx.channels)
    common: dict[str, Any] = dict(
        labels=labels,
        classes=classes,
        num_classes=len(classes),
        files=[str(root)],
        locate=lambda i, _name: show_path(Path(samples[i][0])),
    )
    images = _decode_all(samples, mode)
    if images is None:  # too big to keep: ImageFiles is a Dataset by its methods (no torch import to subclass it)
        return SourceData(("image", "label"), ("image", "label"), dataset=ImageFiles(samples, mode), **common)  # type: ignore[arg-type]
    if len({tuple(t.shape) for t in images}) == 1:
        return SourceData(("image", "label"), ("image", "label"), tensors=(torch.stack(images), labels), **common)
    dataset = DecodedImages(images, labels.tolist())
    return SourceData(("image", "label"), ("image", "label"), dataset=dataset, **common)  # type: ignore[arg-type]


def _decode_all(samples: list[tuple[str, int]], mode: str) -> list[Tensor] | None:
    """Every image decoded, in order; None once they pass :data:`KEEP_DECODED_BYTES`. An
    unreadable file is a DataError now, naming it."""
    images, total = [], 0
    for path, _ in samples:
        image = decode_image_file(path, mode)
        if isinstance(image, BadSample):
            raise DataError(image.message)
        total += image.numel()
        if total > KEEP_DECODED_BYTES:
            return None
        images.append(image)
    return images


# ---------------------------------------------------------------------------------------------
# CSV files
# ---------------------------------------------------------------------------------------------


def _parse_scale(v: Any) -> Any:
    """Accept ``1/255`` written as a string (YAML has no fractions).

    >>> _parse_scale("1 / 4"), _parse_scale(0.5)
    (0.25, 0.5)
    """
    if isinstance(v, str):
        try:
            return float(Fraction(v.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"scale must be a number or a fraction like 1/255, got `{v}`") from None
    return v


_SCALE_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*-?[0-9.]+\s*/\s*[0-9.]+\s*$"}]}


class CSVSource(SourceOptions):
    """A numeric CSV file: one label column, the other columns are features or pixels (seed 003's FMDataset)."""

    source: Literal["csv"] = Field(description="Source type.")
    path: str = Field(description="CSV file, relative to the spec file.")
    label: int | str | None = Field(
        0, description="Label column: index (negative counts from the end) or header name; null for no label column."
    )
    image_shape: list[int] | None = Field(
        None,
        description="Reshape the feature columns of each row to this "
        "per-sample shape, e.g. [1, 28, 28]: an image field.",
    )
    scale: Annotated[float, BeforeValidator(_parse_scale), WithJsonSchema(_SCALE_SCHEMA)] = Field(
        1.0, description="Multiply features by this, e.g. 1/255 (float32 output only)."
    )
    dtype: Literal["float32", "uint8"] = Field(
        "float32", description="Feature dtype; uint8 keeps raw pixels for image transforms."
    )
    label_dtype: Literal["auto", "int64", "float32"] = Field(
        "auto", description="auto: int64 when every label is a whole number, else float32."
    )
    header: bool | Literal["auto"] = Field(
        "auto", description="First line holds column names; auto: when it is not all numbers."
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="Column separator.")

    @model_validator(mode="after")
    def _check(self) -> CSVSource:
        """uint8 pixels cannot carry a scale."""
        if self.dtype == "uint8" and self.scale != 1.0:
            raise ValueError("`scale` needs dtype float32 (uint8 pixels cannot be scaled)")
        return self


def _label_column(opts: CSVSource, path: Path, names: list[str] | None, ncols: int) -> int | None:
    """Index of the label column (by header name or index), or None when there is none."""
    if isinstance(opts.label, str):
        if names is None:
            raise DataError(f"{show_path(path)}: label column `{opts.label}` named, but the file has no header line")
        if opts.label not in names:
            hint = did_you_mean(opts.label, names)
            raise DataError(f"{show_path(path)}: no column `{opts.label}`" + (f"; {hint}" if hint else ""))
        return names.index(opts.label)
    if isinstance(opts.label, int):
        if not -ncols <= opts.label < ncols:
            raise DataError(f"{show_path(path)}: label column {opts.label} is out of range ({ncols} columns)")
        return opts.label % ncols
    return None


def _csv_features(opts: CSVSource, path: Path, feats: np.ndarray) -> tuple[Tensor, str]:
    """Feature columns ``(N, F)`` -> the input field (reshaped to images when asked) and its kind."""
    import numpy as np
    import torch

    if opts.image_shape is not None and math.prod(opts.image_shape) != feats.shape[1]:
        raise DataError(
            f"{show_path(path)}: rows have {feats.shape[1]} feature columns, which do not fit "
            f"image_shape {opts.image_shape} ({math.prod(opts.image_shape)} values)"
        )
    if opts.dtype == "uint8":
        if ((feats < 0) | (feats > 255) | (feats != np.round(feats))).any():
            raise DataError(f"{show_path(path)}: dtype uint8 needs whole numbers 0..255 in every feature column")
        x = torch.from_numpy(feats.astype(np.uint8))
    else:
        x = torch.from_numpy((feats * opts.scale).astype(np.float32))
    if opts.image_shape is not None:
        return x.reshape(len(x), *opts.image_shape), "image"  # (N, C, H, W)
    return x, "value"


def _csv_labels(opts: CSVSource, path: Path, y: np.ndarray) -> Tensor:
    """The label column ``(N,)`` as int64 classes or float32 values (``label_dtype``)."""
    import numpy as np
    import torch

    whole = bool(np.all(y == np.round(y)))
    as_int = opts.label_dtype == "int64" or (opts.label_dtype == "auto" and whole)
    if as_int and not whole:
        raise DataError(f"{show_path(path)}: label_dtype int64, but the label column has fractional values")
    return torch.from_numpy(y.astype(np.int64 if as_int else np.float32))


@register_source(CSVSource)
def load_csv(opts: CSVSource, ctx: LoadContext) -> SourceData:
    """CSV -> features ``(N, F)`` or images ``(N, *image_shape)``, plus labels ``(N,)``.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "t.csv").write_text("label,p1,p2,p3,p4\\n1,0,255,0,255\\n0,9,9,9,9\\n")
    >>> opts = CSVSource(source="csv", path="t.csv", image_shape=[1, 2, 2], dtype="uint8")
    >>> raw = load_csv(opts, LoadContext(folder, 0, False))
    >>> raw.names, raw.kinds, tuple(raw.tensors[0].shape), raw.labels.tolist()
    (('image', 'label'), ('image', 'label'), (2, 1, 2, 2), [1, 0])
    """
    import torch

    path = ctx.resolve(opts.path)
    names, table = read_csv(path, delimiter=opts.delimiter, header=opts.header)  # (N, columns)
    skip = 1 if names is not None else 0
    _check_finite(path, table, skip)
    label_col = _label_column(opts, path, names, table.shape[1])
    x, kind = _csv_features(opts, path, table[:, [c for c in range(table.shape[1]) if c != label_col]])
    fields, kinds, tensors = ["image" if kind == "image" else "x"], [kind], [x]
    labels = None
    if label_col is not None:
        target = _csv_labels(opts, path, table[:, label_col])
        fields.append(names[label_col] if names else "label")
        kinds.append("label")
        tensors.append(target)
        labels = target if target.dtype == torch.int64 else None
    return SourceData(
        tuple(fields),
        tuple(kinds),
        tensors=tuple(tensors),
        labels=labels,
        files=[str(path)],
        locate=lambda i, _field: f"{show_path(path)}, line {csv_line(path, skip, i)}",
    )


def _check_finite(path: Path, table: np.ndarray, skip: int) -> None:
    """NaN or inf (numpy reads `nan` and `inf` as numbers) is refused at its line and column."""
    import numpy as np

    bad = ~np.isfinite(table)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(table[row, col]) else "an infinite value"
        raise DataError(
            f"{show_path(path)}: line {csv_line(path, skip, row)}, column {col + 1} holds {what}",
            hint="clean the data: every cell must be a finite number",
        )


# ---------------------------------------------------------------------------------------------
# Tensor files
# ---------------------------------------------------------------------------------------------


class TensorFileSource(SourceOptions):
    """Named arrays from a `.npz` file (never pickles), a `.safetensors` file or a `.pt` file (loaded with
    weights_only)."""

    source: Literal["tensors"] = Field(description="Source type.")
    path: str = Field(description="`.npz`, `.safetensors` or `.pt` file, relative to the spec file.")
    arrays: list[str] | None = Field(
        None,
        description="Arrays to use, in field order; default all, in file "
        "order (a .pt list's items are named 0, 1, ...).",
    )
    images: list[str] | None = Field(
        None, description="Arrays that are images (N x C x H x W) for transforms; default every 4-D array."
    )
    masks: list[str] | None = Field(
        None, description="Arrays that are segmentation masks (transformed geometrically with the images)."
    )


@register_source(TensorFileSource)
def load_tensor_file(opts: TensorFileSource, ctx: LoadContext) -> SourceData:
    """A tensor file -> one field per array, in order; 4-D arrays are images, 1-D integer ones labels.

    >>> import tempfile
    >>> import numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.savez(folder / "t.npz", x=np.zeros((5, 1, 4, 4), np.float32), y=np.arange(5))
    >>> raw = load_tensor_file(TensorFileSource(source="tensors", path="t.npz"), LoadContext(folder, 0, False))
    >>> raw.names, raw.kinds
    (('x', 'y'), ('image', 'label'))
    """
    path = ctx.resolve(opts.path)
    names, tensors = read_tensor_file(path, opts.arrays)
    for group in (opts.images or []) + (opts.masks or []):
        if group not in names:
            hint = did_you_mean(group, names)
            raise DataError(
                f"{show_path(path)}: `{group}` is not one of the arrays ({', '.join(names)})"
                + (f"; {hint}" if hint else "")
            )
    images = set(opts.images) if opts.images is not None else {n for n, t in zip(names, tensors) if t.dim() == 4}
    masks = set(opts.masks or [])
    kinds = tuple(
        "mask"
        if n in masks
        else "image"
        if n in images
        else "label"
        if t.dim() == 1 and not t.is_floating_point()
        else "value"
        for n, t in zip(names, tensors)
    )
    return SourceData(
        tuple(names),
        kinds,
        tensors=tuple(tensors),
        files=[str(path)],
        locate=lambda i, name: f"{show_path(path)}, `{name}`[{i}]",
    )
