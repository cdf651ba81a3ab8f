"""File readers for the data sources: IDX (the MNIST format), numeric CSV, tensor files.

Each reader raises one one-line :class:`DataError` that names the file and says what is wrong
with it (which line, which array, which size), never a library's traceback. No torchvision.
"""

from __future__ import annotations

import csv
import gzip
import math
import struct
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import DataError

if TYPE_CHECKING:  # numpy and torch are imported by the readers: the spec models do without them
    import numpy as np
    from torch import Tensor

__all__ = ["read_idx", "read_csv", "read_tensor_file", "show_path", "first_line"]

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "the IDX file format")
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def show_path(path: Path) -> str:
    """A path as the user will recognise it: relative to the working directory when inside it.

    >>> show_path(Path.cwd() / "data" / "x.csv") == str(Path("data") / "x.csv")
    True
    """
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (messages from libraries can be long).

    >>> first_line(ValueError("bad value\\ndetails...")), first_line(KeyError())
    ('bad value', 'KeyError')
    """
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when it ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read {show_path(path)}: {first_line(e)}") from None


def read_idx(path: Path, *, expect_magic: int | None = None) -> Tensor:
    """Read an IDX file (the MNIST format; gzipped if named .gz) into a tensor.

    Checks the magic number and that the data size matches the header.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "l"
    >>> _ = p.write_bytes(struct.pack(">IIBB", 2049, 2, 3, 7))
    >>> read_idx(p, expect_magic=2049).tolist()
    [3, 7]
    """
    import numpy as np
    import torch

    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{show_path(path)}: file is {len(raw)} bytes, too short for an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    type_byte, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_byte not in _IDX_TYPES or not 1 <= ndim <= 4:
        want = f" (expected {expect_magic})" if expect_magic else ""
        raise DataError(f"{show_path(path)}: not an IDX file: bad magic number {magic}{want}")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{show_path(path)}: wrong magic number {magic}, expected {expect_magic} "
                        "(images are 2051, labels 2049: are the files swapped?)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{show_path(path)}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    dtype = np.dtype(_IDX_TYPES[type_byte])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{show_path(path)}: header says shape {list(dims)} ({expected} data bytes) but the file "
                        f"has {len(raw) - header}: truncated or corrupt")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(arr.astype(dtype.newbyteorder("="), copy=True))


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

def _is_number(text: str) -> bool:
    """Whether a CSV cell parses as a number."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def _locate_csv_error(path: Path, delimiter: str, skip: int) -> str:
    """Find the first bad row of a CSV file (only on the error path: slow but exact)."""
    width = None
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter=delimiter), start=1):
            if line_no <= skip or not row:
                continue
            if width is None:
                width = len(row)
            if len(row) != width:
                return f"line {line_no} has {len(row)} columns, expected {width}"
            for col, cell in enumerate(row, start=1):
                if not _is_number(cell):
                    return f"line {line_no}, column {col}: `{cell.strip()[:30]}` is not a number"
    return "cannot parse the file as numbers"


def read_csv(path: Path, *, delimiter: str = ",", header: bool | Literal["auto"] = "auto"
             ) -> tuple[list[str] | None, np.ndarray]:
    """Read a numeric CSV file: (column names or None, ``rows x columns`` float64 array).

    ``header="auto"`` treats the first line as column names when any cell is not a number.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("label,a\\n1,2\\n3,4\\n")
    >>> names, table = read_csv(p)
    >>> names, table.tolist()
    (['label', 'a'], [[1.0, 2.0], [3.0, 4.0]])
    """
    import numpy as np

    if not path.is_file():
        raise DataError(f"{show_path(path)}: no such file")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            first = next(csv.reader(f, delimiter=delimiter), None)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {show_path(path)}: {first_line(e)}") from None
    if first is None:
        raise DataError(f"{show_path(path)}: the file is empty")
    has_header = (not all(_is_number(c) for c in first)) if header == "auto" else bool(header)
    names = [c.strip() for c in first] if has_header else None
    skip = 1 if has_header else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below instead
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64,
                             encoding="utf-8")
    except ValueError:
        raise DataError(f"{show_path(path)}: {_locate_csv_error(path, delimiter, skip)}") from None
    if arr.size == 0:
        raise DataError(f"{show_path(path)}: no data rows")
    return names, arr


# ---------------------------------------------------------------------------------------------
# Tensor files: .npz and .pt
# ---------------------------------------------------------------------------------------------

def _read_npz(path: Path, arrays: list[str] | None) -> dict[str, Tensor]:
    """The wanted arrays of an ``.npz`` file, never unpickling anything."""
    import numpy as np
    import torch

    found: dict[str, Tensor] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in arrays if arrays is not None else list(npz.files):
                if name not in npz.files:
                    raise DataError(f"{show_path(path)}: no array `{name}` (it has: {', '.join(npz.files) or 'none'})")
                arr = npz[name]
                if arr.dtype.kind not in "biuf":
                    raise DataError(f"{show_path(path)}: array `{name}` has dtype {arr.dtype}; numbers only")
                found[name] = torch.from_numpy(np.ascontiguousarray(arr))
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{show_path(path)}: not a readable .npz file ({first_line(e)})") from None
    return found


def _read_pt(path: Path, arrays: list[str] | None) -> dict[str, Tensor]:
    """The wanted tensors of a ``.pt`` file, loaded with ``weights_only``."""
    import torch
    from torch import Tensor

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not usable"
        raise DataError(f"{show_path(path)}: not a readable tensor file ({first_line(e)})") from None
    if isinstance(obj, Tensor):
        obj = {"0": obj}
    elif isinstance(obj, (list, tuple)):
        obj = {str(i): t for i, t in enumerate(obj)}
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise DataError(f"{show_path(path)}: expected a tensor, a list of tensors or a dict of tensors")
    found: dict[str, Tensor] = {}
    for name in arrays if arrays is not None else list(obj):
        if name not in obj:
            raise DataError(f"{show_path(path)}: no tensor `{name}` (it has: {', '.join(map(str, obj)) or 'none'})")
        found[name] = obj[name]
    return found


def read_tensor_file(path: Path, arrays: list[str] | None) -> tuple[list[str], list[Tensor]]:
    """Read named arrays from ``.npz`` (no pickles) or ``.pt`` (``weights_only``) files.

    A ``.pt`` file may hold a dict of tensors, a list/tuple of tensors (named ``"0"``, ``"1"``,
    ...) or one tensor. ``arrays`` picks and orders them; default: all, in file order. Every
    array must have the same number of samples (first dimension).

    >>> import tempfile, torch
    >>> p = Path(tempfile.mkdtemp()) / "t.pt"
    >>> torch.save([torch.zeros(3, 2), torch.ones(3)], p)
    >>> names, tensors = read_tensor_file(p, None)
    >>> names, [tuple(t.shape) for t in tensors]
    (['0', '1'], [(3, 2), (3,)])
    """
    if not path.is_file():
        raise DataError(f"{show_path(path)}: no such file")
    found = _read_npz(path, arrays) if path.suffix == ".npz" else _read_pt(path, arrays)
    if not found:
        raise DataError(f"{show_path(path)}: holds no arrays")
    lengths = {name: (t.shape[0] if t.dim() else 0) for name, t in found.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        desc = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        raise DataError(f"{show_path(path)}: arrays must have the same number of samples (first dimension): {desc}")
    return list(found), list(found.values())
