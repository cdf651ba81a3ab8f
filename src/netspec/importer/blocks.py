"""Every instance of one module class -> one block (or a few variants) with parameters.

The instances of a class are grouped by the form of their bodies (the same nodes, names,
inputs and argument keys); each form is a block. Within a form, an argument whose value
differs between instances becomes a block parameter: arguments that differ together share
one, named after the instances' attribute of the same values when there is one (``stride``),
else after the argument (``out_channels``). Its default is its most common value, so each use
writes only what is particular to it. Classes are made into blocks innermost first, so a use
of an inner block is already a plain node with arguments when the outer class is compared.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..nodes.kinds import GROUP_OP, PARAM_OP
from ..nodes.layers import BATCH_FIRST_DEFAULT, LAYERS
from ..nodes.ops import OPS
from .errors import ImportFailed, class_path
from .forms import Form, Slot, Where, forms_of, is_scalar, located, slots
from .groups import as_repeat
from .ir import Body, SNode


@dataclass
class Block:
    """A block definition: the template nodes with ``$param`` where the instances differ."""

    name: str
    inputs: list[str]
    params: dict[str, Any]
    nodes: list[SNode]
    outputs: list[str]
    comment: str
    uses: list[str] = field(default_factory=list)  # where it is used (module paths)


def make_blocks(root: Body) -> dict[str, Block]:
    """Turn every use (``SNode.use``) under ``root`` into a block node; returns the blocks, in the
    order they are first needed (inner ones first).

    >>> from torch import nn
    >>> from netspec.importer.convert import Converter
    >>> from netspec.importer.trace import trace_model
    >>> class Head(nn.Module):
    ...     def __init__(self, n):
    ...         super().__init__(); self.fc = nn.Linear(4, n)
    ...     def forward(self, x):
    ...         return self.fc(x)
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.a, self.b = Head(2), Head(3)
    ...     def forward(self, x):
    ...         return self.a(x), self.b(x)
    >>> root = Converter(trace_model(Net(), {"x": (4,)})).run()
    >>> make_blocks(root)["Head"].params, [(n.name, n.op, n.args) for n in root.nodes]
    ({'out_features': 2}, [('a', 'Head', None), ('b', 'Head', {'out_features': 3})])
    """
    blocks: dict[str, Block] = {}
    for _cls, uses in _classes_innermost_first(root):
        for form in _forms(uses, blocks):
            _make_block(form, blocks)
    _repeats(root.nodes, blocks)
    return blocks


def _uses(nodes: list[SNode]) -> Iterator[SNode]:
    """The uses directly in a node list (inside groups too, not inside other uses' bodies)."""
    for node in nodes:
        if node.use is not None:
            yield node
        if node.nodes:
            yield from _uses(node.nodes)


def _classes_innermost_first(root: Body) -> list[tuple[type, list[SNode]]]:
    """Every class used, each after all the classes any of its instances uses (a class used at
    several depths, like timm's LayerNorm, is made a block before every class that holds it)."""
    inner: dict[type, set[type]] = {}
    uses: dict[type, list[SNode]] = {}

    def visit(body: Body, chain: tuple[type, ...]) -> set[type]:
        used = set()
        for use in _uses(body.nodes):
            assert use.use is not None
            cls = type(use.use.module)
            if cls in chain:
                raise ImportFailed(f"{class_path(cls)} contains itself: blocks cannot be recursive", where=use.use.path)
            uses.setdefault(cls, []).append(use)
            inner.setdefault(cls, set()).update(visit(use.use, chain + (cls,)))
            used.add(cls)
        return used

    visit(root, ())
    height: dict[type, int] = {}

    def height_of(cls: type, seen: tuple[type, ...] = ()) -> int:
        if cls in seen:  # A holds B in one place and B holds A in another
            raise ImportFailed(f"{class_path(cls)} contains itself through another class: blocks cannot be recursive")
        if cls not in height:
            height[cls] = 1 + max((height_of(c, seen + (cls,)) for c in inner[cls]), default=-1)
        return height[cls]

    return sorted(uses.items(), key=lambda kv: height_of(kv[0]))


def _forms(uses: list[SNode], blocks: dict[str, Block]) -> list[Form]:
    for use in uses:
        assert use.use is not None
        _repeats(use.use.nodes, blocks)  # inner blocks are made: their groups may be repeats now
    return forms_of(uses)


def _make_block(form: Form, blocks: dict[str, Block]) -> None:
    first = form.uses[0].use
    assert first is not None
    columns = _columns(form, blocks)
    params = _name_params(_clusters(columns), form, first)
    flags = _flags(form, first, set(params))
    name = _block_name(type(first.module).__name__, blocks)
    template = _template(form.nodes, {slot: p for p, (ss, _) in params.items() for slot in ss})
    for node in template:
        if node.name in form.optional:
            node.when, node.else_ = f"${flags[node.name][0]}", form.optional[node.name]
    defaults = {p: _most_common(values) for p, (_, values) in params.items()}
    defaults |= {f: _most_common(values) for f, values in flags.values()}
    blocks[name] = Block(
        name,
        form.inputs,
        defaults,
        template,
        form.outputs,
        class_path(first.module),
        [u.use.path for u in form.uses if u.use is not None],
    )
    for k, use in enumerate(form.uses):
        given = {p: values[k] for p, (_, values) in params.items()} | {f: vs[k] for f, vs in flags.values()}
        args = {p: v for p, v in given.items() if _differ(v, defaults[p])}
        use.op, use.args, use.use, use.comment = name, args or None, None, None


def _columns(form: Form, blocks: dict[str, Block]) -> dict[Slot, list[Any]]:
    """Each scalar argument's value in every use: as written, else its default (the importer
    writes no default), or ABSENT where the use lacks the node."""
    keys = dict.fromkeys(slot for use in form.uses if use.use is not None for slot, _ in slots(use.use.nodes))
    columns: dict[Slot, list[Any]] = {}
    for use in form.uses:
        assert use.use is not None
        nodes = dict(located(use.use.nodes))
        for slot in keys:
            columns.setdefault(slot, []).append(_value_at(nodes.get(slot[0]), slot, blocks))
    return columns


def _value_at(node: SNode | None, slot: Slot, blocks: dict[str, Block]) -> Any:
    if node is None:
        return ABSENT
    _, key, index = slot
    value = (node.args or {}).get(key, ABSENT) if isinstance(node.args, dict) or node.args is None else ABSENT
    if value is ABSENT:
        value = default_of(node.op, key, blocks)
    if index is not None:
        return value[index] if isinstance(value, list) and index < len(value) else ABSENT
    return value


def default_of(op: str, key: str, blocks: dict[str, Block]) -> Any:
    """The value an argument a node leaves out takes: the block's, op's or layer's default.

    >>> default_of("Conv2d", "stride", {}), default_of("LSTM", "batch_first", {}), default_of("cat", "dim", {})
    (1, True, 1)
    """
    if op in blocks:
        return blocks[op].params.get(key, ABSENT)
    if op in OPS:
        return OPS[op].params.get(key, (None, ABSENT))[1]
    if op in LAYERS and key in LAYERS[op].params:
        if key == "batch_first" and op in BATCH_FIRST_DEFAULT:
            return True
        default = LAYERS[op].params[key].default
        return ABSENT if default is inspect.Parameter.empty else default
    return ABSENT


class _Absent:
    def __repr__(self) -> str:
        return "-"


ABSENT: Any = _Absent()  # a slot of an optional node, in a use without it


def _clusters(columns: dict[Slot, list[Any]]) -> list[tuple[list[Slot], tuple]]:
    """Slots whose values differ between uses, grouped where they agree in every use that has
    both (an optional node's slot agrees with anything where the node is missing)."""
    out: list[tuple[list[Slot], list[Any]]] = []
    for slot, values in columns.items():
        present = [v for v in values if v is not ABSENT]
        if not any(_differ(present[0], v) for v in present[1:]):
            continue
        for slots_, merged in out:
            if all(a is ABSENT or b is ABSENT or not _differ(a, b) for a, b in zip(merged, values)):
                slots_.append(slot)
                merged[:] = [b if a is ABSENT else a for a, b in zip(merged, values)]
                break
        else:
            out.append(([slot], list(values)))
    return [(ss, _filled(vs)) for ss, vs in out]


def _filled(values: list[Any]) -> tuple:
    common = _most_common(tuple(v for v in values if v is not ABSENT))
    return tuple(common if v is ABSENT else v for v in values)


def _flags(form: Form, first: Body, taken: set[str]) -> dict[str, tuple[str, tuple]]:
    """Optional node -> (its flag parameter, the flag's value in each use); nodes present in the
    same uses share a flag."""
    out: dict[str, tuple[str, tuple]] = {}
    attrs = _attributes([u.use.module for u in form.uses if u.use is not None])
    by_values: dict[tuple, str] = {}
    taken = taken | set(first.inputs) | {n.name for n in _all_nodes(form.nodes) if n.name} | {"i"}
    for node in form.optional:
        values = tuple(node in form.present(u) for u in form.uses)
        if values not in by_values:
            name = next((a for a, vs in attrs.items() if vs == values and a not in taken), None) or _free(
                f"has_{node}", taken
            )
            taken.add(name)
            by_values[values] = name
        out[node] = (by_values[values], values)
    return out


def _free(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when taken."""
    k, out = 1, name
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    return out


def _differ(a: Any, b: Any) -> bool:
    return type(a) is not type(b) or a != b


def _most_common(values: tuple[Any, ...]) -> Any:
    counts = Counter(repr(v) for v in values)
    best = counts.most_common(1)[0][0]
    return next(v for v in values if repr(v) == best)


def _name_params(
    clusters: list[tuple[list[Slot], tuple]], form: Form, first: Body
) -> dict[str, tuple[list[Slot], tuple]]:
    """A name for each cluster of slots: the instances' attribute with those values, else the
    argument's name; returns name -> (slots, values per use)."""
    attrs = _attributes([u.use.module for u in form.uses if u.use is not None])
    taken = set(first.inputs) | {n.name for n in _all_nodes(form.nodes) if n.name} | {"i"}
    named: dict[int, str] = {}
    for k, (_, values) in enumerate(clusters):  # attributes first: `out_channels` is oup, not hidden
        name = next((a for a, vs in attrs.items() if vs == values and a not in taken), None)
        if name is not None:
            named[k] = name
            taken.add(name)
    for k, (slots_, _) in enumerate(clusters):
        if k not in named:
            named[k] = _slot_name(slots_, taken)
            taken.add(named[k])
    return {named[k]: cluster for k, cluster in enumerate(clusters)}


def _attributes(modules: list[Any]) -> dict[str, tuple]:
    """Public scalar attributes every instance has, constructor arguments first."""
    cls = type(modules[0])
    try:
        order = list(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        order = []
    names = [k for k, v in vars(modules[0]).items() if not k.startswith("_") and is_scalar(v) and k != "training"]
    names.sort(key=lambda k: order.index(k) if k in order else len(order))
    return {
        k: tuple(getattr(m, k, None) for m in modules)
        for k in names
        if all(is_scalar(getattr(m, k, None)) for m in modules)
    }


# Arguments that are a tensor's width: a parameter feeding several of them is named `channels`.
WIDTHS = {
    "out_channels",
    "out_features",
    "num_features",
    "num_channels",
    "groups",
    "shape",
    "normalized_shape",
    "embed_dim",
    "hidden_size",
    "channels",
}


def _slot_name(slots_: list[Slot], taken: set[str]) -> str:
    """``out_channels``; ``channels`` for one width in several arguments; else the place, as
    ``conv1_out_channels``."""
    keys = {key for _, key, _ in slots_}
    if len(keys) == 1 and (key := next(iter(keys))).isidentifier() and key not in taken:
        return key
    if len(keys) > 1 and all(k in WIDTHS or k.endswith(("_channels", "_features")) for k in keys):
        return _free("channels", taken)
    where, key, index = slots_[0]
    name = "_".join(str(part) for part in (*where, key, *([] if index is None else [index])))
    return _free(name if name[0].isalpha() or name[0] == "_" else f"p{name}", taken)


def _template(nodes: list[SNode], param_of: dict[Slot, str], prefix: Where = ()) -> list[SNode]:
    """The nodes with ``$param`` where a parameter's slots are."""
    out = []
    for i, node in enumerate(nodes):
        where = prefix + ((node.name,) if not prefix else (i,))
        args = node.args
        if isinstance(args, dict) or args is None:
            mine = {(key, index): p for (w, key, index), p in param_of.items() if w == where}
            args = dict(args or {})
            for (key, index), p in mine.items():
                if index is None:
                    args[key] = f"${p}"
                else:
                    args[key] = [f"${p}" if j == index else v for j, v in enumerate(args[key])]
            args = args or None
        sub = _template(node.nodes, param_of, where) if node.nodes else node.nodes
        out.append(node.copy(args=args, nodes=sub))
    return out


def _all_nodes(nodes: list[SNode]) -> Iterator[SNode]:
    for node in nodes:
        yield node
        if node.nodes:
            yield from _all_nodes(node.nodes)


def _block_name(class_name: str, blocks: dict[str, Block]) -> str:
    """The class's name; a second form gets `_2`; never a layer's, op's or group's name."""
    base = (
        class_name
        if class_name not in LAYERS and class_name not in OPS and class_name not in (GROUP_OP, PARAM_OP)
        else f"{class_name}Block"
    )
    name, k = base, 1
    while name in blocks:
        k += 1
        name = f"{base}_{k}"
    return name


def _repeats(nodes: list[SNode], blocks: dict[str, Block]) -> None:
    """Groups of copies of one block -> ``repeat`` nodes, in place (inner groups first)."""
    for k, node in enumerate(nodes):
        if node.nodes:
            _repeats(node.nodes, blocks)
            nodes[k] = as_repeat(node, {n: b.params for n, b in blocks.items()})
            if nodes[k].op == GROUP_OP and isinstance(node.inputs, dict):
                raise ImportFailed(
                    f"the items of nn.ModuleList `{node.name}` are given more than the previous "
                    f"item's output ({', '.join(list(node.inputs)[1:])}) and are not copies of one "
                    "layer or block: a group takes one input, only a repeat passes more on"
                )
