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

from torch import fx, nn

from .trace import Traced, kind_of

_LISTS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict, nn.Sequential)


def hoist_child_methods(traced: Traced) -> None:
    """Move each child's inlined method out of ``traced.graph`` into a trace of its own (see the
    module docstring), in place: the parent's graph then calls the child with no arguments, and
    ``traced.calls`` holds that call's trace (``Traced.method``).

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
    >>> t = Traced("", Net(), "custom", graph=fx.Tracer().trace(Net()))
    >>> hoist_child_methods(t)
    >>> [(n.op, n.target) for n in t.graph.nodes]
    [('placeholder', 'x'), ('call_module', 'table'), ('call_function', <built-in function add>), ('output', 'output')]
    >>> [(n.op, n.target) for n in next(iter(t.calls.values())).graph.nodes][:2]
    [('get_attr', 'coords'), ('call_module', 'fc')]
    """
    graph = traced.graph
    if graph is None:
        return
    heads = {str(n.target).split(".")[0] for n in graph.nodes if n.op == "call_module" and "." in str(n.target)}
    for head in sorted(heads):
        child = getattr(traced.module, head, None)
        if not isinstance(child, nn.Module) or isinstance(child, _LISTS) or kind_of(child) != "custom":
            continue
        if any(n.op == "call_module" and n.target == head for n in graph.nodes):
            continue  # called as a module too: its node is that call
        inside = _method_nodes(graph, head)
        if inside is not None:
            _move(traced, head, child, inside)


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


def _move(traced: Traced, head: str, child: nn.Module, inside: list[fx.Node]) -> None:
    """Copy ``inside`` into the child's graph (targets without ``head.``), call the child in its place."""
    graph = traced.graph
    assert graph is not None
    method = fx.Graph()
    copies: dict[fx.Node, fx.Node] = {}
    for n in inside:
        copy = method.node_copy(n, lambda i: copies[i])
        if n.op in ("get_attr", "call_module"):
            copy.target = str(n.target).removeprefix(f"{head}.")
        copies[n] = copy
    method.output(copies[inside[-1]])
    with graph.inserting_after(inside[-1]):
        call = graph.call_module(head)
    inside[-1].replace_all_uses_with(call)
    for n in reversed(inside):
        graph.erase_node(n)
    traced.calls[call] = Traced(traced.child_path(head), child, "custom", graph=method, method=True)
