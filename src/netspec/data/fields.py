"""Which field of a sample is which: model inputs, target, class labels; the validation split.

A source gives samples as tuples of fields (``("image", "label")``); :func:`resolve_fields`
maps the model's inputs and the target onto them once, and the resulting :class:`FieldMap`
turns every collated batch into ``(inputs by name, target)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import DataError, did_you_mean
from .sources import SourceData
from .spec import FieldRef, FieldsSpec

__all__ = [
    "Batch",
    "FieldMap",
    "resolve_fields",
    "split_indices",
    "class_labels",
    "class_counts_of",
    "describe_sample",
]

#: One batch: model inputs by name, and the target (or targets by output name).
Batch = tuple[dict[str, Tensor], Tensor | dict[str, Tensor]]


def split_indices(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train, val) indices: a seeded permutation, the first ``round(n * fraction)`` to val, both sorted.

    >>> tr, va = split_indices(10, 0.2, seed=0)
    >>> len(tr), len(va), sorted(tr.tolist() + va.tolist()) == list(range(10))
    (8, 2, True)
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * fraction)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


@dataclass(frozen=True)
class FieldMap:
    """Field index of each model input and of the target(s).

    >>> fmap = FieldMap({"x": 0}, 1)
    >>> fmap([torch.zeros(2, 3), torch.ones(2)])[1].tolist()
    [1.0, 1.0]
    """

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
        target = {k: names[i] for k, i in self.target.items()} if isinstance(self.target, dict) else names[self.target]
        return {"inputs": {k: names[i] for k, i in self.inputs.items()}, "target": target}


def _field_index(ref: FieldRef, names: tuple[str, ...], where: tuple[str | int, ...]) -> int:
    """The index of field ``ref`` (an index, negative from the end, or a name) among ``names``."""
    if isinstance(ref, int):
        if not -len(names) <= ref < len(names):
            raise DataError(
                f"field {ref} is out of range: samples have {len(names)} fields ({', '.join(names)})",
                path=("data", "fields", *where),
            )
        return ref % len(names)
    if ref.isdigit():
        return _field_index(int(ref), names, where)
    if ref not in names:
        raise DataError(
            f"no field `{ref}`: samples have fields {', '.join(names)}",
            path=("data", "fields", *where),
            hint=did_you_mean(ref, names),
        )
    return names.index(ref)


def _mapped_inputs(spec: FieldsSpec, names: tuple[str, ...], input_names: list[str]) -> dict[str, int]:
    """The inputs ``fields.inputs`` maps: every model input exactly, by field index or name."""
    assert spec.inputs is not None
    unknown = [k for k in spec.inputs if k not in input_names]
    if unknown:
        hint = did_you_mean(unknown[0], input_names)
        raise DataError(
            f"the model has no input `{unknown[0]}` (inputs: {', '.join(input_names)})",
            path=("data", "fields", "inputs", unknown[0]),
            hint=hint,
        )
    missing = [k for k in input_names if k not in spec.inputs]
    if missing:
        raise DataError(
            f"model input `{missing[0]}` is fed by no field; add it to `fields.inputs`",
            path=("data", "fields", "inputs"),
        )
    return {k: _field_index(spec.inputs[k], names, ("inputs", k)) for k in input_names}


def resolve_fields(spec: FieldsSpec | None, names: tuple[str, ...], input_names: list[str]) -> FieldMap:
    """Map the model's inputs and the target to field indices (see :class:`FieldsSpec` for defaults).

    >>> resolve_fields(None, ("f1", "f2", "label"), ["image", "extra"])
    FieldMap(inputs={'image': 0, 'extra': 1}, target=2)
    """
    spec = spec or FieldsSpec()
    if isinstance(spec.target, dict):
        targets = {k: _field_index(v, names, ("target", k)) for k, v in spec.target.items()}
        target: int | dict[str, int] = targets
        used = set(targets.values())
    else:
        target = _field_index(spec.target, names, ("target",)) if spec.target is not None else len(names) - 1
        used = {target}
    if spec.inputs is not None:
        return FieldMap(_mapped_inputs(spec, names, input_names), target)
    if input_names and all(name in names for name in input_names):
        return FieldMap({k: names.index(k) for k in input_names}, target)
    rest = [i for i in range(len(names)) if i not in used]
    if len(rest) != len(input_names):
        raise DataError(
            f"samples have {len(rest)} field(s) besides the target "
            f"({', '.join(names[i] for i in rest) or 'none'}) "
            f"but the model has {len(input_names)} input(s) ({', '.join(input_names)})",
            path=("data", "fields"),
            hint="map them with `fields: {inputs: {...}, target: ...}`",
        )
    return FieldMap(dict(zip(input_names, rest)), target)


def class_labels(raw: SourceData, fmap: FieldMap) -> Tensor | None:
    """Class index per sample ``(N,)``, from the source or from an integer 1-D target field.

    >>> raw = SourceData(("x", "y"), ("value", "label"), tensors=(torch.zeros(3, 2), torch.tensor([2, 0, 1])))
    >>> class_labels(raw, FieldMap({"x": 0}, 1)).tolist()
    [2, 0, 1]
    """
    if raw.labels is not None:
        return raw.labels
    if raw.tensors is not None and not isinstance(fmap.target, dict):
        t = raw.tensors[fmap.target]
        if t.dim() == 1 and not t.is_floating_point():
            return t.long()
    return None


def class_counts_of(raw: SourceData, fmap: FieldMap) -> list[int] | None:
    """Samples per class ``[n_0, n_1, ...]`` of a split (labels below 0, an ``ignore_index``, not
    counted), from integer class labels or 0/1... float labels of one value per sample (BCE's);
    None when the target is no class.

    >>> raw = SourceData(("x", "y"), ("value", "value"), tensors=(torch.zeros(4, 2), torch.tensor([[1.0], [0.0], [1.0], [1.0]])))
    >>> class_counts_of(raw, FieldMap({"x": 0}, 1))
    [1, 3]
    """
    labels = class_labels(raw, fmap)
    if labels is None and raw.tensors is not None and not isinstance(fmap.target, dict):
        t = raw.tensors[fmap.target].reshape(len(raw), -1)  # (N, values per sample)
        if t.shape[1] == 1 and t.is_floating_point() and bool((t == t.round()).all()):
            labels = t[:, 0].long()
    if labels is None:
        return None
    return torch.bincount(labels[labels >= 0]).tolist()


def describe_sample(fields: Iterable[Any], names: tuple[str, ...]) -> str:
    """``image 1x28x28 uint8, label int`` for error messages.

    >>> describe_sample((torch.zeros(1, 28, 28, dtype=torch.uint8), 3), ("image", "label"))
    'image 1x28x28 uint8, label int'
    """
    parts = []
    for name, x in zip(names, fields):
        if isinstance(x, Tensor):
            parts.append(f"{name} {'x'.join(map(str, x.shape)) or 'scalar'} {str(x.dtype).removeprefix('torch.')}")
        else:
            parts.append(f"{name} {type(x).__name__}")
    return ", ".join(parts)
