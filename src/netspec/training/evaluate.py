"""Evaluation: the loss and metrics of a model over a loader, and ``netspec eval``'s front door.

:func:`evaluate_loader` is also what the training loop runs on the validation data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor, nn

from ..errors import DataError
from .class_weights import needs_class_counts
from .context import located, output_shapes, require_sections, spec_base_dir, spec_roots
from .criterion import Criterion, class_counts
from .hardware import Hardware
from .loss_graph import build_loss, training_module
from .meters import MetricSet
from .options import TrainSpec
from .spec import WeightsSpec
from .weights import load_weights

if TYPE_CHECKING:  # the spec module imports the training package's spec models: the types alone here
    from ..compiler.spec import Spec
    from ..data.build import Loaders

__all__ = ["evaluate", "evaluate_loader", "forward", "batch_size"]


def evaluate(
    spec: Spec,
    *,
    checkpoint: str | Path | None = None,
    split: str = "val",
    model: nn.Module | None = None,
    loaders: Loaders | None = None,
    base_dir: str | Path | None = None,
    allow_download: bool = False,
) -> dict[str, float]:
    """Loss and metrics of a model (weights from ``checkpoint``) on the ``val`` or ``test`` split.

    The spec was checked when it was loaded, exactly as for ``train``; its files are read only
    where ``train`` would read them (``base_dir`` and the data roots, :mod:`netspec.files.access`).

    ``evaluate(spec, checkpoint="runs/fashion_cnn/<timestamp>/best.pt", split="test")`` scores
    a run's best weights on the test split. A model trained here, scored on its validation split:

    >>> import io, tempfile, netspec
    >>> spec = netspec.load_spec({
    ...     "netspec": 1, "name": "clusters", "inputs": {"x": [2]}, "nodes": [{"Linear": {"out_features": 2}}],
    ...     "data": {"train": {"source": "gaussian_clusters", "label_dtype": "int64"},
    ...              "val": {"source": "gaussian_clusters", "label_dtype": "int64", "n_per_class": 20}, "batch_size": 50},
    ...     "loss": "CrossEntropyLoss", "optimizer": {"SGD": {"lr": 0.1}},
    ...     "train": {"epochs": 3, "seed": 0, "device": "cpu", "metrics": ["accuracy"]},
    ... })
    >>> with tempfile.TemporaryDirectory() as out:
    ...     run = netspec.train(spec, out=out, stream=io.StringIO())
    ...     scores = evaluate(spec, checkpoint=run.run_dir / "best.pt")
    >>> sorted(scores), scores["val_accuracy"] > 0.9
    (['val_accuracy', 'val_loss'], True)
    """
    with located(spec):
        require_sections(spec, "loss", *(("data",) if loaders is None else ()))
        tspec = spec.train or TrainSpec()
        hw = Hardware.pick(tspec.device, tspec.precision)
        model = _model_with_weights(spec, model, checkpoint).to(hw.device).eval()
        built = loaders
        if built is None:
            fitted = _fitted(checkpoint, model) if checkpoint is not None else (None, None)
            built = spec_loaders(spec, tspec, hw, model, spec_base_dir(spec, base_dir), allow_download, *fitted)
        try:
            loader = _split_loader(built, split)
            outputs = list(spec.output_names)
            assert spec.loss is not None  # require_sections above
            counts = getattr(built, "info", {}).get("class_counts")
            criterion = build_loss(spec, model, counts, output_shapes(model)).to(hw.device)
            run = _EvalRun(hw, model, criterion, list(spec.inputs), outputs, training_module(model))
            values = evaluate_loader(run, loader, MetricSet(tspec.metrics, outputs, spec.loss))
        finally:
            if loaders is None:  # ours: their worker processes end here
                built.close()
        return {f"{split}_{k}": v for k, v in values.items()}


def _model_with_weights(spec: Any, model: nn.Module | None, checkpoint: str | Path | None) -> nn.Module:
    if model is None:
        from ..api import build_model

        model = build_model(spec)
    if checkpoint is not None:
        load_weights(model, WeightsSpec(path=str(checkpoint)), base_dir=Path("."), path=("--checkpoint",))
    return model


def _fitted(checkpoint: str | Path, model: nn.Module) -> tuple[Any, list[int] | None]:
    """A checkpoint's Standardize statistics and samples per class (None: not there; the
    loaders fit and count them on the spec's training split)."""
    from ..data.standardize import input_shapes
    from .weights import fitted_of

    return fitted_of(Path(checkpoint), input_shapes(model))


def spec_loaders(
    spec: Any,
    tspec: TrainSpec,
    hw: Hardware,
    model: nn.Module,
    base: Path,
    allow_download: bool,
    standardize: Any = None,
    counts: list[int] | None = None,
) -> Any:
    """The loaders the spec's ``data:`` section declares, for ``model``: every label checked
    against its output size and each split's first sample against its declared inputs, once,
    here (``netspec run`` and ``netspec eval`` alike; every process of a run checks alike).
    ``standardize``, ``counts``: a checkpoint's Standardize statistics and samples per
    class, used instead of fitting and counting them again."""
    from ..data import build_loaders
    from ..data.checks import declared_inputs
    from ..data.preprocessing import default_items

    return build_loaders(
        spec.data,
        base_dir=base,
        input_names=list(spec.inputs),
        seed=tspec.seed,
        device=hw.device,
        allow_download=allow_download,
        roots=spec_roots(spec),
        classes=class_counts(spec.loss, list(spec.output_names), output_shapes(model)),
        inputs=declared_inputs(model),
        count_classes=needs_class_counts(spec.loss),
        standardize=standardize,
        class_counts=counts,
        default_transforms=default_items(spec),
    )


def _split_loader(loaders: Any, split: str) -> Any:
    loader = getattr(loaders, split, None)
    if loader is None:
        raise DataError(
            f"the data has no `{split}` split",
            path=("data",),
            hint=f"add `{split}:` under `data:`" + (" or use --split val" if loaders.val is not None else ""),
        )
    return loader


class Forwards(Protocol):
    """What :func:`forward` reads of a run: a training :class:`~netspec.training.loop.Run`, an
    evaluation's or a prediction's (each brings its own object, so this is a protocol)."""

    hw: Hardware
    model: nn.Module
    input_names: list[str]
    output_names: list[str]


class Evaluates(Forwards, Protocol):
    """What :func:`evaluate_loader` reads of a run: :class:`Forwards` and the criterion."""

    criterion: Criterion


@dataclass
class _EvalRun:
    """What :func:`evaluate_loader` reads of a run."""

    hw: Hardware
    model: nn.Module
    criterion: Criterion
    input_names: list[str]
    output_names: list[str]
    compiled: nn.Module | None = None  # the loss view, when the loss reads nodes that are no output


def forward(run: Forwards, inputs: dict[str, Tensor], module: nn.Module | None = None) -> dict[str, Tensor]:
    """The model's outputs by name, under the run's autocast (the model's forward takes the
    inputs in declared order and returns one tensor, a tuple or a dict). ``module`` (the DDP
    wrapper of a data-parallel training step), else a training run's compiled module
    (``train.compile``), is called instead of the model when there is one. Evaluation never
    goes through DDP: its forward may broadcast buffers, a collective every process would
    have to join, and each process evaluates a share of its own length."""
    model = module if module is not None else getattr(run, "compiled", None) or run.model
    names = run.input_names
    with run.hw.autocast():
        raw = model(inputs[names[0]]) if len(names) == 1 else model(*[inputs[n] for n in names])
    if isinstance(raw, Tensor):
        return {run.output_names[0]: raw}
    if isinstance(raw, dict):
        return raw
    return dict(zip(run.output_names, raw))


def batch_size(inputs: dict[str, Tensor]) -> int:
    """Samples in a batch (the first input's first dimension)."""
    return int(next(iter(inputs.values())).shape[0])


@torch.no_grad()
def evaluate_loader(run: Evaluates, loader: Any, meter: MetricSet) -> dict[str, float]:
    """Loss and metrics over a loader; the caller sets model.eval()."""
    meter.reset()
    for inputs, target in run.hw.batches(loader, loader):
        outputs = forward(run, inputs)
        loss = run.criterion(outputs, target)
        meter.update(outputs, target, loss, batch_size(inputs), run.criterion.last)
    return meter.compute()
