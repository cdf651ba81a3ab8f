"""Which dims are the batch: every value is inferred at two batch sizes.

Shape inference runs each node on meta tensors twice: at batch ``META_BATCH`` (the value) and
at batch ``TWIN_BATCH`` (its twin). A dim whose size differs between the two scales with the
batch; every other dim is fixed. So an LSTM's ``h_n`` reads ``(1, B, 64)``, not ``(B, 1, 64)``
(torch puts ``num_layers`` first even with ``batch_first``), a declared parameter reads
``(4, 4)`` with no batch at all, and a node that would mix samples (``select`` over the batch
dim, ``cat`` along it) is refused where it is written instead of returning the wrong tensor.

No fixed size can stand in for the batch: with one probe size, an ``h_n`` of two layers at
batch 2 is ``(2, 2, 64)`` and nothing tells the dims apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import BuildError, ShapeError, SpecError

META_BATCH = 2  # BatchNorm refuses a batch of 1 in training; shapes never depend on it
TWIN_BATCH = 3  # the second probe: any size other than META_BATCH tells the batch dims apart

Dim = int | str  # a fixed size, or a batch-dependent one: "B", "2B", "4B+1"


@dataclass
class Probe:
    """A value inferred at both batch sizes: meta tensors, or tuples of them."""

    value: Any
    twin: Any

    @classmethod
    def of_tuple(cls, probes: list[Probe]) -> Probe:
        """Several probes as one tuple-valued probe (an LSTM's ``hx=(h0, c0)``)."""
        return cls(tuple(p.value for p in probes), tuple(p.twin for p in probes))


def input_probe(shape: tuple[int, ...], dtype: torch.dtype) -> Probe:
    """A model input of per-sample ``shape``, batch first.

    >>> input_probe((3, 8), torch.float32).twin.shape
    torch.Size([3, 3, 8])
    """
    return Probe(
        torch.empty((META_BATCH, *shape), dtype=dtype, device="meta"),
        torch.empty((TWIN_BATCH, *shape), dtype=dtype, device="meta"),
    )


def dim_label(at_meta: int, at_twin: int) -> Dim:
    """A dim's size at both batch sizes -> the size, or how it grows with the batch B.

    >>> dim_label(64, 64), dim_label(2, 3), dim_label(4, 6), dim_label(800, 1200), dim_label(5, 7)
    (64, 'B', '2B', '400B', '2B+1')
    """
    if at_meta == at_twin:
        return at_meta
    k = (at_twin - at_meta) // (TWIN_BATCH - META_BATCH)
    c = at_meta - k * META_BATCH
    head = "B" if k == 1 else f"{k}B"
    return head if c == 0 else f"{head}{c:+d}"


def symbolic(value: Any, twin: Any) -> tuple[Dim, ...]:
    """The dims of a tensor value, batch-dependent ones as labels.

    >>> symbolic(torch.empty(1, 2, 64, device="meta"), torch.empty(1, 3, 64, device="meta"))
    (1, 'B', 64)
    """
    return tuple(dim_label(a, b) for a, b in zip(value.shape, twin.shape))


def shape_str(value: Any, twin: Any) -> str:
    """``(B, 64, 572, 572)`` for a tensor; tuples are shown element-wise.

    >>> shape_str((torch.empty(2, 5, 8, device="meta"), torch.empty(1, 2, 8, device="meta")),
    ...           (torch.empty(3, 5, 8, device="meta"), torch.empty(1, 3, 8, device="meta")))
    '((B, 5, 8), (1, B, 8))'
    """
    if isinstance(value, torch.Tensor):
        return "(" + ", ".join(map(str, symbolic(value, twin))) + ")"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(shape_str(v, t) for v, t in zip(value, twin)) + ")"
    return type(value).__name__


def batch_dims(value: Any, twin: Any) -> list[int]:
    """Dims of a tensor whose size is exactly the batch.

    >>> batch_dims(torch.empty(1, 2, 8, device="meta"), torch.empty(1, 3, 8, device="meta"))
    [1]
    """
    return [i for i, d in enumerate(symbolic(value, twin)) if d == "B"]


def batch_first(value: Any, twin: Any) -> bool:
    """True for the usual layout: the batch is dim 0 and no other dim depends on it.

    >>> batch_first(torch.empty(2, 8, device="meta"), torch.empty(3, 8, device="meta"))
    True
    """
    dims = symbolic(value, twin)
    return bool(dims) and dims[0] == "B" and all(isinstance(d, int) for d in dims[1:])


def per_sample(value: Any, twin: Any) -> str:
    """``64x572x572``: the per-sample shape of a batch-first tensor; any other value in full.

    >>> per_sample(torch.empty(2, 10, device="meta"), torch.empty(3, 10, device="meta"))
    '10'
    >>> per_sample(torch.empty(4, 4, device="meta"), torch.empty(4, 4, device="meta"))
    '(4, 4)'
    """
    if isinstance(value, torch.Tensor) and batch_first(value, twin):
        return "x".join(map(str, value.shape[1:])) or "scalar"
    return shape_str(value, twin)


def sample_shape(value: Any, twin: Any) -> tuple[int, ...]:
    """A tensor's dims that do not depend on the batch (what ``$x.shape`` sees).

    >>> sample_shape(torch.empty(1, 2, 64, device="meta"), torch.empty(1, 3, 64, device="meta"))
    (1, 64)
    """
    return tuple(d for d in symbolic(value, twin) if isinstance(d, int))


def sizes_at(value: Any, twin: Any, batch: int) -> Any:
    """The shapes a real forward gives at ``batch``, as the two probes predict them.

    >>> sizes_at(torch.empty(1, 2, 64, device="meta"), torch.empty(1, 3, 64, device="meta"), 5)
    (1, 5, 64)
    """
    if isinstance(value, torch.Tensor):
        step = TWIN_BATCH - META_BATCH
        return tuple(a + (b - a) // step * (batch - META_BATCH) for a, b in zip(value.shape, twin.shape))
    if isinstance(value, (tuple, list)):
        return tuple(sizes_at(v, t, batch) for v, t in zip(value, twin))
    return None


def _tensors(value: Any, twin: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        return [(value, twin)]
    if isinstance(value, (tuple, list)):
        return [pair for v, t in zip(value, twin) for pair in _tensors(v, t)]
    return []


def batch_factor(dim: Dim) -> int | None:
    """How many rows of a dim each sample has: 1 for ``B``, 64 for ``64B`` (a batch with dims
    folded into it: windows into samples); None for a fixed size or a size like ``2B+1``.

    >>> batch_factor("B"), batch_factor("64B"), batch_factor("2B+1"), batch_factor(7)
    (1, 64, None, None)
    """
    if dim == "B":
        return 1
    if isinstance(dim, str) and dim.endswith("B") and dim[:-1].isdigit():
        return int(dim[:-1])
    return None


def batch_factors(probe: Probe) -> set[int]:
    """The batch factors of every dim that holds the batch, in every tensor of the value.

    >>> sorted(batch_factors(Probe(torch.empty(128, 7, device="meta"), torch.empty(192, 7, device="meta"))))
    [64]
    """
    return {f for v, t in _tensors(probe.value, probe.twin) for f in map(batch_factor, symbolic(v, t)) if f is not None}


def has_batch(probe: Probe) -> bool:
    """True when some tensor of the value holds the batch: a dim ``B``, or a folded ``64B``.

    >>> has_batch(input_probe((4,), torch.float32)), has_batch(Probe(torch.empty(4), torch.empty(4)))
    (True, False)
    """
    return bool(batch_factors(probe))


def check_batch_kept(inputs: list[Probe], out: Probe, where: str, folds: bool = False) -> None:
    """A node whose inputs carry the batch must keep it as a dim of its own.

    Selecting, reducing or concatenating along the batch dim mixes samples: the result
    would be right at one batch size only, so it is refused. Only a node that ``folds``
    (reshape, view, flatten: their own checks keep each sample's rows together; repeat_interleave,
    whose copies of a sample stay together) may fold dims into the batch (``64B``) or unfold them back.

    >>> x = input_probe((4,), torch.float32)
    >>> check_batch_kept([x], Probe(x.value.sum(0), x.twin.sum(0)), "sum")
    Traceback (most recent call last):
    netspec.errors.ShapeError: <spec>: sum would mix the samples of a batch: its input is (B, 4) and its output (4) has no batch dim; the batch is dim 0 of the input (dims count from the tensor's own dim 0, as in torch)
    """
    carrying = [p for p in inputs if has_batch(p)]
    if not carrying:
        return
    v, t = next((v, t) for v, t in _tensors(carrying[0].value, carrying[0].twin) if batch_factors(Probe(v, t)))
    if not has_batch(out):
        raise ShapeError(
            f"{where} would mix the samples of a batch: its input is {shape_str(v, t)} and its "
            f"output {shape_str(out.value, out.twin)} has no batch dim",
            hint=f"the batch is dim {_batch_dim(v, t)} of the input (dims count from the "
            "tensor's own dim 0, as in torch)",
        )
    new = batch_factors(out) - set().union(*map(batch_factors, carrying))
    if new and not folds:
        raise ShapeError(
            f"{where} would mix the samples of a batch: its input is {shape_str(v, t)} and its "
            f"output {shape_str(out.value, out.twin)} holds {min(new)} rows per sample in a dim",
            hint="only reshape, view and flatten fold dims into the batch (`reshape: [64B, 7, 7, 96]`)",
        )


def _batch_dim(value: Any, twin: Any) -> int:
    return next(i for i, d in enumerate(symbolic(value, twin)) if batch_factor(d) is not None)


def check_unfolded(probe: Probe, output: str) -> None:
    """A model's output holds its batch as ``B``: a folded batch (``64B``) must be unfolded first.

    >>> check_unfolded(Probe(torch.empty(128, 7, device="meta"), torch.empty(192, 7, device="meta")), "y")
    Traceback (most recent call last):
    netspec.errors.ShapeError: <spec>: output `y` is (64B, 7): its batch still has dims folded into it (64 rows per sample); unfold it before the output, e.g. `reshape: [B, 64, 7]`
    """
    for v, t in _tensors(probe.value, probe.twin):
        dims = symbolic(v, t)
        folded = [f for f in map(batch_factor, dims) if f is not None and f != 1]
        if folded:
            at = next(i for i, d in enumerate(dims) if batch_factor(d) == folded[0])
            rest = [d for i, d in enumerate(dims) if i != at]
            raise ShapeError(
                f"output `{output}` is {shape_str(v, t)}: its batch still has dims folded into it "
                f"({folded[0]} rows per sample)",
                hint=f"unfold it before the output, e.g. `reshape: [B, {', '.join(map(str, [folded[0], *rest]))}]`",
            )


# ---- reusing a result ----------------------------------------------------------------------
# Running a layer on meta tensors costs a millisecond or more (torch computes meta shapes in
# Python), so shape inference runs each distinct call once: a torch.nn layer's output shapes
# depend only on its arguments and on its inputs' shapes, strides and dtypes, which these keys
# hold. A 5,000-node chain of a few distinct layers then costs little more than reading it.


def args_key(value: Any) -> Hashable:
    """A hashable stand-in for constructor or op arguments made of plain data; TypeError for
    anything else (a tensor, an object), which is then not reused.

    >>> args_key({"out_features": 8, "bias": True}) == args_key({"out_features": 8, "bias": 1})
    False
    """
    if isinstance(value, dict):
        return ("dict", *((k, args_key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(args_key(v) for v in value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)  # the type too: True == 1 == 1.0 as keys
    raise TypeError(f"not plain data: {type(value).__name__}")


def probe_key(probe: Probe) -> Hashable:
    """What a call's output shapes can depend on in an input: each tensor's shape, strides and
    dtype, at both batch sizes.

    >>> probe_key(input_probe((4,), torch.float32)) == probe_key(input_probe((4,), torch.float32))
    True
    """
    return _value_key(probe.value), _value_key(probe.twin)


def _value_key(value: Any) -> Hashable:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.stride(), value.dtype, value.layout)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_value_key(v) for v in value))
    return args_key(value)


def fresh(value: Any) -> Any:
    """New meta tensors like those of ``value`` (a tensor, None, a number, or tuples and lists of
    them), so a reused result is never the same object as another node's; TypeError for
    anything else.

    >>> fresh((torch.empty(2, 3, device="meta"), None))[0].shape
    torch.Size([2, 3])
    """
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta" or value.layout is not torch.strided:
            raise TypeError("only strided meta tensors are copied")
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    if type(value) in (tuple, list):
        return type(value)(fresh(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot copy a {type(value).__name__}")


# ---- running on meta ---------------------------------------------------------------------


def meta_call(
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    where: str,
    path: tuple,
    node: str,
    shown: list[Probe],
    batch: int = META_BATCH,
) -> Any:
    """``fn(*args, **kwargs)`` on meta tensors; torch's error becomes a ShapeError at the node.

    >>> x = input_probe((4,), torch.float32)
    >>> meta_call(torch.nn.Linear(3, 2), (x.value,), {}, "Linear", ("nodes", 0), "fc", [x])
    Traceback (most recent call last):
    netspec.errors.ShapeError: <spec>: nodes[0] (fc): Linear cannot take input 4: a and b must have same reduction dim, but got [2, 4] X [3, 2].; torch's sizes include the batch of 2 netspec checks shapes with
    """
    try:
        with torch.no_grad():
            return fn(*args, **kwargs)
    except SpecError:
        raise
    except Exception as e:  # torch's own message, located at the node
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        ins = " and ".join(per_sample(p.value, p.twin) for p in shown)
        # torch shows full sizes; ours are per sample, and shapes are checked with a batch of 2 (and 3)
        hint = (
            f"torch's sizes include the batch of {batch} netspec checks shapes with"
            if f"[{batch}, " in msg or f"({batch}, " in msg
            else None
        )
        raise ShapeError(f"{where} cannot take input {ins}: {msg}", path=path, node=node, hint=hint) from None


def run_probe(
    fn: Callable[..., Any], ins: list[Probe], kw: dict[str, Probe], where: str, path: tuple, node: str
) -> Probe:
    """Run ``fn(*inputs, **keyword inputs)`` at both batch sizes.

    >>> x = input_probe((4,), torch.float32)
    >>> run_probe(torch.relu, [x], {}, "relu", (), "r").twin.shape
    torch.Size([3, 4])
    """
    shown = ins + list(kw.values())
    value = meta_call(fn, tuple(p.value for p in ins), {k: p.value for k, p in kw.items()}, where, path, node, shown)
    twin = meta_call(
        fn, tuple(p.twin for p in ins), {k: p.twin for k, p in kw.items()}, where, path, node, shown, batch=TWIN_BATCH
    )
    return Probe(value, twin)


def build_on_meta(factory: Any, **kwargs: Any) -> nn.Module:
    """``factory(**kwargs)`` with every parameter and buffer on the meta device (no memory).

    Most modules build under ``torch.device("meta")``. Some compute their layout with tensors
    (torchvision's RegNet: ``torch.arange(...).tolist()``), which meta tensors cannot give; those
    are built with only their parameters and buffers sent to the meta device, as they are made.

    >>> build_on_meta(nn.Linear, in_features=3, out_features=2).weight.device
    device(type='meta')
    """
    try:
        with torch.device("meta"):
            return factory(**kwargs)
    except NotImplementedError as e:  # "Cannot copy out of meta tensor; no data!"
        if "meta" not in str(e):
            raise
    with _parameters_on_meta():
        return factory(**kwargs)


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(module: nn.Module, name: str, param: Any) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer(module: nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        register_buffer(module, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer  # type: ignore[method-assign]


def construct_meta(cls: type[nn.Module], kwargs: dict[str, Any], where: str, path: tuple, node: str) -> nn.Module:
    """Build a layer on the meta device (no memory), in eval mode; a failure is a BuildError.

    >>> construct_meta(nn.Linear, {"in_features": 3, "out_features": 2}, "Linear", (), "fc").weight.device
    device(type='meta')
    """
    try:
        module = build_on_meta(cls, **kwargs)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BuildError(
            f"{where}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: {msg}", path=path, node=node
        ) from None
    return module.eval()
