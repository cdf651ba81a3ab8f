"""What a model output holds, read from its shape, its last node and the loss that trains it,
and how it becomes predictions:

==========================================  ===================  ============================
output (per sample)                          loss / last node     prediction
==========================================  ===================  ============================
``C`` scores, C > 1                          a class-index loss   class, ``p_<class>`` of every
                                             (CrossEntropyLoss,   class (C <= 20), else the
                                             NLLLoss, Focal...)   top k: class, probability,
                                             or a Softmax         class_2, probability_2...
                                                                  (softmax of the logits; the
                                                                  output as it is after a
                                                                  Softmax or Sigmoid)
one score (``()`` or ``1``)                  BCELoss,             class 0 or 1, ``p_1``: P(y=1)
                                             BCEWithLogitsLoss    (sigmoid of a logit), never
                                             or a Sigmoid         the chosen class's
``C x H x W``                                a class-index or     a mask of class indices
                                             Dice-type loss, or   (argmax; one channel:
                                             one channel + BCE    probability > 0.5)
anything else                                                     the values (sigmoid first
                                                                  for BCEWithLogitsLoss)
==========================================  ===================  ============================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..training import metrics as _metrics

__all__ = ["Reading", "reading_of", "LOGIT_LOSSES", "rows_of", "ALL_CLASSES_UP_TO"]

#: A classifier with at most this many classes gets a ``p_<class>`` column per class (the whole
#: distribution, as scikit-learn's ``predict_proba``) unless a top k is asked for; one with more
#: gets its top 5 (an ImageNet model's 1000 columns would bury the answer).
ALL_CLASSES_UP_TO = 20

#: Losses that read logits (their softmax or sigmoid is inside the loss): the metrics' own set,
#: plus Dice and IoU, which read logits unless their `from_logits` says otherwise.
LOGIT_LOSSES = _metrics.LOGIT_LOSSES | _metrics.OWN_FROM_LOGITS
_SEGMENTATION = frozenset(
    {"Dice", "DiceLoss", "IoU", "IoULoss", "Jaccard", "DiceBCE", "DiceBCELoss", "Focal", "FocalLoss"}
)
_BINARY = frozenset({"BCELoss", "BCEWithLogitsLoss"}) | _SEGMENTATION
_PROBABILITY_OPS = {"Softmax": "softmax", "softmax": "softmax", "Sigmoid": "sigmoid", "sigmoid": "sigmoid"}


@dataclass(frozen=True)
class Reading:
    """How predictions read one output: ``kind`` (classes, binary, masks, values) and the
    activation that turns it into probabilities (softmax, sigmoid or none)."""

    output: str
    kind: str
    activation: str

    def scores(self, out: Tensor) -> Tensor:
        """The output as probabilities (float32)."""
        out = out.float()
        if self.activation == "softmax":
            return out.softmax(dim=1)
        if self.activation == "sigmoid":
            return out.sigmoid()
        return out


def _losses_of(spec: Any, output: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of each loss that reads ``output``."""
    if getattr(spec, "loss", None) is None:
        return []
    from ..training.criterion import plan_terms

    return [(t.name, t.spec.args) for t in plan_terms(spec.loss, list(spec.output_names)) if t.output == output]


def reading_of(spec: Any, graph: Any, output: str) -> Reading:
    """How to read the output named ``output`` (see the module's table).

    >>> import netspec
    >>> c = netspec.compile_spec(netspec.load_spec(text="name: m\\ninputs: {x: [4]}\\nnodes: "
    ...     "[{Linear: {out_features: 3}}]\\nloss: CrossEntropyLoss\\n"))
    >>> reading_of(c.spec, c.graph, "output")
    Reading(output='output', kind='classes', activation='softmax')
    """
    from ..compiler.dims import batch_first

    # spec.output_names calls an unnamed last node `output` where the graph says `linear`: by position
    ref = graph.outputs[list(spec.output_names).index(output)][1]
    probe = graph.probe_of(ref)
    if not isinstance(probe.value, Tensor) or not batch_first(probe.value, probe.twin):
        return Reading(output, "values", "none")
    shape = tuple(probe.value.shape[1:])
    last = _PROBABILITY_OPS.get(graph.node(ref).op) if ref not in graph.inputs else None
    losses = _losses_of(spec, output)
    names = {n for n, _ in losses}
    logits = any(n in LOGIT_LOSSES and args.get("from_logits", True) for n, args in losses) and last is None
    index = any(_target(n) == "index" for n in names)
    if len(shape) == 1 and shape[0] > 1 and (index or last == "softmax" or names & _SEGMENTATION):
        return Reading(output, "classes", "softmax" if logits else "none")
    if shape in ((), (1,)) and (names & _BINARY or last == "sigmoid"):
        return Reading(output, "binary", "sigmoid" if logits else "none")
    if len(shape) == 3 and (index or names & _SEGMENTATION or (shape[0] == 1 and names & _BINARY)):
        single = shape[0] == 1
        return Reading(output, "masks", ("sigmoid" if single else "softmax") if logits else "none")
    return Reading(output, "values", "sigmoid" if logits and names & _BINARY else "none")


def _target(name: str) -> str:
    from ..training.losses import LOSSES

    entry = LOSSES.get(name)
    return entry.target if entry is not None else "custom"


# ---------------------------------------------------------------------------------------------
# Outputs -> rows
# ---------------------------------------------------------------------------------------------


def rows_of(
    reading: Reading, out: Tensor, ids: list[str], classes: list[str] | None, top_k: int | None = None
) -> list[dict[str, Any]]:
    """One dict per sample of a batch of outputs.

    A classifier's row holds ``class`` and the probability of every class (``p_<class>``), or
    with ``top_k`` (or more than :data:`ALL_CLASSES_UP_TO` classes: the top 5) the ranked
    ``class``, ``probability``, ``class_2``, ``probability_2``...; a binary output's (one
    score) holds ``class`` and ``p_1``, the probability of class 1 (the second name when the
    data names two classes), whichever class is predicted.

    >>> r = Reading("logits", "classes", "softmax")
    >>> rows_of(r, torch.tensor([[0.0, 2.0, 1.0]]), ["a.png"], ["cat", "dog", "fox"])
    [{'input': 'a.png', 'class': 'dog', 'p_cat': 0.09003057, 'p_dog': 0.6652409, 'p_fox': 0.2447284}]
    >>> rows_of(r, torch.tensor([[0.0, 2.0, 1.0]]), ["a.png"], ["cat", "dog", "fox"], top_k=2)
    [{'input': 'a.png', 'class': 'dog', 'probability': 0.6652409, 'class_2': 'fox', 'probability_2': 0.2447284}]
    >>> rows_of(Reading("logit", "binary", "sigmoid"), torch.tensor([[-1.0]]), ["row 1"], None)
    [{'input': 'row 1', 'class': '0', 'p_1': 0.2689414}]
    """
    scores = reading.scores(out.detach().cpu())
    if reading.kind == "classes":
        if top_k is None and scores.shape[1] <= ALL_CLASSES_UP_TO:
            return _distribution_rows(scores, ids, classes)
        return _class_rows(scores, ids, classes, 5 if top_k is None else top_k)
    if reading.kind == "binary":
        p = scores.reshape(len(scores))  # (N,) P(y=1): the sigmoid of the logit, or the output itself
        names = classes if classes and len(classes) == 2 else ["0", "1"]
        return [
            {"input": i, "class": names[int(v > 0.5)], f"p_{names[1]}": _number(v)} for i, v in zip(ids, p.tolist())
        ]
    if reading.kind == "masks":
        masks = (scores[:, 0] > 0.5).to(torch.uint8) if scores.shape[1] == 1 else scores.argmax(1).to(torch.uint8)
        return [{"input": i, "mask": m} for i, m in zip(ids, masks)]
    flat = scores.reshape(len(scores), -1)
    keys = (
        [reading.output]
        if flat.shape[1] == 1 and scores.dim() <= 2
        else [f"{reading.output}_{j}" for j in range(flat.shape[1])]
    )
    return [{"input": i, **{k: _number(v) for k, v in zip(keys, row)}} for i, row in zip(ids, flat.tolist())]


def _distribution_rows(probs: Tensor, ids: list[str], classes: list[str] | None) -> list[dict[str, Any]]:
    """class (the most probable), then ``p_<class>`` for every class, in class order."""
    names = classes if classes and len(classes) == probs.shape[1] else [str(c) for c in range(probs.shape[1])]
    rows = []
    for sample, ps in zip(ids, probs.tolist()):  # ps: (C,) one probability per class
        best = max(range(len(ps)), key=ps.__getitem__)  # the first of equal maxima, as argmax
        rows.append({"input": sample, "class": names[best], **{f"p_{n}": _number(v) for n, v in zip(names, ps)}})
    return rows


def _class_rows(probs: Tensor, ids: list[str], classes: list[str] | None, top_k: int) -> list[dict[str, Any]]:
    """class, probability, then class_2, probability_2, ... up to ``top_k``."""
    k = max(1, min(top_k, probs.shape[1]))
    values, indices = probs.topk(k, dim=1)
    names = classes if classes and len(classes) == probs.shape[1] else None
    rows = []
    for sample, vs, ix in zip(ids, values.tolist(), indices.tolist()):
        row: dict[str, Any] = {"input": sample}
        for rank, (v, c) in enumerate(zip(vs, ix), start=1):
            suffix = "" if rank == 1 else f"_{rank}"
            row[f"class{suffix}"] = names[c] if names else str(c)
            row[f"probability{suffix}"] = _number(v)
        rows.append(row)
    return rows


def _number(v: float) -> float:
    """A float32 value with the digits float32 has (CSV cells stay short)."""
    return float(f"{v:.7g}")
