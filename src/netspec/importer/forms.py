"""The bodies of one class's instances, grouped by form: the same nodes, names, inputs and
argument keys. Two forms merge when one is the other plus a node or two whose names, when
left out, stand for one of their inputs (torchvision's ``downsample`` in the first block of
a stage, read as ``x`` elsewhere; MobileNet's residual ``add``, read as the branch when there
is no shortcut): such a node is written with ``when: $flag`` and ``else: <input>``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..nodes.kinds import BUFFER_OP, PARAM_OP
from ..nodes.ops import OPS
from .ir import SNode

Where = tuple[Any, ...]  # a node: (its name,) at the top; (group name, position, ...) inside groups
Slot = tuple[Where, str, Any]  # a scalar argument: (node, key, index in a list or None)
INDEX_OP = "index"  # its subscript names nodes: written whole (nodes/ops_index.py)
MAX_OPTIONAL = 2  # nodes one form may lack compared with another


@dataclass
class Form:
    """Uses of a class whose bodies are alike; ``optional`` nodes are missing from some of them."""

    nodes: list[SNode]
    inputs: list[str]
    outputs: list[str]
    uses: list[SNode]
    optional: dict[str, str] = field(default_factory=dict)  # node name -> the input it stands for

    def present(self, use: SNode) -> set[str]:
        assert use.use is not None
        return {n.name for n in use.use.nodes if n.name in self.optional}


def forms_of(uses: list[SNode]) -> list[Form]:
    """Uses grouped into forms, merged where one form only lacks optional nodes of another; the
    most used form first.

    >>> from netspec.importer.ir import Body
    >>> def use(*nodes):
    ...     return SNode("B", None, use=Body(None, "", ["x"], list(nodes), [nodes[-1].name]))
    >>> plain = use(SNode("conv", "conv", None, ["x"]), SNode("add", "add", None, ["conv", "x"]))
    >>> projected = use(SNode("proj", "proj", None, ["x"]), SNode("conv", "conv", None, ["x"]),
    ...                 SNode("add", "add", None, ["conv", "proj"]))
    >>> [(len(f.uses), f.optional) for f in forms_of([plain, projected])]
    [(2, {'proj': 'x'})]
    """
    exact: dict[Any, Form] = {}
    for use in uses:
        assert use.use is not None
        body = use.use
        key = (tuple(body.inputs), tuple(body.outputs), tuple(node_form(n) for n in body.nodes))
        exact.setdefault(key, Form(body.nodes, body.inputs, body.outputs, [])).uses.append(use)
    merged: list[Form] = []
    for form in sorted(exact.values(), key=lambda f: -len(f.uses)):
        if not any(_merge(m, form) for m in merged):
            merged.append(form)
    order = {id(use): k for k, use in enumerate(uses)}
    for form in merged:  # in the model's order again (merging appended)
        form.uses.sort(key=lambda use: order[id(use)])
    return sorted(merged, key=lambda f: -len(f.uses))


def node_form(node: SNode, alias: dict[str, str] | None = None) -> Any:
    """A node with its scalar arguments blanked: what instances of one form share.

    >>> node_form(SNode("Conv2d", "conv", {"out_channels": 8, "kernel_size": [1, 3]}, ["x"]))
    ('Conv2d', 'conv', ('x',), None, (('kernel_size', ('list', ('*', '*'))),), None)
    """
    alias = alias or {}
    args: Any = {} if node.args is None else node.args  # no arguments: all at their defaults
    if node.op == PARAM_OP:
        args = {"shape": args["shape"]}  # the init of a loaded parameter does not matter
    if node.op == BUFFER_OP:  # a buffer's values are the model's, no block parameter: they tell forms apart
        args = {"values": (repr(args),)}
    if node.op == INDEX_OP:  # a subscript (it names nodes) is written whole, no block parameter
        args = {**args, "at": (args.get("at"),)}
    inputs: tuple[Any, ...] | None = None
    if isinstance(node.inputs, dict):
        inputs = tuple(sorted((k, alias.get(v, v)) for k, v in node.inputs.items()))
    elif node.inputs is not None:
        inputs = tuple(alias.get(v, v) for v in node.inputs)
    return (
        node.op,
        node.name,
        inputs,
        node.repeat,
        _value_form(args),
        tuple(node_form(n) for n in node.nodes) if node.nodes is not None else None,
    )


def _value_form(value: Any) -> Any:
    if isinstance(value, dict):  # scalars may differ, or be left at their default: not the form
        return tuple(sorted((k, _value_form(v)) for k, v in value.items() if not is_scalar(v)))
    if isinstance(value, list):  # its numbers may differ, its length may not
        return ("list", tuple(_value_form(v) for v in value))
    return "*" if is_scalar(value) else repr(value)


def is_scalar(value: Any) -> bool:
    """A value a block parameter can hold (not an expression: those stay as written).

    >>> is_scalar(3), is_scalar("nearest"), is_scalar("${i == 0}"), is_scalar([1])
    (True, True, False, False)
    """
    if isinstance(value, str):
        return "$" not in value
    return value is None or isinstance(value, (bool, int, float))


def _merge(into: Form, other: Form) -> bool:
    """Merge ``other`` into ``into`` when one of them is the other plus optional nodes."""
    for big, small in ((into, other), (other, into)):
        alias = _optional_nodes(big, small)
        if alias is None or any(into.optional.get(k, v) != v for k, v in alias.items()):
            continue
        into.optional.update(alias)
        into.nodes, into.inputs, into.outputs = big.nodes, big.inputs, big.outputs
        into.uses += other.uses
        return True
    return False


def _optional_nodes(big: Form, small: Form) -> dict[str, str] | None:
    """The nodes of ``big`` missing from ``small``, each with the input its name stands for, when
    ``big`` without them (their names read as those inputs) is ``small``; else None."""
    if big.inputs != small.inputs:
        return None
    names = {n.name for n in small.nodes}
    extra = [n for n in big.nodes if n.name not in names]
    if not extra or len(extra) > MAX_OPTIONAL or any(not isinstance(n.inputs, list) or not n.name for n in extra):
        return None
    want = [node_form(n) for n in small.nodes]
    for choice in itertools.product(*[dict.fromkeys(n.inputs) for n in extra]):  # type: ignore[arg-type]  # lists
        alias = _resolved(dict(zip((str(n.name) for n in extra), choice)))  # each has a name (checked above)
        if alias is None:
            continue
        kept = [node_form(n, alias) for n in big.nodes if n.name not in alias]
        if kept == want and [alias.get(o, o) for o in big.outputs] == small.outputs:
            return alias
    return None


def _resolved(alias: dict[str, str]) -> dict[str, str] | None:
    """Aliases that lead to other aliases, followed to the end (None for a cycle)."""
    out = {}
    for name, target in alias.items():
        seen = {name}
        while target in alias:
            if target in seen:
                return None
            seen.add(target)
            target = alias[target]
        out[name] = target
    return out


def located(nodes: list[SNode], prefix: Where = ()) -> Iterator[tuple[Where, SNode]]:
    """Every node in a node list (groups too) with where it sits: its name at the top, its
    position inside groups.

    >>> [w for w, _ in located([SNode("Sequential", "g", nodes=[SNode("ReLU"), SNode("Tanh")])])]
    [('g',), ('g', 0), ('g', 1)]
    """
    for i, node in enumerate(nodes):
        where = prefix + ((node.name,) if not prefix else (i,))
        yield where, node
        if node.nodes:
            yield from located(node.nodes, where)


def slots(nodes: list[SNode]) -> Iterator[tuple[Slot, Any]]:
    """Every scalar argument in a node list (and every number in a list argument), by where it
    sits. A Parameter's shape counts; its init does not (the weights are loaded); a Buffer's
    arguments are its values, no parameters (``node_form`` tells them apart).

    >>> list(slots([SNode("Conv2d", "conv", {"out_channels": 8, "kernel_size": [1, 3]})]))
    [((('conv',), 'out_channels', None), 8), ((('conv',), 'kernel_size', 0), 1), ((('conv',), 'kernel_size', 1), 3)]
    """
    for where, node in located(nodes):
        if not isinstance(node.args, dict) or node.op in (BUFFER_OP, INDEX_OP):
            continue
        refs = OPS[node.op].refs if node.op in OPS else ()
        for key, value in node.args.items():
            if key in refs or (node.op == PARAM_OP and key != "shape"):  # a node's name is not a parameter
                continue
            if is_scalar(value):
                yield (where, key, None), value
            elif isinstance(value, list):
                yield from (((where, key, j), v) for j, v in enumerate(value) if is_scalar(v))
