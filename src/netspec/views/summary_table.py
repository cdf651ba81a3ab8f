"""The ``--summary`` table: torchinfo's look, from what compiling already knows.

torchinfo learns each layer's output shape by running a real forward pass at the declared
input size (a gigabyte of activations for the U-Net at 3x572x572). Shape inference has found
every node's shape already, on meta tensors at two batch sizes, so the table shows those, at
batch 1. Inside a torchvision model (one node to netspec) the children's shapes come from one
run of that model on meta tensors, its real weights untouched: no memory, no arithmetic.

The columns and totals count as torchinfo does: a module's own parameters, or all of them on
the deepest row shown (in parentheses when none is trainable); mult-adds of a layer's weights:
times the output positions for a convolution, times the batch for the others; the
forward/backward size is twice the outputs of the layers that have weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..compiler.dims import Probe, sizes_at
from ..compiler.typed import TypedGraph

if TYPE_CHECKING:
    from ..api import Compiled

_WIDTH = 25  # of each column after the first, as torchinfo's


@dataclass
class _Row:
    depth: int
    name: str  # the attribute name ("conv1"); the class name for the whole model
    module: nn.Module
    probe: Probe | None  # the output at both batch sizes; None when not known


def layer_table(c: Compiled, depth: int = 2) -> str:
    """The summary table of a compiled spec, down to ``depth`` levels of submodules.

    >>> from netspec.api import compile_spec
    >>> c = compile_spec({"name": "m", "inputs": {"x": [3]}, "nodes": [{"fc": {"Linear": {"out_features": 2}}}]})
    >>> print(layer_table(c).splitlines()[4])
    ├─Linear (fc)                            [1, 2]                    8                         True                      8
    """
    g = c.graph
    probes = {"": g.output_probe(), **_node_probes(c.module, g, "")}
    order = {path: i for i, path in enumerate(probes)}  # nodes in graph order, children in call order
    rows = [
        _Row(d, n if p else type(c.module).__name__, m, probes.get(p))
        for d, p, n, m in _walk(c.module, "", 0, depth, order)
    ]
    leaves = [(m, probes.get(p)) for p, m in c.module.named_modules() if not any(True for _ in m.children())]
    inputs = sum(_bytes(sizes_at(g.inputs[n], g.input_twins[n], 1), g.inputs[n]) for n in g.inputs)
    outputs = sum(
        2 * _bytes(sizes_at(p.value, p.twin, 1), p.value) for m, p in leaves if p is not None and _count(m)[0]
    )  # x2: the gradients
    return _format(rows, depth, leaves, inputs, outputs, c.module)


def _walk(
    module: nn.Module, path: str, depth: int, max_depth: int, order: dict[str, int]
) -> list[tuple[int, str, str, nn.Module]]:
    """(depth, path, attribute name, module) of ``module`` and its children down to ``max_depth``,
    children in the order they run (those never called last, as registered)."""
    rows = [(depth, path, path.rsplit(".", 1)[-1], module)]
    if depth < max_depth:
        children = [(f"{path}.{name}" if path else name, child) for name, child in module.named_children()]
        for child_path, child in sorted(children, key=lambda pc: order.get(pc[0], len(order))):
            rows += _walk(child, child_path, depth + 1, max_depth, order)
    return rows


def _node_probes(module: nn.Module, graph: TypedGraph, prefix: str) -> dict[str, Probe]:
    """Module path -> output, for every node of the typed graph that is a module, and for the
    children of the layers and torchvision models that have some (which are one node each)."""
    out: dict[str, Probe] = {}
    for node in graph.nodes:
        path = prefix + node.name
        out[path] = node.probe
        if node.sub is not None:
            out.update(_node_probes(module, node.sub, path + "."))
        child = module.get_submodule(path) if node.kind in ("layer", "zoo") else None
        if child is not None and any(True for _ in child.children()):
            kw = {
                k: graph.probe_of(v) if isinstance(v, str) else Probe.of_tuple([graph.probe_of(x) for x in v])
                for k, v in node.kw_inputs.items()
            }
            inner = _meta_run(child, [graph.probe_of(n) for n in node.inputs], kw)
            out.update({f"{path}.{name}": p for name, p in inner.items()})
    return out


def _meta_run(model: nn.Module, args: list[Probe], kwargs: dict[str, Probe]) -> dict[str, Probe]:
    """The output of every submodule of ``model`` at both batch sizes, run on meta copies of its
    parameters and buffers, in eval mode as in shape inference."""
    seen: dict[str, list[Any]] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _a, out, name=name: seen.setdefault(name, []).append(out))
        for name, m in model.named_modules()
        if name
    ]
    meta = {n: torch.empty_like(t, device="meta") for n, t in chain(model.named_parameters(), model.named_buffers())}
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            for side in ("value", "twin"):
                torch.func.functional_call(
                    model, meta, tuple(getattr(a, side) for a in args), {k: getattr(p, side) for k, p in kwargs.items()}
                )
    except Exception:  # a model that cannot run on meta tensors: its children show no shape
        return {}
    finally:
        for h in hooks:
            h.remove()
        for m, training in modes.items():
            m.training = training
    # a module called k times per forward (a shared ReLU) has 2k outputs: its first at each size
    return {name: Probe(outs[0], outs[len(outs) // 2]) for name, outs in seen.items()}


def _count(module: nn.Module) -> tuple[int, int]:
    """(parameters, trainable parameters) of a module and its children."""
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def _first_shape(sizes: Any) -> tuple[int, ...] | None:
    """The shape of a value, or of its first tensor when it is a tuple (an LSTM's output)."""
    if isinstance(sizes, tuple) and sizes and all(isinstance(s, int) for s in sizes):
        return sizes
    if isinstance(sizes, tuple) and sizes:
        return _first_shape(sizes[0])
    return None


def _bytes(sizes: Any, value: Any) -> int:
    """Bytes of a value of ``sizes`` (the tensor ``value``'s dtype; tuples summed)."""
    if isinstance(value, torch.Tensor):
        return math.prod(sizes) * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_bytes(s, v) for s, v in zip(sizes, value))
    return 0


def _mult_adds(module: nn.Module, probe: Probe | None) -> int:
    """torchinfo's count for a layer with no children (0 without a known output)."""
    shape = _first_shape(sizes_at(probe.value, probe.twin, 1)) if probe is not None else None
    if not shape:
        return 0
    total = 0
    for name, p in module.named_parameters():
        if name in ("weight", "bias"):
            total += p.numel() * (math.prod(shape[:1] + shape[2:]) if "Conv" in type(module).__name__ else shape[0])
        elif "weight" in name or "bias" in name:  # an RNN's weight_ih_l0, ...
            total += math.prod(shape[:2]) * p.numel()
    return total


def _cells(row: _Row, last: bool, probes: dict[nn.Module, Probe | None]) -> list[str]:
    """The row's columns: output shape, parameters, trainable, mult-adds."""
    m = row.module
    total, trainable = _count(m)
    is_leaf = not any(True for _ in m.children())
    if is_leaf or last:
        params = f"{total:,}" if trainable or not total else f"({total:,})"
        adds = sum(_mult_adds(x, probes.get(x)) for x in m.modules() if not any(True for _ in x.children()))
    else:
        params = f"{sum(p.numel() for p in m.parameters(recurse=False)):,}"
        adds = 0
    shape = _shape_text(sizes_at(row.probe.value, row.probe.twin, 1)) if row.probe is not None else "--"
    flag = "--" if not total else "True" if trainable == total else "False" if not trainable else "Partial"
    return [shape, params if params not in ("0", "(0)") else "--", flag, f"{adds:,}" if adds else "--"]


def _shape_text(sizes: Any) -> str:
    """``[1, 64, 28, 28]``; a tuple of outputs as a list of those, leaving out what is not a
    tensor (MultiheadAttention's ``None`` weights), as torchinfo does.

    >>> _shape_text(((1, 32, 64), None)), _shape_text(((1, 10), (1, 20)))
    ('[1, 32, 64]', '[[1, 10], [1, 20]]')
    """
    if isinstance(sizes, tuple) and all(isinstance(s, int) for s in sizes):
        return "[" + ", ".join(map(str, sizes)) + "]"
    parts = [_shape_text(s) for s in sizes if s is not None] if isinstance(sizes, tuple) else []
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]" if parts else "--"


def _number(x: float) -> str:
    return f"{int(x):,}" if x.is_integer() else f"{x:,.2f}"


def _prefix(depth: int) -> str:
    return "" if depth == 0 else "├─" if depth == 1 else "│    " * (depth - 1) + "└─"


def _format(
    rows: list[_Row],
    depth: int,
    leaves: list[tuple[nn.Module, Probe | None]],
    input_bytes: int,
    output_bytes: int,
    model: nn.Module,
) -> str:
    probes = dict(leaves)
    table = [
        [f"{_prefix(r.depth)}{type(r.module).__name__} ({r.name})", *_cells(r, r.depth == depth, probes)] for r in rows
    ]
    widths = [max(40, math.ceil(max(len(row[0]) + 1 for row in table) / 5) * 5)]
    widths += [max(_WIDTH, *(len(row[i]) + 1 for row in table)) for i in range(1, 5)]  # long shapes widen
    line = "=" * sum(widths)

    def fmt(cells: list[str]) -> str:
        return " ".join(f"{c:<{w}}" for c, w in zip(cells, widths)).rstrip()

    body = [fmt(row) for row in table]
    total, trainable = _count(model)
    adds = sum(_mult_adds(m, p) for m, p in leaves)
    params_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    unit, scale = ("T", 1e12) if adds >= 1e12 else ("G", 1e9) if adds >= 1e9 else ("M", 1e6)
    mb = [input_bytes / 1e6, output_bytes / 1e6, params_bytes / 1e6]
    return "\n".join(
        [
            line,
            fmt(["Layer (type (var_name))", "Output Shape", "Param #", "Trainable", "Mult-Adds"]),
            line,
            *body,
            line,
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            f"Total mult-adds ({unit}): {_number(adds / scale)}",
            line,
            f"Input size (MB): {mb[0]:0.2f}",
            f"Forward/backward pass size (MB): {mb[1]:0.2f}",
            f"Params size (MB): {mb[2]:0.2f}",
            f"Estimated Total Size (MB): {sum(mb):0.2f}",
            line,
        ]
    )
