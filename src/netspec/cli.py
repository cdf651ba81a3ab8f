"""``netspec`` command line: compile, validate, schema, layers (and run/eval from the runner)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .cli_options import add_command, add_spec_argument, add_spec_options, console_logging, print_config
from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USER_ERROR, NetspecError, SpecError, Terminated

EPILOG_COMPILE = """examples:
  netspec compile specs/unet.yaml --summary
  netspec compile specs/unet.yaml --set n_classes=5 --set bilinear=true --code
  netspec compile specs/lenet.yaml --input-size 1x32x32 --depth 3 --summary
  netspec compile specs/unet.yaml --graph unet.svg
  netspec compile specs/unet.yaml --print-config
"""


def _input_size_overrides(spec_path: str, sizes: list[str] | None, overrides: list[str]) -> list[str]:
    """``--input-size 3x256x256`` (first input) or ``image=3x256x256`` -> --set overrides."""
    out = list(overrides)
    for i, item in enumerate(sizes or []):
        name, _, dims = item.rpartition("=")
        try:
            shape = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            raise SpecError(f"--input-size `{item}` is not like 3x224x224 or image=3x224x224") from None
        key = f"inputs.{name}.shape" if name else f"__input{i}__"
        out.append(f"{key}={shape}")
    return out


def _load(args: argparse.Namespace):
    from .api import load_spec
    from .compiler.extends import resolve_extends
    from .compiler.source import load_document
    from .compiler.spec import parse_document
    from .files.access import check_roots

    overrides = _input_size_overrides(args.spec, getattr(args, "input_size", None), args.overrides)
    if any(o.startswith("__input") for o in overrides):  # positional input sizes: need input names
        doc = load_document(args.spec)
        doc.roots = check_roots(args.data_roots)
        doc = resolve_extends(doc)
        names = list((doc.data or {}).get("inputs") or {}) if isinstance(doc.data, dict) else []
        fixed = []
        for o in overrides:
            if o.startswith("__input"):
                idx = int(o[len("__input") : o.index("__=")])
                if idx >= len(names):
                    raise SpecError(f"--input-size given {idx + 1} times but the spec has {len(names)} input(s)")
                o = f"inputs.{names[idx]}.shape=" + o.split("=", 1)[1]
            fixed.append(o)
        return parse_document(doc, fixed, args.allow_imports)
    return load_spec(args.spec, overrides=overrides, allow_imports=args.allow_imports, data_roots=args.data_roots)


def cmd_compile(args: argparse.Namespace) -> int:
    from .api import compile_spec
    from .views.summary import dump_code, frozen_report, graph_table, header, summary_text

    spec = _load(args)
    if args.print_config:
        return print_config(spec, args.spec)
    if args.graph:
        from .files.outputs import output_path
        from .views.picture_file import picture_format

        _at_spec_file(picture_format, args.graph, spec=args.spec)  # a bad suffix: before compiling
        _at_spec_file(
            lambda: output_path(args.graph, option="--graph", reads={"the spec": args.spec}, force=args.force),
            spec=args.spec,
        )
    c = compile_spec(spec, max_params=args.max_params, device="meta")  # printed, never run: no memory
    print(header(c))
    for line in c.log:
        print(f"  {line}")
    if args.code:
        print(dump_code(c), end="")
    if args.summary:
        print(summary_text(c, depth=args.depth))
        print(frozen_report(c.module))
    if args.graph:
        from .views.picture_file import write_picture

        print(_at_spec_file(write_picture, c.graph, args.graph, spec=args.spec))
    if not args.code and not args.summary and not args.graph:
        print(graph_table(c))
        print(frozen_report(c.module))
    return 0


def _at_spec_file(fn, *args, spec: str):
    """``fn(*args)``; an error about a command-line option (a refused ``--graph``) is located at the spec file."""
    from .errors import Location

    try:
        return fn(*args)
    except NetspecError as e:
        raise e.with_location(Location(spec)) from None


def _check_training(spec, model) -> None:
    """A spec with training sections must have what a run needs (the sections themselves were
    checked when the spec was loaded), and its loss graph must fit its model's outputs."""
    from .compiler.spec import document_of
    from .training.context import require_sections
    from .training.loss_graph import build_loss

    if any(getattr(spec, s) is not None for s in ("data", "loss", "optimizer", "scheduler", "init", "train")):
        try:
            require_sections(spec, "loss", "optimizer")
            build_loss(spec, model)  # the loss graph's shapes, on the model's meta values
        except SpecError as e:
            raise e.with_location(document_of(spec).locate(e.path, key=e.key)) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from .api import compile_spec, load_spec

    failed = 0
    for i, path in enumerate(args.specs):
        try:
            spec = load_spec(
                path, overrides=args.overrides, allow_imports=args.allow_imports, data_roots=args.data_roots
            )
            if args.print_config:
                print("---" if i else "", end="\n" if i else "")  # one YAML document per spec
                print_config(spec, path)
                continue
            c = compile_spec(spec, device="meta")  # checks need no memory and no initial values
            _check_training(spec, c.module)
            n = sum(p.numel() for p in c.module.parameters())
            print(f"{path}: ok ({spec.name}, {n:,} parameters)")
        except NetspecError as e:
            print(str(e), file=sys.stderr)
            failed += 1
    return EXIT_USER_ERROR if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .compiler.schema import schema_text, write_schemas

    if args.reference:
        from .compiler.schema import reference_markdown

        sys.stdout.write(reference_markdown())
        return 0
    if args.write:
        path = write_schemas(Path(args.write))
        print(f"wrote {path}")
    else:
        sys.stdout.write(schema_text())
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    from .nodes.catalog import catalog, layer_infos  # names and arguments without importing torch

    if args.kind in ("all", "layers"):
        print("layers (torch.nn; * = inferred from the input):")
        for name, e in layer_infos().items():
            params = ", ".join(p + ("*" if p in e.inferable else "") for p in e.params)
            print(f"  {name}({params})")
    if args.kind in ("all", "ops"):
        print("ops:")
        for name, o in catalog().ops.items():
            print(f"  {name}({', '.join(o.params)}) - {o.doc}")
    if args.kind in ("all", "models"):
        print("torchvision models:", ", ".join(catalog().models))
        print("timm models: `netspec layers timm` (timm.resnet34, ...; needs timm)")
    if args.kind == "timm":  # not in `all`: importing timm takes seconds
        from .nodes.timm_zoo import INSTALL, TIMM

        if not TIMM:
            print(f"timm is not installed; install it with {INSTALL}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"timm models ({len(TIMM)}):", ", ".join(TIMM))
    return 0


def _register_compile(sub: Any) -> None:
    """The `compile` command and its options."""
    p = add_command(
        sub, "compile", help="validate and compile a spec; print a summary or the generated code", epilog=EPILOG_COMPILE
    )
    add_spec_argument(p)
    add_spec_options(p)
    p.add_argument(
        "--summary",
        action="store_true",
        help="print a torchinfo-style summary (from the inferred shapes: no forward pass)",
    )
    p.add_argument("--code", action="store_true", help="print the generated forward code")
    p.add_argument(
        "--graph",
        metavar="FILE",
        help="draw the network into FILE: .svg, .png, .dot or .mmd (mermaid); "
        "svg/png use graphviz when installed, else netspec's own layout",
    )
    p.add_argument("--force", action="store_true", help="replace the --graph file if it exists")
    p.add_argument(
        "--input-size",
        action="append",
        metavar="[NAME=]CxHxW",
        help="per-sample size of an input for this compile (repeat for several inputs)",
    )
    p.add_argument("--depth", type=int, default=2, help="summary depth (default 2)")
    p.add_argument("--max-params", type=int, default=None, help="refuse models with more parameters (default 2e9)")
    p.set_defaults(func=cmd_compile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netspec",
        description="Declarative PyTorch networks: compile, validate, train, evaluate, predict with and export specs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  netspec compile specs/unet.yaml --summary\n  netspec validate specs/*.yaml\n"
        "  netspec run specs/logistic_regression.yaml\n\nExit codes: 0 ok, 2 a mistake in the spec, "
        "data or options (one line: file:line:col: path: message), 3 training failed, 130 interrupted (Ctrl-C), "
        "143 terminated (SIGTERM).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _register_compile(sub)

    p = add_command(
        sub,
        "validate",
        help="check specs (schema, graph, shapes); one line per spec",
        epilog="example:\n  netspec validate specs/*.yaml",
    )
    p.add_argument("specs", nargs="+")
    add_spec_options(p)
    p.set_defaults(func=cmd_validate)

    p = add_command(
        sub,
        "schema",
        help="print the JSON Schema of specs (or write it into a folder)",
        epilog="example:\n  netspec schema --write schemas/\n\n--write regenerates the schema "
        "file in DIR and replaces it by design (no --force needed): it is generated, never "
        "edited by hand. It is written atomically, never through a symbolic link.",
    )
    p.add_argument("--write", metavar="DIR", help="write (replace) the schema file in DIR")
    p.add_argument("--reference", action="store_true", help="print a Markdown reference of every spec key")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("layers", help="list the layer types, ops and torchvision (or timm) models a spec can use")
    p.add_argument("kind", nargs="?", default="all", choices=["all", "layers", "ops", "models", "timm"])
    p.set_defaults(func=cmd_layers)

    from .importer import cli as import_cli
    from .interop import cli as interop_cli
    from .sweep import cli as sweep_cli
    from .training import cli as train_cli

    train_cli.register(sub)
    interop_cli.register(sub)  # predict, export
    import_cli.register(sub)
    sweep_cli.register(sub)  # sweep, runs
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netspec`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # `run --nproc N` starts it again, N times
    # Warnings (torch's, while shapes are inferred on meta tensors) are held back: a mistake
    # must print exactly one line; on success they follow, one line each. Training prints
    # them as they happen: a warning at epoch 3 of 50 should not wait for the end.
    live = args.command in ("run", "eval", "sweep")
    with warnings.catch_warnings(record=True) if not live else contextlib.nullcontext([]) as caught:
        if not live:
            warnings.simplefilter("default")
        try:
            # a training run's lines on stdout; the other commands print their results only
            with _sigterm_stops(), console_logging() if args.command == "run" else contextlib.nullcontext():
                code = int(args.func(args) or 0)
        except NetspecError as e:  # a spec mistake, a refused output, a failed run: one line
            print(str(e), file=sys.stderr)
            return e.exit_code
        except Terminated:
            print("terminated", file=sys.stderr)
            return EXIT_TERMINATED
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `netspec schema | head`
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            return 0
    if code == 0:  # after a failure (validate's one line per spec) they would only be noise
        _print_warnings(caught)
    return code


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM ends a command with one line and exit 143, like Ctrl-C (130), instead of killing
    it silently; a training run replaces this handler with one that saves first."""

    def stop(signum: int, frame: Any) -> None:
        raise Terminated()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for w in caught:
        text = " ".join(f"warning: {w.category.__name__}: {w.message}".split())
        if text not in seen:
            seen.add(text)
            print(text, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
