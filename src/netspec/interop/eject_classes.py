"""The classes of an ejected file (``netspec export --format python``): the modules of the
compiled model, drafted by :mod:`netspec.interop.eject` as :class:`Draft` s, grouped into classes;
the instances of one type that differ only in constructor values (channels, strides) share one
class whose ``__init__`` takes those values as parameters, named after the block's spec
parameters where they match; instances that differ in structure get a class each."""

from __future__ import annotations

import ast
import graphlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..compiler.keys import holders
from .pysource import (
    Call,
    ListOf,
    Var,
    assign_child,
    child_assignment,
    free_name,
    leaves,
    masked,
    plain_name,
    python_name,
    render_wrapped,
    replace_leaves,
)

__all__ = ["Child", "Draft", "ClassDef", "all_drafts", "type_order", "classes_of_type"]


@dataclass
class Child:
    """One submodule (or parameter) of a class being written."""

    name: str
    value: Any = None  # a Call/ListOf tree, or a Draft (another class's instance)
    lines: tuple[str, ...] = ()  # statements that build it instead (torchvision models)
    after: tuple[str, ...] = ()  # statements after it (freeze)


@dataclass
class Draft:
    """One module of the compiled model that becomes an instance of a written class."""

    type_name: str  # fx's class name: the block's name, `BasicBlockRepeat`, ...
    where: str  # its dotted path in the model ("" for the root)
    params: dict[str, Any]  # the block's spec parameters (for naming constructor arguments)
    children: list[Child]
    forward: str
    functions: dict[str, Callable[..., Any]]
    imports: set[str]
    loop: bool = False  # an nn.ModuleList subclass, built from the list of its children
    doc: str = ""
    call: Call | None = None  # how the parent builds this instance (set by _group)
    buffers: dict[str, Any] = field(default_factory=dict)  # key -> tensor of the file beside the ejected one


@dataclass
class ClassDef:
    """A class of the file: its constructor arguments, the statements of ``__init__``, the forward."""

    name: str
    base: str
    doc: str
    args: list[tuple[str, str]]  # (name, type hint)
    body: list[str]
    forward: str
    uses: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Drafts -> classes: instances that differ only in values share a class with parameters
# ---------------------------------------------------------------------------------------------


def _nested(value: Any) -> list[Draft]:
    """The drafts inside a child's value (an nn.Sequential of blocks holds several)."""
    if isinstance(value, Draft):
        return [value]
    if isinstance(value, Call):
        return [d for _, v in value.items for d in _nested(v)]
    if isinstance(value, ListOf):
        return [d for v in value.items for d in _nested(v)]
    return []


def _resolve(value: Any) -> Any:
    """A child's value with every draft replaced by the call that builds it."""
    if isinstance(value, Draft):
        assert value.call is not None, f"{value.where} resolved before its class"
        return value.call
    if isinstance(value, Call):
        return Call(value.func, tuple((k, _resolve(v)) for k, v in value.items), value.positional)
    if isinstance(value, ListOf):
        return ListOf(tuple(_resolve(v) for v in value.items))
    return value


def all_drafts(root: Draft) -> list[Draft]:
    """Every draft under (and including) ``root``, in model order.

    >>> block = lambda where, n: Draft("Block", where, {}, [Child("fc", Call("nn.Linear", (("size", n),)))], "", {}, set())
    >>> net = Draft("Net", "", {}, [Child("a", block("a", 8)), Child("b", block("b", 16))], "", {}, set())
    >>> [d.where or "(root)" for d in all_drafts(net)], type_order(all_drafts(net))
    (['(root)', 'a', 'b'], ['Block', 'Net'])
    """
    out = [root]
    for child in root.children:
        for d in _nested(child.value):
            out += all_drafts(d)
    return out


def type_order(drafts: list[Draft]) -> list[str]:
    """Class types with the ones a type builds before it (blocks cannot be recursive); see
    :func:`all_drafts` for an example."""
    deps: dict[str, set[str]] = {}
    for d in drafts:
        deps.setdefault(d.type_name, set()).update(n.type_name for c in d.children for n in _nested(c.value))
    return list(graphlib.TopologicalSorter(deps).static_order())


def _signature(d: Draft) -> tuple:
    """Equal for instances that one class can build (up to constructor values)."""
    forward = re.sub(r"\s+#.*", "", d.forward)
    return d.loop, forward, tuple((c.name, masked(c.value), c.lines, c.after) for c in d.children)


def _slots(d: Draft) -> list[tuple[tuple, str | None, Any]]:
    """The literals of a draft's constructor calls: (child index + path, argument name, value)."""
    return [((i, *path), name, v) for i, c in enumerate(d.children) for path, name, v in leaves(c.value)]


def _hint(values: list[Any]) -> str:
    types = {type(v) for v in values}
    return next(iter(types)).__name__ if len(types) == 1 and types <= {int, float, bool, str} else ""


def _parameters(
    drafts: list[Draft], avoid: set[str]
) -> tuple[list[tuple[str, str]], dict[tuple, Var], list[dict[str, Any]]]:
    """Constructor parameters for literals that differ between the instances of one class:
    (parameters with their type hints, slot -> Var, each instance's values by parameter); no
    parameter is named like a name of ``avoid`` (what the constructor's body uses)."""
    columns = list(zip(*(_slots(d) for d in drafts)))
    names: dict[tuple[str, ...], str] = {}
    values_of: dict[str, list[Any]] = {}
    slots: dict[tuple, Var] = {}
    for column in columns:
        values = [v for _, _, v in column]
        key = tuple(repr(v) for v in values)
        if len(set(key)) == 1:
            continue  # the same in every instance: a literal in the class
        if key not in names:
            names[key] = _param_name(drafts, key, column[0][1], set(names.values()), avoid)
            values_of[names[key]] = values
        slots[column[0][0]] = Var(names[key])
    args = [(name, _hint(values)) for name, values in values_of.items()]
    per_draft = [{name: values[i] for name, values in values_of.items()} for i in range(len(drafts))]
    return args, slots, per_draft


def _param_name(drafts: list[Draft], key: tuple[str, ...], arg: str | None, taken: set[str], avoid: set[str]) -> str:
    """The block's spec parameter holding these values (`out`, `planes`), else the argument's name;
    ``nn_`` for a parameter `nn` (it would hide torch.nn in the constructor)."""
    for pname in drafts[0].params:
        name = free_name(python_name(pname), avoid) if plain_name(python_name(pname)) else None
        if name and tuple(repr(d.params.get(pname)) for d in drafts) == key and name not in taken:
            return name
    base = free_name(python_name(arg) if arg and plain_name(python_name(arg)) else "value", avoid)
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _body(children: list[Child]) -> list[str]:
    """The statements of ``__init__`` after ``super().__init__()``."""
    lines: list[str] = []
    made: set[str] = set()
    for c in children:
        for holder in holders(c.name):  # a node at a key (`convs.0`): its holders first
            if holder not in made:
                made.add(holder)
                lines.append(assign_child("self", holder, "nn.Module()"))
        if c.value is not None:
            head, tail = child_assignment("self", c.name)
            lines.append(head + render_wrapped(c.value, "        ", len(head) + len(tail), c.name) + tail)
        lines += c.lines
        lines += c.after
    return lines


def _locals(children: list[Child]) -> set[str]:
    """The variables the statements of ``__init__`` assign (a torchvision model's ``net``)."""
    return {
        n.id
        for c in children
        for line in c.lines
        for n in ast.walk(ast.parse(line))
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def classes_of_type(drafts: list[Draft], taken: set[str], avoid: set[str]) -> list[ClassDef]:
    """Group one type's instances by structure; write a class per group and set each instance's call.
    ``taken``: the classes written so far; ``avoid``: the other names of the file.

    >>> block = lambda where, n: Draft("Block", where, {}, [Child("fc", Call("nn.Linear", (("size", n),)))], "", {}, set())
    >>> a, b = block("a", 8), block("b", 16)
    >>> [(c.name, c.args, c.uses) for c in classes_of_type([a, b], set(), set())], a.call
    ([('Block', [('size', 'int')], ['a', 'b'])], Call(func='Block', items=(('size', 8),), positional=0))
    """
    groups: dict[tuple, list[Draft]] = {}
    for d in drafts:
        for c in d.children:
            c.value = _resolve(c.value)
        groups.setdefault(_signature(d), []).append(d)
    classes = []
    for members in groups.values():
        name, n = drafts[0].type_name, 2
        while name in taken or name in avoid:  # a block `OrderedDict` -> class OrderedDict2
            name, n = f"{drafts[0].type_name}{n}", n + 1
        taken.add(name)
        first = members[0]
        if first.loop:
            for d in members:
                d.call = Call(name, ((None, ListOf(tuple(c.value for c in d.children))),), 1)
            uses = [d.where for d in members]
            classes.append(ClassDef(name, "nn.ModuleList", first.doc, [], [], first.forward, uses))
            continue
        args, slots, values = _parameters(members, avoid | taken | _locals(first.children))
        for d, v in zip(members, values):
            d.call = Call(name, tuple(v.items()))
        body = [
            Child(
                c.name, replace_leaves(c.value, {p[1:]: var for p, var in slots.items() if p[0] == i}), c.lines, c.after
            )
            for i, c in enumerate(first.children)
        ]
        classes.append(
            ClassDef(name, "nn.Module", first.doc, args, _body(body), first.forward, [d.where for d in members])
        )
    return classes
