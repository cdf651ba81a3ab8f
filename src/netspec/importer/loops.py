"""Loops over an ``nn.ModuleList`` that are not a plain chain, found in the unrolled fx graph.

torch.fx unrolls ``for b in self.blocks: x = x + b(x)`` into the calls of ``blocks.0``,
``blocks.1``, ... with the ops of each step between them. Such a stretch of the graph becomes
one group named after the list (``convert.py``): its items are its unnamed nodes, so they keep
their state_dict keys (``blocks.0.fc.weight``), and the ops between them are its named nodes.
The stretch is chosen to give one value to what comes after where one does, else several (the
group's ``outputs``, read by ``item``: HRNet's ``[t(x) for t in self.transition1]``); the
values it reads from before it are the group's inputs (a parameter read inside it, VOLO's
``pos_embed``, is read before it and given too); where no stretch does, the loop is refused
with the reason. A plain chain (``x = b(x)``) is left to the converter's own path,
which may write it as a ``repeat``.

A loop a group cannot hold because it calls other modules (another list's items in step,
``for conv, bn in zip(self.convs, self.bns)``, or a child with weights) is no group: each call
is a node of its own at its key (``convs.0``, ``bns.0``: the spec language's nodes at a key),
and so are calls of a module inside a child (``self.head.fc``) and of a list's items not
called once each in order (:func:`keyed_heads`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from torch import fx, nn

from .concrete import shown_file
from .errors import ImportFailed, class_path
from .ir import Pieces, Ref, has_state
from .passing import constant


@dataclass(frozen=True)
class Loop:
    """The fx nodes of one unrolled loop over nn.ModuleList ``head``."""

    head: str
    nodes: tuple[fx.Node, ...]  # in graph order, one stretch
    items: tuple[fx.Node, ...]  # the call of item k, at k
    sources: tuple[fx.Node, ...]  # the tensors from before the loop that it reads: the group's inputs
    outs: tuple[fx.Node, ...]  # the tensors of the loop read after it: the group's value, or its outputs
    before: tuple[fx.Node, ...] = ()  # parameters read inside it: read before it, each an input


@dataclass(frozen=True)
class Refused:
    """A loop no group can hold: the error, raised when the converter reaches ``at``."""

    at: fx.Node  # the loop's first item
    error: ImportFailed
    head: str = ""  # the list, where the loop calls other modules: its calls are nodes at their keys instead


def find_loops(
    graph: fx.Graph, module: nn.Module, is_tensor: Callable[[fx.Node], bool], where: str
) -> list[Loop | Refused]:
    """The loops over ``module``'s ModuleLists whose items are each called once, in order, and
    not in a plain chain; ``is_tensor`` tells a tensor's node from a size's. A loop no group can
    hold is its refusal, raised when the converter reaches its first item (so a model's first
    refusal is the one met first in its forward), unless it calls other modules: then it names
    its list, whose calls are nodes at their keys (:func:`keyed_heads`).

    >>> class Res(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.blocks = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))
    ...     def forward(self, x):
    ...         for b in self.blocks:
    ...             x = x + b(x)
    ...         return x
    >>> g = fx.symbolic_trace(Res()).graph
    >>> [(loop.head, [n.name for n in loop.nodes]) for loop in find_loops(g, Res(), lambda n: True, "")]
    [('blocks', ['blocks_0', 'add', 'blocks_1', 'add_1'])]
    """
    order = list(graph.nodes)
    calls: dict[str, list[fx.Node]] = {}
    for n in order:
        head, index = _item_of(n, module)
        if head is not None and index is not None:
            calls.setdefault(head, []).append(n)
    loops: list[Loop | Refused] = []
    for head, items in calls.items():
        indices = [_item_of(n, module)[1] for n in items]
        if indices != list(range(len(getattr(module, head)))) or (_chained(items) and not _given_more(items)):
            continue  # a chain, or items not each called once in order: convert.py reads or refuses it
        loops.append(_loop(order, head, items, module, is_tensor, where))
    return loops


def keyed_heads(graph: fx.Graph, module: nn.Module, loops: Sequence[Loop | Refused]) -> set[str]:
    """The children of ``module`` whose calls are nodes at their keys (``convs.0``, ``head.fc``):
    the lists of the loops no group holds because they call other modules, children forward calls
    a module inside of, and lists whose items it calls other than each once, in order, in a chain.

    >>> class Zip(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.convs = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))
    ...         self.bns = nn.ModuleList(nn.BatchNorm1d(2) for _ in range(2))
    ...     def forward(self, x):
    ...         for conv, bn in zip(self.convs, self.bns):
    ...             x = x + bn(conv(x))
    ...         return x
    >>> g = fx.symbolic_trace(Zip()).graph
    >>> sorted(keyed_heads(g, Zip(), find_loops(g, Zip(), lambda n: True, "")))
    ['bns', 'convs']
    """
    keyed = {loop.head for loop in loops if isinstance(loop, Refused) and loop.head}
    other = {loop.head for loop in loops if isinstance(loop, Loop)} | {
        str(loop.at.target).partition(".")[0] for loop in loops if isinstance(loop, Refused) and not loop.head
    }
    calls: dict[str, list[fx.Node]] = {}
    for n in graph.nodes:
        if n.op == "call_module" and "." in str(n.target):
            calls.setdefault(str(n.target).partition(".")[0], []).append(n)
    for head, items in calls.items():
        indices = [_item_of(n, module)[1] for n in items]
        if head in keyed | other:
            continue
        if (
            None in indices
            or indices != list(range(len(getattr(module, head))))
            or not _chained(items)
            or _given_by_name(items, module)
        ):
            keyed.add(head)
    return keyed


def _given_by_name(items: Sequence[fx.Node], module: nn.Module) -> bool:
    """Items that are no torch.nn layer given more tensors than the chained one, by name or in a
    list (CrossViT's blocks take the list of its two branches; a repeat passes more on only as a
    torch.nn layer's keyword inputs, a padding mask)."""
    from .kinds import is_layer

    return any(not is_layer(module.get_submodule(str(n.target))) and len(n.all_input_nodes) > 1 for n in items)


def check_keys_called(graph: fx.Graph, module: nn.Module, keyed: set[str], where: str) -> None:
    """Refuse a state_dict key under a child called at its keys that no call holds (an item of
    ``convs`` forward never calls): the spec would not hold it, so the weights would not load."""
    called = [f"{n.target}." for n in graph.nodes if n.op == "call_module"]
    for head in sorted(keyed):
        for key in (f"{head}.{k}" for k in getattr(module, head).state_dict()):
            if not any(key.startswith(c) for c in called):
                raise ImportFailed(
                    f"`{key}` is a state_dict key of a module forward (in eval mode) never calls: a spec "
                    "cannot hold a module its forward does not use",
                    where=where,
                )


def _item_of(n: fx.Node, module: nn.Module) -> tuple[str | None, int | None]:
    """``('blocks', 2)`` for a call of ``self.blocks[2]`` (an nn.ModuleList's item)."""
    if n.op != "call_module":
        return None, None
    head, _, index = str(n.target).partition(".")
    if not index.isdigit() or not isinstance(getattr(module, head, None), (nn.ModuleList, nn.Sequential)):
        return None, None
    return head, int(index)


def _chained(items: Sequence[fx.Node]) -> bool:
    """Each item's output goes to the next item only: ``x = b(x)``."""
    return all(list(a.users) == [b] for a, b in pairwise(items))


def _given_more(items: Sequence[fx.Node]) -> bool:
    """Items given more tensors by position than the chained one (CaiT's ``blk(x, cls_tokens)``):
    a group of the loop, reading them by name (keyword inputs, a padding mask, go to a repeat)."""
    return any(sum(isinstance(a, fx.Node) for a in n.args) > 1 for n in items)


def _loop(
    order: list[fx.Node],
    head: str,
    items: list[fx.Node],
    module: nn.Module,
    is_tensor: Callable[[fx.Node], bool],
    where: str,
) -> Loop | Refused:
    """The stretch from the first item's call to the last one's, widened by the ops of a step
    that come after the last call (``x + b(x)``'s add) and before the first (``b(relu(x))``'s
    relu), where they repeat the ops between the first two calls; items called side by side
    (``torch.cat([p(x) for p in self.paths])``) take in the few nodes after them that join them."""
    pos = {n: i for i, n in enumerate(order)}
    first, last = pos[items[0]], pos[items[-1]]
    step = [_key(n, head) for n in order[first + 1 : pos[items[1]]]] if len(items) > 1 else []
    after = _matched(order[last + 1 :], step, head)
    before = _matched(order[:first][::-1], step[::-1][: len(step) - after], head)
    reason, several = "", None
    tried = [(before, after), (0, after), (before, 0), (0, 0)]
    tried += [(b, a + more) for more in (1, 2, 3) for b, a in tried[:2]]  # and what joins the items' values: a cat
    for b, a in dict.fromkeys(tried):
        stretch = order[first - b : last + 1 + a]
        params = tuple(n for n in stretch if n.op == "get_attr" and _is_parameter(module, str(n.target)))
        stretch = [n for n in stretch if n not in params]
        found = _ends(stretch, head, module, is_tensor)
        if isinstance(found, str):
            reason = reason or found
            continue
        loop = Loop(head, tuple(stretch), tuple(items), *found, params)
        if len(loop.outs) == 1:
            return loop
        several = several or loop  # a stretch giving one value is the simpler group, if there is one
    if several is not None:
        return several
    if reason.startswith("calls "):  # no group, but each call a node at its key (keyed_heads)
        return Refused(items[0], ImportFailed(reason, where=where), head)
    error = ImportFailed(
        f"forward calls the items of nn.ModuleList `{head}` in a loop that {reason}: the loop is "
        "written as a group named after the list, which holds no other module",
        where=where,
        hint="make each item a module that does the whole step (a block)",
    )
    return Refused(items[0], error)


def _key(n: fx.Node, head: str) -> tuple[str, str]:
    """What a node does, the same in every step of the loop: an item's call is ``head.*``."""
    target = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
    if n.op == "call_module" and str(target).startswith(f"{head}."):
        target = f"{head}.*"
    return n.op, str(target)


def _matched(nodes: list[fx.Node], keys: list[tuple[str, str]], head: str) -> int:
    """How many of ``nodes`` (from the first) do what ``keys`` say, in order."""
    count = 0
    for n, key in zip(nodes, keys):
        if _key(n, head) != key:
            break
        count += 1
    return count


def _ends(
    stretch: list[fx.Node], head: str, module: nn.Module, is_tensor: Callable[[fx.Node], bool]
) -> tuple[tuple[fx.Node, ...], tuple[fx.Node, ...]] | str:
    """(the tensors the stretch reads from before it, those it gives to what comes after), or
    why it is no group: what it reads or calls that is no item."""
    inside = set(stretch)
    for n in stretch:
        if n.op == "get_attr":
            return f"reads `{n.target}` inside it"
        if n.op == "call_module" and not str(n.target).startswith(f"{head}."):
            sub = module.get_submodule(str(n.target))
            if "." in str(n.target) or has_state(sub):
                return f"calls `{n.target}` inside it"
    sources = dict.fromkeys(m for n in stretch for m in n.all_input_nodes if m not in inside and is_tensor(m))
    outs = [n for n in stretch if is_tensor(n) and any(u not in inside for u in n.users)]
    if not outs:
        return "gives nothing to what comes after it"
    return tuple(sources), tuple(outs)


def _is_parameter(module: nn.Module, target: str) -> bool:
    """A parameter of the module itself (``self.pos_embed``): a node of its own, before the loop."""
    return "." not in target and isinstance(getattr(module, target, None), nn.Parameter)


def loop_line(module: nn.Module, head: str) -> str:
    """Where the loop over ``self.<head>`` is written: ``file:line`` of the first ``for ... in
    self.<head>`` in the module's ``forward``, else its other ``forward_*`` methods (timm's
    ``forward_features``), else its class (fx keeps no lines); the class where none is found.

    >>> class Net(nn.Module):
    ...     def forward(self, x):
    ...         for b in self.blocks:
    ...             x = b(x)
    ...         return x
    >>> loop_line(Net(), "blocks").rsplit(":", 1)[1] == str(Net.forward.__code__.co_firstlineno + 1)
    True
    """
    pattern = re.compile(rf"^\s*for\b.*\bin\b.*\bself\.{re.escape(head)}\b")
    cls = type(module)
    methods = sorted((k for k in dir(cls) if k.startswith("forward")), key=lambda k: k != "forward")
    for place in [*(getattr(cls, k) for k in methods), *cls.__mro__]:
        if place in (nn.Module, object) or not callable(place):
            continue
        try:
            lines, start = inspect.getsourcelines(place)
            file = inspect.getsourcefile(place)
        except (OSError, TypeError):  # no source: made at run time, or torch's own
            continue
        for k, line in enumerate(lines):
            if file and pattern.search(line):
                return f"{shown_file(file)}:{start + k}"
    return class_path(module)


def inside_loop(source: fx.Node, value: Any, module: nn.Module, path: str, where: str) -> Any:
    """A value from before a loop as its group (at ``path``) reads it: each tensor under its
    inner name, a split's pieces narrowed inside, a tuple of tensors and sizes (MViTv2's
    ``(x, (H, W))`` from its patch embedding) item by item, its sizes numbers; else refused."""
    from .groups import inner_name

    if isinstance(value, Pieces):
        return replace(value, source=inside_loop(source, value.source, module, path, where))
    if isinstance(value, Ref):
        return Ref(inner_name(value.name), value.meta)
    if isinstance(value, tuple) and all(isinstance(v, Ref) or constant(v) for v in value):
        return tuple(inside_loop(source, v, module, path, where) if isinstance(v, Ref) else v for v in value)
    raise loop_refused(
        module, path, f"reads `{source.name}`, a {type(value).__name__} of other than tensors and sizes", where
    )


def refs_in(value: Any) -> list[Ref]:
    """The tensors a value from before a loop holds (a split's: the tensor split).

    >>> [r.name for r in refs_in((Ref("x", (None, None)), (14, 14)))]
    ['x']
    """
    if isinstance(value, Pieces):
        return refs_in(value.source)
    if isinstance(value, tuple):
        return [r for v in value for r in refs_in(v)]
    return [value] if isinstance(value, Ref) else []


def loop_refused(module: nn.Module, path: str, what: str, where: str) -> ImportFailed:
    """The refusal of a loop over the nn.ModuleList at ``path`` that its group cannot hold:
    the list, the line of the loop in ``module``'s code, what it does that a group does not."""
    head = path.rpartition(".")[2]
    return ImportFailed(
        f"the loop over nn.ModuleList `{path}` at {loop_line(module, head)} {what}: a group of its items "
        "takes tensors and sizes and gives tensors",
        where=where,
        hint="make each item a module that takes and gives tensors (a block)",
    )
