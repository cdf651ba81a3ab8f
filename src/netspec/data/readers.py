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
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import DataError
from ..files.access import MAX_INFLATION, inflation_limit, not_regular, show_path

if TYPE_CHECKING:  # numpy and torch are imported by the readers: the spec models do without them
    import numpy as np
    from torch import Tensor

__all__ = ["read_idx", "read_csv", "read_tensor_file", "show_path", "first_line", "csv_line"]

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "the IDX file format")
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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


def _too_big(path: Path, declared: int, what: str) -> DataError:
    stored = path.stat().st_size
    return DataError(
        f"{show_path(path)}: {what} {declared:,} bytes, over {MAX_INFLATION} times the file's "
        f"{stored:,} bytes; refused (a decompression bomb?)",
        hint="store the data uncompressed if it really is that big",
    )


def _open_idx(path: Path) -> Any:
    """The file as a binary stream, gunzipped on the fly when it ends in .gz."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _idx_header(f: Any, path: Path, expect_magic: int | None) -> tuple[np.dtype, tuple[int, ...]]:
    """Magic number and dimensions; the data has not been read yet."""
    import numpy as np

    head = f.read(4)
    if len(head) < 4:
        raise DataError(f"{show_path(path)}: file is {len(head)} bytes, too short for an IDX header")
    magic = struct.unpack(">I", head)[0]
    type_byte, ndim = head[2], head[3]
    if head[0] != 0 or head[1] != 0 or type_byte not in _IDX_TYPES or not 1 <= ndim <= 4:
        want = f" (expected {expect_magic})" if expect_magic else ""
        raise DataError(f"{show_path(path)}: not an IDX file: bad magic number {magic}{want}")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(
            f"{show_path(path)}: wrong magic number {magic}, expected {expect_magic} "
            "(images are 2051, labels 2049: are the files swapped?)"
        )
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{show_path(path)}: truncated IDX header")
    return np.dtype(_IDX_TYPES[type_byte]), struct.unpack(">" + "I" * ndim, dims)


def read_idx(path: Path, *, expect_magic: int | None = None) -> Tensor:
    """Read an IDX file (the MNIST format; gzipped if named .gz) into a tensor.

    Checks the magic number and that the data size matches the header, before the data is
    read (or, for a .gz file, inflated): a header that declares more than the file can hold is
    refused without allocating it.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "l"
    >>> _ = p.write_bytes(struct.pack(">IIBB", 2049, 2, 3, 7))
    >>> read_idx(p, expect_magic=2049).tolist()
    [3, 7]
    """
    import numpy as np
    import torch

    try:
        with _open_idx(path) as f:
            dtype, dims = _idx_header(f, path, expect_magic)
            expected = math.prod(dims) * dtype.itemsize
            header = 4 + 4 * len(dims)
            if path.suffix == ".gz" and expected > inflation_limit(path.stat().st_size):
                raise _too_big(path, expected, f"header says shape {list(dims)}:")
            if path.suffix != ".gz" and path.stat().st_size - header != expected:
                raise _short(path, dims, expected, path.stat().st_size - header)
            data = f.read(expected)
            if len(data) != expected or f.read(1):
                raise _short(path, dims, expected, len(data) if len(data) != expected else "more")
    except (gzip.BadGzipFile, EOFError, zlib.error):  # their messages quote bytes of the file
        raise DataError(f"cannot read {show_path(path)}: not gzip data, or cut short") from None
    except OSError as e:
        raise DataError(f"cannot read {show_path(path)}: {e.strerror or type(e).__name__}") from None
    arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    return torch.from_numpy(arr.astype(dtype.newbyteorder("="), copy=True))


def _short(path: Path, dims: tuple[int, ...], expected: int, found: int | str) -> DataError:
    return DataError(
        f"{show_path(path)}: header says shape {list(dims)} ({expected} data bytes) but the file has "
        f"{found}: truncated or corrupt"
    )


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
    """Find the first bad row of a CSV file (only on the error path: slow but exact).

    The message says where, never what the cell holds: a spec must not be able to read a
    file back through an error message.
    """
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
                    return f"line {line_no}, column {col} is not a number"
    return "cannot parse the file as numbers"


def csv_line(path: Path, skip: int, row: int) -> int:
    """The line number of data row ``row`` (0-based), counting rows as :func:`read_csv` does
    (after ``skip`` header lines; blank lines and ``#`` comments are not rows).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("a,b\\n1,2\\n\\n# note\\n3,4\\n")
    >>> csv_line(p, 1, 1)
    5
    """
    n = -1
    with path.open(encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if line_no > skip and line.split("#", 1)[0].strip():
                n += 1
                if n == row:
                    return line_no
    return 0


def read_csv(
    path: Path, *, delimiter: str = ",", header: bool | Literal["auto"] = "auto"
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

    if (why := not_regular(path)) is not None:
        raise DataError(f"{show_path(path)}: {why}")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            first = next(csv.reader(f, delimiter=delimiter), None)
    except UnicodeDecodeError as e:  # its message quotes the byte
        raise DataError(f"cannot read {show_path(path)}: not UTF-8 text (byte {e.start} of a line)") from None
    except OSError as e:
        raise DataError(f"cannot read {show_path(path)}: {e.strerror or type(e).__name__}") from None
    if first is None:
        raise DataError(f"{show_path(path)}: the file is empty")
    has_header = (not all(_is_number(c) for c in first)) if header == "auto" else bool(header)
    names = [c.strip() for c in first] if has_header else None
    skip = 1 if has_header else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below instead
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64, encoding="utf-8")
    except ValueError:
        raise DataError(f"{show_path(path)}: {_locate_csv_error(path, delimiter, skip)}") from None
    if arr.size == 0:
        raise DataError(f"{show_path(path)}: no data rows")
    return names, arr


# ---------------------------------------------------------------------------------------------
# Tensor files: .npz, .pt and .safetensors
# ---------------------------------------------------------------------------------------------


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from an ``.npy`` stream; nothing else is read."""
    import numpy as np

    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _read_npy_member(path: Path, zf: zipfile.ZipFile, name: str) -> Tensor:
    """One array of an ``.npz`` file, its header checked against the bytes it holds before the
    data is inflated or allocated; object arrays (pickles) are refused unread."""
    import numpy as np
    import torch

    info = zf.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > inflation_limit(info.compress_size):
        raise _too_big(path, info.file_size, f"array `{name}` inflates to")
    with zf.open(info) as f:
        shape, fortran, dtype = _npy_header(f)
        if dtype.hasobject or dtype.kind not in "biuf":
            raise DataError(f"{show_path(path)}: array `{name}` has dtype {dtype}; numbers only (never pickles)")
        expected = math.prod(shape) * dtype.itemsize
        held = info.file_size - f.tell()
        if expected != held:
            raise DataError(
                f"{show_path(path)}: array `{name}` says shape {list(shape)} ({expected:,} bytes) but "
                f"holds {held:,}: truncated or corrupt"
            )
        data = f.read(expected)
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return torch.from_numpy(np.ascontiguousarray(arr).astype(dtype.newbyteorder("="), copy=True))


def _read_npz(path: Path, arrays: list[str] | None) -> dict[str, Tensor]:
    """The wanted arrays of an ``.npz`` file (a zip of ``.npy`` files), never unpickling anything."""
    found: dict[str, Tensor] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            for name in arrays if arrays is not None else names:
                if name not in names:
                    raise DataError(f"{show_path(path)}: no array `{name}` (it has: {', '.join(names) or 'none'})")
                found[name] = _read_npy_member(path, zf, name)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as e:
        why = (
            "truncated or corrupt"
            if isinstance(e, (zipfile.BadZipFile, EOFError, zlib.error))
            else f"{type(e).__name__}"
        )
        raise DataError(f"{show_path(path)}: not a readable .npz file ({why})") from None
    return found


def _read_pt(path: Path, arrays: list[str] | None) -> dict[str, Tensor]:
    """The wanted tensors of a ``.pt`` file, loaded with ``weights_only``."""
    from torch import Tensor

    from ..files.torchfile import load_torch_file

    obj = load_torch_file(path, (), DataError, "tensor file")
    if isinstance(obj, Tensor):
        obj = {"0": obj}
    elif isinstance(obj, (list, tuple)):
        obj = {str(i): t for i, t in enumerate(obj)}
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise DataError(f"{show_path(path)}: expected a tensor, a list of tensors or a dict of tensors")
    return _picked(path, obj, arrays, list(obj))


def _picked(path: Path, tensors: dict[str, Tensor], arrays: list[str] | None, names: list[str]) -> dict[str, Tensor]:
    """The ``arrays`` of a file's ``tensors`` (default: all, in the order ``names``)."""
    found: dict[str, Tensor] = {}
    for name in arrays if arrays is not None else names:
        if name not in tensors:
            raise DataError(f"{show_path(path)}: no tensor `{name}` (it has: {', '.join(map(str, names)) or 'none'})")
        found[name] = tensors[name]
    return found


def _read_safetensors(path: Path, arrays: list[str] | None) -> dict[str, Tensor]:
    """The wanted tensors of a ``.safetensors`` file (tensors only, by construction)."""
    from ..files.safetensorfile import load_safetensors_file

    tensors = load_safetensors_file(path, (), DataError, "tensor file")
    return _picked(path, tensors, arrays, sorted(tensors))


_TENSOR_READERS = {".npz": _read_npz, ".safetensors": _read_safetensors}  # any other suffix: torch.load


def read_tensor_file(path: Path, arrays: list[str] | None) -> tuple[list[str], list[Tensor]]:
    """Read named arrays from ``.npz`` (no pickles), ``.safetensors`` or ``.pt`` (``weights_only``) files.

    A ``.pt`` file may hold a dict of tensors, a list/tuple of tensors (named ``"0"``, ``"1"``,
    ...) or one tensor. ``arrays`` picks and orders them; default: all, in file order (a
    ``.safetensors`` file's by name). Every array must have the same number of samples (first
    dimension).

    >>> import tempfile, torch
    >>> p = Path(tempfile.mkdtemp()) / "t.pt"
    >>> torch.save([torch.zeros(3, 2), torch.ones(3)], p)
    >>> names, tensors = read_tensor_file(p, None)
    >>> names, [tuple(t.shape) for t in tensors]
    (['0', '1'], [(3, 2), (3,)])
    """
    if (why := not_regular(path)) is not None:
        raise DataError(f"{show_path(path)}: {why}")
    found = _TENSOR_READERS.get(path.suffix.lower(), _read_pt)(path, arrays)
    if not found:
        raise DataError(f"{show_path(path)}: holds no arrays")
    lengths = {name: (t.shape[0] if t.dim() else 0) for name, t in found.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        desc = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        raise DataError(f"{show_path(path)}: arrays must have the same number of samples (first dimension): {desc}")
    return list(found), list(found.values())
