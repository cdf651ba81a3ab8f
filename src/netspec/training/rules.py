"""The rules that span the training sections, checked once when a spec is loaded.

Each entry (a loss, an optimizer, a metric...) checks itself against its registry; what needs two
sections or the model's outputs is checked here, by :func:`check_training_sections`, which the
spec model calls after it is validated:

* every loss and metric reads an output the model has (or the only one), the loss graph reads
  outputs, named nodes and its own nodes (:func:`netspec.training.loss_names.check_names`), metric names are unique,
  and a metric that thresholds scores knows whether they are logits (the losses on its output agree);
* a monitor (early stopping, stop_when, best checkpoint, ReduceLROnPlateau) names a metric the
  run will produce: ``train_*`` always, ``val_*`` when the data section has validation data;
* a scheduler list's phases fit together, and the schedulers can be made on the optimizer.

Whether there is validation data is known here only from the ``data:`` section; when the loaders
come from Python the runner calls :func:`check_monitors` once more with the answer.
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError, did_you_mean
from ..nodes.registry import SpecPath
from .criterion import plan_terms
from .loss_names import check_names, term_keys
from .meters import check_metric_scores
from .metrics import metric_keys, split_metric_name
from .optimizers import stand_in_optimizer
from .schedulers import check_schedule, phases
from .spec import from_names

__all__ = ["check_training_sections", "check_monitors", "static_has_val", "produced_metrics"]


def check_training_sections(spec: Any) -> None:
    """Check what spans sections (see the module docstring); paths are from the spec's root.

    ``spec`` has ``output_names``, ``data`` and the five training sections (None when absent).
    """
    outputs = list(spec.output_names)
    if not outputs:
        return  # `outputs: {}`: the compiler's own check says so, at the outputs
    if spec.loss is not None:
        nodes = getattr(spec, "nodes", None) or []  # a test's stand-in spec has none
        check_names(spec.loss, outputs, [n.name for n in nodes if n.name])
        planned = plan_terms(spec.loss, outputs)
        gone = training_only_reads(spec)
        for term in planned if spec.loss.terms is None else []:  # `terms:` leaves them out in eval
            if term.output in gone:
                raise SpecError(
                    f"the loss reads `{term.output}`, which the model computes only in training (`training_only`): "
                    "evaluation would have no value for it",
                    path=term.path,
                    hint=f"write the loss as `terms:` (a term on `{term.output}` is left out in evaluation)",
                )
        if spec.loss.terms and len(training_only_terms(spec)) == len(spec.loss.terms):
            raise SpecError(
                "every term of the loss reads a value the model computes only in training (`training_only`), "
                "so evaluation would have no loss",
                path=("loss", "terms"),
                hint="add a term on an output that eval mode returns too (GoogLeNet's main logits)",
            )
    if spec.train is not None:
        metric_keys(spec.train.metrics, outputs)
        check_metric_scores(spec.train.metrics, spec.loss, outputs)
        _check_metric_outputs(spec, outputs)
    if spec.scheduler is not None:
        optimizer = stand_in_optimizer(spec.optimizer) if spec.optimizer is not None else None
        check_schedule(spec.scheduler, optimizer, epochs=spec.train.epochs if spec.train else 1)
    check_monitors(spec, static_has_val(spec))


def static_has_val(spec: Any) -> bool | None:
    """Whether the spec's data has a validation split; None without a ``data:`` section."""
    data = getattr(spec, "data", None)
    return None if data is None else data.val is not None


def produced_metrics(spec: Any, has_val: bool | None) -> list[str]:
    """Every metric name a run of ``spec`` logs: ``train_loss``, ``train_accuracy``, ``val_loss``...
    (``val_*`` unless ``has_val`` is False)."""
    metrics = spec.train.metrics if spec.train is not None else []
    keys = metric_keys(metrics, list(spec.output_names))
    keys[1:1] = term_keys(spec.loss)  # the loss's named terms, after the loss
    splits = ("train",) if has_val is False else ("train", "val")
    gone = {f"loss_{t}" for t in training_only_terms(spec)}  # eval mode computes no aux head
    return [f"{s}_{k}" for s in splits for k in keys if s == "train" or k not in gone]


def training_only_reads(spec: Any) -> set[str]:
    """The outputs (external names) and top-level nodes the model computes only in training."""
    only = {n.name for n in getattr(spec, "nodes", None) or [] if n.training_only and n.name}
    outputs = spec.outputs.items() if isinstance(getattr(spec, "outputs", None), dict) else []
    return only | {ext for ext, ref in outputs if ref in only}


def training_only_terms(spec: Any) -> list[str]:
    """The loss terms evaluation leaves out: those reading values of training only (through the
    loss graph too, which is computed only when all it reads is there)."""
    loss = getattr(spec, "loss", None)
    gone = training_only_reads(spec)
    if loss is None or not loss.terms or not gone:
        return []
    if any(set(from_names(n.from_)) & gone for n in loss.nodes or []):
        gone |= {n.name for n in loss.nodes or [] if n.name}
    return [key for key, term in loss.terms.items() if set(term.reads()) & gone]


def _check_metric_outputs(spec: Any, outputs: list[str]) -> None:
    """A metric reads an output evaluation computes too."""
    gone = training_only_reads(spec)
    for i, metric in enumerate(spec.train.metrics):
        if metric.output is not None and metric.output in gone:
            raise SpecError(
                f"metric reads `{metric.output}`, which the model computes only in training (`training_only`): "
                "validation could not compute it",
                path=("train", "metrics", i, "output"),
                hint=f"read an output eval mode returns too: {', '.join(o for o in outputs if o not in gone)}",
            )


def check_monitors(spec: Any, has_val: bool | None) -> None:
    """Every monitored metric is one the run produces (``has_val`` None: either split may be)."""
    produced = produced_metrics(spec, has_val)
    tspec = spec.train
    if tspec is not None:
        for section in ("early_stopping", "stop_when", "checkpoint"):
            sub = getattr(tspec, section)
            if sub is not None and sub.monitor is not None:
                _check_monitor(sub.monitor, produced, ("train", section, "monitor"))
    for phase, path in phases(spec.scheduler):
        if phase.monitor is not None:
            _check_monitor(phase.monitor, produced, (*path, "monitor"))


def _check_monitor(name: str, produced: list[str], path: SpecPath) -> None:
    if name in produced:
        return
    split = split_metric_name(name)
    hint = did_you_mean(name, produced)
    if split and split[0] == "val" and not any(p.startswith("val_") for p in produced):
        hint = "there is no validation data: add a val split under `data:` or monitor a train_* metric"
    elif split and f"train_{split[1]}" not in produced and f"val_{split[1]}" not in produced and not hint:
        hint = f"add `{split[1]}` to train.metrics" if split[1] != "loss" else None
    raise SpecError(f"no metric `{name}` is produced; the run produces {', '.join(produced)}", path=path, hint=hint)
