"""A trained model, ready to predict: :func:`load_run` (from a run directory) and
:meth:`TrainedModel.from_spec` (a spec and a checkpoint, as ``netspec predict`` gets them).

>>> import tempfile, torch, netspec
>>> from netspec.training.checkpoint import CHECKPOINT_FORMAT
>>> run_dir = Path(tempfile.mkdtemp())
>>> text = "name: m\\ninputs: {x: [2]}\\nnodes: [{Linear: {out_features: 3}}]\\nloss: CrossEntropyLoss\\n"
>>> _ = (run_dir / "spec.yaml").write_text(text)
>>> torch.save({"format": CHECKPOINT_FORMAT, "model": netspec.build_model(text).state_dict()}, run_dir / "last.pt")
>>> run = netspec.load_run(run_dir)
>>> run.checkpoint.name, run.model.training
('last.pt', False)
>>> list(run.predict(torch.zeros(4, 2))[0])
['input', 'class', 'p_0', 'p_1', 'p_2']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, DataError, SpecError

__all__ = ["TrainedModel", "load_run", "checkpoint_file", "class_names", "with_standardize", "statistics_for"]


def checkpoint_file(path: str | Path, option: str = "--checkpoint") -> Path:
    """A checkpoint file, or a run directory's best.pt (last.pt when it has no best.pt).

    >>> checkpoint_file("nowhere")
    Traceback (most recent call last):
    netspec.errors.CheckpointError: <spec>: --checkpoint: nowhere: no such file or run directory
    """
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(
            f"{path} has neither best.pt nor last.pt",
            path=(option,),
            hint="the run stopped before its first checkpoint",
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or run directory", path=(option,))
    return path


# Data sources whose samples carry no class names: reading them would only cost time.
_NAMELESS = {"csv", "tensors", "random", "random_segmentation", "function_regression"}


def class_names(spec: Any, base_dir: Path) -> list[str] | None:
    """The class names the data section knows (folder names, a torchvision set's classes), or None.

    A torchvision set's names are a class attribute (no file read); an image folder's are its
    sub-folders; where the data cannot be read, the classes go by their indices.

    >>> from netspec.data.spec import DataSpec
    >>> class_names(type("S", (), {"data": DataSpec.model_validate({"train": {"source": "FashionMNIST",
    ...     "root": "nowhere"}})})(), Path("."))[:2]
    ['T-shirt/top', 'Trouser']
    """
    data = getattr(spec, "data", None)
    source = next((s for s in (getattr(data, k, None) for k in ("train", "test", "val")) if hasattr(s, "source")), None)
    if source is None or source.source in _NAMELESS:
        return None
    import torchvision.datasets

    static = getattr(getattr(torchvision.datasets, source.source, None), "classes", None)
    if isinstance(static, list) and all(isinstance(c, str) for c in static):
        return list(static)
    from ..data.sources import SOURCES, LoadContext

    try:
        raw = SOURCES[source.source].load(source, LoadContext(base_dir=base_dir, seed=0, download=False))
    except SpecError:
        return None  # the data is not here: indices, not names
    return list(raw.classes) if raw.classes else None


@dataclass
class TrainedModel:
    """A compiled spec with trained weights, in eval mode, and what predictions need.

    ``predict(inputs)`` takes a tensor (a batch, for a model with one input), a dict of
    tensors (one per input), or paths: image files, folders of images, CSV files, ``.npz`` /
    ``.safetensors`` / ``.pt`` tensor files; it returns one dict per sample (see :mod:`netspec.interop.predict`).
    """

    spec: Any
    model: nn.Module
    compiled: Any
    checkpoint: Path | None
    classes: list[str] | None
    base_dir: Path
    device: torch.device

    def __repr__(self) -> str:
        """The model's name and where its weights came from, not the whole spec and graph."""
        return (
            f"TrainedModel({self.spec.name!r}, checkpoint={str(self.checkpoint) if self.checkpoint else None!r}, "
            f"classes={self.classes!r}, device={str(self.device)!r})"
        )

    @classmethod
    def from_spec(
        cls, spec: Any, checkpoint: str | Path | None, *, device: str = "auto", base_dir: Path | None = None
    ) -> TrainedModel:
        """Compile ``spec`` and load a checkpoint (or a run directory's best) into it."""
        from ..api import compile_spec
        from ..training.context import spec_base_dir
        from ..training.hardware import Hardware
        from ..training.spec import WeightsSpec
        from ..training.weights import load_weights

        compiled = compile_spec(spec)
        file = checkpoint_file(checkpoint) if checkpoint is not None else None
        if file is not None:
            load_weights(compiled.module, WeightsSpec(path=str(file)), base_dir=Path("."), path=("--checkpoint",))
        hw = Hardware.pick(device, "fp32")
        base = spec_base_dir(spec, base_dir)
        model = with_standardize(compiled, file).to(hw.device).eval()
        return cls(spec, model, compiled, file, class_names(spec, base), base, hw.device)

    def reading(self, output: str | None = None) -> Any:
        """How predictions read ``output`` (default: the first): :class:`~netspec.interop.scores.Reading`."""
        from .scores import reading_of

        graph = self.compiled.graph
        in_eval = {ref for _, ref in graph.eval_outputs}  # not those of training only
        # by position: the spec calls an unnamed last node `output` where the graph says `linear`
        names = [name for name, (_, ref) in zip(self.spec.output_names, graph.outputs) if ref in in_eval]
        if output is not None and output not in names:
            raise SpecError(f"the model has no output `{output}`; its outputs: {', '.join(names)}", path=("--output",))
        return reading_of(self.spec, self.compiled.graph, output or names[0])

    def predict(
        self, inputs: Any, *, output: str | None = None, top_k: int | None = None, batch_size: int | None = None
    ) -> list[dict[str, Any]]:
        """One dict per sample: ``input`` (its id), then ``class`` and ``p_<class>`` per class
        (``top_k``: the ranked ``class``/``probability``, ``class_2``/``probability_2``...),
        ``class`` and ``p_1`` (P(y=1)) for one score, ``mask`` (a tensor of class indices) or the
        output's values (:func:`~netspec.interop.scores.rows_of`)."""
        from .predict import predict_rows

        return list(predict_rows(self, inputs, output=output, top_k=top_k, batch_size=batch_size))


def with_standardize(compiled: Any, file: Path | None) -> nn.Module:
    """The compiled model, behind a layer that standardises its inputs with the statistics the
    checkpoint holds when the spec's data ends in ``Standardize`` (raw features in, as the data
    pipeline fed them standardised; :func:`netspec.data.standardize.standardized`).

    >>> import netspec
    >>> c = netspec.compile_spec({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Linear": {"out_features": 2}}]})
    >>> with_standardize(c, None) is c.module
    True
    """
    from ..data.standardize import standardized

    stats = statistics_for(compiled, file)
    return compiled.module if stats is None else standardized(compiled.module, stats)


def statistics_for(compiled: Any, file: Path | None) -> Any:
    """The checkpoint's Standardize statistics when the spec's data ends in ``Standardize``
    (None when it does not); a checkpoint without them is refused in one line."""
    from ..data.standardize import input_shapes, standardizes
    from ..training.weights import standardize_statistics

    if not standardizes(getattr(compiled.spec, "data", None)):
        return None
    stats = standardize_statistics(file, input_shapes(compiled.module)) if file is not None else None
    if stats is None:
        raise CheckpointError(
            "the spec's data ends in Standardize, and "
            + (f"{file} holds no statistics" if file is not None else "there is no checkpoint with its statistics"),
            path=("--checkpoint",),
            hint="give a last.pt / best.pt (or run directory) that `netspec run` wrote with this spec",
        )
    return stats


def load_run(
    run_dir: str | Path, *, checkpoint: str | None = None, device: str = "auto", base_dir: str | Path | None = None
) -> TrainedModel:
    """The model of a run directory with its best weights (best.pt, else last.pt), in eval mode.

    ``checkpoint`` names another file of the run directory (``last.pt``) instead.
    The spec is the run's resolved ``spec.yaml``; its data paths (read for the class names of an
    image folder) are relative to the spec the run was started from: give that folder as
    ``base_dir`` (default: the current directory).

    >>> import io, tempfile, netspec
    >>> spec = netspec.load_spec({
    ...     "netspec": 1, "name": "clusters", "inputs": {"x": [2]}, "nodes": [{"Linear": {"out_features": 2}}],
    ...     "data": {"train": {"source": "gaussian_clusters", "label_dtype": "int64"}, "batch_size": 50},
    ...     "loss": "CrossEntropyLoss", "optimizer": {"SGD": {"lr": 0.1}},
    ...     "train": {"epochs": 3, "seed": 0, "device": "cpu", "metrics": ["accuracy"]},
    ... })
    >>> import torch
    >>> with tempfile.TemporaryDirectory() as out:
    ...     run = netspec.train(spec, out=out, stream=io.StringIO())
    ...     trained = load_run(run.run_dir, device="cpu")
    >>> trained.checkpoint.name, trained.classes
    ('best.pt', ['0', '1'])
    >>> [row["class"] for row in trained.predict(torch.tensor([[3.0, 3.0], [-2.0, -2.0]]))]
    ['0', '1']
    """
    from ..api import load_spec

    run_dir = Path(run_dir)
    if not (run_dir / "spec.yaml").is_file():
        raise DataError(
            f"{run_dir} is not a run directory: it has no spec.yaml",
            path=("run_dir",),
            hint="give the folder `netspec run` printed, e.g. runs/<name>/<timestamp>",
        )
    spec = load_spec(run_dir / "spec.yaml")
    file = run_dir / checkpoint if checkpoint else checkpoint_file(run_dir, "run_dir")
    return TrainedModel.from_spec(spec, file, device=device, base_dir=Path(base_dir) if base_dir else Path("."))
