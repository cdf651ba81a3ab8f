"""Losses as a graph: ``loss: {nodes: [...], terms: {...}}``.

The loss section may compute from any model output, any named model node and the target,
with the model's own node language: ``nodes`` is a small graph over those values, compiled
by the compiler's stages (names and references by ``graph.resolve``, shapes on meta tensors
by ``shapes.infer_graph``, a generated forward by ``module.build_module``), and ``terms``
names the numbers the loss adds up::

    loss:
      nodes:                                  # KL(q(z|x) || N(0, 1)) of the VAE, per element
        - var: {exp: {}, from: logvar}
        - mu2: {square: {}, from: mu}
        - kl_a: {add: 1.0, from: logvar}
        - kl_b: {sub: [kl_a, mu2]}
        - kl: {sub: [kl_b, var]}              # 1 + logvar - mu^2 - exp(logvar), (B, 20)
      terms:
        recon: {BCELoss: {reduction: sum}, from: recon_image}   # an output and the target
        kl: {from: kl, reduction: sum, weight: -0.5}            # a value reduced to a number

A term is a registry loss reading ``from: a`` (``a`` against the target) or ``from: [a, b]``
(two values, e.g. a student and a frozen teacher, or two views for ``NTXent``), or a value
reduced with ``reduction`` (``mean``, ``sum``, ``batchmean``). Each term's contribution (its
weight included, so the terms add up to the loss) is logged as ``loss_<name>``. What can be
checked without the model's shapes is checked when the spec is loaded (:mod:`.loss_names`).

A model node the loss reads is computed by the module :func:`training_module` gives (the
compiled model's ``loss_view``: its outputs and those nodes, the same weights); the model's own
forward, which predict and export use, is unchanged. Everything stays on the device: nothing
here reads a value back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, fx, nn

from ..compiler.dims import Probe
from ..compiler.graph import resolve
from ..compiler.module import build_module, loss_view
from ..compiler.shapes import infer_graph
from ..compiler.typed import TypedGraph
from ..errors import SpecError
from ..nodes.registry import SpecPath
from .criterion import Criterion, build_criterion, pick_target, plan_terms
from .losses import LOSSES, adapt_target
from .spec import LossSpec, from_names

__all__ = ["build_loss", "training_module", "GraphCriterion"]

PATH: SpecPath = ("loss",)


@dataclass
class _GraphTerm:
    """One entry of ``terms``: a registry loss (``index`` into the criterion's losses) or a value reduced."""

    name: str
    reads: list[str]
    weight: float
    index: int | None  # position among the registry terms; None: `reduction` of reads[0]
    reduction: str


class GraphCriterion(Criterion):
    """The compiled ``loss: {nodes, terms}``: ``criterion(values, targets) -> scalar``, where
    ``values`` are the model's outputs and the nodes it exposes to the loss; each term's
    contribution of the last call stays in :attr:`last` (on the device) for the meters."""

    def __init__(self, spec: LossSpec, graph: fx.GraphModule | None, graph_inputs: list[str]) -> None:
        super().__init__(plan_terms(spec, []))
        self.graph = graph
        self.graph_inputs = graph_inputs
        self.plan: list[_GraphTerm] = []
        k = 0
        for name, term in (spec.terms or {}).items():
            index = k if term.name is not None else None
            k += term.name is not None
            self.plan.append(_GraphTerm(name, term.reads(), spec.weight * term.weight, index, term.reduction or "mean"))

    def forward(self, outputs: dict[str, Tensor], targets: Tensor | dict[str, Tensor]) -> Tensor:
        values = dict(outputs)
        # in eval mode the model leaves out what it computes only in training (GoogLeNet's aux
        # heads): the terms that read those are left out of the loss too, as torchvision's recipe does
        if self.graph is not None and all(n in values for n in self.graph_inputs):  # in float32, as losses
            values.update(self.graph(*[_float(values[n]) for n in self.graph_inputs]))
        total: Tensor | None = None
        last: dict[str, Tensor] = {}
        for gt in self.plan:
            if any(r not in values for r in gt.reads):
                continue
            value = self._term(gt, values, targets)
            value = value if gt.weight == 1.0 else gt.weight * value
            last[gt.name] = value.detach()
            total = value if total is None else total + value
        assert total is not None  # at least one term reads what eval mode returns (`loss_names.py`)
        self.last = last
        return total

    def _term(self, gt: _GraphTerm, values: dict[str, Tensor], targets: Tensor | dict[str, Tensor]) -> Tensor:
        x = values[gt.reads[0]].float()
        if gt.index is None:
            if gt.reduction == "sum":
                return x.sum()
            return x.sum() / x.shape[0] if gt.reduction == "batchmean" else x.mean()
        term, kind, loss = self.terms[gt.index], self.kinds[gt.index], self.losses[gt.index]
        other = values[gt.reads[1]] if len(gt.reads) == 2 else pick_target(term, targets)
        return loss(x, adapt_target(kind, x, other))


def _float(t: Tensor) -> Tensor:
    return t.float() if t.is_floating_point() else t


def training_module(model: nn.Module) -> nn.Module:
    """What a training step calls: ``model`` itself, or, when its loss reads nodes that are no
    output, its loss view (:func:`netspec.compiler.module.loss_view`: the same weights).

    >>> training_module(nn.Linear(2, 2)).__class__.__name__
    'Linear'
    """
    graph = getattr(model, "netspec_graph", None)
    if graph is None or not graph.extras or not isinstance(model, fx.GraphModule):
        return model
    return loss_view(model)


def build_loss(
    spec: Any,
    model: nn.Module | None = None,
    class_counts: list[int] | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> Criterion:
    """Compile a spec's checked ``loss:`` section for its model: the :class:`Criterion` of the
    classic forms, or, with ``terms``, a :class:`GraphCriterion` whose loss graph's shapes were
    inferred from the model's (mistakes: one located line). ``class_counts`` and ``shapes``:
    what the classic forms' ``weight: balanced`` is computed from (:func:`build_criterion`).

    >>> import torch
    >>> from netspec.api import build_model
    >>> from netspec.compiler.spec import load_spec
    >>> spec = load_spec(text="name: m\\ninputs: {x: [3]}\\nnodes: [{y: {Linear: {out_features: 2}}}]\\n"
    ...                       "loss: {terms: {l2: {from: y, reduction: sum}}}\\n")
    >>> crit = build_loss(spec, build_model(spec))
    >>> float(crit({"y": torch.ones(4, 2)}, torch.zeros(4))), float(crit.last["l2"])
    (8.0, 8.0)
    """
    loss: LossSpec = spec.loss
    outputs = list(spec.output_names)
    if loss.terms is None:
        return build_criterion(loss, outputs, class_counts, shapes)
    graph: TypedGraph | None = getattr(model, "netspec_graph", None)
    exposed = [*outputs, *(graph.extras if graph is not None else [])]
    missing = [n for n in loss.model_reads() if n not in exposed and n not in {m.name for m in loss.nodes or []}]
    if missing:
        raise SpecError(
            f"the loss reads `{missing[0]}`, which the model does not return",
            path=PATH,
            hint="a loss reads a model node only of a model compiled from this spec",
        )
    if graph is None:
        if loss.nodes:
            raise SpecError(
                "a loss graph (`loss.nodes`) needs the model compiled from this spec", path=(*PATH, "nodes")
            )
        return GraphCriterion(loss, None, [])
    typed, inputs = _infer(spec, graph, outputs) if loss.nodes else (None, [])
    _check_terms(loss, typed, graph, outputs)
    return GraphCriterion(loss, build_module(typed) if typed is not None else None, inputs)


def _probe(graph: TypedGraph, outputs: list[str], name: str) -> Probe:
    """A model output's (by its external name) or a model node's value at both batch sizes."""
    refs = dict(graph.outputs)
    return graph.probe_of(refs[name] if name in outputs and name in refs else name)


def _infer(spec: Any, graph: TypedGraph, outputs: list[str]) -> tuple[TypedGraph, list[str]]:
    """The loss graph resolved and its shapes inferred over the model's values."""
    loss: LossSpec = spec.loss
    own = {n.name for n in loss.nodes or [] if n.name}
    inputs = [n for n in dict.fromkeys(r for node in loss.nodes or [] for r in from_names(node.from_)) if n not in own]
    read = [r for t in (loss.terms or {}).values() for r in t.reads() if r in own]
    params = dict(getattr(spec, "params", {}) or {})
    dag = resolve(list(loss.nodes or []), inputs, list(dict.fromkeys(read)), params, set(), PATH)
    probes = {name: _probe(graph, outputs, name) for name in inputs}
    typed = infer_graph(spec, dag, probes, f"{spec.name}_loss", params)
    for node in typed.nodes:
        if node.params:
            raise SpecError(
                f"`{node.op}` has weights, which a loss graph cannot train",
                path=node.path,
                node=node.name,
                hint="put layers with weights in the model's nodes and read them from the loss",
            )
    return typed, inputs


def _check_terms(loss: LossSpec, typed: TypedGraph | None, graph: TypedGraph, outputs: list[str]) -> None:
    """A loss comparing two values needs them of one shape."""
    own = {n.name for n in typed.nodes} if typed is not None else set()
    for key, term in (loss.terms or {}).items():
        reads = term.reads()
        if term.name is None or len(reads) != 2:
            continue
        shapes = [
            (typed.probe_of(r) if typed and r in own else _probe(graph, outputs, r)).value.shape[1:] for r in reads
        ]
        if shapes[0] != shapes[1] and LOSSES[term.name].target != "index":
            raise SpecError(
                f"{term.name} compares `{reads[0]}` {tuple(shapes[0])} with `{reads[1]}` {tuple(shapes[1])}; "
                "their shapes differ",
                path=(*PATH, "terms", key, "from"),
                hint="reshape one of them in the loss graph",
            )
