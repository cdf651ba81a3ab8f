"""A module with weights called again (Dct2d's ``self.transform(self.transform(x).mT)``, a
position conv called at every step of a loop) -> a ``same_as`` node calling the module of its
first call's node on its own tensors: the weights once, under the first call's keys."""

from __future__ import annotations

from typing import Any

from ..nodes.kinds import SHARED_OP
from .errors import ImportFailed
from .ir import Ref, SNode


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
