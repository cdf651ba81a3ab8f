"""``netspec sweep`` and ``netspec runs``: the sweep commands.

Handlers return 0, or 130 when Ctrl-C stopped a sweep (run the same command again to resume);
a NetspecError that escapes is one line with exit code 2 (cli.py prints it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import EXIT_INTERRUPTED

SWEEP_EXAMPLES = """\
examples:
  netspec sweep specs/mlp_sweep.yaml --jobs 2
  netspec sweep specs/mlp_sweep.yaml --trials 40 --out sweeps/wide      # more trials, another folder
  netspec sweep specs/mlp_sweep.yaml --storage postgresql://user@db/sweeps   # several machines, one study

The spec's `sweep:` section says what to search (docs/sweeps.md). The sweep folder (default
sweeps/<spec name>) holds study.db (the Optuna study), one run directory per trial under trials/,
trials.csv, best.yaml (the best trial's spec: `netspec run` takes it as it is) and history.png,
importances.png, parallel.png. Ctrl-C stops the running trials at the end of their step (they are
queued again); the same command resumes the sweep without repeating a finished trial.
Exit codes: 0 done, 2 spec error, 130 Ctrl-C.
"""


def register(subparsers: Any) -> None:
    """Add ``sweep`` and ``runs`` to an argparse sub-parser collection.

    >>> parser = argparse.ArgumentParser(prog="netspec")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["sweep", "x.yaml", "--jobs", "2", "--trials", "12"])
    >>> args.jobs, args.trials, args.func.__name__
    (2, 12, 'sweep_command')
    """
    from ..cli_options import add_command, add_spec_argument, add_spec_options

    p = add_command(
        subparsers,
        "sweep",
        help="search a spec's values (its sweep: section) with Optuna, trials in parallel, pruned",
        description="Run the search the `sweep:` section of SPEC declares; resume it when run again.",
        epilog=SWEEP_EXAMPLES,
    )
    add_spec_argument(p, "spec file with a sweep: section")
    add_spec_options(p, print_config=False, device=True, download=True)
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="trials run at once, each in its own process")
    p.add_argument("--trials", type=int, metavar="N", help="same as --set sweep.trials=N")
    p.add_argument("--out", metavar="DIR", help="the sweep's folder (default sweeps/<spec name>)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="an RDB URL (postgresql://..., mysql+pymysql://...) for a study several machines share "
        "(default: sqlite in the sweep folder)",
    )
    p.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: the spec's name)")
    p.set_defaults(func=sweep_command)
    from .runs_cli import register_runs

    register_runs(subparsers)


def sweep_command(args: argparse.Namespace) -> int:
    from ..api import load_spec
    from ..errors import SpecError
    from ..files.outputs import output_folder, safe_name
    from .results import format_table, trial_rows, write_results
    from .runner import locked, run_sweep
    from .study import import_optuna, storage_url
    from .trial import Setup

    overrides = _overrides(args)
    spec = load_spec(args.spec, overrides=overrides, allow_imports=args.allow_imports, data_roots=args.data_roots)
    if spec.sweep is None:
        raise SpecError(
            "the spec has no `sweep:` section", path=("sweep",), hint="add one: see docs/sweeps.md"
        ).with_location(_located(args.spec))
    if args.jobs < 1:
        raise SpecError("--jobs must be 1 or more", path=("--jobs",))
    import_optuna()  # the install line now, before anything is written
    folder = output_folder(args.out or Path("sweeps") / safe_name(spec.name), option="--out")
    setup = Setup(
        spec_path=args.spec,
        overrides=overrides,
        allow_imports=args.allow_imports,
        data_roots=tuple(str(r) for r in args.data_roots),
        folder=folder,
        storage=storage_url(folder, args.storage),
        study_name=args.study or spec.name,
        shared=args.storage is not None,
        jobs=args.jobs,
        allow_download=args.allow_download,
        trials=spec.sweep.total,
    )
    with locked(folder):
        study = run_sweep(setup, spec.sweep)
        rows = trial_rows(study, spec.sweep.metric)
        print(format_table(rows))
        written = write_results(setup, study, spec.sweep.metric)
    print(f"{folder}: {', '.join(written)}")
    if study.user_attrs.get("interrupted"):
        print(f"interrupted: finished trials are kept; resume with the same command ({folder})", file=sys.stderr)
        return EXIT_INTERRUPTED
    if "best.yaml" in written:
        print(
            f"best: trial {study.best_trial.number}, {spec.sweep.metric} {study.best_value:.6g}; rerun it with: netspec run {folder / 'best.yaml'}"
        )
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    from ..training.cli import _overrides as run_overrides

    overrides = run_overrides(args)
    if args.trials is not None:
        overrides.append(f"sweep.trials={args.trials}")
    return overrides


def _located(path: str) -> Any:
    from ..errors import Location

    return Location(path)
