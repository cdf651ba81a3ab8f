"""Metrics computed every epoch on train and val: a registry of netspec metrics, each backed by a
torchmetrics metric (the set a run uses is :class:`netspec.training.meters.MetricSet`).

A netspec metric turns a batch's ``(output, target)`` into what its torchmetrics metric reads
(argmax, a threshold on probabilities, class indices) and keeps that metric's state on the
model's device: nothing is read back to the host until :meth:`Metric.compute`, once per epoch,
and torchmetrics reduces the state across processes when training is distributed. A batch's
output and target are kept as they are; the preparation (an argmax) and the torchmetrics update
run once per :attr:`Metric.chunk` batches, on their concatenation, so a batch costs a list append
(and on a GPU one copy).

=================  ===============================================  =================
name               reads                                            better
=================  ===============================================  =================
loss               (always present) sample-weighted mean loss       lower
accuracy           (N, C) scores -> argmax; one score per element   higher
                   -> probability > ``threshold`` (0.5)
top_k_accuracy     (N, C) scores, k (default 5); key ``top5_accuracy``  higher
dice, iou          segmentation: (N, C, ...) scores + class indices     higher
                   (argmax), or one score per pixel + 0/1 masks; per-class
                   counts summed over the epoch, mean over classes present
mse, mae           regression: output and target of the same size   lower
=================  ===============================================  =================

Logits or probabilities: where a metric thresholds a single score (binary accuracy, binary dice
and IoU), it must know whether the output holds logits (a sigmoid comes first) or
probabilities. ``from_logits`` says so; left out, the loss reading the same output decides
(:func:`netspec.training.meters.output_scores`): CrossEntropyLoss, BCEWithLogitsLoss and netspec's Dice, IoU, DiceBCE
and Focal read logits; BCELoss, MSELoss and any other loss read the output as it is. An argmax
is the same either way.

>>> import torch
>>> m = METRICS["accuracy"]()
>>> m.update(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
>>> m.compute()
0.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from ..errors import BuildError, SpecError
from ..nodes.registry import Registry, SpecPath
from .criterion import pick_output
from .losses import adapt_target

if TYPE_CHECKING:
    from .spec import MetricSpec

__all__ = [
    "Metric",
    "METRICS",
    "register_metric",
    "check_metric",
    "metric_keys",
    "split_metric_name",
    "LOGIT_LOSSES",
    "OWN_FROM_LOGITS",
]

#: losses whose output holds logits (a sigmoid or softmax is part of the loss); any other loss reads
#: its output as it is (probabilities, or values compared directly). Dice and IoU follow their
#: own ``from_logits`` argument (``OWN_FROM_LOGITS``).
LOGIT_LOSSES = frozenset(
    {
        "CrossEntropyLoss",
        "BCEWithLogitsLoss",
        "MultiLabelSoftMarginLoss",
        "SoftMarginLoss",
        "MultiMarginLoss",
        "NLLLoss",
        "DiceBCE",
        "DiceBCELoss",
        "Focal",
        "FocalLoss",
    }
)
OWN_FROM_LOGITS = frozenset({"Dice", "DiceLoss", "IoU", "IoULoss", "Jaccard"})


class Metric:
    """Base class: ``update(output, target)`` per batch, ``compute()`` per epoch.

    A subclass says which torchmetrics metric it uses (:meth:`make`, configured by
    :meth:`configure` from the shapes of the first batch: the number of classes, binary or
    multi-class) and how a batch is turned into what that metric reads (:meth:`prepare`).
    """

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    task: ClassVar[str] = "classification"  # which inputs the registry-wide tests feed it
    reads_scores: ClassVar[bool] = False  # True: thresholds a score, so logits vs probabilities matters
    chunk: ClassVar[int] = 32  # batches concatenated into one preparation and torchmetrics update
    _CHUNK_ELEMENTS: ClassVar[int] = 1 << 22  # ... or fewer, when they are this big (masks)
    #: devices whose outputs are copied when kept: CUDA graphs overwrite their output on the next step
    overwritten_on: ClassVar[frozenset[str]] = frozenset({"cuda"})

    def __init__(self) -> None:
        self.loss_logits = False  # whether the loss reading this output takes logits (set by MetricSet)
        self.loss_kind: str | None = None  # "index" or "float": the target the loss takes (set by MetricSet)
        self._metric: Any = None  # the torchmetrics metric, made on the first batch's device
        self._config: dict[str, Any] = {}  # what make() was given, to make it again when resuming
        self._shapes: dict[str, Any] = {}  # per-sample output and target shapes it was configured from (resume checks)
        self._pending: list[tuple[Tensor, ...]] = []  # (output, target) of batches not yet counted
        self._pending_elements = 0  # the outputs' elements in _pending
        self._updates = 0

    @property
    def key(self) -> str:
        """Name in logs and monitors (without the ``train_``/``val_`` prefix)."""
        return self.name

    def configure(self, output: Tensor, target: Tensor) -> dict[str, Any]:
        """What :meth:`make` needs, from the first batch's shapes (never its values: no sync)."""
        return {}

    def make(self, config: dict[str, Any]) -> Any:
        """The torchmetrics metric (imported here: torchmetrics takes a second to import)."""
        raise NotImplementedError

    def prepare(self, output: Tensor, target: Tensor) -> tuple[Tensor, ...]:
        """The batch as the torchmetrics metric reads it (tensors with the batch as dim 0)."""
        return output, target

    def reset(self) -> None:
        self._pending.clear()
        self._pending_elements = 0
        self._updates = 0
        if self._metric is not None:
            self._metric.reset()

    def update(self, output: Tensor, target: Tensor) -> None:
        if self._metric is None:
            self._config = self.configure(output, target)
            self._shapes = {
                "output": list(output.shape[1:]),
                "target": list(target.shape[1:]),
                "target_dtype": str(target.dtype).removeprefix("torch."),
            }
            self._metric = self.make(self._config).to(output.device)
        if self.chunk == 1:
            self._metric.update(*self.prepare(output, target))
            self._updates += 1
            return
        # Kept as they are and prepared once per chunk, on the concatenation (every prepare works
        # sample by sample): an append per batch instead of a few small ops. On a GPU the output
        # is copied: CUDA graphs overwrite their output buffer on the next step.
        self._pending.append((output.clone() if output.device.type in self.overwritten_on else output, target))
        self._pending_elements += output.numel()
        if len(self._pending) >= self.chunk or self._pending_elements > self._CHUNK_ELEMENTS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        output, target = (torch.cat(p) if len(p) > 1 else p[0] for p in zip(*self._pending))
        self._pending.clear()
        self._pending_elements = 0
        self._metric.update(*self.prepare(output, target))
        self._updates += 1

    def compute(self) -> float:
        """The epoch's value (one host read); NaN before any batch."""
        self._flush()
        if not self._updates:
            return float("nan")
        return float(self._metric.compute())

    def state_dict(self) -> dict[str, Any]:
        """The accumulated state (device tensors), for a checkpoint taken mid-epoch."""
        self._flush()
        if not self._updates:
            return {}
        return {
            "config": dict(self._config),
            "shapes": dict(self._shapes),
            "updates": self._updates,
            "state": dict(self._metric.metric_state),
        }

    def load_state_dict(self, state: dict[str, Any], output_shape: tuple[int, ...] | None = None) -> None:
        """Restore :meth:`state_dict`'s output; ValueError saying what is wrong if it is not what
        this metric saves: its configuration must be the one the saved shapes give (and the saved
        output shape ``output_shape``, the model's, when known), and every state a tensor of the
        shape and dtype a fresh metric of that configuration holds (or a list of tensors)."""
        self.reset()
        if not state:
            return
        if (
            set(state) != {"config", "shapes", "updates", "state"}
            or not isinstance(state["config"], dict)
            or type(state["updates"]) is not int
            or state["updates"] < 1
            or not isinstance(state["state"], dict)
        ):
            raise ValueError("not a metric state (config, shapes, updates, state)")
        self._check_config(state["config"], state["shapes"], output_shape)
        values = state["state"]
        try:
            metric = self.make(dict(state["config"]))
        except Exception:  # a forged configuration: whatever the torchmetrics constructor says
            raise ValueError(f"its configuration {state['config']} does not make a {self.name} metric") from None
        problem = _state_problem(values, metric._defaults)
        if problem is not None:
            raise ValueError(problem)
        device = next((t.device for t in values.values() if isinstance(t, Tensor)), torch.device("cpu"))
        self._config, self._metric = dict(state["config"]), metric.to(device)
        for k, v in values.items():
            setattr(self._metric, k, v.to(device) if isinstance(v, Tensor) else [t.to(device) for t in v])
        self._updates = self._metric._update_count = state["updates"]
        self._shapes = dict(state["shapes"])

    def _check_config(self, config: dict[str, Any], shapes: Any, output_shape: tuple[int, ...] | None) -> None:
        """The saved configuration is what the saved shapes configure (on meta tensors: no data),
        and those shapes are this model's output's."""
        try:
            output = torch.empty((2, *shapes["output"]), device="meta")
            dtype = getattr(torch, shapes["target_dtype"], None)
            if not isinstance(dtype, torch.dtype):  # the name of a dtype, nothing else of torch's
                raise TypeError
            target = torch.empty((2, *shapes["target"]), device="meta", dtype=dtype)
        except Exception:  # not a dict of two shapes and a dtype name
            raise ValueError(f"`shapes` is not a pair of sample shapes and a dtype: {shapes!r:.80}") from None
        if output_shape is not None and tuple(output.shape[1:]) != tuple(output_shape):
            raise ValueError(
                f"it was saved for an output of shape {list(output.shape[1:])}; the model's is {list(output_shape)}"
            )
        try:
            expected = self.configure(output, target)
        except Exception:  # a metric whose configure reads values: its states are still checked below
            return
        if expected != config:
            raise ValueError(f"its configuration {config} is not the one its shapes give ({expected})")


def _state_problem(values: dict[str, Any], defaults: dict[str, Any]) -> str | None:
    """What is wrong with saved torchmetrics states, against a fresh metric's defaults: a tensor
    state (running sums) must have the default's shape and dtype, a list state (concatenated
    batches) hold tensors of the default's dtype.

    >>> _state_problem({"tp": torch.zeros(5, dtype=torch.long)}, {"tp": torch.zeros(1, dtype=torch.long)})
    'state `tp` is a tensor of shape [5] (int64); a fresh one is [1] (int64)'
    """
    if set(values) != set(defaults):
        return f"states {sorted(values)} are not this metric's ({sorted(defaults)})"
    for key, default in defaults.items():
        value = values[key]
        if isinstance(default, Tensor):
            if not isinstance(value, Tensor):
                return f"state `{key}` is a {type(value).__name__}, not a tensor"
            if value.shape != default.shape or value.dtype != default.dtype:
                return (
                    f"state `{key}` is a tensor of shape {list(value.shape)} ({_dtype(value)}); a fresh one is "
                    f"{list(default.shape)} ({_dtype(default)})"
                )
        elif not isinstance(value, list) or not all(isinstance(t, Tensor) for t in value):
            return f"state `{key}` is a {type(value).__name__}, not a list of tensors"
    return None


def _dtype(t: Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


#: metric name -> Metric class.
METRICS: Registry[type[Metric]] = Registry("metric")


def register_metric(name: str) -> Callable[[type[Metric]], type[Metric]]:
    """Class decorator adding a metric to :data:`METRICS`.

    >>> @register_metric("count")
    ... class Count(Metric):
    ...     def make(self, config):
    ...         from torchmetrics import SumMetric
    ...         return SumMetric(nan_strategy="disable")
    ...     def prepare(self, output, target): return (torch.ones(len(output)),)
    >>> m = METRICS["count"](); m.update(torch.zeros(3, 2), torch.zeros(3)); m.compute()
    3.0
    >>> METRICS.remove("count")
    """

    def add(cls: type[Metric]) -> type[Metric]:
        cls.name = name
        METRICS.add(name, cls)
        return cls

    return add


class _Thresholded(Metric):
    """A metric that reads (N, C, ...) scores by argmax, or one score per element by a threshold
    on its probability: binary or multi-class, decided on the first batch."""

    reads_scores = True

    def __init__(self, from_logits: bool | None = None) -> None:
        self.from_logits = from_logits
        super().__init__()

    @property
    def logits(self) -> bool:
        """Whether the output holds logits: ``from_logits``, else what the loss reads."""
        return self.loss_logits if self.from_logits is None else self.from_logits

    def configure(self, output: Tensor, target: Tensor) -> dict[str, Any]:
        return {"classes": int(output.shape[1]) if self._multiclass(output, target) else 0}

    def _multiclass(self, output: Tensor, target: Tensor) -> bool:
        """(N, C, ...) scores with class indices, or with class probabilities (an index loss's
        soft targets); anything else is one score per element (binary, multi-label)."""
        if output.ndim < 2 or output.shape[1] < 2:
            return False
        same = target.shape == output.shape or (target.numel() == output.numel() and target.ndim == output.ndim)
        return not same or (target.is_floating_point() and self.loss_kind == "index")

    def _indices(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """(predicted class, true class) per element, (N, ...) int64."""
        if target.is_floating_point() and target.shape == output.shape:
            return output.argmax(1), target.argmax(1)  # class probabilities: the most likely class
        return output.argmax(1), adapt_target("index", output, target).long()

    def _binary(self, output: Tensor, target: Tensor, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
        """(predicted 0/1, true 0/1) per element, int64, flattened per sample."""
        target = adapt_target("float", output, target)
        prob = output.float().sigmoid() if self.logits else output
        return (prob > threshold).long().reshape(len(output), -1), (target > 0.5).long().reshape(len(output), -1)


@register_metric("accuracy")
class Accuracy(_Thresholded):
    """Fraction of correct predictions: argmax for (N, C) scores; for one score per element
    (seed 000's sigmoid output, multi-label 0/1 targets), probability > ``threshold``.
    ``from_logits`` says whether the output holds logits (default: what the loss reads)."""

    def __init__(self, threshold: float = 0.5, from_logits: bool | None = None) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"threshold is a probability, between 0 and 1, not {threshold}")
        self.threshold = threshold
        super().__init__(from_logits)

    def make(self, config: dict[str, Any]) -> Any:
        from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

        if not config["classes"]:
            return BinaryAccuracy(validate_args=False)
        return MulticlassAccuracy(config["classes"], average="micro", validate_args=False)

    def prepare(self, output: Tensor, target: Tensor) -> tuple[Tensor, ...]:
        if self._config["classes"]:
            pred, true = self._indices(output, target)
            return pred.reshape(-1), true.reshape(-1)  # (N * ...,): every element counts once
        pred, true = self._binary(output, target, self.threshold)
        return pred.reshape(-1), true.reshape(-1)


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

    def configure(self, output: Tensor, target: Tensor) -> dict[str, Any]:
        return {"classes": int(output.shape[1]), "k": min(self.k, int(output.shape[1]))}

    def make(self, config: dict[str, Any]) -> Any:
        from torchmetrics.classification import MulticlassAccuracy

        return MulticlassAccuracy(config["classes"], top_k=config["k"], average="micro", validate_args=False)

    def prepare(self, output: Tensor, target: Tensor) -> tuple[Tensor, ...]:
        return output.detach(), adapt_target("index", output, target).long()


class _Overlap(_Thresholded):
    """Dice / IoU from per-class intersection and sizes summed over the epoch (torchmetrics'
    dice update gives them per sample and class), then the mean over classes present."""

    task = "segmentation"
    chunk = 1  # masks are big: update every batch

    def __init__(self, from_logits: bool | None = None, include_background: bool = True) -> None:
        self.include_background = include_background
        super().__init__(from_logits)

    def configure(self, output: Tensor, target: Tensor) -> dict[str, Any]:
        classes = super().configure(output, target)["classes"]
        # binary: the foreground only (class 1 of 2)
        return {"classes": classes or 2, "background": self.include_background and bool(classes), "score": self.name}

    def make(self, config: dict[str, Any]) -> Any:
        from .overlap import OverlapCounts  # torchmetrics takes a second to import: only when used

        return OverlapCounts(config["classes"], config["background"], config["score"])

    def prepare(self, output: Tensor, target: Tensor) -> tuple[Tensor, ...]:
        if output.ndim >= 2 and output.shape[1] == self._config["classes"] and self._multiclass(output, target):
            pred, true = self._indices(output, target)
            return pred.reshape(len(output), -1), true.reshape(len(output), -1)
        return self._binary(output, target)


@register_metric("dice")
class Dice(_Overlap):
    """Dice coefficient 2|P∩T| / (|P| + |T|), mean over classes present."""


@register_metric("iou")
class IoU(_Overlap):
    """Intersection over union |P∩T| / |P∪T|, mean over classes present."""


class _Regression(Metric):
    higher_is_better = False
    task = "regression"

    def prepare(self, output: Tensor, target: Tensor) -> tuple[Tensor, ...]:
        target = adapt_target("float", output, target)
        return output.float().reshape(-1), target.float().reshape(-1)


@register_metric("mse")
class MSE(_Regression):
    """Mean squared error over all elements."""

    def make(self, config: dict[str, Any]) -> Any:
        from torchmetrics.regression import MeanSquaredError

        return MeanSquaredError()


@register_metric("mae")
class MAE(_Regression):
    """Mean absolute error over all elements."""

    def make(self, config: dict[str, Any]) -> Any:
        from torchmetrics.regression import MeanAbsoluteError

        return MeanAbsoluteError()


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


def split_metric_name(name: str) -> tuple[str, str] | None:
    """``"val_accuracy"`` -> ``("val", "accuracy")``; None without a split prefix.

    >>> split_metric_name("train_top5_accuracy")
    ('train', 'top5_accuracy')
    """
    for split in ("train", "val"):
        if name.startswith(split + "_"):
            return split, name[len(split) + 1 :]
    return None
