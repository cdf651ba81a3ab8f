"""``weight: balanced``: the class weights of a loss computed from the training labels.

A loss whose class weights are the string ``balanced`` (CrossEntropyLoss, NLLLoss and
MultiMarginLoss ``weight``, BCEWithLogitsLoss ``pos_weight``) is checked when the spec is loaded
and gets its tensor when the criterion is built, from the training split's samples per class
(``Loaders.info["class_counts"]``), by the formula the sampler's ``class_weights: balanced`` uses
(:func:`netspec.data.samplers.balanced_class_weights`, scikit-learn's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import DataError, SpecError, did_you_mean
from ..nodes.registry import SpecPath

if TYPE_CHECKING:
    from .spec import LossSpec

__all__ = ["BALANCED", "BALANCED_ARGS", "check_balanced", "needs_class_counts", "balanced_arguments"]
BALANCED = "balanced"

#: The loss arguments that take ``balanced``: class weights from the training labels.
BALANCED_ARGS = {
    ("CrossEntropyLoss", "weight"),
    ("NLLLoss", "weight"),
    ("MultiMarginLoss", "weight"),
    ("BCEWithLogitsLoss", "pos_weight"),
}


def check_balanced(spec: LossSpec, path: SpecPath) -> None:
    """A string where a loss takes class weights is ``balanced``, and only where it means something.

    >>> from netspec.training.spec import LossSpec
    >>> check_balanced(LossSpec.model_construct(name="CrossEntropyLoss", args={"weight": "balance"}), ())
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: args.weight: `weight: balance`: give one weight per class, or `balanced`; did you mean `balanced`?
    """
    for key, value in spec.args.items():
        if key not in ("weight", "pos_weight") or not isinstance(value, str):
            continue
        where = (*spec.args_path(path), key)
        if value != BALANCED:
            raise SpecError(
                f"`{key}: {value}`: give one weight per class, or `{BALANCED}`",
                path=where,
                hint=did_you_mean(value, [BALANCED]),
            )
        if (spec.name, key) not in BALANCED_ARGS:
            raise SpecError(
                f"`{key}: balanced` is for class weights: the `weight` of CrossEntropyLoss, NLLLoss and "
                "MultiMarginLoss, the `pos_weight` of BCEWithLogitsLoss",
                path=where,
                hint="write `pos_weight: balanced`" if spec.name == "BCEWithLogitsLoss" else None,
            )


def needs_class_counts(spec: LossSpec | None) -> bool:
    """Whether a ``loss:`` section has a ``balanced`` argument (the training labels must be counted).

    >>> from netspec.training.spec import LossSpec
    >>> needs_class_counts(LossSpec.model_validate({"sum": ["MSELoss", {"NLLLoss": {"weight": "balanced"}}]}))
    True
    """
    if spec is None:
        return False
    subs = list(spec.sum or []) + list((spec.outputs or {}).values())
    return BALANCED in spec.args.values() or any(needs_class_counts(s) for s in subs)


def balanced_arguments(
    term: Any, counts: list[int] | None, shapes: dict[str, tuple[int, ...]]
) -> Callable[[str], Tensor] | None:
    """The tensor of a term's (:class:`~netspec.training.criterion.Criterion`'s) ``balanced`` argument, from the training split's samples per class
    (:func:`~netspec.data.samplers.balanced_class_weights`, scikit-learn's formula): one weight per
    class of the output (0 for a class without samples); ``pos_weight``: w_1 / w_0, which is
    n_negative / n_positive."""
    if BALANCED not in term.spec.args.values():
        return None
    from ..data.samplers import balanced_class_weights

    def tensor(key: str) -> Tensor:
        where = (*term.spec.args_path(term.path), key)
        if not counts:
            raise DataError(
                f"`{key}: balanced` needs the class of every training sample; the training data gives none",
                path=where,
                hint="give `data.train` a class-index target, or list the weights",
            )
        weights = balanced_class_weights(torch.tensor(counts))  # (classes seen,) float64
        if key == "pos_weight":
            if len(counts) != 2 or 0 in counts:
                raise DataError(
                    f"`pos_weight: balanced` needs 0/1 labels with both classes; the training split counts {counts}",
                    path=where,
                )
            return (weights[1] / weights[0]).reshape(1).float()  # (1,) n_negative / n_positive
        shape = shapes.get(term.output, ())
        size = shape[0] if shape else len(counts)  # the output's class dimension
        return torch.cat([weights, weights.new_zeros(max(0, size - len(weights)))]).float()  # (C,)

    return tensor
