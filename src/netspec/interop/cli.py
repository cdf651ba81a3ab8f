"""``netspec predict`` and ``netspec export``: the main CLI (cli.py) calls :func:`register` with its
sub-parser collection; a NetspecError that escapes is printed as one line with its exit code (2).
Nothing here imports torch until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

PREDICT_EXAMPLES = """\
examples:
  netspec predict specs/fashion_cnn.yaml --checkpoint runs/fashion_cnn/20250101-120000 photos/ --out predictions.csv
  netspec predict specs/mlp.yaml --checkpoint best.pt test.csv --top-k 3
  netspec predict specs/unet.yaml --checkpoint best.pt scans/*.png --out masks/

Inputs are image files, folders of images, CSV files (rows as the spec's csv source reads
them) and .npz/.safetensors/.pt tensor files (arrays named like the model's inputs), prepared with the
spec's evaluation transforms. Classifiers give the class and the probability of each
class (p_<class>; with --top-k K, or over 20 classes, the K (5) most probable with theirs);
a model with one score (BCEWithLogitsLoss) gives the class and p_1 = P(y=1); a
segmentation model writes a mask PNG per input into --out DIR (with predictions.csv);
other models give their output values. The CSV goes to stdout without --out.
"""

EXPORT_EXAMPLES = """\
examples:
  netspec export specs/lenet.yaml --checkpoint runs/lenet/20250101-120000/best.pt --format onnx
  netspec export specs/unet.yaml --checkpoint best.pt --format export --out unet.pt2
  netspec export specs/resnet18.yaml --checkpoint best.pt --format python --out resnet18.py
  netspec export specs/resnet18.yaml --checkpoint best.pt --format safetensors   # the weights alone

Formats: onnx (needs `pip install 'netspec[onnx]'`; compared with PyTorch through onnxruntime
when it is installed), export (a torch.export program, .pt2), torchscript (traced), python (a
standalone .py file with plain nn.Module classes that loads the checkpoint's state_dict
without netspec), safetensors (the state_dict alone, with the spec's sha256 and text as metadata;
`init: {weights: model.safetensors}` and a model node's `weights:` read it back). Every file is read
back and checked: a model against the model at another batch size, weights tensor by tensor.
"""


def register(subparsers: Any) -> None:
    """Add ``predict`` and ``export`` to an argparse sub-parser collection.

    >>> parser = argparse.ArgumentParser(prog="netspec")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["export", "x.yaml", "--format", "onnx"])
    >>> args.format, args.checkpoint, args.func.__name__
    ('onnx', None, 'export_command')
    """
    _add_predict(subparsers)
    _add_export(subparsers)


def _add_predict(subparsers: Any) -> None:
    from ..cli_options import add_command, add_spec_argument, add_spec_options

    p = add_command(
        subparsers,
        "predict",
        help="run a trained model on image, CSV or tensor files; write a CSV",
        description="Predict with SPEC's model and a checkpoint's weights.",
        epilog=PREDICT_EXAMPLES,
    )
    add_spec_argument(p)
    p.add_argument(
        "inputs", metavar="INPUTS", nargs="+", help="image files, folders, CSV files, .npz/.safetensors/.pt files"
    )
    p.add_argument(
        "--checkpoint", required=True, metavar="C", help="best.pt / last.pt, a state_dict, or a run directory"
    )
    p.add_argument("--out", metavar="PATH", help="CSV file (default: stdout); a folder for segmentation masks")
    p.add_argument("--force", action="store_true", help="replace an existing --out file (and mask images)")
    p.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help="list the K most probable classes per sample, each with its probability "
        "(default: p_<class> for every class, or the top 5 of over 20 classes)",
    )
    p.add_argument("--output", metavar="NAME", help="which model output to read (default: the first)")
    p.add_argument("--batch-size", type=int, metavar="N", help="default: the spec's evaluation batch size")
    p.add_argument("--device", default="auto", metavar="D", help="auto (default), cpu, cuda, cuda:N or mps")
    add_spec_options(p)
    p.set_defaults(func=predict_command)


def _add_export(subparsers: Any) -> None:
    from ..cli_options import add_command, add_spec_argument, add_spec_options

    e = add_command(
        subparsers,
        "export",
        help="write a trained model as ONNX, torch.export, TorchScript or Python, or its weights as safetensors",
        description="Export SPEC's model with a checkpoint's weights, then check the file.",
        epilog=EXPORT_EXAMPLES,
    )
    add_spec_argument(e)
    e.add_argument("--format", required=True, choices=("onnx", "export", "torchscript", "python", "safetensors"))
    e.add_argument(
        "--checkpoint",
        metavar="C",
        help="best.pt / last.pt, a state_dict, or a run directory (default: the model's initial weights)",
    )
    e.add_argument(
        "--out",
        metavar="PATH",
        help="output file (default: <spec name>.onnx, .pt2, .torchscript.pt, .py, .safetensors)",
    )
    e.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default: the exporter's)")
    e.add_argument("--force", action="store_true", help="replace the output file if it exists")
    add_spec_options(e)
    e.set_defaults(func=export_command)


def _spec(args: argparse.Namespace) -> Any:
    from ..api import load_spec

    return load_spec(args.spec, overrides=args.overrides, allow_imports=args.allow_imports, data_roots=args.data_roots)


def predict_command(args: argparse.Namespace) -> int:
    """Handler of ``netspec predict``: the CSV to stdout or --out; masks into --out DIR."""
    from .predict import predict_rows, write_predictions
    from .run import TrainedModel, checkpoint_file

    spec = _spec(args)
    reads = {
        "the spec": args.spec,
        "the checkpoint": checkpoint_file(args.checkpoint),
        **{f"the input {p}": p for p in args.inputs},
    }
    if args.out is not None:  # before the model is loaded: a refusal costs nothing
        _predict_out(args, reads)
    trained = TrainedModel.from_spec(spec, args.checkpoint, device=args.device)
    masks = trained.reading(args.output).kind == "masks"
    if args.out is not None and masks != Path(args.out).is_dir():
        _predict_out(args, reads, masks=masks)
    rows = predict_rows(
        trained, args.inputs, output=args.output, top_k=args.top_k, batch_size=args.batch_size, progress=True
    )
    count = write_predictions(rows, args.out, masks=masks, force=args.force, inputs=args.inputs)
    if args.out is not None:
        where = f"{args.out} (masks and predictions.csv)" if masks else args.out
        print(f"{count} predictions: {where}", file=sys.stderr)
    return 0


def _predict_out(args: argparse.Namespace, reads: dict[str, Any], masks: bool | None = None) -> None:
    """``predict --out``: a CSV file, or a folder for a segmentation model's masks (an existing
    folder is taken as meant for masks until the model says otherwise)."""
    from ..errors import Location, NetspecError
    from ..files.outputs import output_folder

    if masks is None:
        masks = Path(args.out).is_dir()
    if not masks:
        _output(args, args.out, reads=reads)
        return
    try:
        output_folder(args.out, option="--out")
    except NetspecError as e:
        raise e.with_location(Location(args.spec)) from None


def export_command(args: argparse.Namespace) -> int:
    """Handler of ``netspec export``: write the file, check it, print what was done."""
    from ..api import compile_spec
    from ..training.spec import WeightsSpec
    from ..training.weights import load_weights
    from .export import FORMATS, export_model
    from .run import checkpoint_file, statistics_for

    spec = _spec(args)
    file = checkpoint_file(args.checkpoint) if args.checkpoint is not None else None
    out = _output(
        args,
        args.out,
        default=f"{spec.name}{FORMATS[args.format]}",
        reads={"the spec": args.spec, "the checkpoint": file},
    )
    compiled = compile_spec(spec)
    if file is not None:
        load_weights(compiled.module, WeightsSpec(path=str(file)), path=("--checkpoint",))
    else:
        print("no --checkpoint: exporting the model's initial (random) weights", file=sys.stderr)
    stats = statistics_for(compiled, file)  # the checkpoint's Standardize statistics, when the spec has it
    command = " ".join(
        [
            "netspec export",
            args.spec,
            "--format",
            args.format,
            *(["--checkpoint", args.checkpoint] if args.checkpoint else []),
            *(f"--set {o}" for o in args.overrides),
        ]
    )
    from ..errors import Location, NetspecError

    try:
        lines = export_model(
            compiled,
            args.format,
            out,
            opset=args.opset,
            command=command,
            checkpoint=args.checkpoint,
            standardize=stats,
            force=args.force,
        )
    except NetspecError as e:  # a failed write or check: said at the spec, like every other refusal
        raise e.with_location(Location(args.spec)) from None
    for line in lines:
        print(line)
    return 0


def _output(args: argparse.Namespace, given: str | None, **policy: Any) -> Any:
    """The file ``--out`` names (or the default), checked by the output policy; a refusal is
    located at the spec file."""
    from ..errors import Location, NetspecError
    from ..files.outputs import output_path

    try:
        return output_path(given, option="--out", force=args.force, roots=tuple(args.data_roots), **policy)
    except NetspecError as e:
        raise e.with_location(Location(args.spec)) from None
