"""``netspec export``: a compiled model (with its checkpoint's weights) written as ONNX, a
torch.export program, TorchScript or a standalone Python file, then read back and checked
against the model's own outputs at another batch size than the one it was exported with; or
its weights alone as a ``.safetensors`` file, read back and compared tensor by tensor.

ONNX uses torch's TorchScript-based exporter (``dynamo=False``): it needs only the ``onnx``
package (``pip install 'netspec[onnx]'``), where the newer torch.export-based exporter also needs
``onnxscript``. torch 2.9+ calls that exporter deprecated; netspec pins torch to the 2.14
series, which still has it. onnxruntime, when installed, runs the file for the comparison.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..compiler.dims import batch_dims, shape_str
from ..data.standardize import standardized
from ..errors import first_line
from ..files.outputs import atomic_file, output_path
from . import ExportError

__all__ = ["FORMATS", "export_model", "sample_inputs", "flat_outputs", "output_names", "random_outputs"]

#: format -> file suffix
FORMATS = {
    "onnx": ".onnx",
    "export": ".pt2",
    "torchscript": ".torchscript.pt",
    "python": ".py",
    "safetensors": ".safetensors",
}

ONNX_HINT = "install it with: pip install 'netspec[onnx]'"


def sample_inputs(graph: Any, batch: int = 2, seed: int = 0) -> list[Tensor]:
    """Random inputs of the declared shapes and dtypes (integers in 0..9: token ids, indices).

    >>> from netspec.api import compile_spec
    >>> g = compile_spec({"name": "m", "inputs": {"x": [3], "t": {"shape": [4], "dtype": "int64"}},
    ...                   "nodes": [{"Linear": {"out_features": 1}, "from": "x"}, {"add": ["linear", "t"]}]}).graph
    >>> [(tuple(x.shape), x.dtype) for x in sample_inputs(g, batch=5)]
    [((5, 3), torch.float32), ((5, 4), torch.int64)]
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for value in graph.inputs.values():
        shape = (batch, *value.shape[1:])
        if value.dtype.is_floating_point:
            out.append(torch.randn(shape, generator=g, dtype=value.dtype))
        else:
            out.append(torch.randint(0, 10, shape, generator=g).to(value.dtype))
    return out


def flat_outputs(out: Any) -> list[Tensor]:
    """A model's outputs as a flat list of tensors, in order (tuples and dicts flattened).

    >>> [t.item() for t in flat_outputs({"a": torch.tensor(1), "b": (torch.tensor(2), torch.tensor(3))})]
    [1, 2, 3]
    """
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for item in out for t in flat_outputs(item)]


def output_names(graph: Any) -> list[str]:
    """The names of :func:`flat_outputs`: the spec's output names (``lstm_0``, ``lstm_1``, ...
    for an output that is a tuple)."""
    names: list[str] = []
    for ext, ref in graph.eval_outputs:
        n = len(flat_outputs(graph.probe_of(ref).value))
        names += [ext] if n == 1 else [f"{ext}_{i}" for i in range(n)]
    return names


def _input_batch_dims(graph: Any) -> dict[str, int | None]:
    """The batch dim of each input (0, as declared inputs are batch-first)."""
    return {name: next(iter(batch_dims(v, graph.input_twins[name])), None) for name, v in graph.inputs.items()}


def _output_batch_dims(graph: Any) -> list[int | None]:
    """The batch dim of each flat output (None for one that has none, like a Parameter)."""
    dims: list[int | None] = []
    for _, ref in graph.eval_outputs:
        probe = graph.probe_of(ref)
        for value, twin in zip(flat_outputs(probe.value), flat_outputs(probe.twin)):
            found = batch_dims(value, twin)
            dims.append(found[0] if found else None)
    return dims


def random_outputs(model: nn.Module, inputs: list[Tensor], first: list[Tensor] | None = None) -> list[int]:
    """Indices of the flat outputs that depend on random draws (``randn_like``...): they differ
    between two runs with different seeds (``first``: the outputs with seed 0, when known)."""
    first = first if first is not None else _seeded(model, *inputs)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        second = flat_outputs(model(*inputs))
    return [i for i, (a, b) in enumerate(zip(first, second)) if not torch.equal(a, b)]


@dataclass
class _Job:
    """What every format's writer and checker needs."""

    compiled: Any
    model: nn.Module
    out: Path
    example: list[Tensor]  # the inputs it is exported with (batch 2)
    check: list[Tensor]  # the inputs it is checked with (batch 3: the batch is dynamic)
    names: list[str]  # flat output names
    options: dict[str, Any]
    _want: list[Tensor] | None = None

    @property
    def want(self) -> list[Tensor]:
        """The model's outputs on ``check`` (random draws seeded with 0), computed once."""
        if self._want is None:
            self._want = _seeded(self.model, *self.check)
        return self._want


def _compare(job: _Job, got: list[Tensor], *, exact: bool, skip: Sequence[int] = ()) -> str:
    """Compare outputs with the model's on ``job.check`` (same seed); the report's words."""
    want = job.want
    if len(got) != len(want):
        raise ExportError(f"the exported model gives {len(got)} outputs, the model {len(want)}")
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        if i in skip:
            continue
        g = torch.as_tensor(g)
        scale = max(1.0, float(w.abs().max())) if w.numel() and w.is_floating_point() else 1.0
        try:  # float error grows with the size of the values: the tolerance is relative to the largest
            torch.testing.assert_close(g, w, rtol=0 if exact else 1e-4, atol=0 if exact else 1e-5 * scale)
        except AssertionError as e:
            raise ExportError(
                f"output `{job.names[i]}` of the exported model differs from the model's: {first_line(e)}"
            ) from None
        if w.numel() and w.is_floating_point():
            worst = max(worst, float((g.double() - w.double()).abs().max()))
    return "equal" if worst == 0 else f"max |difference| {worst:.1e}"


def _seeded(fn: Callable[..., Any], *args: Any) -> list[Tensor]:
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return flat_outputs(fn(*args))


# ---------------------------------------------------------------------------------------------
# The formats
# ---------------------------------------------------------------------------------------------


def _onnx(job: _Job) -> list[str]:
    """ONNX with the spec's input and output names and a dynamic batch dim, checked by
    onnx.checker and, when onnxruntime is installed, against the model's outputs."""
    if importlib.util.find_spec("onnx") is None:
        raise ExportError("--format onnx needs the `onnx` package", hint=ONNX_HINT)
    import onnx

    graph = job.compiled.graph
    _refuse_onnx_gaps(graph)
    dims = {**_input_batch_dims(graph), **dict(zip(job.names, _output_batch_dims(graph)))}
    axes = {name: {d: "batch"} for name, d in dims.items() if d is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter: see the docstring
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # checked below at another batch size
        try:
            torch.onnx.export(
                job.model,
                tuple(job.example),
                str(job.out),
                dynamo=False,
                input_names=list(graph.inputs),
                output_names=job.names,
                dynamic_axes=axes,
                opset_version=job.options.get("opset"),
            )
        except Exception as e:  # an op ONNX has no translation for, among others
            raise ExportError(f"torch.onnx.export failed: {first_line(e)}") from None
    proto = onnx.load(str(job.out), load_external_data=False)
    onnx.checker.check_model(str(job.out))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    lines = [f"onnx.checker: ok (opset {opset})"]
    if importlib.util.find_spec("onnxruntime") is None:
        return lines + ["outputs not compared: onnxruntime is not installed (pip install onnxruntime)"]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(job.out), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: x.numpy() for name, x in zip(graph.inputs, job.check)})
    random = random_outputs(job.model, job.check, job.want)
    verdict = _compare(job, [torch.from_numpy(g) for g in got], exact=False, skip=random)
    skipped = f"; not compared (random): {', '.join(job.names[i] for i in random)}" if random else ""
    return lines + [f"onnxruntime at batch {len(job.check[0])}: {verdict} to PyTorch{skipped}"]


#: op -> why torch's ONNX exporter cannot take a node of it (None: it can), checked before
#: exporting so that the refusal names the node, not the exporter's internals
ONNX_GAPS: dict[str, Callable[[Any], str | None]] = {
    "rms_norm": lambda node: "torch.onnx.export (TorchScript-based) translates no F.rms_norm at any opset",
    "batch_norm": lambda node: (
        "its statistics over a dynamic batch (`use_input_stats: true` on an input with a batch) are not exported"
        if node.args.get("use_input_stats") and node.value.shape != node.twin.shape
        else None
    ),
}


def _refuse_onnx_gaps(graph: Any, where: str = "") -> None:
    """One line for the first node ONNX export cannot take (:data:`ONNX_GAPS`), in sub-graphs too.

    >>> from netspec.api import compile_spec
    >>> spec = {"name": "m", "inputs": {"x": [4]}, "nodes": [{"r": {"rms_norm": {"normalized_shape": [4]}}}]}
    >>> _refuse_onnx_gaps(compile_spec(spec).graph)
    Traceback (most recent call last):
    netspec.interop.ExportError: <spec>: node `r` (op rms_norm) cannot be exported to ONNX: torch.onnx.export (TorchScript-based) translates no F.rms_norm at any opset; export it with --format export (torch.export) or --format python
    """
    for node in graph.nodes:
        path = f"{where}.{node.name}".lstrip(".")
        why = ONNX_GAPS[node.op](node) if node.kind == "op" and node.op in ONNX_GAPS else None
        if why:
            raise ExportError(
                f"node `{path}` (op {node.op}) cannot be exported to ONNX: {why}",
                hint="export it with --format export (torch.export) or --format python",
            )
        if getattr(node, "sub", None) is not None:
            _refuse_onnx_gaps(node.sub, path)


def _torch_export(job: _Job) -> list[str]:
    """A torch.export program with a dynamic batch dim, saved with torch.export.save (.pt2)."""
    batch = torch.export.Dim("batch")
    shapes = {name: None if d is None else {d: batch} for name, d in _input_batch_dims(job.compiled.graph).items()}
    try:
        program = torch.export.export(job.model, tuple(job.example), dynamic_shapes=shapes)
    except Exception as e:
        raise ExportError(f"torch.export.export failed: {first_line(e)}") from None
    torch.export.save(program, str(job.out))
    loaded = torch.export.load(str(job.out))
    verdict = _compare(job, _seeded(loaded.module(), *job.check), exact=False)
    return [f"torch.export.load at batch {len(job.check[0])}: {verdict} to the model"]


def _torchscript(job: _Job) -> list[str]:
    """TorchScript by tracing (fx's generated code is plain tensor code), saved with .save()."""
    with warnings.catch_warnings():
        # torch.jit is deprecated in torch 2.9+ (a DeprecationWarning in 2.11, a FutureWarning in 2.14)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # checked below at another batch size
        try:
            traced = torch.jit.trace(job.model, tuple(job.example), check_trace=False, strict=False)
        except Exception as e:
            raise ExportError(f"torch.jit.trace failed: {first_line(e)}") from None
        traced.save(str(job.out))
        loaded = torch.jit.load(str(job.out))
    verdict = _compare(job, _seeded(loaded, *job.check), exact=False)
    return [f"torch.jit.load at batch {len(job.check[0])}: {verdict} to the model"]


def _python(job: _Job) -> list[str]:
    """The standalone file (:mod:`netspec.interop.eject`), run here on the model's state_dict.
    ``job.out`` is the output policy's temp file beside ``--out``, moved into place only once
    every check passed: a failed check leaves no .py behind, and any failure is one line. Buffers
    in no checkpoint and too big for the file go to ``NAME_buffers.pt`` beside it (not
    ``NAME.buffers.pt``: that is the file ``netspec import`` writes beside a spec, which the spec reads)."""
    import re

    from .eject import eject

    module = job.options["module"].replace(".", "_")
    sidecar: dict[str, Tensor] = {}
    source = eject(
        job.compiled,
        module_name=module,
        command=job.options.get("command", ""),
        checkpoint=job.options.get("checkpoint") or "best.pt",
        standardize=job.options.get("standardize"),
        sidecar=sidecar,
    )  # audited: only the statements it wrote
    name = re.findall(r"^class (\w+)\(nn\.Module\):", source, re.M)[-1]
    job.out.write_text(source, encoding="utf-8")  # the policy's temp file, moved into place once checked
    if not sidecar:
        _run_ejected(job, source, name)
        return [f"class {name}: the state_dict loads strictly; its outputs equal the model's"]
    buffers = output_path(
        job.out.with_name(f"{module}_buffers.pt"), option="--out", force=job.options.get("force", False)
    )  # an existing file is replaced only with --force, as the .py is
    with atomic_file(buffers) as tmp:  # moved into place with the .py: removed if a check fails
        torch.save(sidecar, tmp)
        _run_ejected(job, source, name, tmp)
    return [
        f"class {name}: the state_dict loads strictly; its outputs equal the model's",
        f"wrote {buffers.name} beside it ({_size(buffers)}): {len(sidecar)} buffers in no checkpoint, "
        "read by load_buffer()",
    ]


def _run_ejected(job: _Job, source: str, name: str, buffers: Path | None = None) -> None:
    """Import the ejected source (reading its buffers from ``buffers``), load the model's
    state_dict strictly and compare the outputs exactly; any failure is an ExportError of one line."""
    from .pysource import flat

    namespace: dict[str, Any] = {"__name__": job.options["module"], "__file__": str(job.out)}
    try:
        exec(compile(source, flat(str(job.out)), "exec"), namespace)  # netspec's own code, audited by eject()
        if buffers is not None:
            namespace["BUFFERS_FILE"] = buffers  # the temp file, moved beside the .py once checked
        ejected = namespace[name]()
        ejected.load_state_dict(job.model.state_dict())  # strict: every key, as it is
        got = _seeded(ejected.eval(), *job.check)
    except Exception as e:  # a bug in the writer, never the spec's text: said in one line
        raise ExportError(
            f"the written Python file does not rebuild the model: {type(e).__name__}: {first_line(e)}",
            hint="nothing was written; this is a bug in netspec",
        ) from None
    _compare(job, got, exact=True)  # raises unless equal


def _safetensors(job: _Job) -> list[str]:
    """The state_dict as a ``.safetensors`` file (tied weights as copies, :mod:`netspec.files.safetensorfile`),
    with netspec's version and the spec's name, sha256 and resolved text as metadata; read back and
    compared key by key, exactly."""
    from .. import __version__
    from ..files.safetensorfile import load_safetensors_file, save_safetensors
    from ..training.rundir import resolved_spec, spec_hash, spec_yaml

    spec = job.compiled.spec
    state = job.model.state_dict()
    metadata = {
        "format": "pt",  # what Hugging Face's loaders expect of a PyTorch file
        "netspec": __version__,
        "spec_name": spec.name,
        "spec_sha256": spec_hash(spec),
        "spec": spec_yaml(resolved_spec(spec)),
    }
    save_safetensors(state, job.out, metadata)
    back = load_safetensors_file(job.out, ("--out",), ExportError, "the written file")
    if set(back) != set(state):
        raise ExportError(f"the written file holds {len(back)} tensors, the model {len(state)}")
    for key, value in state.items():
        if back[key].dtype != value.dtype or not torch.equal(back[key], value.detach().cpu()):
            raise ExportError(f"tensor `{key}` of the written file differs from the model's")
    return [f"read back: {len(back)} tensors, each equal to the model's state_dict (metadata: spec sha256, netspec)"]


_WRITERS: dict[str, Callable[[_Job], list[str]]] = {
    "onnx": _onnx,
    "export": _torch_export,
    "torchscript": _torchscript,
    "python": _python,
    "safetensors": _safetensors,
}


def export_model(compiled: Any, fmt: str, out: str | Path, **options: Any) -> list[str]:
    """Write ``compiled.module`` (weights as they are) in ``fmt`` to ``out`` and check the file
    against the module; returns the report lines. ``options``: ``opset`` (ONNX), ``force`` (a
    Python file's buffers file may replace one), ``command`` and
    ``checkpoint`` (named in the Python file's docstring), ``standardize`` (the checkpoint's
    Standardize statistics: the file standardises its raw inputs as ``netspec predict`` does).

    >>> import tempfile
    >>> from netspec.api import compile_spec
    >>> c = compile_spec({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Linear": {"out_features": 2}}]})
    >>> export_model(c, "torchscript", Path(tempfile.mkdtemp()) / "m.pt")[-1]
    'torch.jit.load at batch 3: equal to the model'
    """
    if fmt not in _WRITERS:
        raise ExportError(f"unknown format `{fmt}`; use one of {', '.join(_WRITERS)}")
    for each, suffix, what in (("export", ".pt2", "torch.export programs"), ("safetensors", ".safetensors", "weights")):
        if fmt == each and Path(out).suffix != suffix:  # readers (netspec's, timm's) go by the suffix
            raise ExportError(
                f"{what} are saved as {suffix} files, not {Path(out).name}",
                hint=f"name the output {Path(out).with_suffix(suffix).name}",
            )
    stats = options.get("standardize")
    model = (standardized(compiled.module, stats) if stats else compiled.module).eval()
    if fmt == "safetensors":  # weights only: nothing is run
        with atomic_file(out) as tmp:
            checks = _safetensors(_Job(compiled, model, tmp, [], [], [], {}))
        return [f"wrote {out} ({_size(Path(out))}): the state_dict of {compiled.spec.name}", *checks]
    # Traced formats are checked at another batch size than they were traced at (the batch is
    # dynamic); the Python file traces nothing: one sample is enough.
    example, check = sample_inputs(compiled.graph, 2), sample_inputs(compiled.graph, 1 if fmt == "python" else 3, 1)
    names = output_names(compiled.graph)
    with atomic_file(out) as tmp:  # a failed export or check never leaves a file, nor destroys the old one
        job = _Job(compiled, model, tmp, example, check, names, {"module": Path(out).stem, **options})
        checks = _WRITERS[fmt](job)
    return [f"wrote {out} ({_size(Path(out))}): {_signature(compiled.graph, names)}", *checks]


def _signature(graph: Any, names: list[str]) -> str:
    """``image (B, 1, 32, 32) -> logits (B, 10)``."""
    ins = ", ".join(f"{n} {shape_str(v, graph.input_twins[n])}" for n, v in graph.inputs.items())
    outs = ", ".join(
        f"{ext} {shape_str(graph.probe_of(ref).value, graph.probe_of(ref).twin)}" for ext, ref in graph.eval_outputs
    )
    return f"{ins} -> {outs}"


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB" if n >= 2**10 else f"{n} bytes"
