"""Where a command may write a file: the output policy of every command that writes.

``export --out``, ``import -o``, ``predict --out``, ``compile --graph``, ``schema --write`` and
``run --out`` ask :func:`output_path` before anything is computed. It refuses, in one line
naming the option:

* a file the same command reads (the spec, the checkpoint, the imported source, predict's
  inputs): compared with ``os.path.samefile`` and resolved paths, so ``./x`` and a hard link
  are caught too; ``--force`` does not override this, since the input would be lost;
* a folder where a file is expected (and a file where a folder is expected), a symbolic link
  (never written through, never replaced), a FIFO or a device;
* an existing file, unless the user passed ``--force`` (or the command replaces by design:
  ``schema --write``, which regenerates the committed schemas);
* a *default* name (made from the spec's ``name``, which a stranger may write) that is not a
  plain file name, and a default path outside the working folder and the data roots.

A path the user typed is the user's choice of place (``--out /scratch/runs``), as
:mod:`netspec.files.access` treats ``--checkpoint``: only names that come from a spec are confined.

Files are then written with :func:`atomic_file`: a temp file in the same folder, renamed over
the target once complete, so a failure (or Ctrl-C) never leaves half a file or destroys the old one.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp()); spec = folder / "m.yaml"; _ = spec.write_text("name: m")
>>> output_path(spec, option="--out", reads={"the spec": spec})  # doctest: +ELLIPSIS
Traceback (most recent call last):
netspec.errors.OutputRefused: <spec>: --out: ... is the spec this command reads; writing it would destroy it; choose another file name
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..errors import OutputRefused
from .access import env_roots

__all__ = ["safe_name", "output_path", "output_folder", "atomic_file", "write_file", "FORCE_HINT"]

FORCE_HINT = "pass --force to replace it, or choose another name"

PathLike = str | os.PathLike


def safe_name(name: str, fallback: str = "run") -> str:
    """A spec's ``name`` as a plain file or folder name: no separators, no ``..``, no leading dot.

    ``run`` names its directory ``runs/<safe name>``; ``export`` its file ``<safe name>.onnx``.

    >>> safe_name("../../x"), safe_name("my net/v2"), safe_name(".hidden"), safe_name("..")
    ('__.._x', 'my_net_v2', '_hidden', '_')
    >>> safe_name("lenet"), safe_name("", "model")
    ('lenet', 'model')
    """
    cleaned = re.sub(r"[^\w.-]+", "_", name)
    cleaned = re.sub(r"^\.+", "_", cleaned)  # "..", ".x": never the parent, never hidden
    return cleaned or fallback


def _show(path: Path) -> str:
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _same(a: Path, b: Path) -> bool:
    """Whether two paths are the same file: one inode (hard links, bind mounts), or one real path."""
    with contextlib.suppress(OSError):
        if os.path.samefile(a, b):
            return True
    return os.path.realpath(a) == os.path.realpath(b)


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def _confine(path: Path, option: str, roots: tuple[PathLike, ...]) -> None:
    """A default name must land under the working folder or a data root (symlinks resolved)."""
    real = os.path.realpath(path)
    folders = [os.path.realpath(p) for p in (Path.cwd(), *roots, *env_roots())]
    if not any(_inside(real, f) for f in folders):
        raise OutputRefused(
            f"{_show(path)} (from the spec's name) is outside the working folder and the data roots",
            path=(option,),
            hint=f"name the file with {option} PATH",
        )


def _kind_problem(path: Path, folder: bool) -> str | None:
    """Why ``path`` cannot be written as a file (or as a folder); None when it can."""
    if os.path.islink(path):
        return "is a symbolic link; netspec never writes through one"
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a new file (a parent that is a file: see _parent_problem)
        return None
    if stat.S_ISDIR(mode):
        return None if folder else "is a folder"
    if folder:
        return "is a file, not a folder" if stat.S_ISREG(mode) else "is not a folder"
    return None if stat.S_ISREG(mode) else "is not a regular file (a device, FIFO or socket)"


def _parent_problem(path: Path) -> str | None:
    """The nearest existing folder above ``path`` must be a folder (it is created below it)."""
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists() and parent != parent.parent:
        if os.path.islink(parent):
            return f"{_show(parent)} is a broken symbolic link"
        parent = parent.parent
    return None if parent.is_dir() else f"{_show(parent)} is not a folder"


def _check_kind(path: Path, option: str, folder: bool) -> None:
    """OutputRefused when ``path`` is the wrong kind of thing, or cannot be made below its parent."""
    problem = _kind_problem(path, folder)
    message = f"{_show(path)} {problem}" if problem is not None else _parent_problem(path)
    if message is not None:
        raise OutputRefused(message, path=(option,), hint=f"give {option} a {'folder' if folder else 'file name'}")


def _check_reads(path: Path, option: str, reads: Mapping[str, PathLike | None]) -> None:
    for what, file in reads.items():
        if file is not None and _same(path, Path(file)):
            raise OutputRefused(
                f"{_show(path)} is {what} this command reads; writing it would destroy it",
                path=(option,),
                hint="choose another file name",
            )


def output_path(
    given: PathLike | None,
    *,
    option: str,
    default: str | None = None,
    reads: Mapping[str, PathLike | None] | None = None,
    force: bool = False,
    roots: tuple[PathLike, ...] = (),
) -> Path:
    """The file a command may write for ``option`` (``--out PATH``, or ``default`` in the working
    folder when it is not given); :class:`~netspec.errors.OutputRefused` (one line) otherwise.

    ``reads``: what the command reads, by description (``{"the checkpoint": ...}``); ``force``:
    an existing file may be replaced; ``roots``: the data roots (where a default may also lie).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); old = folder / "m.onnx"; _ = old.write_bytes(b"x")
    >>> output_path(old, option="--out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    netspec.errors.OutputRefused: <spec>: --out: ...m.onnx exists; pass --force to replace it, or choose another name
    >>> output_path(old, option="--out", force=True) == old
    True
    >>> output_path(None, option="--out", default="../../x.onnx").name
    '__.._x.onnx'
    """
    if given is None:
        assert default is not None, "a default name or a path"
        path = Path(safe_name(default))
        _confine(path, option, roots)
    else:
        path = Path(given).expanduser()
    _check_kind(path, option, folder=False)
    _check_reads(path, option, reads or {})
    if path.exists() and not force:
        raise OutputRefused(f"{_show(path)} exists", path=(option,), hint=FORCE_HINT)
    return path


def output_folder(given: PathLike, *, option: str) -> Path:
    """A folder a command writes files into (``predict --out DIR`` for masks, ``schema --write DIR``,
    ``run --out DIR``): a folder or a new path, never a file or a symbolic link. The files
    written inside are checked one by one with :func:`output_path`.

    >>> output_folder("/etc/hostname", option="--out")
    Traceback (most recent call last):
    netspec.errors.OutputRefused: <spec>: --out: /etc/hostname is a file, not a folder; give --out a folder
    """
    path = Path(given).expanduser()
    _check_kind(path, option, folder=True)
    return path


@contextlib.contextmanager
def atomic_file(path: PathLike, option: str = "--out") -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same folder, same suffix) to write; on success it is
    renamed over ``path`` (a link at ``path`` is replaced, never followed), on failure removed.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a" / "m.py"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_text("x = 1")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('x = 1', ['m.py'])
    """
    final = Path(path)
    tmp = final.with_name(f".{os.getpid()}.tmp.{final.name}")  # the suffix stays: exporters look at it
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
    except OSError as err:
        raise OutputRefused(f"cannot write {_show(final)}: {err.strerror or err}", path=(option,)) from None
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as err:
        raise OutputRefused(f"cannot write {_show(final)}: {err.strerror or err}", path=(option,)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_file(path: PathLike, data: str | bytes, option: str = "--out") -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, see :func:`atomic_file`.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "s.yaml"; write_file(f, "name: s\\n"); f.read_text()
    'name: s\\n'
    """
    with atomic_file(path, option) as tmp, open(tmp, "xb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
