"""What only the data can tell, checked once per split when the loaders are built: values that
are not finite, and class labels a classification loss cannot use.

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

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import DataError
from .fields import Batch, FieldMap
from .sources import SourceData

__all__ = ["ClassCount", "check_classes", "check_finite", "check_batch_classes", "nonfinite_in"]


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
    return i, (f"label {value} is not a class of output `{count.output}` ({count.loss}: {count.classes} classes, "
               f"0..{count.classes - 1})")


def _hint(labels: Tensor, count: ClassCount) -> str:
    top = int(labels.max()) if labels.numel() and not labels.is_floating_point() else None
    wider = f", or give `{count.output}` at least {top + 1} outputs" if top is not None and top >= count.classes else ""
    return "fix the label" + wider


def check_classes(raw: SourceData, fmap: FieldMap, counts: list[ClassCount], path: tuple[str, ...]) -> None:
    """DataError at the first label that is not a whole number in ``[0, classes)`` (or the ignore index)."""
    for count in counts:
        field = _target_field(fmap, count.target)
        labels = _labels_of(raw, field) if field is not None else None
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
    for field, (name, t) in enumerate(zip(raw.names, raw.tensors or ())):
        if not t.is_floating_point():
            continue
        bad = ~torch.isfinite(t.reshape(len(t), -1))
        if bool(bad.any()):
            i = int(bad.any(1).nonzero()[0])
            value = t.reshape(len(t), -1)[i][bad[i]][0].item()
            raise DataError(f"{raw.where(i, name)}: holds {value} (a value that is not finite)", path=path,
                            hint="clean the data: every feature must be a finite number")


def nonfinite_in(batch: Batch) -> str | None:
    """``input `x``` when a batch's inputs or target hold NaN or inf (for the NaN-loss message).

    >>> nonfinite_in(({"x": torch.zeros(2)}, torch.tensor([1.0, float("inf")])))
    'target'
    """
    inputs, target = batch
    named = {**{f"input `{k}`": v for k, v in inputs.items()},
             **({f"target `{k}`": v for k, v in target.items()} if isinstance(target, dict) else {"target": target})}
    for name, value in named.items():
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None
