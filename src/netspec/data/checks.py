"""What only the data can tell, checked once per split when the loaders are built: values that
are not finite, class labels a classification loss cannot use, and a first sample that does not
fit the model's declared inputs or its loss's target.

Each check is vectorised over a split's in-memory tensors (one pass, on the CPU, before
training), so the training step never pays for it; a per-sample split whose labels are not
known up front is checked batch by batch as the loader yields it, still on the CPU. A bad
value is one :class:`DataError` naming the file and the line or sample.

>>> from netspec.data.sources import SourceData
>>> from netspec.data.fields import FieldMap
>>> raw = SourceData(("x", "y"), ("value", "label"), tensors=(torch.zeros(3, 2), torch.tensor([0, 4, 1])))
>>> check_classes(raw, FieldMap({"x": 0}, 1), [ClassCount(None, 3, None, "CrossEntropyLoss", "logits", (3,))], ("data",))
Traceback (most recent call last):
netspec.errors.DataError: <spec>: data: y[1]: label 4 is not a class of output `logits` (CrossEntropyLoss: 3 classes, 0..2); fix the label, or give `logits` at least 5 outputs
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import DataError
from .fields import Batch, FieldMap
from .sources import SourceData

__all__ = [
    "ClassCount",
    "Declared",
    "declared_inputs",
    "check_classes",
    "check_finite",
    "check_batch_classes",
    "check_sample",
    "nonfinite_in",
]


@dataclass(frozen=True)
class ClassCount:
    """A classification loss's demand on its target: class indices in ``[0, classes)``.

    ``target`` is the key of the target it reads when the data yields several (None: the only
    one); ``ignore_index`` a value the loss skips (CrossEntropyLoss's -100); ``shape`` the
    output's per-sample shape (a target of that shape holds class probabilities: not checked);
    ``auto``: a loss with a binary and a multi-class form (Dice, Focal) that reads class
    indices only from an integer target with one dimension less than the output.
    """

    target: str | None
    classes: int
    ignore_index: int | None
    loss: str
    output: str
    shape: tuple[int, ...] = ()
    auto: bool = False

    def applies(self, labels: Tensor) -> bool:
        """Whether the loss reads these targets (one row per sample) as class indices."""
        per_sample = tuple(labels.shape[1:])
        if self.auto:
            return not labels.is_floating_point() and len(per_sample) == len(self.shape) - 1
        return not (labels.is_floating_point() and per_sample == self.shape)


def _target_field(fmap: FieldMap, key: str | None) -> int | None:
    """The field the loss reads as its target, as the criterion picks it."""
    if not isinstance(fmap.target, dict):
        return fmap.target
    if key in fmap.target:
        return fmap.target[key]
    return next(iter(fmap.target.values())) if len(fmap.target) == 1 else None


def _labels_of(raw: SourceData, field: int) -> Tensor | None:
    """All values of a target field, when known without reading samples."""
    if raw.tensors is not None:
        return raw.tensors[field]
    return raw.labels if raw.kinds[field] == "label" else None


def _bad_label(labels: Tensor, count: ClassCount) -> tuple[int, str] | None:
    """(sample, what is wrong) of the first sample holding a label the loss cannot use."""
    if not labels.is_floating_point() and labels.numel():
        low, high = torch.aminmax(labels)  # two reductions, no copy of a big mask: the usual case
        if int(low) >= 0 and int(high) < count.classes:
            return None
    per_sample = labels.reshape(len(labels), -1)
    if labels.is_floating_point():
        fractional = (per_sample != per_sample.round()).any(1)  # NaN counts too
        if bool(fractional.any()):
            i = int(fractional.nonzero()[0])
            value = per_sample[i][per_sample[i] != per_sample[i].round()][0].item()
            return i, f"label {value:g} is not a whole number; {count.loss} needs class indices"
        per_sample = per_sample.long()
    ok = (per_sample >= 0) & (per_sample < count.classes)
    if count.ignore_index is not None:
        ok |= per_sample == count.ignore_index
    if bool(ok.all()):
        return None
    i = int((~ok).any(1).nonzero()[0])
    value = int(per_sample[i][~ok[i]][0])
    return i, (
        f"label {value} is not a class of output `{count.output}` ({count.loss}: {count.classes} classes, "
        f"0..{count.classes - 1})"
    )


def _hint(labels: Tensor, count: ClassCount) -> str:
    top = int(labels.max()) if labels.numel() and not labels.is_floating_point() else None
    wider = f", or give `{count.output}` at least {top + 1} outputs" if top is not None and top >= count.classes else ""
    return "fix the label" + wider


def check_classes(raw: SourceData, fmap: FieldMap, counts: list[ClassCount], path: tuple[str, ...]) -> None:
    """DataError at the first label that is not a whole number in ``[0, classes)`` (or the ignore index)."""
    for count in counts:
        field = _target_field(fmap, count.target)
        if field is None:
            continue  # unknown until read (checked per batch)
        labels = _labels_of(raw, field)
        if labels is None or not count.applies(labels):
            continue  # unknown until read (checked per batch), or not class indices
        found = _bad_label(labels, count)
        if found is not None:
            i, what = found
            raise DataError(f"{raw.where(i, raw.names[field])}: {what}", path=path, hint=_hint(labels, count))


def check_batch_classes(target: Any, counts: list[ClassCount], path: tuple[str, ...]) -> None:
    """The same for one batch of a per-sample loader (CPU tensors, before they go to the device).

    >>> check_batch_classes(torch.tensor([0, 2]), [ClassCount(None, 3, None, "NLLLoss", "logp", (3,))], ("data",))
    """
    for count in counts:
        labels = target if not isinstance(target, dict) else target.get(count.target or "", None)
        if labels is None and isinstance(target, dict) and len(target) == 1:
            labels = next(iter(target.values()))
        if not isinstance(labels, Tensor) or not count.applies(labels):
            continue
        found = _bad_label(labels, count)
        if found is not None:
            raise DataError(f"a batch's sample {found[0]}: {found[1]}", path=path, hint=_hint(labels, count))


def check_finite(raw: SourceData, path: tuple[str, ...]) -> None:
    """DataError at the first NaN or infinite value of an in-memory floating-point field.

    >>> from netspec.data.sources import SourceData
    >>> check_finite(SourceData(("x",), ("value",), tensors=(torch.tensor([[0.0], [float("nan")]]),)), ("data",))
    Traceback (most recent call last):
    netspec.errors.DataError: <spec>: data: x[1]: holds nan (a value that is not finite); clean the data: every feature must be a finite number
    """
    for name, t in zip(raw.names, raw.tensors or ()):
        if not t.is_floating_point():
            continue
        bad = ~torch.isfinite(t.reshape(len(t), -1))
        if bool(bad.any()):
            i = int(bad.any(1).nonzero()[0])
            value = t.reshape(len(t), -1)[i][bad[i]][0].item()
            raise DataError(
                f"{raw.where(i, name)}: holds {value} (a value that is not finite)",
                path=path,
                hint="clean the data: every feature must be a finite number",
            )


def nonfinite_in(batch: Batch) -> str | None:
    """``input `x``` when a batch's inputs or target hold NaN or inf (for the NaN-loss message).

    >>> nonfinite_in(({"x": torch.zeros(2)}, torch.tensor([1.0, float("inf")])))
    'target'
    """
    inputs, target = batch
    named = {
        **{f"input `{k}`": v for k, v in inputs.items()},
        **({f"target `{k}`": v for k, v in target.items()} if isinstance(target, dict) else {"target": target}),
    }
    for name, value in named.items():
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


# ---------------------------------------------------------------------------------------------
# The first sample against the model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """A model input as the spec declares it: the per-sample shape and the dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def declared_inputs(model: Any) -> dict[str, Declared]:
    """Per-sample shape and dtype of each input of a compiled netspec model, from its typed graph
    (nothing is run); empty for any other module.

    >>> from netspec.api import build_model
    >>> declared_inputs(build_model({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Linear": {"out_features": 4}}]}))
    {'x': Declared(shape=(3,), dtype=torch.float32)}
    """
    graph = getattr(model, "netspec_graph", None)
    if graph is None:
        return {}
    return {name: Declared(tuple(v.shape[1:]), v.dtype) for name, v in graph.inputs.items() if isinstance(v, Tensor)}


def _dtype_fits(got: torch.dtype, want: torch.dtype) -> bool:
    """Floating-point inputs must be the declared dtype (a float64 input meets float32 weights in
    the first layer and fails); integer inputs (class indices, token ids) any integer dtype."""
    if want.is_floating_point or got.is_floating_point or want == torch.bool or got == torch.bool:
        return got == want
    return True


def _shape_hint(source: Any, split: str, name: str, got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """The likely fix: the source option that makes the declared shape, else the declaration."""
    declare = f"declare `{name}: {list(got)}` in `inputs`"
    kind = getattr(source, "source", None)
    if kind == "ImageFolder" and len(got) == len(want) == 3 and got[1:] == want[1:] and {got[0], want[0]} == {1, 3}:
        mode = "L" if want[0] == 1 else "RGB"
        what = "one channel" if want[0] == 1 else "three channels"
        fix = f"set `mode: {mode}` on" if getattr(source, "mode", None) else f"add `mode: {mode}` to"
        return f"{fix} data.{split} (images read with {what}), or {declare}"
    if kind == "csv" and getattr(source, "image_shape", None) is None and len(want) == 1 and len(got) == 1:
        columns = "every column" if getattr(source, "label", 0) is None else "every column but the label"
        return (
            f"the file has {got[0]} feature columns ({columns}) and `{name}` is declared with "
            f"{want[0]}: {declare}, or check the file and `label:`"
        )
    if kind == "csv" and getattr(source, "image_shape", None) is not None and math.prod(got) == math.prod(want):
        return f"set `image_shape: {list(want)}` on data.{split}, or {declare}"
    if math.prod(got) == math.prod(want) and got and want:
        return f"{declare}, or add a transform that reshapes the samples"
    return f"{declare}, or add transforms that make samples of shape {list(want)}"


def _dtype_hint(source: Any, split: str, name: str, got: torch.dtype, want: torch.dtype) -> str:
    shown = str(got).removeprefix("torch.")
    declare = f"declare `{name}: {{shape: [...], dtype: {shown}}}`"
    if got == torch.uint8 and want.is_floating_point:
        uint8 = f"drop `dtype: uint8` from data.{split}, or " if getattr(source, "dtype", None) == "uint8" else ""
        return f"{uint8}add `ToTensor` to the transforms (uint8 -> float32 in [0, 1])"
    if want.is_floating_point:
        return f"add `{{ToDtype: {{dtype: {str(want).removeprefix('torch.')}}}}}` to the transforms, or {declare}"
    return declare


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(x)


def check_sample(
    sample: tuple[Any, ...],
    raw: SourceData,
    fmap: FieldMap,
    inputs: Mapping[str, Declared],
    counts: list[ClassCount],
    path: tuple[str, ...],
    source: Any = None,
    split: str = "train",
) -> None:
    """DataError when a split's first sample (after its transforms) does not fit the model: an
    input's shape or dtype differs from the declared one, or a classification loss's target is
    not class indices of the output's shape (nor class probabilities) or its label is not a class.
    Cheap: one sample, read anyway to log the shapes; ``source`` (the split's options) picks the hint.

    >>> raw = SourceData(("x", "y"), ("value", "label"), tensors=(torch.zeros(3, 4), torch.tensor([0, 1, 2])))
    >>> declared = {"x": Declared((5,), torch.float32)}
    >>> check_sample((torch.zeros(4), torch.tensor(0)), raw, FieldMap({"x": 0}, 1), declared, [], ("data", "train"))
    Traceback (most recent call last):
    netspec.errors.DataError: <spec>: data.train: x[0]: samples of `x` have shape [4] but the model's input `x` is declared [5]; declare `x: [4]` in `inputs`, or add transforms that make samples of shape [5]
    """
    for name, field in fmap.inputs.items():
        want = inputs.get(name)
        if want is None:
            continue
        x = _as_tensor(sample[field])
        where = raw.where(0, raw.names[field])
        if tuple(x.shape) != want.shape:
            raise DataError(
                f"{where}: samples of `{raw.names[field]}` have shape {list(x.shape)} but the model's "
                f"input `{name}` is declared {list(want.shape)}",
                path=path,
                hint=_shape_hint(source, split, name, tuple(x.shape), want.shape),
            )
        if not _dtype_fits(x.dtype, want.dtype):
            got, declared = (str(d).removeprefix("torch.") for d in (x.dtype, want.dtype))
            raise DataError(
                f"{where}: samples of `{raw.names[field]}` are {got} but the model's input `{name}` is "
                f"declared {declared}",
                path=path,
                hint=_dtype_hint(source, split, name, x.dtype, want.dtype),
            )
    _check_sample_target(sample, raw, fmap, counts, path)


def _check_sample_target(
    sample: tuple[Any, ...], raw: SourceData, fmap: FieldMap, counts: list[ClassCount], path: tuple[str, ...]
) -> None:
    """A classification loss's target: class indices of the output's shape without its class
    dimension (a trailing size-1 dimension squeezed), or float class probabilities of its shape."""
    for count in counts:
        field = _target_field(fmap, count.target)
        if field is None or count.auto:  # Dice/Focal in auto mode read either form: the first batch decides
            continue
        y = _as_tensor(sample[field])
        shape, want = tuple(y.shape), count.shape[1:]
        indices = not y.is_floating_point() or shape != count.shape
        if indices and shape not in (want, (1, *want)) and not (want == () and shape == (1,)):
            raise DataError(
                f"{raw.where(0, raw.names[field])}: targets of {count.loss} on output `{count.output}` "
                f"are class indices of shape {list(want)} (or class probabilities of shape "
                f"{list(count.shape)}), but samples of `{raw.names[field]}` have shape {list(shape)}",
                path=path,
                hint="check `fields: {target: ...}` and the loss, or the output's shape",
            )
        if indices:
            found = _bad_label(y.reshape(1, -1), count)
            if found is not None:
                raise DataError(
                    f"{raw.where(0, raw.names[field])}: {found[1]}", path=path, hint=_hint(y.reshape(1, -1), count)
                )
