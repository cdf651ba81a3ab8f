"""Human-readable views of a compiled spec: the one-line header, the summary table, code."""

from __future__ import annotations

import re

import torch

from ..api import Compiled
from ..compiler.dims import per_sample
from ..compiler.typed import TypedNode


def header(c: Compiled) -> str:
    """``unet: 1 input (image 3x572x572) -> 1 output (logits 2x572x572)``."""
    g = c.graph
    ins = ", ".join(f"{n} {per_sample(g.inputs[n], g.input_twins[n])}" for n in g.inputs)
    probes = {ext: g.probe_of(ref) for ext, ref in g.outputs}
    outs = ", ".join(f"{ext} {per_sample(p.value, p.twin)}" for ext, p in probes.items())
    ni, no = len(g.inputs), len(g.outputs)
    return f"{c.spec.name}: {ni} input{'s' * (ni != 1)} ({ins}) -> {no} output{'s' * (no != 1)} ({outs})"


def example_inputs(c: Compiled, batch: int = 1) -> list[torch.Tensor]:
    """Real tensors of the declared shapes (zeros for integer inputs), for a forward pass."""
    out = []
    for v in c.graph.inputs.values():
        shape = (batch, *v.shape[1:])
        if v.dtype.is_floating_point:
            out.append(torch.randn(shape, dtype=v.dtype))
        else:
            out.append(torch.zeros(shape, dtype=v.dtype))
    return out


def summary_text(c: Compiled, depth: int = 2) -> str:
    """The torchinfo-style table of the compiled module, named as in the spec, from the inferred
    shapes: no forward pass (``summary_table.py``)."""
    from .summary_table import layer_table

    return layer_table(c, depth)


def graph_table(c: Compiled) -> str:
    """A compact table of the top-level nodes (no forward pass needed); notes are never cut.

    >>> from netspec.api import compile_spec
    >>> print(graph_table(compile_spec({"name": "m", "inputs": {"x": [3]}, "nodes": [{"fc": {"Linear": {"out_features": 2}}}]})))
    node  op      inputs  output  params  notes
    fc    Linear  x       (B, 2)  8       in_features=3 (inferred)
    """
    rows = [("node", "op", "inputs", "output", "params", "notes")]
    for n in c.graph.nodes:
        keywords = [f"{k}={v if isinstance(v, str) else '(' + ', '.join(v) + ')'}" for k, v in n.kw_inputs.items()]
        rows.append((n.name, n.op, ", ".join([*n.inputs, *keywords]), n.shape, f"{n.params:,}", "; ".join(_notes(n))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def frozen_report(module: torch.nn.Module) -> str:
    """Trainable vs frozen parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return f"parameters: {total:,} total, {total - frozen:,} trainable, {frozen:,} frozen"


def dump_code(c: Compiled) -> str:
    """The generated forward of the module and of each distinct block or repeat."""
    parts = [f"# {c.spec.name}\n" + c.module.code.strip()]
    seen: set[str] = set()
    for name, sub in c.module.named_modules():
        if name and isinstance(sub, torch.fx.GraphModule):
            code = sub.code.strip()
            shape_free = re.sub(r"\s+#.*", "", code)
            if shape_free in seen:  # one listing per distinct variant of a block
                continue
            seen.add(shape_free)
            parts.append(f"# {type(sub).__name__} (first used as `{name}`)\n" + code)
    return "\n\n".join(parts) + "\n"


def _notes(node: TypedNode) -> list[str]:
    """A node's notes, and whether it runs only in training (`training_only`)."""
    return ["training only", *node.notes] if node.training_only else node.notes
