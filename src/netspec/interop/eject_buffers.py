"""The buffers of an ejected file (``netspec export --format python``): a persistent one takes
the checkpoint's values; one that is not persistent is made as the spec makes it (an init that
draws nothing, netspec's table functions copied into the file), written as a literal, or, over
4,096 values, read from ``NAME_buffers.pt`` beside the file (``load_buffer``), which
``netspec export`` writes with it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import ExportError
from .eject_classes import Draft
from .pysource import BUFFERS_HELPER, comment, identifier, literal

__all__ = ["Found", "buffer_line", "buffers_file", "buffer_key", "MAX_WRITTEN_VALUES"]


MAX_WRITTEN_VALUES = 4096  # a buffer that is not in the state_dict is written into the file up to this size
#: torch.nn.init functions that draw nothing: a buffer they fill is remade by the same call
DETERMINISTIC_INITS = frozenset({"zeros_", "ones_", "constant_", "eye_", "dirac_"})


@dataclass
class Found:
    """What a module's buffers need beside their lines: netspec's table functions (copied into
    the file) and the tensors read from the file beside it, by key."""

    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)


def buffer_line(node: Any, value: Any, where: str, found: Found) -> str:
    """``self.register_buffer('pe', ...)``: a persistent buffer's values come from the checkpoint
    (as a parameter's do); one that is not persistent is made as the spec makes it (an init that
    draws nothing: ``torch.zeros``, netspec's table functions copied into the file), or written as
    a literal, or, over 4,096 values, read from the file beside the ejected one (``load_buffer``)."""
    args, name = node.args, node.name
    dtype = f"torch.{args['dtype']}"  # a name of netspec's dtype table, never spec text
    shape = ", ".join(str(int(s)) for s in args["shape"])
    if args["persistent"]:
        return f"self.register_buffer({name!r}, torch.zeros({shape}, dtype={dtype}))  " + comment(
            "its values: the checkpoint's"
        )
    made = _made_by_init(args, shape, dtype, found)
    if made is not None:
        return f"self.register_buffer({name!r}, {made}, persistent=False)"
    if value.numel() <= MAX_WRITTEN_VALUES and not value.is_meta:
        made = f"torch.tensor({literal(_shortest(value.cpu()), name)}, dtype={dtype})"
        return f"self.register_buffer({name!r}, {made}, persistent=False)"
    if value.is_meta:
        raise ExportError(f"buffer `{f'{where}.{name}'.lstrip('.')}` has no values (built on meta)")
    key = buffer_key(value)
    found.buffers[key] = value.detach().cpu()
    return f"self.register_buffer({name!r}, load_buffer({key!r}), persistent=False)  " + comment(
        f"{tuple(value.shape)} values, in no checkpoint"
    )


def _made_by_init(args: dict[str, Any], shape: str, dtype: str, found: Found) -> str | None:
    """The call that remakes a buffer from its init, where it draws nothing: ``torch.zeros(3, 4)``,
    ``relative_position_index_(torch.empty(49, 49, dtype=torch.int64), window=[7, 7])``; else None."""
    init = args["init"]
    if init is None:
        return None
    kwargs = "".join(f", {identifier(k, 'init argument')}={literal(v, init)}" for k, v in args["init_args"].items())
    if init in ("zeros_", "ones_") and not kwargs:
        return f"torch.{init[:-1]}({shape}, dtype={dtype})"
    if init in DETERMINISTIC_INITS:
        return f"nn.init.{init}(torch.empty({shape}, dtype={dtype}){kwargs})"
    from ..nodes import initializers

    table = getattr(initializers, init, None)
    if table is None or getattr(table, "__module__", "") != initializers.__name__:
        return None  # a random draw: its values are the module's (a literal or the file's)
    found.functions[init] = table
    return f"{init}(torch.empty({shape}, dtype={dtype}){kwargs})"


def buffer_key(value: torch.Tensor) -> str:
    """The key of a buffer in the file beside the ejected one: a digest of its dtype, shape and
    values, so equal buffers of many modules are one tensor and their modules one class.

    >>> import torch; buffer_key(torch.zeros(2, 3))
    'a86233b542cb'
    """
    data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(f"{value.dtype}{tuple(value.shape)}".encode() + data).hexdigest()[:12]


def _shortest(value: Any) -> Any:
    """A tensor's values as lists; float32 ones written as their shortest repr (0.229, not
    0.2290000021457672), which reads back to the same float32.

    >>> import torch; _shortest(torch.tensor([0.229, 1.0]))
    [0.229, 1.0]
    """
    values = value.tolist()
    if value.dtype != torch.float32:
        return values

    def short(v: Any) -> Any:
        return [short(x) for x in v] if isinstance(v, list) else float(str(np.float32(v)))

    return short(values)


def buffers_file(
    drafts: list[Draft],
    module_name: str,
    helper_imports: list[str],
    helpers: list[str],
    sidecar: dict[str, torch.Tensor] | None,
) -> tuple[list[str], list[str]]:
    """The helper reading the file beside the ejected one (and its imports); its tensors go into ``sidecar``."""
    tensors = {k: v for d in drafts for k, v in d.buffers.items()}
    if sidecar is None:
        where, value = next((d.where, v) for d in drafts for v in d.buffers.values())
        raise ExportError(
            f"a buffer of `{where or 'the model'}` is not persistent, so its {value.numel():,} values are in no "
            f"checkpoint, and too many to write into the file (at most {MAX_WRITTEN_VALUES:,})",
            hint="export it with `netspec export --format python` (it writes them beside the file), "
            "or make it persistent (`persistent: true`)",
        )
    sidecar.update(tensors)
    imports = sorted({*helper_imports, "import functools", "from pathlib import Path"})
    return imports, [*helpers, BUFFERS_HELPER.format(file=repr(f"{module_name}_buffers.pt"))]
