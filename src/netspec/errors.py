"""One exception hierarchy for every mistake a user can make and every failure they can meet.

Every user-facing error is a :class:`NetspecError`, in one of three families:

* :class:`SpecError`: a mistake in the spec, its options or the data and weights it names;
* :class:`TrainingError`: a run that cannot start or go on (a NaN loss, a lost peer, no CUDA);
* :class:`OutputError`: a file netspec will not or cannot write (:class:`OutputRefused`,
  :class:`WriteFailed`).

Each carries where it is (file, line, column, spec path or command-line option, node), the
likely fix when we can tell, and the exit code the CLI ends with (``exit_code``: 2, or 3 when
a run failed on the way). ``str(err)`` is the single line the CLI prints::

    specs/x.yaml:42:7: nodes.up3 (cat): inputs are 64x71x71 and 64x70x70; they must match outside dim 1

Internal invariants use ``assert``; anything a user can cause raises one of these.
"""

from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

# Exit codes of the CLI, documented in the README.
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2, as shells report it
EXIT_TERMINATED = 143  # SIGTERM (a scheduler stopping the job): 128 + 15
EXIT_TRAINING_FAILED = 3


@dataclass
class Location:
    """Where something is in a spec document: file, 1-based line and column."""

    file: str | None = None
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        parts = [self.file or "<spec>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


def format_path(path: Iterable[str | int]) -> str:
    """Render a spec path: ``("nodes", 3, "Conv2d")`` -> ``nodes[3].Conv2d``.

    >>> format_path(["model", "nodes", 3, "from"])
    'model.nodes[3].from'
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_E = TypeVar("_E", bound="NetspecError")


@dataclass
class NetspecError(Exception):
    """The base of every error netspec raises for its user: one line, located, with an exit code.

    Catch this to handle any of them; the CLIs print ``str(err)`` and exit with ``err.exit_code``.

    >>> err = TrainingError("CUDA is not available", path=("train", "device"))
    >>> isinstance(err, NetspecError), isinstance(err, SpecError), err.exit_code
    (True, False, 2)
    """

    message: str
    path: tuple[str | int, ...] = ()
    node: str | None = None
    hint: str | None = None
    location: Location = field(default_factory=Location)
    key: bool = False  # the mistake is a mapping key as written (a name), not its value: locate the key
    exit_code: ClassVar[int] = EXIT_USER_ERROR  # what the CLI exits with; 3 for a run that failed on the way

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def with_location(self: _E, location: Location) -> _E:
        """Fill in the location if none is set yet (innermost location wins)."""
        if self.location.line is None and self.location.file is None:
            self.location = location
        elif self.location.file is None:
            self.location.file = location.file
        return self

    def __str__(self) -> str:
        where = str(self.location)
        head = format_path(self.path)
        if self.node and self.node != head.rsplit(".", 1)[-1]:
            head = f"{head} ({self.node})" if head else f"({self.node})"
        text = f"{where}: {head}: {self.message}" if head else f"{where}: {self.message}"
        if self.hint:
            text += f"; {self.hint}"
        # One line, always: YAML and pydantic messages can contain newlines, and a spec's names
        # any character a terminal takes for a line end (\r, \u2028, ...): splitlines knows them all
        return " ".join(text.splitlines())


class SpecError(NetspecError):
    """A mistake in a spec or in the data, weights or options it names.

    >>> str(SpecError("unknown layer `Conv2`", path=("nodes", 0), hint="did you mean `Conv2d`?"))
    '<spec>: nodes[0]: unknown layer `Conv2`; did you mean `Conv2d`?'
    """


class SpecSyntaxError(SpecError):
    """The text is not valid YAML/JSON, or is refused as unsafe (alias bombs, depth)."""


class SpecValidationError(SpecError):
    """The document's structure is wrong: unknown key, wrong type, missing field."""


class GraphError(SpecError):
    """The network graph is wrong: dangling reference, cycle, duplicate name, unused input."""


class ShapeError(SpecError):
    """Shapes do not fit: a merge of mismatched tensors, a layer given the wrong input."""


class BuildError(SpecError):
    """A layer could not be constructed from its arguments."""


class ResourceError(SpecError):
    """The model or run would exceed a configured limit (parameters, memory)."""


class DataError(SpecError):
    """Data files are missing, truncated or corrupt, or do not match the model."""


class AccessRefused(SpecError):
    """A spec names a file outside the folders it may read (see :mod:`netspec.files.access`)."""


class UsageError(NetspecError):
    """A command's options or arguments are wrong where no spec is involved (``netspec runs``):
    the line names the command, not a spec file.

    >>> str(UsageError("`runs diff` compares two run directories", path=("runs",), hint="netspec runs diff A B"))
    'netspec runs: `runs diff` compares two run directories; netspec runs diff A B'
    """

    def __str__(self) -> str:
        head = f"netspec {format_path(self.path)}: " if self.path else ""
        text = head + self.message + (f"; {self.hint}" if self.hint else "")
        return " ".join(text.splitlines())


class OutputError(NetspecError):
    """A file netspec will not write (a refusal) or could not write (a failed write)."""


class OutputRefused(OutputError):
    """A command would write where it must not: over a file it reads, an existing file without
    ``--force``, a folder or a symbolic link (see :mod:`netspec.files.outputs`); or the write failed
    before anything was replaced.

    >>> OutputRefused("out.pt exists", path=("--out",)).exit_code
    2
    """


class CheckpointError(SpecError):
    """A checkpoint or weight file cannot be used with this spec."""


class TrainingError(NetspecError):
    """A run cannot start or go on: no CUDA, nothing to train, an unwritable run directory; the
    subclasses for a run that failed on the way (a NaN loss, a lost peer) exit with code 3.

    >>> TrainingError("nothing to train").exit_code, NonFiniteLoss("the loss is NaN").exit_code
    (2, 3)
    """


class NonFiniteLoss(TrainingError):
    """The loss, or the weights about to be checkpointed, became NaN or infinite (the CLI exits
    with code 3, not 2). The last good checkpoint is left as it was."""

    exit_code: ClassVar[int] = EXIT_TRAINING_FAILED


class WriteFailed(TrainingError, OutputError):
    """A file of the run could not be written (a full disk, a read-only or vanished directory).

    Raised at the failing write; the CLI prints the one-line message and exits with code 3. The
    last good checkpoint is left as it was, so the run continues with ``--resume`` once there is
    room. The message names the file and the checkpoint to resume from.

    >>> str(WriteFailed("cannot write runs/x/last.pt: No space left on device", path=("--out",)))
    'cannot write runs/x/last.pt: No space left on device'
    """

    exit_code: ClassVar[int] = EXIT_TRAINING_FAILED

    def __str__(self) -> str:  # the file is the location: no "<spec>:" prefix
        text = self.message + (f"; {self.hint}" if self.hint else "")
        return " ".join(text.splitlines())


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: a checkpoint was saved at ``checkpoint``; the CLI exits with code 130
    (SIGINT) or 143 (SIGTERM).

    >>> Interrupted("runs/x/last.pt", 15).exit_code
    143
    """

    def __init__(self, checkpoint: object, signum: int = signal.SIGINT) -> None:
        super().__init__(f"interrupted; checkpoint saved to {checkpoint}")
        self.checkpoint, self.signum = checkpoint, signum

    @property
    def exit_code(self) -> int:
        return EXIT_TERMINATED if self.signum == signal.SIGTERM else EXIT_INTERRUPTED


class Terminated(KeyboardInterrupt):
    """SIGTERM with no checkpoint to save (before training, or a second SIGTERM): exit 143 at once."""


def did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> str | None:
    """Return ``"did you mean `x`?"`` for the closest choice, or None when nothing is close.

    >>> did_you_mean("Conv2", ["Conv1d", "Conv2d", "Linear"])
    'did you mean `Conv2d`?'
    """
    pool = list(dict.fromkeys(choices))
    matches = difflib.get_close_matches(word, pool, n=n, cutoff=0.6)
    if not matches:
        lower = {c.lower(): c for c in pool}
        matches = difflib.get_close_matches(word.lower(), list(lower), n=n, cutoff=0.6)
        matches = [lower[m] for m in matches]
    if not matches:
        return None
    return "did you mean " + " or ".join(f"`{m}`" for m in matches) + "?"


# ------------------------------------------------------------------ pieces of messages


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (libraries' messages can run to pages).

    >>> first_line(ValueError("bad value\\nand a long story"))
    'bad value'
    """
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def summarise(names: list[str], limit: int = 6) -> str:
    """A list of names for a message, cut after ``limit``.

    >>> summarise(["a", "b", "c"], limit=2)
    'a, b, ... (+1)'
    """
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... (+{len(names) - limit})"


def fmt_args(args: dict[str, object]) -> str:
    """Keyword arguments as written in a call.

    >>> fmt_args({"lr": 0.1, "nesterov": True})
    'lr=0.1, nesterov=True'
    """
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def fmt_call(args: dict[str, object]) -> str:
    """``(lr=0.1)``, or nothing without arguments.

    >>> fmt_call({}), fmt_call({"lr": 0.1})
    ('', '(lr=0.1)')
    """
    return f"({fmt_args(args)})" if args else ""


def number_string_hint(args: dict[str, object]) -> str | None:
    """A hint when an argument is a quoted number (`lr: "1e-5"`), which torch would reject.

    >>> number_string_hint({"lr": "1e-5"})
    '`lr` is the string "1e-5"; remove the quotes to make it a number'
    """
    for key, value in args.items():
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                continue
            return f'`{key}` is the string "{value}"; remove the quotes to make it a number'
    return None
