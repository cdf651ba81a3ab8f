"""The typed graph: what shape inference (``shapes.py``) hands to module building and summaries.

Each node carries everything needed to build it for real and its output inferred on meta
tensors at two batch sizes (``value`` and ``twin``, see ``dims.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ShapeError
from ..nodes.ops import OpType
from .dims import Probe, check_unfolded, shape_str

SpecPath = tuple[str | int, ...]
KwInputs = dict[str, "str | list[str]"]  # forward keyword -> node name, or names for a tuple


@dataclass
class Options:
    """Compile options that are not part of the spec."""

    base_dir: Path = field(default_factory=Path.cwd)
    roots: tuple[Path, ...] = ()  # data roots: weights files are read only here and in base_dir
    max_params: int = 2_000_000_000  # refuse bigger models before allocating
    max_activation_bytes: int = 16 * 2**30  # per sample, forward activations (fp32)
    max_nodes: int = 20_000  # instantiated nodes (repeats and blocks expanded)


@dataclass
class ZooPlan:
    """How to build a torchvision node for real (the meta pass validated it)."""

    builder: str
    kwargs: dict[str, Any]
    weights: Path | None
    strict: bool
    truncate: str | None
    replace: list[tuple[str, TypedNode]]


@dataclass
class TypedNode:
    """A node with everything needed to build it, and its output value on meta tensors."""

    name: str  # also the submodule name: "conv1", or "0" inside repeats and groups
    kind: str  # layer | op | param | buffer | block | group | zoo | repeat | shared
    op: str
    path: SpecPath
    inputs: list[str]  # positional inputs
    args: dict[str, Any]  # constructor kwargs (layer) / op kwargs
    value: Any  # meta tensor or tuple of them (batch = META_BATCH)
    twin: Any = None  # the same at batch TWIN_BATCH
    notes: list[str] = field(default_factory=list)
    kw_inputs: KwInputs = field(default_factory=dict)
    freeze: bool | list[str] | None = None
    tie: dict[str, str] | None = None  # own parameter -> the parameter it is (a path from the graph's module)
    training_only: bool = False  # computed only in training mode (`if self.training:`)
    sub: TypedGraph | None = None
    zoo: ZooPlan | None = None
    layer_cls: type[nn.Module] | None = None
    op_entry: OpType | None = None
    params: int = 0

    @property
    def probe(self) -> Probe:
        return Probe(self.value, self.twin)

    @property
    def shape(self) -> str:
        """The output shape as the summary and the code comments show it: ``(B, 64, 28, 28)``."""
        return shape_str(self.value, self.twin)

    @property
    def var(self) -> str:
        """The node's variable in the generated code: its name, or ``conv2d_0`` for the child
        ``0`` of a repeat or group (a Python name cannot start with a digit)."""
        if self.name.isidentifier():
            return self.name
        if self.name[:1].isalpha() or self.name[:1] == "_":  # `block1-0` -> `block1_0`, `convs.0` -> `convs_0`
            return re.sub(r"[.-]", "_", self.name)
        return f"{re.sub(r'[^0-9a-zA-Z_]', '_', self.op).lower()}_{self.name}"


@dataclass
class TypedGraph:
    """A graph with shapes: the input of module building and of the summary."""

    name: str
    inputs: dict[str, Any]  # name -> meta tensor (batch = META_BATCH)
    nodes: list[TypedNode]
    outputs: list[tuple[str, str]]
    output_type: str = "tuple"
    input_twins: dict[str, Any] = field(default_factory=dict)  # the inputs at batch TWIN_BATCH
    # nodes the loss reads that are no output: the public forward leaves out those only they
    # need; `module.loss_view` returns them beside the outputs
    extras: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        name: str,
        inputs: dict[str, Probe],
        nodes: list[TypedNode],
        outputs: list[tuple[str, str]],
        output_type: str = "tuple",
    ) -> TypedGraph:
        return cls(
            name,
            {k: p.value for k, p in inputs.items()},
            nodes,
            outputs,
            output_type,
            {k: p.twin for k, p in inputs.items()},
        )

    def input_probe(self, name: str) -> Probe:
        return Probe(self.inputs[name], self.input_twins[name])

    def node(self, name: str) -> TypedNode:
        return next(n for n in self.nodes if n.name == name)

    def total_params(self) -> int:
        return sum(n.params for n in self.nodes)

    def probe_of(self, name: str) -> Probe:
        """The value of an input or node, at both batch sizes."""
        if name in self.inputs:
            return self.input_probe(name)
        return self.node(name).probe

    @property
    def eval_outputs(self) -> list[tuple[str, str]]:
        """The outputs eval mode returns: those not computed only in training (what predict and export see)."""
        only = {n.name for n in self.nodes if n.training_only}
        return [(ext, ref) for ext, ref in self.outputs if ref not in only]

    def unfolded_outputs(self) -> set[str]:
        """The names the outputs read, each checked to hold its batch as ``B`` (no ``64B``: a
        batch with dims folded into it must be unfolded inside the model), at the node it is."""
        for ext, ref in self.outputs:
            if ref in self.inputs:
                continue
            node = self.node(ref)
            try:
                check_unfolded(node.probe, ext)
            except ShapeError as e:
                e.path, e.node = node.path, node.name
                raise
        return {ref for _, ref in self.outputs}

    def output_probe(self) -> Probe:
        """What the graph returns: one value, or a tuple of them."""
        probes = [self.probe_of(ref) for _, ref in self.outputs]
        return probes[0] if len(probes) == 1 else Probe.of_tuple(probes)
