"""``netspec predict``: a trained model on image files, folders, CSV rows or tensor files.

Inputs are prepared as the spec's evaluation data is: images are decoded (RGB or grayscale, as
the model's input has 3 or 1 channels, or as an image-folder source says) and put through the
evaluation transforms (``data.eval_transforms``, else ``data.transforms`` without the random
ones, else ToTensor); CSV rows follow the spec's csv source (label column, image shape, scale,
dtype), a label column being dropped when the rows have one value more than the input takes;
tensor files give arrays named like the model's inputs (or as ``data.fields.inputs`` maps
them). Samples are batched (consecutive samples of one shape), images decoded a batch at a
time; :mod:`netspec.interop.scores` turns outputs into rows.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..data.readers import first_line, read_csv, read_tensor_file, show_path
from ..errors import DataError, SpecError
from ..files.access import not_regular
from .scores import rows_of

if TYPE_CHECKING:  # for _Predicting's fields; the training package loads when a prediction runs
    from torch import nn

    from ..training.hardware import Hardware

__all__ = ["predict_rows", "write_predictions", "eval_transform_items", "gather"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
TENSOR_SUFFIXES = (".npz", ".pt", ".pth", ".safetensors")


@dataclass
class Sample:
    """One input to predict on: an id for the CSV, and its model inputs (read when needed)."""

    id: str
    load: Callable[[], dict[str, Tensor]]


def eval_transform_items(data: Any, default: list[Any] | None = None) -> list[Any]:
    """The spec's evaluation transforms, as ``build_loaders`` picks them for decoded images,
    but ``Standardize`` (the model that predicts standardises its own inputs)
    (``default``: the model's weights' transforms, for a data section that names none).

    >>> from netspec.data.spec import DataSpec
    >>> eval_transform_items(DataSpec.model_validate({"train": {"source": "random"},
    ...                      "transforms": ["RandomHorizontalFlip", "ToTensor"]}))
    ['ToTensor']
    """
    from ..data.transforms import drop_random, transform_name

    if default is not None:
        return list(default)
    if data is None:
        return ["ToTensor"]
    if data.eval_transforms is not None:
        items = list(data.eval_transforms)
    else:
        items = drop_random(data.transforms) if data.transforms is not None else ["ToTensor"]
    # Standardize: the model applies the checkpoint's statistics (interop.run.with_standardize)
    return [item for item in items if transform_name(item) != "Standardize"]


# ---------------------------------------------------------------------------------------------
# Inputs -> samples
# ---------------------------------------------------------------------------------------------


class _Context:
    """What reading inputs needs from the trained model: input names and shapes, transforms."""

    def __init__(self, trained: Any) -> None:
        from ..data import transforms as T

        graph, data = trained.compiled.graph, getattr(trained.spec, "data", None)
        self.inputs = {n: (tuple(v.shape[1:]), v.dtype) for n, v in graph.inputs.items()}
        self.data = data
        from ..data.preprocessing import default_items

        self.transform = T.compose(eval_transform_items(data, default_items(trained.spec)))
        self._T = T

    def transformed(self, x: Tensor) -> Tensor:
        """An image (C x H x W) through the evaluation transforms."""
        if self.transform is None:
            return x
        return self._T.apply(self.transform, (x,), ("image",))[0]

    def only_input(self, what: str) -> str:
        if len(self.inputs) != 1:
            raise DataError(
                f"{what} feed a model with one input; this one has {', '.join(self.inputs)}",
                hint="give a .npz, .safetensors or .pt file with one array per input, named like the inputs",
            )
        return next(iter(self.inputs))

    def image_mode(self) -> str:
        source: Any = getattr(self.data, "train", None)  # a source's options, or None
        folder = getattr(source, "source", None) == "ImageFolder"
        if folder and source.mode is not None:
            return source.mode
        shape = self.inputs[self.only_input("images")][0]
        channels = shape[0] if shape else 0
        if folder:  # the mode training read the folder in (ImageFolder's default follows the channels)
            return "L" if channels == 1 else "RGB"
        return {1: "L", 3: "RGB", 4: "RGBA"}.get(channels, "RGB")


def _image(path: Path, name: str, mode: str, ctx: _Context) -> dict[str, Tensor]:
    """An image decoded as training decodes one (:class:`~netspec.data.sources.files.ImageFiles`):
    a header declaring more than PIL's pixel limit is refused before decoding."""
    from ..data.sources.base import BadSample
    from ..data.sources.files import ImageFiles

    if (why := not_regular(path)) is not None:  # checked again: a file may change after it was listed
        raise DataError(f"{show_path(path)}: {why}")
    decoded = ImageFiles([(str(path), 0)], mode)[0]
    if isinstance(decoded, BadSample):
        raise DataError(decoded.message)
    return {name: ctx.transformed(decoded[0])}


def _image_samples(paths: list[Path], ctx: _Context) -> list[Sample]:
    name, mode = ctx.only_input("images"), ctx.image_mode()
    return [Sample(show_path(p), partial(_image, p, name, mode, ctx)) for p in paths]


def _csv_samples(path: Path, ctx: _Context) -> list[Sample]:
    """Rows of a CSV file, read with the spec's csv source options when it has one."""
    from ..data.sources.files import (  # the csv source's own rules
        CSVSource,
        _check_finite,
        _csv_features,
        _label_column,
    )

    name = ctx.only_input("CSV rows")
    shape, dtype = ctx.inputs[name]
    source = getattr(ctx.data, "train", None)
    opts = (
        source
        if isinstance(source, CSVSource)
        else CSVSource(source="csv", path=str(path), label=None, image_shape=list(shape) if len(shape) > 1 else None)
    )
    header, table = read_csv(path, delimiter=opts.delimiter, header=opts.header)
    _check_finite(path, table, 1 if header is not None else 0)  # as training refuses it: at the line and column
    wanted = math.prod(shape)
    if table.shape[1] == wanted + 1 and opts.label is not None:
        label = _label_column(opts, path, header, table.shape[1])
        table = table[:, [c for c in range(table.shape[1]) if c != label]]
    if table.shape[1] != wanted:
        raise DataError(
            f"{show_path(path)}: rows have {table.shape[1]} values, but input `{name}` takes {wanted} "
            f"({'x'.join(map(str, shape)) or 'scalar'})" + (" plus a label column" if opts.label is not None else "")
        )
    x, kind = _csv_features(
        opts.model_copy(update={"image_shape": list(shape) if len(shape) > 1 else None}), path, table
    )
    x = x.reshape(len(x), *shape)
    first = 2 if header is not None else 1
    return [Sample(f"{show_path(path)}:{first + i}", _row_loader(x, i, name, dtype, kind, ctx)) for i in range(len(x))]


def _row_loader(
    x: Tensor, i: int, name: str, dtype: torch.dtype, kind: str, ctx: _Context
) -> Callable[[], dict[str, Tensor]]:
    def load() -> dict[str, Tensor]:
        row = ctx.transformed(x[i]) if kind == "image" else x[i]
        return {name: row.to(dtype) if row.is_floating_point() == dtype.is_floating_point else row}

    return load


def _tensor_samples(path: Path, ctx: _Context) -> list[Sample]:
    """Samples of a .npz/.safetensors/.pt file: one array per model input, matched by name."""
    names, tensors = read_tensor_file(path, None)
    arrays = dict(zip(names, tensors))
    fields = getattr(getattr(ctx.data, "fields", None), "inputs", None) or {}
    chosen: dict[str, Tensor] = {}
    for model_input in ctx.inputs:
        ref = fields.get(model_input, model_input)
        if isinstance(ref, int) or str(ref).isdigit():
            ref = names[int(ref)] if int(ref) < len(names) else str(ref)
        if ref in arrays:
            chosen[model_input] = arrays[ref]
        elif len(ctx.inputs) == 1 and len(arrays) == 1:
            chosen[model_input] = tensors[0]
        else:
            raise DataError(
                f"{show_path(path)}: no array for input `{model_input}` (arrays: {', '.join(names)})",
                hint="name the arrays like the model's inputs: " + ", ".join(ctx.inputs),
            )
    _check_finite_arrays(path, chosen, names, arrays)
    n = len(next(iter(chosen.values())))

    def load(i: int) -> dict[str, Tensor]:
        out = {}
        for k, t in chosen.items():
            x = ctx.transformed(t[i]) if t.dim() == 4 else t[i]
            want = ctx.inputs[k][1]
            out[k] = x.to(want) if x.is_floating_point() == want.is_floating_point else x
        return out

    return [Sample(f"{show_path(path)}[{i}]", partial(load, i)) for i in range(n)]


def _check_finite_arrays(path: Path, chosen: dict[str, Tensor], names: list[str], arrays: dict[str, Tensor]) -> None:
    """NaN or inf in an input array is refused, as in training data, naming the file, array and sample."""
    from ..data.checks import check_finite
    from ..data.sources.base import SourceData

    by_tensor = {id(t): n for n, t in arrays.items()}
    shown = tuple(by_tensor.get(id(t), k) for k, t in chosen.items())
    raw = SourceData(
        shown,
        ("value",) * len(chosen),
        tensors=tuple(chosen.values()),
        locate=lambda i, array: f"{show_path(path)}: array `{array}`, sample {i}",
    )
    check_finite(raw, ())


def _row(inputs: dict[str, Any], i: int) -> dict[str, Tensor]:
    return {k: v[i] for k, v in inputs.items()}


def gather(inputs: Any, ctx: _Context) -> list[Sample]:
    """Samples of everything named: files, folders (their images, sorted), tensors."""
    if isinstance(inputs, Tensor):
        inputs = {ctx.only_input("a tensor"): inputs}
    if isinstance(inputs, dict):
        n = len(next(iter(inputs.values())))
        return [Sample(str(i), partial(_row, inputs, i)) for i in range(n)]
    samples: list[Sample] = []
    for item in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        path = Path(item)
        if path.is_dir():
            samples += _image_samples(_folder_images(path), ctx)
            continue
        if (why := not_regular(path)) is not None:  # a FIFO would block, /dev/zero never end
            raise DataError(f"{show_path(path)}: {'no such file or folder' if why == 'no such file' else why}")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            samples += _image_samples([path], ctx)
        elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
            samples += _csv_samples(path, ctx)
        elif path.suffix.lower() in TENSOR_SUFFIXES:
            samples += _tensor_samples(path, ctx)
        else:
            raise DataError(
                f"{show_path(path)}: not an image, CSV or tensor file (.npz, .safetensors, .pt)",
                hint="image files end in " + ", ".join(IMAGE_SUFFIXES),
            )
    return samples


def _folder_images(folder: Path) -> list[Path]:
    """A folder's image files, sorted; one that is not a regular file (a FIFO) is refused, not skipped."""
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    for p in found:
        if (why := not_regular(p)) is not None:
            raise DataError(f"{show_path(p)}: {why}")
    if not found:
        raise DataError(f"{show_path(folder)}: no image files in this folder ({', '.join(IMAGE_SUFFIXES)})")
    return found


# ---------------------------------------------------------------------------------------------
# Samples -> batches -> rows
# ---------------------------------------------------------------------------------------------


def _batches(samples: list[Sample], size: int) -> Iterator[tuple[list[str], dict[str, Tensor]]]:
    """Consecutive samples of one shape, stacked, at most ``size`` at a time."""
    ids: list[str] = []
    pending: list[dict[str, Tensor]] = []
    for sample in samples:
        x = sample.load()
        if pending and (len(pending) == size or any(x[k].shape != pending[0][k].shape for k in x)):
            yield ids, {k: torch.stack([p[k] for p in pending]) for k in pending[0]}
            ids, pending = [], []
        ids.append(sample.id)
        pending.append(x)
    if pending:
        yield ids, {k: torch.stack([p[k] for p in pending]) for k in pending[0]}


@dataclass
class _Predicting:
    """What :func:`netspec.training.evaluate.forward` reads of a run, for a prediction."""

    model: nn.Module
    input_names: list[str]
    output_names: list[str]
    hw: Hardware


def _forward(trained: Any, ids: list[str], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The model's outputs by name; a failing forward is one line naming the first input."""
    from ..training.evaluate import forward
    from ..training.hardware import Hardware

    run = _Predicting(
        model=trained.model,
        input_names=list(trained.compiled.graph.inputs),
        output_names=list(trained.spec.output_names),
        hw=Hardware(trained.device),
    )
    inputs = {k: v.to(trained.device) for k, v in batch.items()}
    try:
        with torch.no_grad():
            return forward(run, inputs)
    except (RuntimeError, ValueError) as e:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in batch.items())
        raise DataError(
            f"{ids[0]}: the model cannot take this input ({shapes}): {first_line(e)}",
            hint="check the evaluation transforms (a Resize to the spec's input size?)",
        ) from None


def predict_rows(
    trained: Any,
    inputs: Any,
    *,
    output: str | None = None,
    top_k: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> Iterator[dict[str, Any]]:
    """Predictions for ``inputs`` (see :meth:`TrainedModel.predict`), one dict per sample."""
    ctx = _Context(trained)
    reading = trained.reading(output)
    data = ctx.data
    size = batch_size or (data.loader.eval_batch_size or data.batch_size if data is not None else 64)
    samples = gather(inputs, ctx)
    bar = _progress(len(samples), size, progress)
    try:
        for ids, batch in _batches(samples, size):
            outputs = _forward(trained, ids, batch)
            yield from rows_of(reading, outputs[reading.output], ids, trained.classes, top_k)
            bar.update(len(ids))
    finally:
        bar.close()


def _progress(total: int, batch_size: int, wanted: bool) -> Any:
    """A tqdm bar on stderr for more than one batch (tqdm leaves it out when stderr is no terminal)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="sample",
        file=sys.stderr,
        leave=False,
        disable=None if wanted and total > batch_size else True,
    )


# ---------------------------------------------------------------------------------------------
# Rows -> CSV and mask images
# ---------------------------------------------------------------------------------------------


def _save_mask(mask: Tensor, folder: Path, sample_id: str, taken: set[str], inputs: set[str]) -> Path:
    """A mask of class indices as a PNG with a palette: the pixel values are the classes, and
    viewers show them in distinct colours. Never written over an input (``inputs``: real paths)."""
    import os

    from PIL import Image

    from ..files.outputs import atomic_file, output_path

    stem = Path(sample_id.split(":")[0].split("[")[0]).stem or "mask"
    name, n = f"{stem}.png", 2
    while name in taken:
        name, n = f"{stem}_{n}.png", n + 1
    taken.add(name)
    target = output_path(folder / name, option="--out", force=True)  # a link or a folder there: refused
    if os.path.realpath(target) in inputs:
        raise SpecError(
            f"{show_path(target)} is an input of this command; writing its mask there would destroy it",
            path=("--out",),
            hint="give the masks another folder with --out DIR",
        )
    image = Image.fromarray(mask.numpy(), mode="P")
    palette = [0, 0, 0, 255, 255, 255] + [(37 * i) % 256 for i in range(3 * 254)]
    image.putpalette(palette)
    with atomic_file(target) as tmp:
        image.save(tmp)
    return target


def _input_files(inputs: Any) -> set[str]:
    """The real paths of every file the inputs name (the files inside folders too)."""
    import os

    found: set[str] = set()
    for item in [inputs] if isinstance(inputs, (str, Path)) else inputs or []:
        path = Path(item)
        files = path.rglob("*") if path.is_dir() else [path]
        found.update(os.path.realpath(f) for f in files)
    return found


def _mask_folder(out: str | Path, force: bool) -> Path:
    """The folder for masks; one that already holds predictions or PNGs is reused only with --force."""
    folder = Path(out)
    if not force and folder.is_dir():
        old = next((p for p in sorted(folder.iterdir()) if p.name == "predictions.csv" or p.suffix == ".png"), None)
        if old is not None:
            raise SpecError(
                f"{show_path(folder)} already holds predictions ({old.name})",
                path=("--out",),
                hint="pass --force to replace them, or choose another folder",
            )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_predictions(
    rows: Iterator[dict[str, Any]],
    out: str | Path | None,
    *,
    masks: bool = False,
    force: bool = True,
    inputs: Any = None,
) -> int:
    """Write rows as CSV to ``out`` (stdout when None). With ``masks``, ``out`` is a folder that
    gets a PNG per mask and ``predictions.csv`` naming them. Returns the number of rows.

    The CSV is written to a temp file renamed into place at the end, so the inputs are read
    before an old file of that name is replaced, and a failure leaves no half-written file.
    ``force=False``: a mask folder holding earlier predictions is refused; ``inputs``: what the
    command reads (a mask is never written over one).

    >>> import io, contextlib
    >>> with contextlib.redirect_stdout(io.StringIO()) as f:
    ...     n = write_predictions(iter([{"input": "a.png", "class": 3}]), None)
    >>> n, f.getvalue().splitlines()
    (1, ['input,class', 'a.png,3'])
    """
    from ..files.outputs import atomic_file

    folder = None
    if masks:
        if out is None:
            raise SpecError(
                "this model predicts masks: give a folder for the mask images with --out DIR", path=("--out",)
            )
        folder, out = _mask_folder(out, force), Path(out) / "predictions.csv"
    if out is None:
        return _write_rows(rows, sys.stdout, folder, set())
    with atomic_file(out) as tmp, open(tmp, "x", newline="", encoding="utf-8") as handle:
        return _write_rows(rows, handle, folder, _input_files(inputs) if folder is not None else set())


def _write_rows(rows: Iterator[dict[str, Any]], handle: Any, folder: Path | None, inputs: set[str]) -> int:
    taken: set[str] = set()
    writer, count = None, 0
    for row in rows:
        if "mask" in row:
            assert folder is not None
            row = {"input": row["input"], "mask": str(_save_mask(row["mask"], folder, row["input"], taken, inputs))}
        if writer is None:
            writer = csv.DictWriter(handle, fieldnames=list(row), lineterminator="\n")
            writer.writeheader()
        writer.writerow(row)
        count += 1
    return count
