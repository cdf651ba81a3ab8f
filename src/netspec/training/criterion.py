"""The criterion a spec's ``loss:`` section compiles to: its named losses planned (the output each
reads, with its weight; :func:`plan_terms`), the target each compares with, and the module that
sums them (:class:`Criterion`). What each loss is, and how a target is adapted to it, is
:mod:`netspec.training.losses`.

>>> import torch
>>> from netspec.training.spec import LossSpec
>>> crit = build_criterion(LossSpec.model_validate("BCELoss"), ["prob"])
>>> float(crit({"prob": torch.full((4, 1), 0.5)}, torch.tensor([0, 1, 0, 1])))  # doctest: +ELLIPSIS
0.693...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from torch import Tensor

from ..data.checks import ClassCount
from ..errors import DataError, SpecError, did_you_mean
from ..nodes.registry import SpecPath
from .class_weights import balanced_arguments
from .losses import LOSSES, DiceBCELoss, DiceLoss, FocalLoss, IoULoss, adapt_target, construct_loss

if TYPE_CHECKING:
    from .spec import LossSpec

__all__ = ["plan_terms", "pick_output", "pick_target", "Criterion", "build_criterion", "class_counts"]


@dataclass
class _Term:
    """One named loss of a ``loss:`` section, bound to an output, with its total weight."""

    spec: LossSpec
    path: SpecPath
    weight: float
    output: str  # what it reads first: an output, or (under `terms:`) a model or loss node
    reads_target: bool = True  # False: `from: [a, b]` compares two values, not one with the target

    @property
    def name(self) -> str:
        """The loss's name (a term is one named loss, never a sum or a loss per output)."""
        assert self.spec.name is not None
        return self.spec.name


def plan_terms(spec: LossSpec, output_names: list[str], path: SpecPath = ("loss",)) -> list[_Term]:
    """The named losses of a ``loss:`` section, each with the output it reads and its weight.

    Raises SpecError for an output that does not exist, or for a loss that does not say which
    output it reads when the model has several.

    >>> from netspec.training.spec import LossSpec
    >>> spec = LossSpec.model_validate({"sum": ["CrossEntropyLoss", {"Dice": {}, "weight": 0.5}]})
    >>> [(t.spec.name, t.weight, t.output) for t in plan_terms(spec, ["logits"])]
    [('CrossEntropyLoss', 1.0, 'logits'), ('Dice', 0.5, 'logits')]
    """
    return _terms(spec, output_names, path, weight=1.0, output=None)


def _terms(spec: LossSpec, outputs: list[str], path: SpecPath, weight: float, output: str | None) -> list[_Term]:
    weight *= spec.weight
    if spec.terms is not None:  # the loss graph's names are checked by loss_graph.check_names
        return [
            _Term(sub, (*path, "terms", name), weight * sub.weight, sub.reads()[0], len(sub.reads()) == 1)
            for name, sub in spec.terms.items()
            if sub.name is not None  # a loss-graph value reduced to a number is no registry loss
        ]
    output = _own_output(spec, output, path)
    if spec.sum is not None:
        return [t for i, s in enumerate(spec.sum) for t in _terms(s, outputs, (*path, "sum", i), weight, output)]
    if spec.outputs is not None:
        terms = []
        for name, sub in spec.outputs.items():
            _check_output(name, outputs, (*path, "outputs", name))
            terms += _terms(sub, outputs, (*path, "outputs", name), weight, name)
        return terms
    output = pick_output(
        output,
        outputs,
        path,
        "loss",
        hint=f"add `output: {outputs[0]}` or write `loss: {{outputs: {{{outputs[0]}: ...}}}}`",
    )
    return [_Term(spec, path, weight, output)]


def _own_output(spec: LossSpec, inherited: str | None, path: SpecPath) -> str | None:
    if spec.output is None:
        return inherited
    if inherited is not None and spec.output != inherited:
        raise SpecError(
            f"this loss sits under output `{inherited}` but says `output: {spec.output}`", path=(*path, "output")
        )
    return spec.output


def pick_output(output: str | None, outputs: list[str], path: SpecPath, what: str, hint: str) -> str:
    """The model output a loss or metric reads: the one named, or the only one.

    >>> pick_output(None, ["logits"], ("loss",), "loss", "")
    'logits'
    """
    if output is None:
        if len(outputs) != 1:
            raise SpecError(
                f"the model has {len(outputs)} outputs ({', '.join(outputs)}); say which one this {what} reads",
                path=path,
                hint=hint,
            )
        return outputs[0]
    _check_output(output, outputs, (*path, "output"))
    return output


def _check_output(name: str, outputs: list[str], path: SpecPath) -> None:
    if name not in outputs:
        raise SpecError(
            f"the model has no output `{name}`; its outputs are {', '.join(outputs)}",
            path=path,
            hint=did_you_mean(name, outputs),
        )


class Criterion(nn.Module):
    """The compiled ``loss:`` section: ``criterion(outputs, targets) -> scalar``.

    ``outputs`` maps output names to tensors; ``targets`` is a tensor or a dict of tensors.
    """

    def __init__(
        self,
        terms: list[_Term],
        class_counts: list[int] | None = None,
        shapes: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        super().__init__()
        self.terms = terms
        self.kinds = [LOSSES[t.spec.name].target for t in terms]  # type: ignore[index]
        # a ModuleList, so that .to(device) moves class weights
        self.losses = nn.ModuleList(
            construct_loss(t.spec, LOSSES[t.spec.name], t.path, balanced_arguments(t, class_counts, shapes or {}))  # type: ignore[index]
            for t in terms
        )
        self.last: dict[str, Tensor] = {}  # the named terms of the last call (`terms:`; see loss_graph.py)
        # one loss of weight 1 (most specs) as (term, kind, its forward: netspec hooks no loss; a tuple, as
        # `losses` registers the module): no loop, one module call, for steps of tens of microseconds
        single = len(terms) == 1 and terms[0].weight == 1.0
        self.single = (terms[0], self.kinds[0], self.losses[0].forward) if single else None

    def forward(self, outputs: dict[str, Tensor], targets: Tensor | dict[str, Tensor]) -> Tensor:
        if self.single is not None:
            return _term_loss(*self.single, outputs, targets)
        total: Tensor | None = None
        for term, kind, loss in zip(self.terms, self.kinds, self.losses):
            value = _term_loss(term, kind, loss, outputs, targets)
            value = value if term.weight == 1.0 else term.weight * value
            total = value if total is None else total + value
        assert total is not None  # a loss section has at least one loss
        return total


def _term_loss(
    term: _Term, kind: str, loss: Callable[..., Tensor], outputs: dict[str, Tensor], targets: Tensor | dict[str, Tensor]
) -> Tensor:
    """One term's unweighted loss, on its output in float32 and the target it reads."""
    out = raw if (raw := outputs[term.output]).dtype is torch.float32 else raw.float()
    return loss(out, adapt_target(kind, out, pick_target(term, targets)))


def pick_target(term: _Term, targets: Tensor | dict[str, Tensor]) -> Tensor:
    """The target a term compares its output with: the only one, or the one its ``target`` (else
    its output's name) keys."""
    if not isinstance(targets, dict):
        return targets
    key = term.spec.target or term.output
    if key not in targets:
        if len(targets) == 1 and term.spec.target is None:
            return next(iter(targets.values()))
        raise DataError(
            f"loss `{term.spec.name}` reads target `{key}`, but the data yields targets "
            + ", ".join(f"`{k}`" for k in targets),
            path=("loss",),
            hint=did_you_mean(key, targets) or "set `target:` on the loss",
        )
    return targets[key]


def build_criterion(
    spec: LossSpec,
    output_names: list[str],
    class_counts: list[int] | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> Criterion:
    """Compile a checked ``loss:`` section for a model with these outputs.

    ``class_counts`` (samples per class of the training split) and ``shapes`` (per-sample
    output shapes, :func:`output_shapes`) are what ``weight: balanced`` is computed from.

    >>> from netspec.training.spec import LossSpec
    >>> spec = LossSpec.model_validate({"sum": ["CrossEntropyLoss", {"Dice": {}, "weight": 0.5}]})
    >>> [type(loss).__name__ for loss in build_criterion(spec, ["logits"]).losses]
    ['CrossEntropyLoss', 'DiceLoss']
    >>> spec = LossSpec.model_validate({"CrossEntropyLoss": {"weight": "balanced"}})
    >>> build_criterion(spec, ["logits"], [3, 1], {"logits": (3,)}).losses[0].weight.tolist()
    [0.6666666865348816, 2.0, 0.0]
    """
    return Criterion(plan_terms(spec, output_names), class_counts, shapes)


def class_counts(spec: LossSpec, output_names: list[str], shapes: dict[str, tuple[int, ...]]) -> list[ClassCount]:
    """What each classification loss of a ``loss:`` section needs of its target: class indices
    below the size of its output's class dimension (checked on the data before training).

    >>> from netspec.training.spec import LossSpec
    >>> [(c.loss, c.classes, c.ignore_index) for c in class_counts(LossSpec.model_validate("CrossEntropyLoss"),
    ...                                                               ["logits"], {"logits": (10,)})]
    [('CrossEntropyLoss', 10, -100)]
    """
    counts = []
    for term in plan_terms(spec, output_names):
        entry, shape = LOSSES[term.spec.name], shapes.get(term.output)  # type: ignore[index]
        mode = term.spec.args.get("mode", "auto")
        either = entry.factory in (DiceLoss, IoULoss, FocalLoss, DiceBCELoss)  # binary or multi-class
        if (
            not shape
            or not term.reads_target
            or not (entry.target == "index" or (either and mode != "binary" and shape[0] > 1))
        ):
            continue
        ignore = term.spec.args.get("ignore_index", -100) if term.spec.name in ("CrossEntropyLoss", "NLLLoss") else None
        counts.append(
            ClassCount(
                term.spec.target or term.output,
                shape[0],
                ignore,
                str(term.spec.name),
                term.output,
                shape,
                auto=either and mode == "auto",
            )
        )
    return counts
