"""Reading a torch file (weights, a checkpoint, a tensor file): tensors only, never code, bounded.
(``.safetensors`` files are handed to :mod:`netspec.files.safetensorfile`.)

Every ``.pt`` file netspec reads goes through :func:`load_torch_file`: only regular files, a
zip archive that does not declare more than it can hold (:func:`netspec.files.access.inflation_limit`),
and ``torch.load(weights_only=True)``, which refuses pickled Python objects. Whatever goes
wrong is one line in netspec's words: torch's own messages quote bytes of the file and advise
retrying with ``weights_only=False``, which for a file from elsewhere would run its code.
"""

from __future__ import annotations

import inspect
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, SpecError
from .access import inflation_limit, not_regular
from .safetensorfile import is_safetensors, load_safetensors_file

__all__ = ["load_torch_file", "pickled_global"]

# torch < 2.5: "Unsupported global: GLOBAL x.y"; 2.5+: "Trying to load unsupported GLOBAL x.y whose module x is blocked"
_GLOBAL = re.compile(r"unsupported\s+(?:global:\s+)?GLOBAL\s+([\w.]+)", re.I)


def pickled_global(message: str) -> str | None:
    """The Python name a refused pickle wanted to load, from torch's message (any version).

    >>> pickled_global("Weights only load failed. ... Trying to load unsupported GLOBAL posix.system whose module posix is blocked.")
    'posix.system'
    >>> pickled_global("Unsupported global: GLOBAL torch.nn.modules.linear.Linear was not an allowed global")
    'torch.nn.modules.linear.Linear'
    """
    found = _GLOBAL.search(message)
    return found.group(1) if found else None


def _is_module_class(dotted: str) -> bool:
    module_name, _, attr = dotted.rpartition(".")
    mod = sys.modules.get(module_name)
    cls = getattr(mod, attr, None) if mod else None
    return inspect.isclass(cls) and issubclass(cls, nn.Module)


def _refusal(file: Path, name: str, what: str) -> tuple[str, str]:
    """Message and hint for a file holding a pickled Python object (``name``: its class or function)."""
    if _is_module_class(name):
        return (
            f"{file} holds a whole pickled model ({name}); netspec loads tensors only, with "
            "torch.load(weights_only=True), because unpickling can run arbitrary code",
            "if you saved it yourself, re-save it as a state_dict where it was made: "
            "torch.save(model.state_dict(), path)",
        )
    keep = "its tensors (a dict of tensors)" if what == "tensor file" else "its weights as a state_dict"
    return (
        f"{file} holds a pickled Python object ({name}), not only tensors; refused: unpickling it could run "
        "arbitrary code",
        f"never unpickle a file from elsewhere; ask for {keep} instead",
    )


def _check_archive(file: Path, path: tuple, error: type[SpecError]) -> None:
    """A zip archive (torch's format) must not declare more bytes than it could inflate to."""
    if not zipfile.is_zipfile(file):
        return
    try:
        with zipfile.ZipFile(file) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load reports it
    if declared > inflation_limit(file.stat().st_size):
        raise error(
            f"{file} declares {declared:,} bytes in {file.stat().st_size:,}; refused (a decompression bomb?)", path=path
        )


def load_torch_file(
    file: Path, path: tuple = (), error: type[SpecError] = CheckpointError, what: str = "weights file"
) -> Any:
    """``torch.load(file, weights_only=True)`` on the CPU, every failure one ``error`` at ``path``.

    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "x.pt"
    >>> _ = bad.write_bytes(b"not a torch file")
    >>> load_torch_file(bad, ("init", "weights", "path"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    netspec.errors.CheckpointError: <spec>: init.weights.path: .../x.pt cannot be read (truncated or not a PyTorch file)

    A ``.safetensors`` file is read as one (:mod:`netspec.files.safetensorfile`): a dict of tensors.
    """
    if is_safetensors(file):
        return load_safetensors_file(file, path, error, what)
    why = not_regular(file)
    if why is not None:
        raise error(f"{what} {file} not found" if why == "no such file" else f"{what} {file} {why}", path=path)
    _check_archive(file, path, error)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Detected pickle protocol 4": a second line before ours
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        name = pickled_global(str(err))
        if name is not None:  # the weights-only unpickler refused a Python object
            message, hint = _refusal(file, name, what)
            raise error(message, path=path, hint=hint) from None
        raise error(f"{file} cannot be read (truncated or not a PyTorch file)", path=path) from None
    except Exception:  # torch.load fails in many ways on a damaged or forged file; all mean "unusable"
        raise error(f"{file} cannot be read (truncated or not a PyTorch file)", path=path) from None
