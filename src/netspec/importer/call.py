"""One call in a traced forward, as the handlers of ``functions.py`` see it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..nodes.ops import OPS
from .errors import ImportFailed
from .ir import BatchSize, Pieces, Ref, SNode

# What a handler gives back: a node, a chain of nodes (the last one is the value), or the
# name of an existing value (the call is the identity in the spec), or pieces read one by one.
Result = SNode | list[SNode] | Ref | Pieces


@dataclass
class Call:
    """The call being converted: the name its value gets, where it is, what it gave."""

    name: str
    where: str
    result: Ref
    fresh: Callable[[str], str]  # a new unique name in the body, from a wish
    key: str = ""  # the call as the handlers know it: `torch.flatten`, `F.relu`
    notes: list[tuple[str, str]] | None = None  # (place, what the importer left out), for the user

    def note(self, text: str) -> None:
        """Tell the user what the spec leaves out (said once per kind, with the places)."""
        if self.notes is not None:
            self.notes.append((f"{self.where}.{self.name}", text))

    def op(self, op: str, inputs: list[Ref | str], suffix: str | None = None, **args: Any) -> SNode:
        """A node of op ``op``, leaving out arguments equal to the op's defaults.

        ``suffix`` names a step before the last one (``view_neg``), from :meth:`fresh`."""
        params = OPS[op].params
        kept = {k: v for k, v in args.items() if not (k in params and _same(params[k][1], v))}
        name = self.fresh(f"{self.name}_{suffix}") if suffix else self.name
        return SNode(op, name, kept or None, [i.name if isinstance(i, Ref) else i for i in inputs])

    def layer(self, layer: str, inputs: list[Ref], args: dict[str, Any]) -> SNode:
        """A parameterless layer node (``F.max_pool2d`` -> ``MaxPool2d``), with the arguments
        a spec needs to build the same layer."""
        from ..nodes.layers import LAYERS
        from .layer_args import node_args

        try:
            module = LAYERS[layer].cls(**args)
        except Exception as e:
            raise ImportFailed(f"cannot build {layer}({args}) for this call: {e}", where=self.where) from None
        return SNode(
            layer,
            self.name,
            node_args(module, [i.sample_shape for i in inputs], self.where) or None,
            [i.name for i in inputs],
        )

    def ref(self, suffix: str) -> str:
        """The name of the step ``suffix`` made by :meth:`op` (the last one made with it)."""
        return self._last.get(suffix, f"{self.name}_{suffix}")

    def __post_init__(self) -> None:
        self._last: dict[str, str] = {}
        fresh = self.fresh

        def remember(wish: str) -> str:
            name = fresh(wish)
            self._last[wish[len(self.name) + 1 :]] = name
            return name

        self.fresh = remember


def _same(default: Any, value: Any) -> bool:
    return (type(default) is type(value) and default == value) or (default is None and value is None)


def const(c: Call, value: Any, what: str) -> Any:
    """A number (or list of numbers) the spec can write: not a tensor, not the batch size.

    >>> c = Call("y", "fc", None, str)
    >>> const(c, (2, 3), "a size")
    [2, 3]
    >>> const(c, BatchSize((1, 2), "x"), "a size")
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: fc: the batch size (`x.size(0)`) is used as a value where the spec op takes a size; a spec's sizes are per sample
    """
    if isinstance(value, Ref):
        raise ImportFailed(f"a tensor is used where the spec op takes {what}", where=c.where)
    if isinstance(value, BatchSize):
        raise ImportFailed(
            f"the batch size (`x.size(0)`) is used as a value where the spec op takes {what}; "
            "a spec's sizes are per sample",
            where=c.where,
        )
    if isinstance(value, tuple):
        return [const(c, v, what) for v in value]
    return value
