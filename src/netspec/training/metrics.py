"""Metrics computed every epoch on train and val: a registry plus the set a spec asks for.

Every metric accumulates sums over an epoch in tensors on the model's device (no host sync
per batch) and turns them into one number at the end, so an epoch's accuracy is the
fraction over all its samples, not a mean of batch means.

=================  ===============================================  =================
name               reads                                            better
=================  ===============================================  =================
loss               (always present) sample-weighted mean loss       lower
accuracy           (N, C) scores -> argmax; (N,)/(N, 1) -> > threshold  higher
top_k_accuracy     (N, C) scores, k (default 5); key ``top5_accuracy``  higher
dice, iou          segmentation: (N, C, ...) logits + class indices     higher
                   (argmax), or binary logits + 0/1 masks (sigmoid > 0.5)
mse, mae           regression: output and target of the same size   lower
=================  ===============================================  =================

>>> import torch
>>> m = METRICS["accuracy"]()
>>> m.update(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
>>> m.compute()
0.5
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch
from torch import Tensor

from ..errors import BuildError, SpecError
from ..registry import Registry, SpecPath
from .losses import adapt_target, pick_output

if TYPE_CHECKING:
    from .spec import MetricSpec

__all__ = ["Metric", "METRICS", "register_metric", "MeanMetric", "MetricSet", "check_metric", "metric_keys",
           "higher_is_better", "split_metric_name"]


class Metric:
    """Base class: ``update(output, target)`` per batch, ``compute()`` per epoch."""

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    task: ClassVar[str] = "classification"  # which inputs the registry-wide tests feed it
    _state: tuple[str, ...] = ("num", "den")

    def __init__(self) -> None:
        self.reset()

    @property
    def key(self) -> str:
        """Name in logs and monitors (without the ``train_``/``val_`` prefix)."""
        return self.name

    def reset(self) -> None:
        self.num: Tensor | float = 0.0
        self.den: Tensor | float = 0.0

    def update(self, output: Tensor, target: Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        den = float(self.den)
        return float(self.num) / den if den else float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._state:
            setattr(self, k, state[k])


#: metric name -> Metric class.
METRICS: Registry[type[Metric]] = Registry("metric")


def register_metric(name: str) -> Callable[[type[Metric]], type[Metric]]:
    """Class decorator adding a metric to :data:`METRICS`.

    >>> @register_metric("zero")
    ... class Zero(Metric):
    ...     def update(self, output, target): self.den += 1
    >>> METRICS["zero"].name
    'zero'
    >>> METRICS.remove("zero")
    """

    def add(cls: type[Metric]) -> type[Metric]:
        cls.name = name
        METRICS.add(name, cls)
        return cls

    return add


class MeanMetric(Metric):
    """Sample-weighted mean of a per-batch scalar (used for the loss)."""

    name = "loss"
    higher_is_better = False

    def update(self, value: Tensor, n: int) -> None:  # type: ignore[override]
        self.num = self.num + value.detach().float() * n
        self.den = self.den + n


@register_metric("accuracy")
class Accuracy(Metric):
    """Fraction of correct predictions: argmax for (N, C) scores; for one score per sample
    (seed 000's sigmoid output), ``output > threshold`` (use 0 for logits)."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        super().__init__()

    def update(self, output: Tensor, target: Tensor) -> None:
        if output.ndim >= 2 and output.shape[1] > 1:
            pred, target = output.argmax(1), adapt_target("index", output, target)
        else:
            target = adapt_target("float", output, target)
            pred, target = output > self.threshold, target > 0.5
        self.num = self.num + (pred == target).sum()
        self.den = self.den + target.numel()


@register_metric("top_k_accuracy")
class TopKAccuracy(Metric):
    """Fraction of samples whose class is among the k highest scores."""

    def __init__(self, k: int = 5) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        super().__init__()

    @property
    def key(self) -> str:
        return f"top{self.k}_accuracy"

    def update(self, output: Tensor, target: Tensor) -> None:
        target = adapt_target("index", output, target)
        k = min(self.k, output.shape[1])
        hits = (output.topk(k, dim=1).indices == target.unsqueeze(1)).any(dim=1)
        self.num = self.num + hits.sum()
        self.den = self.den + target.numel()


class _Overlap(Metric):
    """Dice / IoU from per-class intersection and sizes summed over the epoch."""

    task = "segmentation"
    _state = ("inter", "pred", "true")

    def __init__(self, from_logits: bool = True, include_background: bool = True) -> None:
        self.from_logits, self.include_background = from_logits, include_background
        super().__init__()

    def reset(self) -> None:
        self.inter: Tensor | float = 0.0
        self.pred: Tensor | float = 0.0
        self.true: Tensor | float = 0.0

    def update(self, output: Tensor, target: Tensor) -> None:
        if output.ndim >= 2 and output.shape[1] > 1 and not target.is_floating_point() and target.ndim == output.ndim - 1:
            c = output.shape[1]
            pred = torch.nn.functional.one_hot(output.argmax(1), c).movedim(-1, 1)  # (N, C, ...)
            true = torch.nn.functional.one_hot(target.long(), c).movedim(-1, 1)
            dims = (0, *range(2, output.ndim))
        else:
            target = adapt_target("float", output, target)
            prob = output.sigmoid() if self.from_logits else output
            pred, true, dims = (prob > 0.5).reshape(1, -1), (target > 0.5).reshape(1, -1), (1,)
        self.inter = self.inter + (pred & true).sum(dims)
        self.pred = self.pred + pred.sum(dims)
        self.true = self.true + true.sum(dims)

    def compute(self) -> float:
        if isinstance(self.inter, float):
            return float("nan")
        inter, pred, true = (torch.as_tensor(t, dtype=torch.float64).cpu() for t in (self.inter, self.pred, self.true))
        if not self.include_background and inter.numel() > 1:
            inter, pred, true = inter[1:], pred[1:], true[1:]
        score = self._score(inter, pred, true)
        present = (pred + true) > 0  # a class absent from both counts as nothing, not as 0 or 1
        return float(score[present].mean()) if present.any() else 1.0

    def _score(self, inter: Tensor, pred: Tensor, true: Tensor) -> Tensor:
        raise NotImplementedError


@register_metric("dice")
class Dice(_Overlap):
    """Dice coefficient 2|P∩T| / (|P| + |T|), mean over classes present."""

    def _score(self, inter: Tensor, pred: Tensor, true: Tensor) -> Tensor:
        return 2 * inter / (pred + true).clamp_min(1)


@register_metric("iou")
class IoU(_Overlap):
    """Intersection over union |P∩T| / |P∪T|, mean over classes present."""

    def _score(self, inter: Tensor, pred: Tensor, true: Tensor) -> Tensor:
        return inter / (pred + true - inter).clamp_min(1)


@register_metric("mse")
class MSE(Metric):
    """Mean squared error over all elements."""

    higher_is_better = False
    task = "regression"

    def update(self, output: Tensor, target: Tensor) -> None:
        target = adapt_target("float", output, target)
        self.num = self.num + (output.float() - target.float()).pow(2).sum()
        self.den = self.den + target.numel()


@register_metric("mae")
class MAE(Metric):
    """Mean absolute error over all elements."""

    higher_is_better = False
    task = "regression"

    def update(self, output: Tensor, target: Tensor) -> None:
        target = adapt_target("float", output, target)
        self.num = self.num + (output.float() - target.float()).abs().sum()
        self.den = self.den + target.numel()


# --------------------------------------------------------------------------- the set a spec asks for


def check_metric(spec: MetricSpec) -> None:
    """One metric entry: its name, arguments and values (made once), when the spec is loaded."""
    _make(spec, METRICS.check(spec))


def _make(spec: MetricSpec, cls: type[Metric]) -> Metric:
    try:
        return cls(**spec.args)
    except (TypeError, ValueError) as err:
        raise BuildError(f"metric {spec.name}: {err}", path=spec.args_path(())) from None


def metric_keys(specs: list[MetricSpec], output_names: list[str], path: SpecPath = ("train", "metrics")) -> list[str]:
    """The names metrics are logged under (``loss`` first; with several outputs, prefixed by the
    output's name); a metric listed twice or reading an output that does not exist is an error.

    >>> from netspec.training.spec import MetricSpec
    >>> metric_keys([MetricSpec.model_validate({"top_k_accuracy": {"k": 3}})], ["logits"])
    ['loss', 'top3_accuracy']
    """
    keys = ["loss"]
    for i, spec in enumerate(specs):
        key = _key(spec, output_names, (*path, i))
        if key in keys:
            raise SpecError(f"metric `{key}` is listed twice", path=(*path, i))
        keys.append(key)
    return keys


def _key(spec: MetricSpec, output_names: list[str], path: SpecPath) -> str:
    output = pick_output(spec.output, output_names, path, "metric", hint=f"add `output: {output_names[0]}`")
    key = _make(spec, METRICS[spec.name]).key
    return key if len(output_names) == 1 else f"{output}_{key}"


class MetricSet:
    """The loss plus the spec's (checked) metrics, each bound to a model output and target.

    >>> from netspec.training.spec import MetricSpec
    >>> ms = MetricSet([MetricSpec.model_validate("accuracy")], ["logits"])
    >>> ms.keys()
    ['loss', 'accuracy']
    """

    def __init__(self, specs: list[MetricSpec], output_names: list[str]) -> None:
        self.loss = MeanMetric()
        self.entries: list[tuple[str, Metric, str, str | None]] = []  # (key, metric, output, target key)
        for spec in specs:
            metric = METRICS[spec.name](**spec.args)
            output = spec.output or output_names[0]
            key = metric.key if len(output_names) == 1 else f"{output}_{metric.key}"
            self.entries.append((key, metric, output, spec.target))
    def keys(self) -> list[str]:
        return ["loss", *(e[0] for e in self.entries)]

    def reset(self) -> None:
        self.loss.reset()
        for _, metric, _, _ in self.entries:
            metric.reset()

    @torch.no_grad()
    def update(self, outputs: dict[str, Tensor], targets: Tensor | dict[str, Tensor], loss: Tensor, n: int) -> None:
        self.loss.update(loss, n)
        for _, metric, output, target_key in self.entries:
            metric.update(outputs[output].detach(), _target(targets, target_key or output))

    def compute(self) -> dict[str, float]:
        values = {"loss": self.loss.compute()}
        values.update({key: metric.compute() for key, metric, _, _ in self.entries})
        return values

    def state_dict(self) -> dict[str, Any]:
        return {"loss": self.loss.state_dict(), **{k: m.state_dict() for k, m, _, _ in self.entries}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss.load_state_dict(state["loss"])
        for key, metric, _, _ in self.entries:
            metric.load_state_dict(state[key])

    def higher_is_better(self, key: str) -> bool:
        for k, metric, _, _ in self.entries:
            if k == key:
                return metric.higher_is_better
        return False  # loss


def _target(targets: Tensor | dict[str, Tensor], key: str) -> Tensor:
    if not isinstance(targets, dict):
        return targets
    return targets[key] if key in targets or len(targets) != 1 else next(iter(targets.values()))


def split_metric_name(name: str) -> tuple[str, str] | None:
    """``"val_accuracy"`` -> ``("val", "accuracy")``; None without a split prefix.

    >>> split_metric_name("train_top5_accuracy")
    ('train', 'top5_accuracy')
    """
    for split in ("train", "val"):
        if name.startswith(split + "_"):
            return split, name[len(split) + 1 :]
    return None


def higher_is_better(name: str, metrics: MetricSet) -> bool:
    """Whether larger values of a monitored metric (``val_accuracy``) are better.

    >>> higher_is_better("val_loss", MetricSet([], ["y"]))
    False
    """
    split = split_metric_name(name)
    return metrics.higher_is_better(split[1] if split else name)
