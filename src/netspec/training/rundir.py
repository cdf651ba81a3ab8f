"""A run's directory and log: where every file of a run is written, and how.

Run directory (``runs/<spec name>/<timestamp>`` unless ``--out`` says otherwise)::

    spec.yaml  spec.sha256   the resolved spec and the sha256 of that file
    train.log                every log line of the run (the ``netspec`` loggers, rank 0)
    metrics.jsonl            one JSON line per epoch
    last.pt  best.pt         checkpoints (written atomically, :mod:`netspec.training.checkpoint`)
    curves.png               loss / metric curves
    tb/                      TensorBoard logs, when tensorboard is installed

Every write goes through :func:`writing`, which turns an OSError (a full disk, a vanished
directory) into one :class:`~netspec.errors.WriteFailed` line naming the file. A run writes only
inside its directory and never through a symbolic link there: files are opened with
``O_NOFOLLOW`` (temp files also ``O_EXCL``), and a directory holding a link is not resumed.
Checkpoints and each epoch's record (metrics.jsonl, TensorBoard) are written by one background
thread (:data:`BACKGROUND`) while training goes on, in the order the run made them; every other
write waits for them first, so files reach the disk in that order and a failed write is
reported before anything else is written.

>>> RunDir(Path("runs/x/20250101-120000")).best.name
'best.pt'
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..cli_options import ConsoleHandler, LineFormatter
from ..errors import TrainingError, WriteFailed, first_line
from ..files.outputs import safe_name

__all__ = [
    "RunLog",
    "RunLogging",
    "RunDir",
    "resume_dir",
    "writing",
    "write_text",
    "write_bytes",
    "nofollow",
    "read_own",
    "fresh_temp",
    "probe",
    "spec_hash",
    "resolved_spec",
    "Background",
    "BACKGROUND",
]


class Background:
    """The run's writes in one background thread, in the order they were handed over, each
    failure kept for the training thread. The thread is started once and waits for the next
    job: starting one per checkpoint costs a hand-over of the interpreter every epoch, which
    shows when epochs take milliseconds.

    :meth:`submit` (a checkpoint) first waits for the checkpoint before it, so at most one copy
    of the run's state waits in memory; :meth:`post` (an epoch's record) only queues. After a
    failed job the ones queued behind it are dropped (nothing reaches the disk after a failed
    write), and the failure is raised once, by the next :meth:`submit`, :meth:`post` or
    :meth:`wait` in the training thread.

    >>> done = []
    >>> b = Background(); b.post(lambda: done.append(1)); b.submit(lambda: done.append(2)); b.wait(); done
    [1, 2]
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], bool]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Event()  # set when every job handed over has run (or was dropped)
        self._idle.set()
        self._written = threading.Event()  # set when the last submitted job has run (or was dropped)
        self._written.set()
        self._pending = 0  # jobs handed over and not yet run or dropped
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` (a checkpoint) once the one submitted before it has finished."""
        if self._thread is not threading.current_thread():
            self._written.wait()
        self._put(job, heavy=True)

    def post(self, job: Callable[[], None]) -> None:
        """Queue ``job`` behind the writes in flight; never waits for them."""
        self._put(job, heavy=False)

    def _put(self, job: Callable[[], None], heavy: bool) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="netspec-writer", daemon=True)
            self._thread.start()
        with self._lock:
            self._pending += 1
            self._idle.clear()
            if heavy:
                self._written.clear()
        self._jobs.put((job, heavy))

    def _serve(self) -> None:
        while True:
            job, heavy = self._jobs.get()
            try:
                if self._error is None:  # after a failure, the queued writes are dropped
                    job()
            except BaseException as err:  # raised to the training thread by wait()
                self._error = err
            finally:
                with self._lock:
                    self._pending -= 1
                    if heavy:
                        self._written.set()
                    if not self._pending:
                        self._idle.set()

    def wait(self) -> None:
        """Block until every write handed over is done; raise a failure (once). A no-op in the
        writer thread itself."""
        if self._thread is threading.current_thread():
            return
        self._idle.wait()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None and self._thread is not threading.current_thread():
            self._idle.wait()  # the jobs queued behind the failed one are dropped first
            error, self._error = self._error, None
            raise error

    def forget(self) -> None:
        """In a forked child: the parent's thread is not there (and never ran a job here)."""
        self._reset()


#: the run's checkpoint writer (a process trains one run at a time)
BACKGROUND = Background()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=BACKGROUND.forget)


class RunLog(logging.Handler):
    """train.log: each line the ``netspec`` loggers emit, as the console shows it, appended
    through :func:`writing`, never through a link. A failed write raises WriteFailed where the
    line was logged: a run stops on a full disk (logging's usual swallowing would lose it)."""

    def __init__(self, file: Path) -> None:
        super().__init__()
        self.file = file
        self.setFormatter(LineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        with writing(self.file), open(self.file, "a", encoding="utf-8", opener=nofollow) as f:
            f.write(self.format(record) + "\n")


class _Held(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class RunLogging:
    """The ``netspec`` loggers during a run (a context manager; undone when the run ends).

    A run is set up, and every mistake found, before its directory exists: until
    :meth:`release`, the lines are held (a run that fails to start prints its one error line and
    nothing else), then said, to the caller's handlers and to train.log. A level left unset is
    INFO for the run, so train.log holds the epoch lines unless the caller chose a level;
    ``stream`` gets the lines as the command line prints them. The other ranks of a
    data-parallel run log nothing (rank 0 speaks for the run).

    >>> import io, tempfile
    >>> out = io.StringIO()
    >>> with RunLogging(main=True, stream=out) as logs:
    ...     logging.getLogger("netspec.training.loop").info("model: 2 parameters")
    ...     before = out.getvalue()
    ...     logs.release(Path(tempfile.mkdtemp()) / "train.log")
    ...     logs.say_held()
    >>> before, out.getvalue()
    ('', 'model: 2 parameters\\n')
    """

    def __init__(self, main: bool, stream: TextIO | None = None) -> None:
        self.logger, self.main, self.stream = logging.getLogger("netspec"), main, stream
        self.level = self.logger.level
        self.added: list[logging.Handler] = []
        self.held: _Held | None = None
        self.pending: list[logging.LogRecord] = []  # released, not yet said
        self.saved: tuple[list[logging.Handler], bool] = ([], True)

    def __enter__(self) -> RunLogging:
        if not self.main:
            self.logger.setLevel(logging.CRITICAL + 1)
            return self
        if self.level == logging.NOTSET:
            self.logger.setLevel(logging.INFO)
        if self.stream is not None:
            self._add(ConsoleHandler(self.stream))
        # hold: the setup's lines reach no handler (nor the root's) until the directory exists
        self.saved, self.held = (self.logger.handlers[:], self.logger.propagate), _Held()
        self.logger.handlers, self.logger.propagate = [self.held], False
        return self

    def release(self, file: Path) -> None:
        """The run directory exists: lines reach the handlers again, and train.log (``file``)
        from now on; the held ones wait for :meth:`say_held` (after the run's first line)."""
        self.pending = self._unhold()
        self._add(RunLog(file))

    def say_held(self) -> None:
        """The setup's lines, held until now, through every handler as if logged now."""
        records, self.pending = self.pending, []
        for record in records:
            logging.getLogger(record.name).handle(record)

    def _add(self, handler: logging.Handler) -> None:
        self.logger.addHandler(handler)
        self.added.append(handler)

    def _unhold(self) -> list[logging.LogRecord]:
        held, self.held = self.held, None
        if held is None:
            return []
        self.logger.handlers, self.logger.propagate = self.saved
        return held.records

    def __exit__(self, *exc: Any) -> None:
        self._unhold()  # a run that never started: its lines are dropped with it
        for handler in self.added:
            self.logger.removeHandler(handler)
        self.logger.setLevel(self.level)


class RunDir:
    """A run's directory: spec, log, metrics, checkpoints, plots."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved: tuple[int, int] | None = None  # (epoch, step) of the last.pt known to be good

    @classmethod
    def create(cls, out: str | Path | None, spec_name: str) -> RunDir:
        """A new directory under ``out`` (default ``runs/<spec name>``), never reused."""
        parent = Path(out) if out is not None else Path("runs") / safe_name(spec_name)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            for n in range(1, 10_000):
                path = parent / (stamp if n == 1 else f"{stamp}-{n}")
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    continue
            probe(path)
        except OSError as err:
            raise TrainingError(
                f"cannot write the run directory under {parent}: {err.strerror or err}",
                path=("--out",),
                hint="choose a writable place with --out DIR",
            ) from None
        return cls(path)

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def write_spec(self, resolved: dict[str, Any]) -> str:
        """Write spec.yaml and spec.sha256 (``sha256sum -c`` format); return the hash.

        Each file is written whole or not at all (temp file + rename), and a resumed run leaves
        an identical spec.yaml untouched, so a kill at any moment never leaves a partial spec.
        """
        text = spec_yaml(resolved)
        digest = hashlib.sha256(text.encode()).hexdigest()
        name = "spec.yaml"
        existing = self.path / name
        if existing.exists() and read_own(existing) != text:
            name = f"spec.{digest[:12]}.yaml"  # a resumed run with a changed spec keeps both
        write_text(self.path / name, text)
        write_text(self.path / name.replace(".yaml", ".sha256"), f"{digest}  {name}\n")
        return digest

    def append_metrics(self, record: dict[str, Any]) -> None:
        file = self.path / "metrics.jsonl"
        with writing(file), open(file, "a", encoding="utf-8", opener=nofollow) as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records; a line left incomplete by a crash or a full disk is dropped."""
        file = self.path / "metrics.jsonl"
        if not file.exists():
            return []
        records = []
        for line in read_own(file).splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("epoch"), int):
                    records.append(record)
        return records

    def keep_metrics_before(self, epoch: int) -> list[dict[str, Any]]:
        """Drop records of epochs after a checkpoint (they will be redone); return the rest."""
        kept = [r for r in self.read_metrics() if r["epoch"] <= epoch]
        write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept), force=True)
        return kept

    def remove_stale_temps(self) -> list[str]:
        """Delete temp files a killed process left (``.last.pt.<pid>.tmp``, ...); return their names.

        Only files of processes that are gone: a live writer's temp file is left alone.
        """
        removed = []
        for tmp in self.path.glob(".*.tmp"):
            found = re.fullmatch(r"\..+\.(\d+)\.tmp", tmp.name)
            if found and (int(found.group(1)) == os.getpid() or _pid_alive(int(found.group(1)))):
                continue
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp.name)
        return removed

    def kept(self) -> str:
        """Which checkpoint a failure leaves, for its message (once the write in flight is done)."""
        BACKGROUND.wait()
        if self.saved is not None:
            return f"the last good checkpoint is {self.last}; it holds epoch {self.saved[0]}, step {self.saved[1]}"
        if self.last.exists():
            return f"the last good checkpoint is {self.last}"
        return "no checkpoint was written yet"


def probe(directory: Path) -> None:
    """Raise OSError unless a file can be created in ``directory``."""
    test_file = fresh_temp(directory / ".write-test")
    with open(test_file, "xb", opener=nofollow):
        pass
    test_file.unlink()


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return False  # no cheap, harmless check (os.kill would terminate it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def nofollow(path: str, flags: int) -> int:
    """``open(..., opener=nofollow)``: a symbolic link at ``path`` fails (ELOOP, then WriteFailed)
    instead of being followed to a file outside the run directory.

    >>> import tempfile
    >>> link = Path(tempfile.mkdtemp()) / "train.log"
    >>> link.symlink_to("/etc/passwd")
    >>> try:
    ...     open(link, "a", opener=nofollow)
    ... except OSError as err:
    ...     err.errno == errno.ELOOP
    True
    """
    return os.open(path, flags | _NOFOLLOW, 0o644)


def read_own(file: Path) -> str:
    """A file of the run directory as text, never read through a symbolic link.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "spec.yaml"; _ = f.write_text("name: x\\n"); read_own(f)
    'name: x\\n'
    """
    with open(file, encoding="utf-8", opener=nofollow) as f:
        return f.read()


def fresh_temp(file: Path) -> Path:
    """The hidden temp file next to ``file`` this process writes before renaming it into place;
    one left by an earlier process of the same pid is removed (a link is removed, not followed).

    >>> fresh_temp(Path("runs/x/last.pt")).name == f".last.pt.{os.getpid()}.tmp"
    True
    """
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    return tmp


@contextlib.contextmanager
def writing(file: Path) -> Iterator[None]:
    """Turn an OSError while writing ``file`` into a one-line WriteFailed naming it. The
    checkpoint being written in the background is finished first (its error raised first)."""
    BACKGROUND.wait()
    try:
        yield
    except OSError as err:
        why = (
            "it is a symbolic link, and a run never writes through one"
            if err.errno == errno.ELOOP
            else err.strerror or first_line(err)
        )
        raise WriteFailed(f"cannot write {file}: {why}", path=("--out",)) from None


def write_text(file: Path, text: str, force: bool = False) -> None:
    """Replace ``file`` by ``text`` atomically (temp file + rename); skip it if already equal."""
    with writing(file):
        if not force and file.exists() and read_own(file) == text:
            return
    write_bytes(file, text.encode("utf-8"))


def write_bytes(file: Path, data: bytes) -> None:
    """Replace ``file`` by ``data`` atomically: a new temp file (``O_EXCL``, never through a
    link), then a rename, which replaces a link at ``file`` itself, never its target.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "curves.png"; write_bytes(f, b"png"); f.read_bytes()
    b'png'
    """
    with writing(file):
        tmp = fresh_temp(file)
        try:
            with open(tmp, "xb", opener=nofollow) as f:
                f.write(data)
            os.replace(tmp, file)
        finally:
            if tmp.exists():
                tmp.unlink()


def spec_yaml(resolved: dict[str, Any]) -> str:
    return yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)


def spec_hash(spec: Any) -> str:
    """sha256 of the resolved spec's YAML, as written to spec.yaml."""
    return hashlib.sha256(spec_yaml(resolved_spec(spec)).encode()).hexdigest()


def resolved_spec(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def _refuse_links(directory: Path) -> None:
    """A run writes only inside its directory: one holding a symbolic link (train.log pointing
    at a file elsewhere, say) is not continued."""
    with os.scandir(directory) as entries:
        links = sorted(e.name for e in entries if e.is_symlink())
    if links:
        raise TrainingError(
            f"{directory / links[0]} is a symbolic link; a run writes only inside its own directory, "
            "never through a link",
            path=("--resume",),
            hint="remove the link, or continue in a new directory with --out DIR",
        )


def resume_dir(ckpt: dict[str, Any], out: str | Path | None) -> RunDir:
    """Where a resumed run goes on: the checkpoint's run directory, unless it is elsewhere or
    ``--out`` is given (then a new directory)."""
    directory = Path(ckpt["path"]).parent
    if out is not None or not (directory / "spec.yaml").exists():
        return RunDir.create(out if out is not None else directory, "resumed")
    try:
        probe(directory)
    except OSError as err:
        raise TrainingError(
            f"cannot write the run directory {directory}: {err.strerror or err}",
            path=("--resume",),
            hint="make it writable, or continue in a new directory with --out DIR",
        ) from None
    _refuse_links(directory)
    run = RunDir(directory)
    run.remove_stale_temps()  # left by a process killed while writing
    if Path(ckpt["path"]).resolve() == run.last.resolve():
        run.saved = (ckpt["epoch"], ckpt["step"])
    return run
