"""What the training commands need to know about the spec they were given: where it came from
(for located errors and relative paths), whether it has the sections a command needs, and the
per-sample shapes of its compiled model's outputs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..errors import Location, NetspecError, SpecError

__all__ = ["located", "spec_base_dir", "spec_roots", "require_sections", "output_shapes"]

# What each section is for, as the error says when it is missing.
_EXAMPLES = {
    "loss": "for example `loss: CrossEntropyLoss`",
    "optimizer": "for example `optimizer: {Adam: {lr: 0.001}}`",
    "data": "for example `data: {train: {source: FashionMNIST, root: data}, batch_size: 64}`",
}


@contextlib.contextmanager
def located(spec: Any) -> Iterator[None]:
    """Give a NetspecError (a SpecError, a TrainingError) raised inside the file:line of its spec
    path (when loaded from a file).

    A path that names a command-line option (``--resume``) is located at the spec file alone.
    """
    try:
        yield
    except NetspecError as err:
        doc = _document(spec)
        if doc is not None and err.path and str(err.path[0]).startswith("--"):
            err.with_location(Location(file=doc.file))
        elif doc is not None and err.path:
            err.with_location(doc.locate(err.path, key=True))
        raise


def _document(spec: Any) -> Any:
    try:
        from ..compiler.spec import document_of

        return document_of(spec)
    except (TypeError, AttributeError):  # not a Spec (a test's stand-in)
        return None


def spec_base_dir(spec: Any, given: str | Path | None = None) -> Path:
    """The folder relative paths in a spec (weights, data) are read from: the spec file's own.

    >>> spec_base_dir(None, "data")
    PosixPath('data')
    """
    if given is not None:
        return Path(given)
    doc = _document(spec)
    if doc is not None and doc.file and not doc.file.startswith("<"):
        return Path(doc.base_dir)
    return Path(".")


def spec_roots(spec: Any) -> tuple[Path, ...]:
    """The data roots the user allowed when the spec was loaded (``load_spec(data_roots=...)``,
    ``--data-root``); files are read only under these and the spec's folder (:mod:`netspec.files.access`).

    >>> spec_roots(None)
    ()
    """
    doc = _document(spec)
    return tuple(doc.roots) if doc is not None else ()


def require_sections(spec: Any, *sections: str) -> None:
    """SpecError unless the spec has every one of ``sections`` (``loss``, ``optimizer``, ``data``).

    >>> from types import SimpleNamespace as NS
    >>> require_sections(NS(loss=None), "loss")
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: loss: training needs a `loss:` section; for example `loss: CrossEntropyLoss`
    """
    for name in sections:
        if getattr(spec, name, None) is None:
            raise SpecError(
                f"training needs a{'n' if name[0] in 'aeiou' else ''} `{name}:` section",
                path=(name,),
                hint=_EXAMPLES.get(name),
            )


def output_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Per-sample output shapes of a compiled netspec model, from its typed graph (nothing is
    run); empty for any other module.

    >>> from netspec.api import build_model
    >>> output_shapes(build_model({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Linear": {"out_features": 4}}]}))
    {'linear': (4,)}
    """
    graph = getattr(model, "netspec_graph", None)
    if graph is None:
        return {}
    shapes = {}
    for name, ref in graph.outputs:
        value = graph.node(ref).value if ref not in graph.inputs else graph.inputs[ref]
        if isinstance(value, Tensor):
            shapes[name] = tuple(value.shape[1:])
    return shapes
