"""Hardware and reproducibility: the one place that knows the device, the precision and the seeds.

>>> Hardware.pick("cpu", "fp32").device
device(type='cpu')
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import TrainingError

__all__ = ["Hardware", "set_seed", "deterministic", "rng_state", "set_rng_state"]

_AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}  # precision -> autocast dtype (fp32: none)
_NO_AUTOCAST = contextlib.nullcontext()  # reusable: entered once a step in fp32


@dataclass
class Hardware:
    """Device, mixed precision and the distributed rank: the one place that knows.

    ``rank`` and ``world_size`` are set when the run joins a process group
    (:mod:`netspec.training.distributed`); files are written only where ``is_main``.
    """

    device: torch.device
    precision: str = "fp32"
    rank: int = 0
    world_size: int = 1
    distributed: bool = False  # in a process group (torchrun), even of one process
    channels_last: bool = False  # image batches stored NHWC on the way to the device

    @classmethod
    def pick(cls, device: str, precision: str, channels_last: bool = False, local_rank: int | None = None) -> Hardware:
        """Resolve ``auto`` and check the device exists. In a data-parallel run (``local_rank``
        given) each process takes its own device: ``cuda`` is ``cuda:<local rank>``.

        >>> Hardware.pick("auto", "bf16").precision
        'bf16'
        >>> Hardware.pick("cpu", "fp32", local_rank=1).device
        device(type='cpu')
        """
        if local_rank is not None:
            return cls._pick_distributed(device, precision, channels_last, local_rank)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
        elif device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise TrainingError(
                    f"device `{device}` asked for, but CUDA is not available "
                    f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})",
                    path=("train", "device"),
                    hint="use `device: cpu` or `auto`, or `--device cpu`",
                )
            index = int(device.split(":")[1]) if ":" in device else 0
            if index >= torch.cuda.device_count():
                raise TrainingError(
                    f"device `{device}` asked for, but only {torch.cuda.device_count()} CUDA device(s) exist",
                    path=("train", "device"),
                )
        elif device == "mps" and not _mps_available():
            raise TrainingError("device `mps` asked for, but MPS is not available", path=("train", "device"))
        return cls(torch.device(device), precision, channels_last=channels_last)

    @classmethod
    def _pick_distributed(cls, device: str, precision: str, channels_last: bool, local_rank: int) -> Hardware:
        """One device per process: ``cuda:<local rank>`` (``auto`` with CUDA), else the CPU."""
        if device.startswith("cuda:") or device == "mps":
            hint = (
                "use `device: cuda` (each process takes cuda:<its local rank>), `auto` or `cpu`"
                if device != "mps"
                else "use `device: cpu`"
            )
            raise TrainingError(
                f"device `{device}` cannot be shared among the processes of a data-parallel run",
                path=("train", "device"),
                hint=hint,
            )
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        hw = cls.pick(device, precision, channels_last)  # checks CUDA is there
        if hw.device.type == "cuda":
            hw.device = torch.device("cuda", local_rank)
        return hw

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return _AMP_DTYPES.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward's autocast; in fp32 a shared no-op (called every step)."""
        dtype = _AMP_DTYPES.get(self.precision)
        if dtype is None:
            return _NO_AUTOCAST
        return torch.autocast(self.device.type, dtype=dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def batches(self, loader: Any, batches: Iterable[Any]) -> Iterator[Any]:
        """One epoch of ``loader``'s ``batches`` on this device, cut and copied ahead of the step
        where the loader allows it (:mod:`netspec.data.prefetch`).

        >>> hw = Hardware.pick("cpu", "fp32")
        >>> next(hw.batches(None, [({"x": torch.ones(1)}, torch.zeros(1))]))[1]
        tensor([0.])
        """
        from ..data.prefetch import device_batches

        ahead_safe = getattr(loader, "ahead_safe", None)  # netspec's loaders; others are never run ahead
        ahead = self.device.type != "cpu" and ahead_safe is not None and ahead_safe(self.device)
        return device_batches(iter(batches), self.device, ahead=ahead, channels_last=self.channels_last)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch on every device (seed 003's ``set_seed``).

    >>> set_seed(118); a = torch.rand(1); set_seed(118); bool(a == torch.rand(1))
    True
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms for the run's duration, restored afterwards."""
    if not enabled:
        yield
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_keys, py_gauss = random.getstate()
    return {
        # 625 Python ints pickle slowly; as one tensor a checkpoint takes a millisecond (made
        # through numpy: a third of torch.tensor's time on a tuple, every epoch)
        "python": (version, torch.from_numpy(np.array(py_keys, dtype=np.int64)), py_gauss),
        # numpy arrays are not allowed by torch.load(weights_only=True): store a tensor.
        "numpy": (name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
        # Only when this process uses CUDA: a CPU run on a machine with a GPU must not start CUDA
        # (seconds, and memory on the device) just to save generators it never drew from.
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, py_keys, py_gauss = state["python"]
    random.setstate((version, tuple(py_keys.tolist()), py_gauss))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():  # a checkpoint of a machine with more GPUs: those there are
        for index, device_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, index)
