"""Which files a spec may read: the file-access policy.

A spec names files: data (`data.train.path`, `root`) and weights (`init.weights`, a
torchvision node's `weights`). A spec can come from a stranger, so it may read only

* under its own folder (the spec file's folder; for a spec given as text or a dict, the
  working directory, or the ``base_dir`` given to ``train`` / ``evaluate``), and
* under the *data roots* the user names: ``--data-root DIR`` (repeatable) on the command
  line, ``load_spec(..., data_roots=[...])`` in Python, and the ``NETSPEC_DATA_ROOTS``
  environment variable (folders separated by ``os.pathsep``).

Symbolic links are resolved before the check, so ``data -> /etc`` or ``../../..`` lead
nowhere else. Files the *user* names on the command line (the spec itself, ``--checkpoint``,
``--resume``, ``--out``) are the user's choice and are not checked. Python callers who trust
their specs may allow everything with ``data_roots=["/"]``.

>>> import tempfile
>>> home = Path(tempfile.mkdtemp())
>>> FileAccess(home).resolve("data/x.csv") == home.resolve() / "data" / "x.csv"
True
>>> FileAccess(home).resolve("/etc/passwd")  # doctest: +ELLIPSIS
Traceback (most recent call last):
netspec.errors.AccessRefused: <spec>: `/etc/passwd` is outside the folders this spec may read (...); refused; ...
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import AccessRefused, SpecError

__all__ = [
    "ENV_VAR",
    "FileAccess",
    "env_roots",
    "check_roots",
    "not_regular",
    "inflation_limit",
    "MAX_INFLATION",
    "show_path",
]

ENV_VAR = "NETSPEC_DATA_ROOTS"
HINT = (
    f"put it under the spec's folder, or allow its folder with --data-root DIR (or the {ENV_VAR} environment variable)"
)


def env_roots() -> tuple[Path, ...]:
    """The folders ``NETSPEC_DATA_ROOTS`` names (empty entries ignored).

    >>> os.environ[ENV_VAR] = os.pathsep.join(["/data", "", "/scratch"]); env_roots()
    (PosixPath('/data'), PosixPath('/scratch'))
    >>> del os.environ[ENV_VAR]
    """
    return tuple(Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p)


def check_roots(roots: Iterable[str | os.PathLike], option: str = "--data-root") -> tuple[Path, ...]:
    """Data roots a user named, as absolute real paths; each must be an existing folder.

    >>> check_roots(["/no/such/folder"])
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: --data-root: /no/such/folder is not a folder
    """
    out = []
    for root in roots:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise SpecError(f"{path} is not a folder", path=(option,))
        out.append(path.resolve())
    return tuple(out)


def show_path(path: Path) -> str:
    """A path as the user will recognise it: relative to the working directory when inside it.

    >>> show_path(Path.cwd() / "data" / "x.csv") == str(Path("data") / "x.csv")
    True
    """
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _show_link(path: Path) -> str:
    """A link's own path (not its target), relative to the working directory when inside it."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass(frozen=True)
class FileAccess:
    """The folders a spec may read: its own (``base_dir``), the given roots and ``$NETSPEC_DATA_ROOTS``."""

    base_dir: Path
    roots: tuple[Path, ...] = ()

    def folders(self) -> tuple[Path, ...]:
        """Every allowed folder, symlinks resolved (the environment is read each time)."""
        return tuple(Path(os.path.realpath(p)) for p in (self.base_dir, *self.roots, *env_roots()))

    def resolve(self, name: str | os.PathLike) -> Path:
        """The real path of a file the spec names (relative to its folder); AccessRefused if it
        lies outside every allowed folder. Nothing is opened: whether it exists is not revealed."""
        given = Path(name).expanduser()
        return self.check(given if given.is_absolute() else Path(self.base_dir) / given, shown=str(name))

    def check(self, file: Path, shown: str | None = None) -> Path:
        """``file`` with its symlinks resolved, if that lies inside an allowed folder.

        Also for files found inside an allowed folder (the images of an image folder, the
        files of a data set's root), which may themselves be links that lead out.
        """
        real = Path(os.path.realpath(file))
        folders = self.folders()
        if not any(_inside(real, folder) for folder in folders):
            where = ", ".join(str(f) for f in dict.fromkeys(folders))
            shown = shown if shown is not None else _show_link(Path(file))
            via = f" (it resolves to {real})" if Path(shown).expanduser() != real else ""
            raise AccessRefused(
                f"`{shown}`{via} is outside the folders this spec may read ({where}); refused", hint=HINT
            )
        return real


# ---------------------------------------------------------------------------------------------
# What reading a file may cost
# ---------------------------------------------------------------------------------------------


def file_kind(file: Path) -> str | None:
    """None for a regular file, "missing", "unreadable (...)", or what ``file`` is instead (from
    ``stat``, never opened: opening a FIFO blocks).

    >>> file_kind(Path("/")), file_kind(Path("/dev/null")), file_kind(Path("/no/such.yaml"))
    ('a folder', 'a device', 'missing')
    """
    try:
        mode = os.stat(file).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    kinds = (
        (stat.S_ISREG, None),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (a named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    )
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def not_regular(file: Path) -> str | None:
    """Why ``file`` cannot be read as data (None: it is a regular file).

    A FIFO would block the read forever and ``/dev/zero`` never end it, so only regular
    files are opened.

    >>> not_regular(Path("/dev/null")), not_regular(Path("/no/such/file")), not_regular(Path("/"))
    ('is not a regular file (a device, FIFO or socket)', 'no such file', 'is a folder, not a file')
    """
    kind = file_kind(file)
    if kind is None:
        return None
    if kind == "a folder":
        return "is a folder, not a file"
    if kind == "missing":
        return "no such file"
    if kind.startswith("unreadable"):
        return "cannot be read" + kind.removeprefix("unreadable")
    return "is not a regular file (a device, FIFO or socket)"


MAX_INFLATION = 200  # decoded bytes per stored byte of a compressed file ...
MIN_INFLATED = 64 << 20  # ... but small files may always decode to this much


def inflation_limit(stored: int) -> int:
    """The most bytes a compressed file of ``stored`` bytes may decode to.

    Real data compresses a few times, rarely a hundred; a decompression bomb (a megabyte that
    inflates to gigabytes) a thousand. The bound is checked against what a header declares
    *before* anything is inflated or allocated, and decoding stops at the declared size.

    >>> inflation_limit(1 << 10) == MIN_INFLATED, inflation_limit(1 << 30) == 200 << 30
    (True, True)
    """
    return max(MIN_INFLATED, MAX_INFLATION * stored)
