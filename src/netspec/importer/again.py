"""A module with weights called again (Dct2d's ``self.transform(self.transform(x).mT)``, a
position conv called at every step of a loop) -> a ``same_as`` node calling the module of its
first call's node on its own tensors: the weights once, under the first call's keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..compiler.keys import holders, owner
from ..nodes.kinds import SHARED_OP
from .errors import ImportFailed
from .ir import Ref, SNode, has_state


def fixed_args(args: tuple, kwargs: dict[str, Any]) -> Any:
    """What a call passes besides tensors, by place (a tensor is None there): a block is built
    with these (``cpe(x, (14, 14))``'s size), so a call again must pass the same.

    >>> fixed_args((Ref("x", (None, None)), (14, 14)), {"flag": True})
    ([None, (14, 14)], {'flag': True})
    """
    return [None if isinstance(a, Ref) else a for a in args], {
        k: None if isinstance(v, Ref) else v for k, v in kwargs.items()
    }


def same_as_node(target: str, name: str, first: Any, args: tuple, kwargs: dict[str, Any], where: str) -> SNode:
    """The node of a call again of ``target`` (whose first call passed ``first``, ``fixed_args``):
    ``{same_as: target}`` reading the call's tensors, by position.

    >>> same_as_node("t", "t_1", ([None], {}), (Ref("y", (None, None)),), {}, "").args
    't'
    """
    if first is None or fixed_args(args, kwargs) != first or any(isinstance(v, Ref) for v in kwargs.values()):
        raise ImportFailed(
            f"forward calls `{target}` again with other arguments than tensors by position, or other values "
            "besides its tensors: a `same_as` node calls the first call's module again on other tensors only",
            where=where,
        )
    return SNode(SHARED_OP, name, target, [a.name for a in args if isinstance(a, Ref)])


def shared_modules(model: nn.Module, nodes: list[SNode], held: Callable[[], set[str]]) -> dict[str, str]:
    """One module with weights under several names (CoaT's ``cpe1``, which each of its blocks holds
    as ``cpe``: ``Block(shared_cpe=self.cpe1)``): the spec holds it under each name its forward
    calls it by (a node each), their parameters tied to the first call's (``tie`` on the top-level
    node holding each other name); a name forward never calls is an alias of the first call's module
    (the spec's ``aliases``, returned). So the compiled module's state_dict has every key, as the
    model's, and one tensor behind them. ``held``: the module keys of the spec as written so far
    (torch.fx calls a module by its first name, so which names forward calls shows in the spec).

    >>> class Block(nn.Module):
    ...     def __init__(self, pos): super().__init__(); self.pos = pos
    >>> m = nn.Module(); m.pos = nn.Linear(2, 2); m.blocks = nn.ModuleList([Block(m.pos), Block(m.pos)])
    >>> blocks = SNode("Block", "blocks", repeat=2)
    >>> shared_modules(m, [blocks], lambda: {"blocks.0.pos", "blocks.1.pos"}), blocks.tie
    ({'pos': 'blocks.0.pos'}, {'1.pos.weight': 'blocks.0.pos.weight', '1.pos.bias': 'blocks.0.pos.bias'})
    """
    names: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if name and has_state(module):
            names.setdefault(id(module), []).append(name)
    shared = {k: v for k, v in names.items() if len(v) > 1}
    keys = held() if shared else set()
    inside = {n for v in shared.values() for n in v}  # a shared module's own children are shared with it
    by_name = {str(n.name): i for i, n in enumerate(nodes) if n.name is not None}
    aliases: dict[str, str] = {}
    for group in shared.values():
        top = [n for n in group if not any(h in inside for h in holders(n))]
        called = [n for n in top if n in keys and owner(n, by_name) in by_name]
        if not called or len(top) == 1:
            continue
        first = min(called, key=lambda n: by_name[owner(n, by_name)])  # the first node's: the others read it
        module = model.get_submodule(first)
        params = dict(module.named_parameters(remove_duplicate=False))
        if len(called) > 1 and any(k not in params for k in module.state_dict()):  # a persistent buffer
            raise ImportFailed(
                f"`{first}` and `{called[1] if called[0] == first else called[0]}` are one module with buffers: "
                "a spec ties parameters only"
            )
        for name in called:
            node = nodes[by_name[owner(name, by_name)]]
            ties = {f"{name}.{p}"[len(str(node.name)) + 1 :]: f"{first}.{p}" for p, _ in module.named_parameters()}
            node.tie = {**(node.tie or {}), **ties} if name != first else node.tie
        aliases.update({name: first for name in top if name not in called})
    return aliases
