"""What a run measures: the loss of every batch (:class:`LossMeter`) and the metrics the spec asks
for (:class:`MetricSet`), each reading a model output and its target, all kept on the model's
device until the epoch's values are read, once.

Whether a metric's output holds logits or probabilities, when the metric does not say
(``from_logits``), comes from the loss reading the same output (:func:`output_scores`; the
rules are in :mod:`netspec.training.metrics`).

>>> import torch
>>> from netspec.training.spec import LossSpec, MetricSpec
>>> ms = MetricSet([MetricSpec.model_validate("accuracy")], ["y"], LossSpec.model_validate("BCEWithLogitsLoss"))
>>> ms.update({"y": torch.tensor([2.0, -1.0, 0.3])}, torch.tensor([1.0, 0.0, 0.0]), torch.tensor(0.5), 3)
>>> ms.compute()  # sigmoid(0.3) > 0.5: the third is wrong
{'loss': 0.5, 'accuracy': 0.6666666865348816}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import SpecError
from ..nodes.registry import SpecPath
from .criterion import plan_terms
from .distributed import all_sum
from .loss_names import term_keys
from .losses import LOSSES
from .metrics import LOGIT_LOSSES, METRICS, OWN_FROM_LOGITS, Metric, split_metric_name

if TYPE_CHECKING:
    from .spec import LossSpec, MetricSpec

__all__ = ["LossMeter", "MetricSet", "output_scores", "check_metric_scores", "higher_is_better"]


class LossMeter:
    """The loss of every batch of an epoch, kept where it was computed: no host read per batch
    until :meth:`compute` (the sample-weighted mean, in float64). The per-batch values are also
    where a non-finite loss is looked for (:mod:`netspec.training.watch`).

    On an accelerator each loss is copied into a device buffer (reading it would wait for the
    device). On the CPU the loss is computed by the time it is recorded, so it is read at once
    into a Python list: one cheap read instead of two tensor ops per batch, the same float32
    values, summed the same way.

    >>> m = LossMeter(); m.update(torch.tensor(1.0), 3); m.update(torch.tensor(2.0), 1); m.compute()
    1.25
    >>> m.last
    2.0
    """

    name = "loss"
    higher_is_better = False

    def __init__(self, read_cpu: bool = True) -> None:
        self.read_cpu = read_cpu  # False: a CPU loss is kept in a buffer too, as on a device (tests)
        self.reset()

    def reset(self) -> None:
        self.values: Tensor | None = None  # (capacity,) float32 on the device; the first len(counts) are used
        self.floats: list[float] = []  # the losses read at once (CPU), in float32's values
        self.counts: list[int] = []  # samples in each batch

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def on_host(self) -> bool:
        """Whether the losses are kept as Python floats (computed on the CPU)."""
        return self.values is None

    @property
    def last(self) -> float | None:
        """The last loss recorded, when kept on the host (None otherwise, or before the first)."""
        return self.floats[-1] if self.floats and self.on_host else None

    def update(self, value: Tensor, n: int) -> None:
        if self.values is None and value.device.type == "cpu" and self.read_cpu:
            self.floats.append(value.item())  # computed already: no wait
            self.counts.append(n)
            return
        k = len(self.counts)
        if self.values is None or k == len(self.values):
            grown = torch.empty(max(256, 2 * k), dtype=torch.float32, device=value.device)
            if self.values is not None:
                grown[:k].copy_(self.values)
            elif k:  # values of another device before (a resumed state): moved once
                grown[:k].copy_(torch.tensor(self.floats, dtype=torch.float32))
                self.floats = []
            self.values = grown
        self.values[k].copy_(value.detach())
        self.counts.append(n)

    def used(self) -> Tensor:
        """The losses recorded so far, (len(self),) float32."""
        if self.values is None:
            return torch.tensor(self.floats, dtype=torch.float32)
        return self.values[: len(self.counts)]

    def compute(self) -> float:
        """The sample-weighted mean; in a data-parallel run, over every process's batches (one
        all-reduce of the two sums, so every process reads the same value)."""
        sums = torch.zeros(2, dtype=torch.float64)
        if self.counts:
            values = self.used().to("cpu", torch.float64)  # one copy an epoch; MPS has no float64
            sums[0] = (values * torch.tensor(self.counts, dtype=torch.float64)).sum()
            sums[1] = sum(self.counts)
        total, count = all_sum(sums).tolist()
        return total / count if count else float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {"values": self.used().clone() if self.counts else torch.zeros(0), "counts": list(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; ValueError saying what is wrong with anything else
        (the loss of each batch: finite numbers, one per positive sample count).

        >>> LossMeter().load_state_dict({"values": torch.tensor([1.0, 2.0]), "counts": [3]})
        Traceback (most recent call last):
        ValueError: 2 losses but 1 batch sizes
        """
        problem = _loss_state_problem(state)
        if problem is not None:
            raise ValueError(problem)
        self.reset()
        for value, n in zip(state["values"], state["counts"]):
            self.update(value, n)


def _loss_state_problem(state: Any) -> str | None:
    """What is wrong with a saved :class:`LossMeter` state (None: nothing)."""
    if not isinstance(state, dict) or set(state) != {"values", "counts"}:
        return "not a loss meter's state (values, counts)"
    values, counts = state["values"], state["counts"]
    if not isinstance(values, Tensor) or values.dim() != 1 or not values.is_floating_point():
        shown = f"a tensor of shape {list(values.shape)}" if isinstance(values, Tensor) else type(values).__name__
        return f"`values` is {shown}, not a 1-D floating-point tensor of batch losses"
    if not isinstance(counts, list) or not all(type(n) is int and n > 0 for n in counts):
        return "`counts` is not a list of batch sizes (positive whole numbers)"
    if len(values) != len(counts):
        return f"{len(values)} losses but {len(counts)} batch sizes"
    if not bool(torch.isfinite(values).all()):
        return "`values` holds a loss that is not finite"
    return None


def output_scores(loss: LossSpec | None, output_names: list[str]) -> dict[str, tuple[bool | None, str | None]]:
    """Per output: (whether its losses read logits, the target kind they take); ``None`` where
    no loss reads the output or its losses disagree.

    >>> from netspec.training.spec import LossSpec
    >>> output_scores(LossSpec.model_validate("BCEWithLogitsLoss"), ["y"])
    {'y': (True, 'float')}
    """
    found: dict[str, set[tuple[bool, str]]] = {}
    for term in plan_terms(loss, output_names) if loss is not None else []:
        name = term.name
        logits = bool(term.spec.args.get("from_logits", True)) if name in OWN_FROM_LOGITS else name in LOGIT_LOSSES
        found.setdefault(term.output, set()).add((logits, LOSSES[name].target))
    scores: dict[str, tuple[bool | None, str | None]] = {}
    for output in output_names:
        reads = found.get(output, set())
        logit_kinds = {r[0] for r in reads}
        kinds = {r[1] for r in reads}
        scores[output] = (
            next(iter(logit_kinds)) if len(logit_kinds) == 1 else None,
            next(iter(kinds)) if len(kinds) == 1 else None,
        )
    return scores


def check_metric_scores(
    specs: list[MetricSpec], loss: LossSpec | None, output_names: list[str], path: SpecPath = ("train", "metrics")
) -> None:
    """A metric that thresholds scores, without ``from_logits``, on an output whose losses
    disagree about logits vs probabilities: say which, when the spec is loaded.

    >>> from netspec.training.spec import LossSpec, MetricSpec
    >>> check_metric_scores([MetricSpec.model_validate("accuracy")],
    ...                     LossSpec.model_validate({"sum": ["BCELoss", "BCEWithLogitsLoss"]}), ["y"])
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: train.metrics[0]: the losses on output `y` disagree whether it holds logits or probabilities; say which: `{accuracy: {from_logits: true}}` (or false)
    """
    scores = output_scores(loss, output_names)
    for i, spec in enumerate(specs):
        metric = METRICS[spec.name]
        output = spec.output or output_names[0]
        if (
            metric.reads_scores
            and spec.args.get("from_logits") is None
            and output in scores
            and scores[output][0] is None
            and loss is not None
            and any(t.output == output for t in plan_terms(loss, output_names))
        ):
            raise SpecError(
                f"the losses on output `{output}` disagree whether it holds logits or probabilities",
                path=(*path, i),
                hint=f"say which: `{{{spec.name}: {{from_logits: true}}}}` (or false)",
            )


class MetricSet:
    """The loss plus the spec's (checked) metrics, each bound to a model output and target.

    ``loss`` (the spec's loss section) tells each metric whether its output holds logits; its
    named ``terms`` each get a loss meter of their own (``loss_<name>``).

    >>> from netspec.training.spec import MetricSpec
    >>> ms = MetricSet([MetricSpec.model_validate("accuracy")], ["logits"])
    >>> ms.keys()
    ['loss', 'accuracy']
    """

    def __init__(self, specs: list[MetricSpec], output_names: list[str], loss: LossSpec | None = None) -> None:
        self.loss = LossMeter()
        self.terms = {key: LossMeter() for key in term_keys(loss)}  # `loss_kl` -> its meter
        self.entries: list[tuple[str, Metric, str, str | None]] = []  # (key, metric, output, target key)
        scores = output_scores(loss, output_names)
        for spec in specs:
            metric = METRICS[spec.name](**spec.args)
            output = spec.output or output_names[0]
            metric.loss_logits = bool(scores[output][0])
            metric.loss_kind = scores[output][1]
            key = metric.key if len(output_names) == 1 else f"{output}_{metric.key}"
            self.entries.append((key, metric, output, spec.target))
        if self.entries:  # a second or more to import: here, with the set-up, not in the first timed epoch
            import torchmetrics  # noqa: F401

    def keys(self) -> list[str]:
        return ["loss", *self.terms, *(e[0] for e in self.entries)]

    def reset(self) -> None:
        self.loss.reset()
        for meter in self.terms.values():
            meter.reset()
        for _, metric, _, _ in self.entries:
            metric.reset()

    def update(
        self,
        outputs: dict[str, Tensor],
        targets: Tensor | dict[str, Tensor],
        loss: Tensor,
        n: int,
        terms: dict[str, Tensor] | None = None,
    ) -> None:
        """Add a batch (``terms``: the loss's named terms, by name); no host read on a device (it
        queues the work). Everything kept is detached, so no autograd graph grows (and no grad mode
        is switched per batch)."""
        self.loss.update(loss, n)
        for key, meter in self.terms.items():
            if terms is not None and key.removeprefix("loss_") in terms:  # a term of training only: not in eval
                meter.update(terms[key.removeprefix("loss_")], n)
        for _, metric, output, target_key in self.entries:
            metric.update(outputs[output].detach(), _target(targets, target_key or output))

    def compute(self) -> dict[str, float]:
        """Every value of the epoch so far: the only host reads of an epoch's metrics."""
        values = {"loss": self.loss.compute()}
        values.update({key: meter.compute() for key, meter in self.terms.items() if len(meter)})
        values.update({key: metric.compute() for key, metric, _, _ in self.entries})
        return values

    def state_dict(self) -> dict[str, Any]:
        meters = {"loss": self.loss, **self.terms}
        return {**{k: m.state_dict() for k, m in meters.items()}, **{k: m.state_dict() for k, m, _, _ in self.entries}}

    def load_state_dict(self, state: dict[str, Any], output_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        """Restore :meth:`state_dict`'s output; ValueError naming the entry and what is wrong
        with it. ``output_shapes`` (per-sample, by output name), when known, must be the shapes
        the metric states were made for.

        >>> from netspec.training.spec import MetricSpec
        >>> ms = MetricSet([MetricSpec.model_validate("accuracy")], ["logits"])
        >>> ms.load_state_dict({"loss": {"values": torch.zeros(1), "counts": [0]}, "accuracy": {}})
        Traceback (most recent call last):
        ValueError: entry `loss`: `counts` is not a list of batch sizes (positive whole numbers)
        """
        if not isinstance(state, dict) or set(state) != set(self.keys()):
            held = ", ".join(f"`{k}`" for k in state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"holds {held}; this run's are {', '.join(f'`{k}`' for k in self.keys())}")
        for key, meter in {"loss": self.loss, **self.terms}.items():
            try:
                meter.load_state_dict(state[key])
            except ValueError as err:
                raise ValueError(f"entry `{key}`: {err}") from None
        for key, metric, output, _ in self.entries:
            try:
                metric.load_state_dict(state[key], (output_shapes or {}).get(output))
            except ValueError as err:
                raise ValueError(f"entry `{key}`: {err}") from None

    def higher_is_better(self, key: str) -> bool:
        for k, metric, _, _ in self.entries:
            if k == key:
                return metric.higher_is_better
        return False  # loss


def _target(targets: Tensor | dict[str, Tensor], key: str) -> Tensor:
    if not isinstance(targets, dict):
        return targets
    return targets[key] if key in targets or len(targets) != 1 else next(iter(targets.values()))


def higher_is_better(name: str, metrics: MetricSet) -> bool:
    """Whether larger values of a monitored metric (``val_accuracy``) are better.

    >>> higher_is_better("val_loss", MetricSet([], ["y"]))
    False
    """
    split = split_metric_name(name)
    return metrics.higher_is_better(split[1] if split else name)
