"""``netspec import MODULE:CALLABLE``: write a spec for a Python model.

The main CLI calls :func:`register` with its sub-parser collection; nothing here imports torch
until the command runs, so ``netspec --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLES = """\
examples:
  netspec import torchvision.models:resnet18 -o resnet18.yaml
  netspec import torchvision.models:resnet50 --args num_classes=10 --input-size 3x128x128
  netspec import models/net.py:Net --allow-import models/net.py --args depth=4 --input-size 5x8
  netspec import lm.py:LM --allow-import lm.py --input-size tokens=16:int64 --input-size mask=16:bool

MODULE is an installed module (naming it is the permission to import it), or a .py file of
yours, imported only with --allow-import naming that file. --args are the constructor's
keyword arguments, read like --set values (10, 0.5, true, [1, 2], text). The written spec is
checked: it loads the model's state_dict strictly and gives the same outputs in eval mode.
What the spec language cannot express is one line with the module and the reason; exit 2.
"""


def register(subparsers: Any) -> None:
    """Add ``import`` to an argparse sub-parser collection.

    >>> parser = argparse.ArgumentParser(prog="netspec")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["import", "torchvision.models:resnet18", "--args", "num_classes=10", "-o", "r.yaml"])
    >>> args.target, args.args, args.output
    ('torchvision.models:resnet18', ['num_classes=10'], 'r.yaml')
    """
    from ..cli_options import add_command

    p = add_command(
        subparsers,
        "import",
        help="write a spec for a Python nn.Module (torch.fx): MODULE:CALLABLE",
        description="Trace a PyTorch model with torch.fx and write a spec that builds the "
        "same module (same state_dict keys, same outputs).",
        epilog=EXAMPLES,
    )
    p.add_argument("target", metavar="MODULE:CALLABLE", help="e.g. torchvision.models:resnet18 or net.py:Net")
    p.add_argument(
        "--args",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="keyword arguments of the callable (num_classes=10)",
    )
    p.add_argument(
        "--input-size",
        action="append",
        metavar="[NAME=]CxHxW[:DTYPE]",
        help="per-sample size of a forward input, and its dtype if not float32 (tokens=16:int64); once "
        "per input; torchvision models have a default",
    )
    out = "write the spec here (default: standard output), and beside it NAME.buffers.pt for big buffers"
    p.add_argument("-o", "--output", metavar="FILE", help=out + " outside the state_dict")
    p.add_argument("--force", action="store_true", help="replace the -o file if it exists")
    p.add_argument(
        "--max-params",
        type=int,
        default=None,
        metavar="N",
        help="refuse models with more parameters, checked before they are built (default 2e9)",
    )
    p.add_argument("--name", help="the spec's name (default: the callable's)")
    p.add_argument(
        "--allow-import",
        dest="allow_imports",
        action="append",
        default=None,
        metavar="FILE",
        help="allow importing this .py file of yours (runs its code); never implied",
    )
    p.add_argument("--no-check", action="store_true", help="skip the round-trip check (no second model is built)")
    p.set_defaults(func=import_command)


def import_command(args: argparse.Namespace) -> int:
    """Run ``netspec import``; a NetspecError escapes to the main CLI (one line, exit 2)."""
    from ..errors import NetspecError, OutputRefused
    from ..files.outputs import write_file
    from .api import import_model
    from .load import parse_args, parse_target

    try:
        kwargs = parse_args(args.args)
        out = _output(args)  # before anything is imported: a refusal costs nothing
    except NetspecError as e:
        raise e.with_location(_location(args.target)) from None
    imported = import_model(
        args.target,
        args=kwargs,
        input_sizes=args.input_size,
        allow_imports=args.allow_imports,
        name=args.name,
        check=not args.no_check,
        max_params=args.max_params,
    )
    report = [imported.summary()] + [f"note: {n}" for n in imported.notes]
    if imported.checked is not None:
        report.append(str(imported.checked))
    if out is not None:
        try:  # an installed module's file is known only now that it is imported
            module_file = getattr(sys.modules.get(parse_target(args.target)[0]), "__file__", None)
            out = _output(args, module_file)
            assert out is not None  # -o was given: the first call gave a path
            for name, tensors in imported.files.items():  # before the spec, which reads them
                _save(_output(args, module_file, out.parent / name), tensors)
        except NetspecError as e:
            raise e.with_location(_location(args.target)) from None
        write_file(out, imported.text, option="-o")
        report += [f"wrote {out.parent / name}: the buffers the spec reads from it" for name in imported.files]
        report[0] = f"wrote {args.output}: {report[0]}"
        print("\n".join(report))
    elif imported.files:
        raise OutputRefused(
            f"the spec reads {', '.join(imported.files)}, beside it, for buffers outside the state_dict of over "
            "4,096 values: it is written with -o only",
            path=("-o",),
            hint="give -o FILE (the file of buffers is written in the same folder)",
        ).with_location(_location(args.target))
    else:
        sys.stdout.write(imported.text)
        print("\n".join(report), file=sys.stderr)
    return 0


def _output(args: argparse.Namespace, module_file: str | None = None, given: Path | None = None) -> Path | None:
    """The ``-o`` file (or ``given``, a file beside it), checked by the output policy: never the
    imported source (nor another file --allow-import names, nor ``module_file``, an installed
    module's), never a folder or a link; an existing file only with --force (checked once, before the import)."""
    from ..files.outputs import output_path
    from .load import is_file, parse_target

    if not args.output:
        return None
    module = parse_target(args.target)[0]
    reads = {
        "the imported source": module if is_file(module) else module_file,
        **{f"the allowed import {a}": a for a in args.allow_imports or [] if a != "*"},
    }
    force = args.force or (module_file is not None and given is None)  # -o itself was checked before the import
    return output_path(given or args.output, option="-o", reads=reads, force=force)


def _save(path: Path | None, tensors: dict[str, Any]) -> None:
    """``torch.save`` of the tensors a spec reads (a ``Buffer``'s ``file``), atomically."""
    import torch

    from ..files.outputs import atomic_file

    assert path is not None
    with atomic_file(path, option="-o") as tmp:
        torch.save(tensors, tmp)


def _location(target: str) -> Any:
    from ..errors import Location

    return Location(file=target)
