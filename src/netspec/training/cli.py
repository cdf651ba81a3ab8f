"""``netspec run`` and ``netspec eval``: the training commands.

The main CLI (cli.py) calls :func:`register` with its sub-parser collection and, after
parsing, ``return args.func(args)``; a NetspecError that escapes is printed as one line
with exit code 2. These handlers return 0, 3 (the loss or the weights became NaN/inf, or a
file of the run could not be written: a full disk), 130 (Ctrl-C) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_TRAINING_FAILED, Terminated

RUN_EXAMPLES = """\
examples:
  netspec run specs/fashion_cnn.yaml --data-root data
  netspec run specs/fashion_cnn.yaml --data-root data --epochs 2 --device cpu --set optimizer.args.lr=3e-4
  netspec run specs/unet.yaml --set train.precision=bf16 --out /scratch/runs
  netspec run specs/fashion_cnn.yaml --data-root data --resume runs/fashion_cnn/20250101-120000/last.pt
  netspec run specs/regression.yaml --nproc 2        # data-parallel, 2 processes (torchrun); see docs/distributed.md

A spec reads files only under its own folder and the --data-root folders (and those of
$NETSPEC_DATA_ROOTS); the shipped specs keep their data in data/, beside specs/.

Each run gets a new directory (default runs/<spec name>/<timestamp>) holding the resolved
spec and its sha256, train.log, metrics.jsonl, last.pt / best.pt and curves.png.
Ctrl-C saves last.pt and exits with code 130, SIGTERM (a scheduler stopping the job) the same
with code 143 (twice: quit at once); resume continues exactly where the run stopped. Exit
codes: 0 done, 2 spec error (also an unwritable --out, found before training), 3 NaN/inf loss
or a failed write (disk full; last.pt is kept), 130 Ctrl-C, 143 SIGTERM. With --nproc N, data.batch_size
is the global batch, and a failed process stops the others: its rank and cause are one line, and
its exit code (128 + the signal that killed it) is the run's.
"""

EVAL_EXAMPLES = """\
examples:
  netspec eval specs/fashion_cnn.yaml --data-root data --checkpoint runs/fashion_cnn/20250101-120000/best.pt
  netspec eval specs/fashion_cnn.yaml --data-root data --checkpoint best.pt --split test --json

The checkpoint may be a netspec last.pt/best.pt or a plain state_dict file; it is read with
torch.load(weights_only=True), so whole pickled models are refused.
"""


def register(subparsers: Any) -> None:
    """Add ``run`` and ``eval`` to an argparse sub-parser collection.

    >>> parser = argparse.ArgumentParser(prog="netspec")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["run", "x.yaml", "--epochs", "2", "--set", "train.seed=1"])
    >>> args.epochs, args.overrides, args.func.__name__
    (2, ['train.seed=1'], 'run_command')
    """
    from ..cli_options import add_command, add_spec_argument, add_spec_options

    run = add_command(
        subparsers,
        "run",
        help="train the model a spec describes",
        description="Train the model of SPEC with its data, loss, optimizer, scheduler, init and train sections.",
        epilog=RUN_EXAMPLES,
    )
    add_spec_argument(run)
    add_spec_options(run, device=True, download=True)
    run.add_argument("--epochs", type=int, metavar="N", help="same as --set train.epochs=N")
    run.add_argument("--resume", metavar="PATH", help="checkpoint (last.pt) or run directory to continue")
    run.add_argument("--out", metavar="DIR", help="parent of the new run directory (default runs/<spec name>)")
    run.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="data-parallel training in N processes on this machine (torchrun --nproc-per-node N); "
        "data.batch_size is the global batch",
    )
    run.set_defaults(func=run_command)

    ev = add_command(
        subparsers,
        "eval",
        help="evaluate a checkpoint on the val or test split",
        description="Compute the loss and train.metrics of SPEC's model with weights from a checkpoint.",
        epilog=EVAL_EXAMPLES,
    )
    add_spec_argument(ev)
    ev.add_argument("--checkpoint", required=True, metavar="C", help="last.pt / best.pt or a state_dict file")
    ev.add_argument("--split", choices=("val", "test"), default="val", help="which split (default: val)")
    ev.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    add_spec_options(ev, print_config=False, device=True, download=True)
    ev.set_defaults(func=eval_command)


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    if getattr(args, "epochs", None) is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    return overrides


def _load(args: argparse.Namespace) -> Any:
    import netspec

    return netspec.load_spec(
        args.spec, overrides=_overrides(args), allow_imports=args.allow_imports, data_roots=args.data_roots
    )


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``netspec run``: load, train, report; returns the exit code. Under torchrun
    (or ``--nproc N``, which starts torchrun) each process prints its errors as ``rank R: ...``
    and ends through :func:`~netspec.training.distributed.leave` (never returns)."""
    from .launchenv import LaunchError, World

    try:
        world = World.from_env()  # torchrun's variables, checked before anything connects
    except LaunchError as err:
        from .launch import record_failure

        record_failure(err)
        raise
    if world is None:
        return _run(args, None)
    from .distributed import leave

    leave(_worker(args, world))


def _worker(args: argparse.Namespace, world: Any) -> int:
    """One process of a data-parallel run: its exit code; its errors as ``rank R: ...``."""
    import traceback

    from ..errors import NetspecError
    from .launch import record_failure, report_failure

    try:
        return _run(args, world)
    except NetspecError as err:
        report_failure(err, world)
        return err.exit_code
    except Exception as err:  # a bug or a library's error: its traceback here, its line in torchrun's report
        record_failure(err)
        traceback.print_exc()
        return 1


def _run(args: argparse.Namespace, world: Any) -> int:
    from ..errors import Interrupted, NetspecError, NonFiniteLoss, WriteFailed
    from .distributed import PeerLost
    from .loop import train

    try:
        spec = _load(args)
    except NetspecError as err:  # every process finds the same mistake in the spec: rank 0 alone says it
        err.every_rank = True  # type: ignore[attr-defined]
        raise
    if args.print_config:
        from ..cli_options import print_config

        return print_config(spec, args.spec)
    if args.nproc is not None:
        from .launch import launch, nested

        if world is not None:
            raise nested(args.nproc)
        return launch(spec, args.nproc, args.argv)
    try:
        result = train(spec, out=args.out, resume=args.resume, allow_download=args.allow_download)
    except Interrupted as stop:
        what = "terminated" if stop.exit_code == EXIT_TERMINATED else "interrupted"
        if world is None or world.rank == 0:
            print(f"{what}; continue with: netspec run {args.spec} --resume {stop.checkpoint}", file=sys.stderr)
        return stop.exit_code
    except Terminated:  # a second SIGTERM: no checkpoint for this step
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:  # the second Ctrl-C: no checkpoint for this step
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (NonFiniteLoss, WriteFailed, PeerLost) as err:
        if world is None:
            print(str(err), file=sys.stderr)
        else:
            from .launch import report_failure

            report_failure(err, world)
        return EXIT_TRAINING_FAILED
    if world is not None and world.rank != 0:
        return 0  # rank 0 says it
    best = (
        f"; best {result.best['monitor']} {result.best['value']:.4f} (epoch {result.best['epoch']})"
        if result.best
        else ""
    )
    print(f"done: {result.epochs} epochs, {result.steps} steps ({result.stop_reason}){best}; {result.run_dir}")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """Handler of ``netspec eval``: print the split's loss and metrics."""
    from .evaluate import evaluate

    spec = _load(args)
    values = evaluate(spec, checkpoint=args.checkpoint, split=args.split, allow_download=args.allow_download)
    if args.json:
        print(json.dumps(values))
    else:
        for key, value in values.items():
            print(f"{key} {value:.6g}")
    return 0
