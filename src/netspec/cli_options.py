"""The command-line options that the three command modules share (``cli.py``, ``training/cli.py``,
``interop/cli.py``), and how a log line reads on the console: one home, so none of them imports
another for a helper.

>>> import argparse
>>> p = argparse.ArgumentParser(); add_data_root(p); p.parse_args([]).data_roots
[]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO


def add_command(subparsers: Any, name: str, *, help: str, epilog: str, description: str | None = None) -> Any:
    r"""A sub-command whose ``--help`` keeps its examples' lines (``epilog``) as written.

    >>> sub = argparse.ArgumentParser(prog="netspec").add_subparsers()
    >>> p = add_command(sub, "run", help="train", epilog="example:\n  netspec run s.yaml")
    >>> p.prog, p.formatter_class is argparse.RawDescriptionHelpFormatter
    ('netspec run', True)
    """
    return subparsers.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_spec_argument(p: argparse.ArgumentParser, help: str = "spec file (YAML or JSON)") -> None:
    """The ``SPEC`` positional argument of a command that reads one spec."""
    p.add_argument("spec", metavar="SPEC", help=help)


def add_spec_options(
    p: argparse.ArgumentParser, *, print_config: bool = True, device: bool = False, download: bool = False
) -> None:
    """The options of every command that loads a spec: ``--set``, ``--allow-import``, ``--data-root``,
    and where the command has them, ``--print-config``, ``--device`` and ``--allow-download``.

    >>> p = argparse.ArgumentParser(); add_spec_options(p, device=True)
    >>> args = p.parse_args(["--set", "a=1", "--device", "cpu"]); args.overrides, args.device
    (['a=1'], 'cpu')
    """
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec parameter (n_classes=5) or any key by dotted path (train.precision=bf16); "
        "repeatable; values are YAML",
    )
    p.add_argument(
        "--allow-import",
        dest="allow_imports",
        action="append",
        default=None,
        metavar="MODULE",
        help="allow the spec to import this Python module (custom layers); never implied",
    )
    if device:
        p.add_argument("--device", metavar="D", help="same as --set train.device=D (auto, cpu, cuda, cuda:N, mps)")
    add_data_root(p)
    if download:
        p.add_argument("--allow-download", action="store_true", help="let data sources download missing data sets")
    if print_config:
        add_print_config(p)


def add_data_root(p: argparse.ArgumentParser) -> None:
    """``--data-root DIR`` (repeatable): a folder the spec may read besides its own.

    >>> p = argparse.ArgumentParser(); add_data_root(p); p.parse_args(["--data-root", "a", "--data-root", "b"]).data_roots
    ['a', 'b']
    """
    p.add_argument(
        "--data-root",
        dest="data_roots",
        action="append",
        default=[],
        metavar="DIR",
        help="let the spec read files (data, weights) under DIR too; by default it reads only under "
        "its own folder and $NETSPEC_DATA_ROOTS (repeatable)",
    )


def add_print_config(p: argparse.ArgumentParser) -> None:
    """``--print-config`` on a command that loads a spec (compile, validate, run)."""
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved spec (bases merged, --set applied, defaults filled in) and exit",
    )


def print_config(spec: Any, path: str) -> int:
    r"""What ``--print-config`` does once the spec is loaded: print it resolved; exit code 0.

    >>> from netspec.api import load_spec
    >>> print_config(load_spec("s.yaml", text="name: s\ninputs: {x: [4]}\nnodes: [Linear: 2]\n"), "s.yaml")
    ... # doctest: +ELLIPSIS
    # s.yaml: resolved (bases merged, --set applied, defaults filled in)
    netspec: 1
    name: s
    ...
    0
    """
    from .views.print_config import resolved_config

    print(resolved_config(spec, path), end="")
    return 0


class LineFormatter(logging.Formatter):
    """A log record as the console and train.log show it: the message, with ``warning:`` before
    a warning (or worse).

    >>> r = logging.LogRecord("netspec", logging.WARNING, __file__, 1, "curves.png not written", None, None)
    >>> LineFormatter().format(r)
    'warning: curves.png not written'
    """

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


class ConsoleHandler(logging.StreamHandler):
    """Log lines on a stream, written around a tqdm progress bar (cleared, the line written, the
    bar drawn again) so the bar stays one line at the bottom instead of being broken in two.

    >>> import io
    >>> out = io.StringIO(); h = ConsoleHandler(out)
    >>> h.emit(logging.LogRecord("netspec", logging.INFO, __file__, 1, "epoch 1/2", None, None)); out.getvalue()
    'epoch 1/2\\n'
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stdout)
        self.setFormatter(LineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            tqdm = sys.modules.get("tqdm")  # a bar can be on screen only if tqdm was imported
            if tqdm is not None:
                tqdm.tqdm.write(line, file=self.stream)
            else:
                self.stream.write(line + "\n")
            self.flush()
        except RecursionError:  # as logging.StreamHandler does
            raise
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def console_logging(stream: TextIO | None = None) -> Iterator[ConsoleHandler]:
    """What ``netspec run`` shows while it runs: the ``netspec`` loggers' INFO lines (and warnings) on
    stdout, for the command's duration (under torchrun, :func:`netspec.train` keeps the other
    ranks quiet). What a command prints as its product (tables, JSON) is no log line.

    >>> import io
    >>> out = io.StringIO()
    >>> with console_logging(out):
    ...     logging.getLogger("netspec.training").info("epoch 1/2")
    >>> out.getvalue()
    'epoch 1/2\\n'
    """
    logger = logging.getLogger("netspec")
    handler = ConsoleHandler(stream)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
