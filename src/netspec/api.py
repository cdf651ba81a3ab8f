"""The Python front door: load a spec, compile it to a module."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from torch import fx

from .compiler.aliases import register_aliases
from .compiler.module import build_module
from .compiler.shapes import Options, TypedGraph, infer_shapes, resolve_params
from .compiler.spec import Spec, document_of
from .compiler.spec import load_spec as _load_spec
from .errors import Location, SpecError
from .files.access import check_roots

# What the front doors take for a spec: a file path, YAML/JSON text, a dict as parsed, or a Spec.
SpecSource = Union[str, "os.PathLike[str]", Mapping[str, Any], Spec]


def load_spec(
    source: SpecSource | None = None,
    *,
    text: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    allow_imports: list[str] | tuple[str, ...] | None = None,
    data_roots: list[str | os.PathLike] | tuple[str | os.PathLike, ...] = (),
) -> Spec:
    """Load and validate a spec: a path, YAML/JSON text, a dict, or a Spec; or ``text=`` alone.

    ``overrides`` are ``key=value`` strings as on the command line (``n_classes=5``,
    ``train.epochs=3``). Raises :class:`netspec.SpecError` (one located line) on mistakes.

    The files the spec names (data, weights) are read only under the spec file's folder (the
    working directory for text or a dict), the ``data_roots`` given here and those of the
    ``NETSPEC_DATA_ROOTS`` environment variable; ``data_roots=["/"]`` trusts the spec with
    every file (:mod:`netspec.files.access`). The roots travel with the spec to ``train``,
    ``evaluate`` and ``compile_spec``.

    >>> load_spec({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Linear": {"out_features": 1}}]}).name
    'm'
    >>> load_spec(text="name: m\\ninputs: {x: [3]}\\nnodes: [ReLU]\\n").nodes[0].op
    'ReLU'
    """
    try:
        roots = check_roots(data_roots)
    except SpecError as err:  # located at the spec the option was given with
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "\n"
        raise err.with_location(Location(name if "\n" not in name else "<spec>")) from None
    return _load_spec(source, text=text, overrides=overrides, allow_imports=allow_imports, roots=roots)


@dataclass
class Compiled:
    """A compiled spec: the module, its typed graph, and what was done implicitly.

    >>> compile_spec({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Linear": {"out_features": 1}}]})
    Compiled('m', 1 node, 4 parameters)
    """

    spec: Spec
    graph: TypedGraph
    module: fx.GraphModule
    log: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        """Name and size, not the whole spec, graph and module (a notebook shows it)."""
        nodes = len(self.graph.nodes)
        params = sum(p.numel() for p in self.module.parameters())
        return f"Compiled({self.spec.name!r}, {nodes} node{'s' * (nodes != 1)}, {params:,} parameters)"


def compile_spec(
    spec_or_path: SpecSource, *, max_params: int | None = None, device: torch.device | str | None = None, **params: Any
) -> Compiled:
    """Validate, infer shapes and build; returns the module with its graph and build log.

    ``device="meta"`` builds the module without memory or initialisation: enough for its
    parameter count, summary and code (``netspec validate`` and ``netspec compile`` do this).

    >>> c = compile_spec({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Linear": {"out_features": 1}}]})
    >>> c.graph.nodes[0].args
    {'out_features': 1, 'in_features': 3}
    """
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(spec_or_path)
    doc = document_of(spec)
    base = doc.base_dir if doc.file and not doc.file.startswith("<") else Path.cwd()
    options = Options(base_dir=Path(base), roots=doc.roots)
    if max_params is not None:
        options.max_params = max_params
    try:
        with _collector_paused():
            resolved = resolve_params(spec, params)
            graph = infer_shapes(spec, resolved, options)
            log: list[str] = []
            module = build_module(graph, log=log, device=device)
            register_aliases(module, spec.aliases or {})  # one module under a second name (CoaT's `cpe1`)
    except SpecError as e:
        raise e.with_location(doc.locate(e.path, key=e.key)) from None
    return Compiled(spec, graph, module, log)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused while compiling. A compile makes many objects that all
    live on (nodes, tensors, modules) and hardly any garbage, and each full collection walks
    every one of them again: a fifth of the time of a 5,000-node compile, growing faster than
    the node count. Collection resumes (if it was on) when the compile ends, however it ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_model(spec_or_path: SpecSource, **params: Any) -> fx.GraphModule:
    """Compile a spec (path, text, dict or Spec) into a ``torch.nn.Module``.

    Keyword arguments override the spec's parameters (``build_model("unet.yaml", n_classes=5)``).
    The module's forward takes the named inputs in declared order (or by keyword) and returns
    the output, or a tuple of outputs in declared order (a dict with ``output_type: dict``).

    >>> m = build_model({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Linear": {"out_features": 1}}]})
    >>> print(m.code.strip().splitlines()[-1].strip())
    return linear
    """
    return compile_spec(spec_or_path, **params).module
