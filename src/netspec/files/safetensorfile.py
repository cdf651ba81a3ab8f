"""Reading and writing ``.safetensors`` weights files: tensors only, by construction.

safetensors is the exchange format of timm and Hugging Face: a JSON header (names, dtypes,
shapes, byte offsets, a ``__metadata__`` map of strings) and the raw bytes of each tensor. It
holds no code, so reading one needs no unpickler; the library checks that every offset lies
inside the file, so a truncated or forged file fails before any tensor is made. What is left
to netspec is what every weights file gets (:mod:`netspec.files.torchfile`): regular files only,
and one line in netspec's words on any failure.

Tied weights (two names, one storage: a decoder sharing its embedding) are written once per
name, each a copy: safetensors refuses shared storage, and a file whose every key is present
loads anywhere, strictly, without knowing which names were tied.

>>> import tempfile, torch
>>> file = Path(tempfile.mkdtemp()) / "w.safetensors"
>>> save_safetensors({"w": torch.ones(2)}, file, {"netspec": "1"})
>>> load_safetensors_file(file)["w"].tolist(), safetensors_metadata(file)
([1.0, 1.0], {'netspec': '1'})
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ..errors import CheckpointError, SpecError
from .access import not_regular

__all__ = ["SUFFIX", "is_safetensors", "load_safetensors_file", "safetensors_metadata", "save_safetensors"]

SUFFIX = ".safetensors"


def is_safetensors(file: str | Path) -> bool:
    """Whether a weights file is read as safetensors (by its suffix, as timm and Hugging Face do).

    >>> is_safetensors("model.safetensors"), is_safetensors("best.pt")
    (True, False)
    """
    return Path(file).suffix.lower() == SUFFIX


def _checked(file: Path, path: tuple, error: type[SpecError], what: str) -> None:
    why = not_regular(file)
    if why is not None:
        raise error(f"{what} {file} not found" if why == "no such file" else f"{what} {file} {why}", path=path)


def load_safetensors_file(
    file: Path, path: tuple = (), error: type[SpecError] = CheckpointError, what: str = "weights file"
) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file on the CPU, every failure one ``error`` at ``path``.

    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "x.safetensors"
    >>> _ = bad.write_bytes(b"not safetensors")
    >>> load_safetensors_file(bad, ("init", "weights", "path"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    netspec.errors.CheckpointError: <spec>: init.weights.path: .../x.safetensors cannot be read (truncated or not a safetensors file: ...)
    """
    from safetensors.torch import load_file

    _checked(file, path, error, what)
    try:
        return load_file(file, device="cpu")
    except Exception as e:  # SafetensorError (header, offsets), OSError, an unknown dtype: all "unusable"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise error(f"{file} cannot be read (truncated or not a safetensors file: {reason})", path=path) from None


def safetensors_metadata(file: Path) -> dict[str, str]:
    """The ``__metadata__`` strings of a ``.safetensors`` file (netspec writes its version, the
    spec's name and hash there)."""
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        return dict(f.metadata() or {})


def save_safetensors(state: dict[str, Tensor], file: Path, metadata: dict[str, str]) -> None:
    """Write ``state`` to ``file`` (the output policy's temp file: the caller moves it into place).

    Tensors are written contiguous and on the CPU; a tensor whose storage another key already
    uses (tied weights) is written as its own copy.
    """
    from safetensors.torch import save_file

    seen: set[tuple[int, int]] = set()
    flat: dict[str, Tensor] = {}
    for key, value in state.items():
        value = value.detach().cpu()
        ident = (value.untyped_storage().data_ptr(), value.untyped_storage().nbytes())
        shared = ident in seen and value.numel() > 0
        seen.add(ident)
        flat[key] = value.clone() if shared else value.contiguous()
    save_file(flat, str(file), metadata=metadata)
