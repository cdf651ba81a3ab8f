"""The speed switches of the ``train:`` section, in one place: torch.compile, channels-last
memory, fused optimizer kernels and cuDNN autotuning.

Defaults: on CUDA, fused optimizer steps and cuDNN autotuning are on (unless ``deterministic``);
compiling and channels-last are asked for. On the CPU nothing is on by default, so a CPU run is
the plain PyTorch loop bit for bit (the parity tests hold it to that). Torch already picks its
multi-tensor ("foreach") optimizer steps on CUDA when ``fused`` is not chosen.

>>> from netspec.training.options import TrainSpec
>>> from netspec.training.hardware import Hardware
>>> optimizer_defaults("Adam", {}, TrainSpec(), Hardware.pick("cpu", "fp32"))  # the CPU: nothing
{}
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator
from typing import Any, cast

import torch
from torch import nn

from .hardware import Hardware
from .options import TrainSpec

__all__ = ["optimizer_defaults", "prepare_model", "compile_module", "cudnn_autotuning", "COMPILE_BACKEND"]

logger = logging.getLogger(__name__)

#: torch.compile's backend; the tests use "eager" (graph capture without code generation: the
#: same math, so the parity tests can compare bit for bit)
COMPILE_BACKEND = "inductor"


def optimizer_defaults(name: str, args: dict[str, Any], tspec: TrainSpec, hw: Hardware) -> dict[str, Any]:
    """Arguments netspec adds to the optimizer: ``fused=True`` where ``fused_optimizer`` wants it,
    the optimizer has a ``fused`` argument and the spec's arguments say neither ``fused`` nor
    ``foreach``.

    >>> optimizer_defaults("SGD", {"lr": 0.1}, TrainSpec(fused_optimizer=True), Hardware.pick("cpu", "fp32"))
    {'fused': True}
    """
    from .optimizers import OPTIMIZERS

    choice = tspec.fused_optimizer
    wanted = choice is True or (choice == "auto" and hw.device.type == "cuda")
    if not wanted or "fused" in args or "foreach" in args:
        return {}
    try:
        params = inspect.signature(OPTIMIZERS[name]).parameters
    except (TypeError, ValueError):
        return {}
    return {"fused": True} if "fused" in params else {}


def prepare_model(model: nn.Module, tspec: TrainSpec, hw: Hardware) -> nn.Module | None:
    """Channels-last weights (in place: the optimizer's parameters stay the same objects), and
    the compiled module the training forward calls (None when not compiling). The compiled one
    wraps ``model``: state dicts, checkpoints and the returned model are the plain module's.

    >>> conv = nn.Conv2d(3, 4, 3)
    >>> prepare_model(conv, TrainSpec(channels_last=True), Hardware.pick("cpu", "fp32")) is None
    True
    >>> conv.weight.is_contiguous(memory_format=torch.channels_last)
    True
    """
    if tspec.channels_last:
        # 4-d weights only; others are left as they are (Any: torch 2.11's stubs lack this overload)
        cast(Any, model).to(memory_format=torch.channels_last)
        logger.info("channels_last: 4-d weights and image batches stored NHWC")
    if tspec.compile is False:
        return None
    logger.info(f"torch.compile: mode {_mode(tspec)} (the first steps compile; later shapes compile once each)")
    return compile_module(model, tspec)


def _mode(tspec: TrainSpec) -> str:
    return "default" if tspec.compile is True else str(tspec.compile)


def compile_module(module: nn.Module, tspec: TrainSpec) -> nn.Module:
    """``torch.compile(module)`` as ``train.compile`` asks (a DDP wrapper is compiled as a whole).

    Example::

        compile_module(nn.Linear(2, 2), TrainSpec(compile=True))  # OptimizedModule; compiles on first call
    """
    # an OptimizedModule (a Module) for a module, though torch's stub says a callable
    if COMPILE_BACKEND == "inductor":
        return cast(nn.Module, torch.compile(module, mode=_mode(tspec)))
    return cast(nn.Module, torch.compile(module, backend=COMPILE_BACKEND))


@contextlib.contextmanager
def cudnn_autotuning(tspec: TrainSpec, hw: Hardware) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark`` for the run's duration (as ``cudnn_benchmark`` says),
    restored afterwards.

    >>> with cudnn_autotuning(TrainSpec(cudnn_benchmark=True), Hardware.pick("cpu", "fp32")):
    ...     torch.backends.cudnn.benchmark
    True
    """
    choice, before = tspec.cudnn_benchmark, torch.backends.cudnn.benchmark
    if choice == "auto":  # `deterministic` has turned it off already
        choice = before or (hw.device.type == "cuda" and not tspec.deterministic)
    torch.backends.cudnn.benchmark = choice
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
