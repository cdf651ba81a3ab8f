"""The command-line options that the three command modules share (``cli.py``, ``training/cli.py``,
``interop/cli.py``): one home, so none of them imports another for a helper.

>>> import argparse
>>> p = argparse.ArgumentParser(); add_data_root(p); p.parse_args([]).data_roots
[]
"""

from __future__ import annotations

import argparse
from typing import Any


def add_spec_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that loads a spec: ``--set``, ``--allow-import``, ``--data-root``,
    ``--print-config``.

    >>> p = argparse.ArgumentParser(); add_spec_options(p); p.parse_args(["--set", "a=1"]).overrides
    ['a=1']
    """
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec parameter (n_classes=5) or any key by dotted path (train.epochs=3)",
    )
    p.add_argument(
        "--allow-import",
        dest="allow_imports",
        action="append",
        default=None,
        metavar="MODULE",
        help="allow the spec to import this Python module (custom layers); never implied",
    )
    add_data_root(p)
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
