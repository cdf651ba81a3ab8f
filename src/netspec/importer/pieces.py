"""``x.unbind(dim)`` and ``torch.split(x, size, dim)``: a tuple of pieces, each read by index;
and the other way round, a list of tensors a module only concatenates, concatenated by its caller.

The call itself makes no node: it gives a :class:`Pieces`, and reading piece ``k``
(``q, k, v = qkv.unbind(0)`` traces as ``qkv.unbind(0)[0]``...) is a ``select`` (unbind) or a
``narrow`` (split) node of the source, so the spec computes only the pieces the forward uses.
"""

from __future__ import annotations

from typing import Any

from .call import Call, Result, const
from .errors import ImportFailed
from .functions import call_name, handles
from .ir import Pieces, Ref, SNode
from .trace import Traced


def _dim(c: Call, source: Ref, dim: Any, what: str) -> int:
    dim = const(c, dim, "a dim")
    if not isinstance(dim, int) or not -len(source.shape) <= dim < len(source.shape):
        raise ImportFailed(f"`{what}` along dim {dim!r} has no spec op", where=c.where)
    dim %= len(source.shape)
    if dim in source.batch_dims:
        raise ImportFailed(f"`{what}` along the batch dim has no spec op (it would part the samples)", where=c.where)
    return dim


@handles("torch.unbind", "Tensor.unbind")
def _unbind(c: Call, input: Ref, dim: int = 0) -> Result:
    d = _dim(c, input, dim, "unbind")
    return Pieces(input, d, tuple((k, 1) for k in range(input.shape[d])), drop_dim=True)


@handles("torch.split", "Tensor.split")
def _split(c: Call, tensor: Ref, split_size_or_sections: Any, dim: int = 0) -> Result:
    d = _dim(c, tensor, dim, "split")
    size, total = const(c, split_size_or_sections, "a size"), tensor.shape[d]
    lengths = (
        list(size) if isinstance(size, list) else [size] * (total // size) + ([total % size] if total % size else [])
    )
    starts = [sum(lengths[:k]) for k in range(len(lengths))]
    return Pieces(tensor, d, tuple(zip(starts, lengths)), drop_dim=False)


def hoist_lists(name: str, sub: Traced, bound: dict[str, Any], parent: Any) -> dict[str, Ref]:
    """A list of tensors passed to a module that only concatenates it (DenseNet's layers): the
    caller (``parent``, a ``convert.Converter``) concatenates it, and the module gets one tensor."""
    out: dict[str, Ref] = {}
    for key, value in bound.items():
        if isinstance(value, Ref):
            continue
        if not (isinstance(value, (list, tuple)) and value and all(isinstance(v, Ref) for v in value)):
            raise ImportFailed(f"`{name}` is called with {key}={value!r}: a spec passes tensors", where=parent.where)
        dim = _concatenated_dim(sub, key)
        if dim is None:
            raise ImportFailed(
                f"`{name}` is called with a list of tensors as `{key}`, which it does more with "
                "than concatenate: a spec passes tensors",
                where=parent.where,
            )
        if len(value) == 1:
            out[key] = value[0]
            continue
        cat = SNode(
            "cat", parent.namer.fresh(f"{name}_{key}"), {"dim": dim} if dim != 1 else None, [v.name for v in value]
        )
        parent.nodes.append(cat)
        out[key] = Ref(cat.name, (None, None))  # type: ignore[arg-type]  # named just above
    return out


def _concatenated_dim(sub: Traced, key: str) -> int | None:
    """The dim every use of placeholder ``key`` concatenates it on, if that is all it is used for."""
    assert sub.graph is not None
    placeholder = next((n for n in sub.graph.nodes if n.op == "placeholder" and n.target == key), None)
    dims = set()
    for user in placeholder.users if placeholder is not None else ():
        if call_name(user.op, user.target) not in ("torch.cat", "torch.concat") or user.args[0] is not placeholder:
            return None
        dims.add(user.args[1] if len(user.args) > 1 else user.kwargs.get("dim", 0))
    return dims.pop() if len(dims) == 1 else None
