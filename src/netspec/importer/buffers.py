"""A buffer a forward reads (``self.relative_position_index``, ``self.k_bias``) -> a ``Buffer``
node named after it, so a persistent buffer keeps its state_dict key and loads strictly.

The node also carries the buffer's VALUE, so the spec builds the same model without a
checkpoint (a relative-position table of zeros would train another model): a tensor of one
repeated number as an ``init`` (``zeros_``, ``{constant_: {val: 0.5}}``), a table of attention
models as the init that makes it exactly (:func:`table_init`: Swin's relative position index and
shifted-window mask, LeViT's attention-bias index, Swin V2's log-spaced coordinates), any other up to
:data:`MAX_VALUES` numbers as a ``value``. A non-persistent buffer is in no state_dict, so a
bigger one is read from a file beside the spec (``{file: NAME.buffers.pt, key: ...}``, which
``netspec import -o`` writes; :func:`sidecar_tensors`); a bigger persistent one is written by
shape, its values coming from the checkpoint (the importer says so in its notes).

A tensor torch.fx computed while tracing (``self.index.view(-1)`` runs on the real buffer) is
the buffer it equals, reshaped, or else a constant; a child whose tensors forward reads
without calling it (``F.linear(x, self.qkv.weight, bias)``) is a holder block (``holder_node``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy
import torch

from ..nodes.functional import _DTYPES
from ..nodes.initializers import (
    attention_bias_index_,
    log_offsets_,
    log_relative_coords_,
    relative_position_index_,
    shifted_window_mask_,
)
from ..nodes.kinds import BUFFER_OP, PARAM_OP
from .errors import ImportFailed, class_path
from .ir import SNode

MAX_VALUES = 4096  # Swin's 49x49 relative position index fits; a whole image does not
MAX_SIDE = 2048  # the biggest relative position index tried (a 45x45 window): each try builds one
SIDECAR = "buffers.pt"  # the file a big buffer outside the state_dict is read from (api.py names it after the spec)
MAX_TABLE = 2**22  # the most numbers a table init is tried on (Swin's 56x56 map's mask: 153,664)
CONSTANT = "_tensor_constant"  # what torch.fx names a tensor the forward computed from no input (`self.index.view(-1)`)


def read_tensor(
    module: torch.nn.Module, target: str, fresh: Callable[[str], str], where: str, notes: list, read: set[str]
) -> list[SNode]:
    """The nodes for a tensor fx reads that is no parameter of the module: its own buffer
    ``target`` (a Buffer node keeping the key), or a tensor fx computed while tracing: the
    buffer it equals reshaped (``self.index.view(-1)``: the key is kept), else a Buffer node
    ``constant`` in no state_dict. Empty for anything else. ``read``: the buffers read so far
    (each is one node)."""
    value = getattr(module, target, None) if "." not in target else None
    if target in module._buffers and isinstance(value, torch.Tensor):
        read.add(target)
        return [buffer_node(target, value, target not in module._non_persistent_buffers_set, where, notes)]
    if not (target.startswith(CONSTANT) and isinstance(value, torch.Tensor)) or isinstance(value, torch.nn.Parameter):
        return []
    source = next((k for k, b in module._buffers.items() if b is not None and _same_values(b, value)), None)
    if source is None:
        return [buffer_node(fresh("constant"), value, False, where, notes, computed=target)]
    nodes = [] if source in read else read_tensor(module, source, fresh, where, notes, read)
    if tuple(value.shape) == tuple(module._buffers[source].shape):  # type: ignore[union-attr]
        return nodes or [SNode("contiguous", fresh(f"{source}_copy"), None, [source])]
    whole = SNode("reshape", fresh(f"{source}_whole"), {"shape": list(value.shape)}, [source])  # (1, *shape)
    return [*nodes, whole, SNode("squeeze", fresh(f"{source}_view"), {"dim": 0}, [str(whole.name)])]


def _same_values(buffer: torch.Tensor, value: torch.Tensor) -> bool:
    """Whether ``value`` is ``buffer`` reshaped (what fx keeps of ``self.index.view(-1)``)."""
    return (
        buffer.dtype == value.dtype
        and buffer.numel() == value.numel()
        and torch.equal(buffer.flatten(), value.flatten())
    )


def buffer_node(
    name: str, tensor: torch.Tensor, persistent: bool, where: str, notes: list[tuple[str, str]], computed: str = ""
) -> SNode:
    """The ``Buffer`` node ``name`` holding ``tensor`` (in the state_dict if ``persistent``);
    ``computed``: the name fx gave a tensor it computed while tracing (no buffer of the model).

    >>> buffer_node("idx", torch.tensor([[2, 0], [1, 3]]), False, "attn", []).args
    {'value': [2, 0, 1, 3], 'shape': [2, 2], 'persistent': False}
    >>> buffer_node("bias", torch.zeros(4), True, "attn", []).args
    {'shape': [4]}
    """
    args: dict[str, Any] = {}
    flat = tensor.detach().flatten()
    dtype = next((k for k, v in _DTYPES.items() if v == tensor.dtype), None)
    if dtype is None:
        raise ImportFailed(
            f"forward reads buffer `{name}` of dtype {tensor.dtype}, which a spec has no name for", where=where
        )
    if flat.numel() and bool((flat == flat[0]).all()):
        args["shape"] = list(tensor.shape)
        init = _init(flat[0])
        if init != "zeros_":
            args["init"] = init
    elif (table := table_init(tensor)) is not None:  # Swin's relative position index, attention mask, ...
        args["shape"], args["init"] = list(tensor.shape), table
    elif flat.numel() <= MAX_VALUES:
        args["value"] = _values(flat)
        if tensor.dim() != 1:
            args["shape"] = list(tensor.shape)
    elif not persistent:  # in no state_dict: its values travel in a file beside the spec
        if computed:  # no buffer of the model: no file beside the spec holds it
            raise ImportFailed(
                f"forward computes a tensor of {flat.numel():,} values from no input (`{computed}`): a spec "
                f"writes a value of at most {MAX_VALUES:,} numbers",
                where=where,
                hint="register it as a buffer of the module, so its values travel with the model",
            )
        args["shape"], args["file"], args["key"] = list(tensor.shape), SIDECAR, sidecar_key(name, tensor)
        notes.append(
            (f"{where}.{name}", f"a buffer of over {MAX_VALUES:,} values outside the state_dict is read from a file")
        )
    else:
        args["shape"] = list(tensor.shape)
        notes.append((f"{where}.{name}", f"a buffer of over {MAX_VALUES:,} values is read from the weights"))
    if dtype != _default_dtype(args):
        args["dtype"] = dtype
    if not persistent:
        args["persistent"] = False
    return SNode(BUFFER_OP, name, args)


def sidecar_key(name: str, tensor: torch.Tensor) -> str:
    """The key of a buffer in the file beside the spec: its name and a digest of its values,
    so equal buffers of many modules are one tensor (and one form of their block).

    >>> sidecar_key("attn_mask", torch.zeros(2, 3))
    'attn_mask_a86233b542'
    """
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode() + data).hexdigest()
    return f"{name}_{digest[:10]}"


def sidecar_tensors(model: torch.nn.Module, keys: set[str]) -> dict[str, torch.Tensor]:
    """The buffers outside the state_dict whose :func:`sidecar_key` is one of ``keys``: what the
    file beside the spec holds."""
    found = {}
    for module in model.modules():
        for name in module._non_persistent_buffers_set:
            tensor = module._buffers.get(name)
            if tensor is not None and tensor.numel() > MAX_VALUES and (key := sidecar_key(name, tensor)) in keys:
                found[key] = tensor.detach().cpu().clone()
    return found


def table_init(tensor: torch.Tensor) -> dict[str, Any] | None:
    """The table init (``nodes/initializers.py``) that makes exactly this tensor, or None: Swin's
    relative position index and shifted-window attention mask, LeViT's attention-bias index,
    Swin V2's log-spaced relative coordinates. Each is tried only on tensors of its shape.

    >>> table_init(attention_bias_index_(torch.empty(9, 36, dtype=torch.long), [6, 6], 2))
    {'attention_bias_index_': {'resolution': [6, 6], 'stride': 2}}
    >>> table_init(torch.arange(6.0)) is None
    True
    """
    if tensor.numel() > MAX_TABLE:
        return None
    for find in (_index_init, _mask_init, _bias_index_init, _log_coords_init, _log_offsets_init):
        if (found := find(tensor)) is not None:
            return found
    return None


def _log_offsets_init(tensor: torch.Tensor) -> dict[str, Any] | None:
    """``{log_offsets_: {window: [h, w], mode: ...}}`` for Swin V2's ([1,] 2h-1, 2w-1, 2) table."""
    shape = tuple(tensor.shape)
    if not tensor.is_floating_point() or len(shape) < 3 or shape[-1] != 2 or any(s != 1 for s in shape[:-3]):
        return None
    if shape[-3] % 2 == 0 or shape[-2] % 2 == 0:
        return None
    window = [(shape[-3] + 1) // 2, (shape[-2] + 1) // 2]
    for mode in ("cr", "swin"):
        if torch.equal(log_offsets_(torch.empty(shape), window, mode).to(tensor.dtype), tensor):
            return {"log_offsets_": {"window": window} if mode == "cr" else {"window": window, "mode": mode}}
    return None


def _pairs(n: int) -> list[list[int]]:
    """The [a, b] with a * b == n, the squarest first (windows and grids are mostly square)."""
    return sorted(([a, n // a] for a in range(1, n + 1) if n % a == 0), key=lambda p: abs(p[0] - p[1]))


def _index_init(tensor: torch.Tensor) -> dict[str, Any] | None:
    """``{relative_position_index_: {window: [h, w], ...}}`` when the tensor holds that table
    (``nodes/initializers.py``), trying each h x w window of its size, with and without a class token.

    >>> _index_init(relative_position_index_(torch.empty(37, 37, dtype=torch.long), [6, 6], True))
    {'relative_position_index_': {'window': [6, 6], 'class_token': True}}
    """
    side = round(tensor.numel() ** 0.5)
    if (
        tensor.is_floating_point()
        or tensor.dtype == torch.bool
        or not 2 <= side <= MAX_SIDE
        or side**2 != tensor.numel()
    ):
        return None
    for token in (False, True):
        for window in _pairs(side - token):
            table = relative_position_index_(torch.empty(side, side, dtype=torch.long), window, token)
            if torch.equal(table.flatten(), tensor.flatten().long()):
                args: dict[str, Any] = {"window": window, "class_token": True} if token else {"window": window}
                return {"relative_position_index_": args}
    return None


def _mask_init(tensor: torch.Tensor) -> dict[str, Any] | None:
    """``{shifted_window_mask_: {size, window, shift}}`` for Swin's (windows, h*w, h*w) mask of 0
    and one other number, trying each window and map of its size with half-window shifts."""
    if not tensor.is_floating_point() or tensor.dim() != 3 or tensor.shape[1] != tensor.shape[2]:
        return None
    values = tensor.unique()
    if len(values) != 2 or not bool((values == 0).any()):
        return None
    fill = _values(values[values != 0])[0]
    for h, w in _pairs(tensor.shape[1]):
        for rows, cols in _pairs(tensor.shape[0]):
            for shift in ([h // 2, w // 2], [0, w // 2], [h // 2, 0]):
                if shift == [0, 0]:
                    continue
                args: dict[str, Any] = {"size": [rows * h, cols * w], "window": [h, w], "shift": shift}
                table = shifted_window_mask_(torch.empty(tensor.shape), **args, fill=fill)
                if torch.equal(table.to(tensor.dtype), tensor):
                    return {"shifted_window_mask_": args if fill == -100 else {**args, "fill": fill}}
    return None


def _bias_index_init(tensor: torch.Tensor) -> dict[str, Any] | None:
    """``{attention_bias_index_: {resolution, stride}}`` for LeViT's (queries, keys) index, whose
    first row (the query at the corner) counts the keys 0, 1, ..."""
    if tensor.is_floating_point() or tensor.dim() != 2 or tensor.dtype == torch.bool:
        return None
    queries, keys = tensor.shape
    if not torch.equal(tensor[0].long(), torch.arange(keys)):
        return None
    for r0, r1 in _pairs(keys):
        for stride in (s for s in range(1, max(r0, r1) + 1) if -(-r0 // s) * -(-r1 // s) == queries):
            table = attention_bias_index_(torch.empty(queries, keys, dtype=torch.long), [r0, r1], stride)
            if torch.equal(table, tensor.long()):
                args: dict[str, Any] = (
                    {"resolution": [r0, r1], "stride": stride} if stride > 1 else {"resolution": [r0, r1]}
                )
                return {"attention_bias_index_": args}
    return None


def _log_coords_init(tensor: torch.Tensor) -> dict[str, Any] | None:
    """``{log_relative_coords_: {window: [h, w]}}`` for Swin V2's ((h*w)**2, 2) table."""
    area = round(tensor.shape[0] ** 0.5) if tensor.dim() == 2 else 0
    if not tensor.is_floating_point() or tensor.dim() != 2 or tensor.shape[1] != 2 or area**2 != tensor.shape[0]:
        return None
    for window in _pairs(area):
        table = log_relative_coords_(torch.empty(tensor.shape), window)
        if torch.equal(table.to(tensor.dtype), tensor):
            return {"log_relative_coords_": {"window": window}}
    return None


def _init(first: torch.Tensor) -> Any:
    """The init that fills a tensor with this one number, written with the digits that give it back."""
    number = _values(first.reshape(1))[0]  # float32's digits: 1e-06, not 9.999999974752427e-07
    return "zeros_" if number == 0 else "ones_" if number == 1 else {"constant_": {"val": number}}


def _values(flat: torch.Tensor) -> list[Any]:
    """The numbers as YAML writes them back exactly: float32 (and narrower) with its shortest digits."""
    if not flat.is_floating_point() or flat.dtype == torch.float64:
        return flat.tolist()  # Python's repr gives a float64 back exactly
    out = []
    for v in flat.float().tolist():
        for digits in (7, 8, 9):  # the fewest that give the float32 back
            short = float(f"{v:.{digits}g}")
            if numpy.float32(short) == numpy.float32(v):
                break
        out.append(short)
    return out


def _default_dtype(args: dict[str, Any]) -> str:
    """The dtype the Buffer node makes when none is written (buffers.py: torch's, float32 for a shape)."""
    if "value" not in args:
        return "float32"
    return str(torch.tensor(args["value"][:1]).dtype).removeprefix("torch.")


def holder_node(
    module: torch.nn.Module, head: str, graph_targets: list[str], path: str, where: str, notes: list
) -> SNode | None:
    """A child ``head`` whose tensors forward reads without calling it (BEiT's ``F.linear(x,
    self.qkv.weight, bias)``) -> a node ``head`` of a block with no inputs that holds the child's
    tensors as Parameter and Buffer nodes (their keys kept: ``qkv.weight``) and gives them all,
    in order, as its outputs. None where the child's state is not all its own (a grandchild's)."""
    from .ir import Body

    child = getattr(module, head, None)
    if not isinstance(child, torch.nn.Module) or not child.state_dict(keep_vars=True):
        return None
    if not all(k.isidentifier() for k in child.state_dict(keep_vars=True)):  # nn.ParameterList's `0`
        return None
    own = dict(child.named_parameters(recurse=False))
    kept = [k for k, b in child._buffers.items() if b is not None and k not in child._non_persistent_buffers_set]
    read = [t.split(".", 1)[1] for t in graph_targets if t.startswith(f"{head}.")]
    names = [*own, *kept, *(k for k in read if k in child._buffers and k not in kept)]
    if set(child.state_dict(keep_vars=True)) != set(own) | set(kept) or not set(read) <= set(names):
        return None
    nodes = [
        SNode(PARAM_OP, k, {"shape": list(own[k].shape), "init": init_of(own[k])})
        if k in own
        else buffer_node(k, child._buffers[k], k in kept, where, notes)  # type: ignore[arg-type]
        for k in names
    ]
    body = Body(child, path, [], nodes, names)
    return SNode(type(child).__name__, head, None, [], use=body, comment=class_path(child))


def init_of(value: torch.Tensor) -> Any:
    """A ``torch.nn.init`` rule that makes a tensor like this one (the weights are loaded after).

    >>> init_of(torch.zeros(3)), init_of(torch.ones(2, 2)), init_of(torch.full((2,), 0.5))
    ('zeros_', 'ones_', {'constant_': {'val': 0.5}})
    >>> init_of(torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 0.02)
    {'normal_': {'std': 0.02}}
    """
    flat = value.detach().flatten()
    if flat.numel() and bool((flat == flat[0]).all()):
        first = float(flat[0])
        first = float(f"{first:.7g}")  # float32's digits: 1e-06, not 9.999999974752427e-07
        return "zeros_" if first == 0 else "ones_" if first == 1 else {"constant_": {"val": first}}
    std = float(flat.float().std()) if flat.numel() > 1 else 1.0
    return {"normal_": {"std": float(f"{std:.1g}")}}
