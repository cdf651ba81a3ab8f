"""A child's method the forward runs instead of calling the child: ``self.rel_pos.get_bias()``.

torch.fx traces only ``forward`` as a call; a method of a child runs inline, so the parent's
graph reads the child's buffers and calls its children (``rel_pos.rel_coords_log``,
``rel_pos.mlp``), which no spec node can hold (a node is one call of a direct child). Where
those nodes take nothing of the parent's (the child's own tensors in, one tensor out), they
are the child's: they move into a graph of their own, run on the child, and the parent calls
the child with no input -- a node ``rel_pos`` of a block whose body is the method, the child's
keys (``rel_pos.mlp.fc1.weight``) kept.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import fx, nn

_LISTS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict, nn.Sequential)


def hoist_child_methods(
    module: nn.Module, graph: fx.Graph, traced: Callable[[nn.Module], bool]
) -> dict[fx.Node, tuple[str, fx.Graph]]:
    """Move each child's inlined method out of ``graph`` (``module``'s forward) into a graph of
    its own (see the module docstring), in place: the parent's graph then calls the child with
    no arguments. ``traced``: whether a child's forward is traced (no layer kept whole). Gives
    each new call node -> (the child's name, its method's graph).

    >>> import torch
    >>> class Table(nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.fc = nn.Linear(2, 3); self.register_buffer("coords", torch.ones(4, 2))
    ...     def bias(self):
    ...         return self.fc(self.coords).t()
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.table = Table()
    ...     def forward(self, x):
    ...         return x + self.table.bias()
    >>> graph = fx.Tracer().trace(Net())
    >>> calls = hoist_child_methods(Net(), graph, lambda m: True)
    >>> [(n.op, n.target) for n in graph.nodes]
    [('placeholder', 'x'), ('call_module', 'table'), ('call_function', <built-in function add>), ('output', 'output')]
    >>> [(n.op, n.target) for n in next(iter(calls.values()))[1].nodes][:2]
    [('get_attr', 'coords'), ('call_module', 'fc')]
    """
    heads = {str(n.target).split(".")[0] for n in graph.nodes if n.op == "call_module" and "." in str(n.target)}
    calls = {}
    for head in sorted(heads):
        child = getattr(module, head, None)
        if not isinstance(child, nn.Module) or isinstance(child, _LISTS) or not traced(child):
            continue
        if any(n.op == "call_module" and n.target == head for n in graph.nodes):
            continue  # called as a module too: its node is that call
        inside = _method_nodes(graph, head)
        if inside is not None:
            calls[_move(graph, head, inside)] = (head, _method_graph(head, inside))
    return calls


def _method_nodes(graph: fx.Graph, head: str) -> list[fx.Node] | None:
    """The nodes of ``head``'s method, in order: its reads and calls (``head.x``) and what is
    computed from them alone; None unless every one of its reads and calls takes nothing of the
    parent's and one value leaves them."""
    inside: list[fx.Node] = []
    seen: set[fx.Node] = set()
    for n in graph.nodes:
        own = n.op in ("get_attr", "call_module") and str(n.target).startswith(f"{head}.")
        inputs = n.all_input_nodes
        if own and not all(i in seen for i in inputs):
            return None  # the child's module called on the parent's values
        if own or (n.op in ("call_function", "call_method") and inputs and all(i in seen for i in inputs)):
            inside.append(n)
            seen.add(n)
    leaving = [n for n in inside if any(u not in seen for u in n.users)]
    return inside if len(leaving) == 1 and inside[-1] is leaving[0] else None


def _method_graph(head: str, inside: list[fx.Node]) -> fx.Graph:
    """A graph of copies of ``inside``, their targets without ``head.``, giving the last."""
    method = fx.Graph()
    copies: dict[fx.Node, fx.Node] = {}
    for n in inside:
        copy = method.node_copy(n, lambda i: copies[i])
        if n.op in ("get_attr", "call_module"):
            copy.target = str(n.target).removeprefix(f"{head}.")
        copies[n] = copy
    method.output(copies[inside[-1]])
    return method


def _move(graph: fx.Graph, head: str, inside: list[fx.Node]) -> fx.Node:
    """A call of the child ``head`` with no arguments in place of ``inside`` (the nodes erased)."""
    with graph.inserting_after(inside[-1]):
        call = graph.call_module(head)
    inside[-1].replace_all_uses_with(call)
    for n in reversed(inside):
        graph.erase_node(n)
    return call
