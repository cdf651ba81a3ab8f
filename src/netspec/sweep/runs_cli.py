"""``netspec runs [FOLDER]`` (the table of runs) and ``netspec runs diff A B`` (two runs compared)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

RUNS_EXAMPLES = """\
examples:
  netspec runs                                   # every run under runs/
  netspec runs sweeps/clf --state finished --sort best --metric val_accuracy
  netspec runs runs --csv > runs.csv
  netspec runs diff runs/mlp/20260101-120000 runs/mlp/20260102-090000 --out diff.png

A run directory is a folder with spec.yaml and metrics.jsonl (sweep trials included). States:
finished, interrupted (Ctrl-C, or its process is gone: resume it with --resume), pruned (a sweep
stopped it), failed, running. `diff` prints the spec keys that differ and the metrics side by side,
and draws both runs' curves on one picture (default runs-diff.png; --force replaces it).
"""

COLUMNS = ("name", "when", "state", "epochs", "best", "spec")


def register_runs(subparsers: Any) -> None:
    """Add ``runs`` to an argparse sub-parser collection.

    >>> parser = argparse.ArgumentParser(prog="netspec")
    >>> register_runs(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["runs", "diff", "a", "b"]).words
    ['diff', 'a', 'b']
    """
    from ..cli_options import add_command

    p = add_command(
        subparsers,
        "runs",
        help="list the runs under a folder (filter, sort, --csv), or compare two: runs diff A B",
        description="Every run under FOLDER (default runs/) in one table; `runs diff A B` compares two runs.",
        epilog=RUNS_EXAMPLES,
    )
    p.add_argument("words", nargs="*", metavar="FOLDER | diff A B", help="a folder of runs, or `diff` and two runs")
    p.add_argument(
        "--state", choices=("finished", "interrupted", "pruned", "failed", "running"), help="only runs in this state"
    )
    p.add_argument("--name", metavar="GLOB", help="only runs whose name matches (runs/*/2026*, or a part of it)")
    p.add_argument("--sort", choices=COLUMNS, default="when", help="sort by this column (best: the best first)")
    p.add_argument(
        "--metric", metavar="NAME", help="the best of this metric (val_accuracy); default: the run's monitor"
    )
    p.add_argument("--csv", action="store_true", help="print the table as CSV")
    p.add_argument("--out", metavar="PNG", help="diff: the picture of both runs' curves (default runs-diff.png)")
    p.add_argument("--force", action="store_true", help="diff: replace an existing picture")
    p.set_defaults(func=runs_command)


def runs_command(args: argparse.Namespace) -> int:
    from ..errors import UsageError

    words = list(args.words)
    if words and words[0] == "diff":
        if len(words) != 3:
            raise UsageError("`runs diff` compares two run directories", path=("runs",), hint="netspec runs diff A B")
        return _diff(Path(words[1]), Path(words[2]), args)
    if len(words) > 1:
        raise UsageError(
            "`runs` takes one folder", path=("runs",), hint="netspec runs FOLDER, or netspec runs diff A B"
        )
    folder = Path(words[0] if words else "runs")
    if not folder.is_dir():
        raise UsageError(
            f"{folder} is not a folder", path=("runs",), hint="give the folder your runs are in (--out of run)"
        )
    from .results import csv_text, format_table
    from .runs import table

    rows = table(folder, state=args.state, name=args.name, sort=args.sort, metric=args.metric)
    shown = [{k: r[k] for k in COLUMNS} for r in rows]
    print(csv_text(shown) if args.csv else format_table(shown, skip=()), end="\n" if not args.csv else "")
    return 0


def _diff(a: Path, b: Path, args: argparse.Namespace) -> int:
    from ..files.outputs import output_path, write_file
    from .diff import diff_runs
    from .results import format_table

    target = output_path(args.out, option="--out", default="runs-diff.png", force=args.force)
    specs, metrics, png = diff_runs(a, b)
    print(f"A: {a}\nB: {b}\n")
    print("spec differences:" if specs else "the specs are the same")
    if specs:
        print(format_table([{"key": k, "A": _show(x), "B": _show(y)} for k, x, y in specs], skip=()))
    print()
    print(format_table([{"metric": k, "A": x, "B": y} for k, x, y in metrics], skip=()))
    write_file(target, png, option="--out")
    print(f"\ncurves: {target}", file=sys.stdout)
    return 0


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
