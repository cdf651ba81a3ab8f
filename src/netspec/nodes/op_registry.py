"""The op registry: :class:`OpType`, the ``OPS`` mapping and the ``@op`` decorator that fills it,
with the shape checks the ops share. The ops themselves are in ``ops.py`` (merges, reshapes,
element-wise functions) and ``ops_index.py`` (indexing, sizes read at run time, einsum, ...).

An op is a small function that, given its input values and validated arguments, returns
``(target, args, kwargs)`` -- the call the generated forward makes. The same description
drives shape inference (the call runs on meta tensors) and code generation (the call
becomes one line of the fx graph), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import GraphError, ShapeError
from .registry import Registry

__all__ = ["OPS", "OpType", "Call", "op", "Dims"]

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


@dataclass
class OpType:
    """One entry of the op registry."""

    name: str
    emit: Callable[..., Call]  # (inputs, **args) -> (target, args, kwargs)
    min_inputs: int = 1
    max_inputs: int | None = 1
    positional: str | None = None  # the argument a scalar or list value fills
    refs: tuple[str, ...] = ()  # arguments that name other nodes (become inputs)
    check: Callable[..., None] | None = None  # (shapes, **args): nice errors before running
    doc: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # name -> (type, default)
    # (full input shapes, **args) -> the output's shape (dtype: the first input's), or None where
    # unsure: saves the meta run of ops that torch implements in Python (see shape_rules.py)
    shape: Callable[..., tuple[int, ...] | None] | None = None
    # the leading inputs whose batch the output must keep (None: all); the rest are read for
    # their sizes or as indices only (`arange` of a sequence's length has no batch dim)
    batch_inputs: int | None = None
    # (the op's written arguments) -> more node names it reads, beside `from` (the names an
    # `index` expression uses); the emit then gets `input_names`: the name of each input
    refs_from: Callable[[Any], list[str]] | None = None
    # reshapes that may fold dims into the batch (windows into samples: `64B`) or unfold them;
    # their own check keeps each sample's rows together (dims.check_batch_kept); repeat_interleave
    # too: a sample's copies stay together
    folds: bool = False


#: op name -> entry, written by the @op decorator below.
OPS: Registry[OpType] = Registry("op", hint="see `netspec layers ops` for the list")

INPUT_NAMES = "input_names"  # the emit argument that receives the inputs' names (refs_from ops)


def op(
    name: str,
    *,
    inputs: tuple[int, int | None] = (1, 1),
    positional: str | None = None,
    refs: tuple[str, ...] = (),
    check: Callable[..., None] | None = None,
    shape: Callable[..., tuple[int, ...] | None] | None = None,
    batch_inputs: int | None = None,
    refs_from: Callable[[Any], list[str]] | None = None,
    folds: bool = False,
):
    """Decorator registering an op; the function's keyword arguments are the op's arguments."""

    def wrap(fn: Callable[..., Call]) -> Callable[..., Call]:
        import inspect

        sig = inspect.signature(fn)
        params = {n: (p.annotation, p.default) for n, p in list(sig.parameters.items())[1:] if n != INPUT_NAMES}
        OPS.add(
            name,
            OpType(
                name,
                fn,
                inputs[0],
                inputs[1],
                positional,
                refs,
                check,
                (fn.__doc__ or "").strip().split("\n")[0],
                params,
                shape,
                batch_inputs,
                refs_from,
                folds,
            ),
        )
        return fn

    return wrap


# ---- checks with messages that name the shapes -------------------------------------------
# A check gets each input's full shape with its batch dims as labels: ("B", 64, 28, 28), or
# (1, "B", 64) for an LSTM's h_n (see dims.py).

Dims = tuple[int | str, ...]


def _fmt(shape: Dims) -> str:
    """``64x28x28`` for a batch-first shape (the batch left out), the full shape otherwise."""
    if shape and shape[0] == "B" and all(isinstance(d, int) for d in shape[1:]):
        return "x".join(map(str, shape[1:])) or "scalar"
    return "(" + ", ".join(map(str, shape)) + ")"


def _check_same(shapes: list[Dims], **_: Any) -> None:
    sizes = [tuple(2 if isinstance(d, str) else d for d in s) for s in shapes]  # any fixed stand-in for B
    try:
        torch.broadcast_shapes(*sizes)
    except RuntimeError:
        raise ShapeError(
            f"inputs are {' and '.join(_fmt(s) for s in shapes)}; they must be equal or broadcastable"
        ) from None


def _two_or_number(name: str, inputs: list[Any], other: float | None) -> None:
    """`add: [a, b]` or `add: 1.0` (the previous node plus a number), not both, not neither."""
    if (len(inputs) >= 2) == (other is not None):
        raise GraphError(
            f"`{name}` takes two inputs, or one input and a number"
            + (" (not both)" if other is not None else f", got {len(inputs)} input"),
            hint=f"e.g. `{name}: [a, b]`, or `{name}: 1.0` for the previous node and the number 1.0",
        )
