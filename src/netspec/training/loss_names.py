"""The names of ``loss: {nodes, terms}``, checked when the spec is loaded, and the metric keys
its terms are logged under. Compiling the loss graph needs the model's shapes and the
compiler's stages: :mod:`netspec.training.loss_graph`; this module needs neither, so the spec's
own checks (:mod:`netspec.training.rules`) and the meters can import it.
"""

from __future__ import annotations

from ..errors import SpecError, did_you_mean
from ..nodes.registry import SpecPath
from .spec import LossSpec, from_names

__all__ = ["check_names", "term_keys"]

PATH: SpecPath = ("loss",)


def term_keys(loss: LossSpec | None) -> list[str]:
    """The metric keys of a loss's terms (``loss_<name>``), in order; none without ``terms``.

    >>> term_keys(LossSpec.model_validate({"terms": {"kl": {"from": "kl"}}}))
    ['loss_kl']
    """
    return [f"loss_{name}" for name in (loss.terms or {})] if loss is not None else []


def check_names(loss: LossSpec, outputs: list[str], model_nodes: list[str]) -> None:
    """When the spec is loaded: every name the loss graph and the terms read is a model output,
    a named model node or a loss node, the loss nodes' names are new, and ``from``/``terms``
    appear only where they mean something.

    >>> check_names(LossSpec.model_validate({"terms": {"t": {"L1Loss": {}, "from": "featz"}}}), ["y"], ["feats"])
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: loss.terms.t.from: the loss reads `featz`, which is no model output, named model node or loss node; did you mean `feats`?
    """
    _refuse_nested(loss, PATH, top=True)
    own = [n.name for n in loss.nodes or [] if n.name]
    model = [*outputs, *model_nodes]
    for i, name in enumerate(n.name for n in loss.nodes or []):
        if name in model:
            what = "output" if name in outputs else "node"
            raise SpecError(
                f"loss node `{name}` has the name of a model {what}", path=(*PATH, "nodes", i), hint="rename it"
            )
    if loss.nodes and loss.nodes[0].from_ is None:
        raise SpecError("the first loss node reads nothing", path=(*PATH, "nodes", 0), hint="add `from: <output>`")
    known = [*model, *own]
    reading = [(n.from_, (*PATH, "nodes", i, "from")) for i, n in enumerate(loss.nodes or [])]
    reading += [(t.from_, (*PATH, "terms", k, "from")) for k, t in (loss.terms or {}).items()]
    for ref, path in reading:
        for name in from_names(ref):
            if name not in known:
                raise SpecError(
                    f"the loss reads `{name}`, which is no model output, named model node or loss node",
                    path=path,
                    hint=did_you_mean(name, known),
                )
    for key, term in (loss.terms or {}).items():
        if term.from_ is None:
            raise SpecError(
                "a term says what it reads", path=(*PATH, "terms", key), hint="add `from: <output or node>`"
            )


def _refuse_nested(loss: LossSpec, path: SpecPath, top: bool) -> None:
    """``terms`` only as the whole loss; ``from`` only on a term."""
    if loss.terms is not None and not top:
        raise SpecError("`terms:` is the whole loss section, not a part of it", path=(*path, "terms"))
    if loss.from_ is not None and top:
        raise SpecError(
            "`from:` says what a term reads",
            path=(*path, "from"),
            hint="write `loss: {terms: {name: {..., from: ...}}}`",
        )
    for i, sub in enumerate(loss.sum or []):
        _refuse_nested(sub, (*path, "sum", i), False)
        if sub.from_ is not None:
            raise SpecError("`from:` is for an entry of `terms:`", path=(*path, "sum", i, "from"))
    for name, sub in (loss.outputs or {}).items():
        _refuse_nested(sub, (*path, "outputs", name), False)
        if sub.from_ is not None:
            raise SpecError("`from:` is for an entry of `terms:`", path=(*path, "outputs", name, "from"))
    for name, sub in (loss.terms or {}).items():
        _refuse_nested(sub, (*path, "terms", name), False)
