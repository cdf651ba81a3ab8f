"""The ops netspec's importer needs for attention models (`put`, `grid`, `unfold`, `norm`,
`rms_norm`, `repeat_interleave`, `conv2d` and `batch_norm` with their weights as inputs), each in
a small spec, through every format that runs the model: ONNX (compared by onnxruntime),
torch.export and the standalone Python file, each compared with the compiled module by
``export_model``'s own check. An op a format cannot take is listed with its one-line refusal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import netspec
from netspec.api import compile_spec
from netspec.interop import ExportError
from netspec.interop.export import export_model

#: op -> a spec that uses it (its inputs per sample); every node of interest reads the input
OP_SPECS: dict[str, str] = {
    "put": """
inputs: {x: [4, 6]}
nodes:
  - a: {mul: 2.0}
  - p: {put: {at: "[:, 1:3]", value: 0.5}, from: a}
  - v: {index: "[:, 2:4]", from: x}
  - q: {put: "[:, 0:2]", from: [p, v]}
""",
    "grid": """
inputs: {x: [3, 2, 2]}
nodes:
  - xs: {Buffer: [0.0, 1.0]}
  - ys: {Buffer: [0.0, 1.0, 2.0]}
  - g: {grid: xy, from: [xs, ys]}
  - out: {add: [x, g]}
""",
    "unfold": """
inputs: {x: [4, 8]}
nodes:
  - u: {unfold: {dim: 2, size: 4, step: 2}}
""",
    "norm": """
inputs: {x: [4, 6]}
nodes:
  - n: {norm: {dim: [1, 2], p: 2}}
""",
    "rms_norm": """
inputs: {x: [4, 6]}
nodes:
  - w: {Parameter: {shape: [6]}}
  - r: {rms_norm: {normalized_shape: [6], eps: 1.0e-6}, from: [x, w]}
""",
    "repeat_interleave": """
inputs: {x: [4, 6]}
nodes:
  - r: {repeat_interleave: {repeats: 2, dim: 1}}
  - b: {repeat_interleave: {repeats: 3, dim: 0}}
  - back: {reshape: [B, 3, 8, 6]}
""",
    "conv2d": """
inputs: {x: [4, 6, 6]}
nodes:
  - k: {Parameter: {shape: [8, 4, 3, 3]}}
  - bias: {Parameter: {shape: [8]}}
  - c: {conv2d: {padding: 1}, from: [x, k, bias]}
  - filt: {Buffer: {value: [0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25], shape: [8, 1, 1, 3], persistent: false}}
  - blur: {conv2d: {padding: same, groups: 8}, from: [c, filt]}
""",
    "batch_norm": """
inputs: {x: [4, 6, 6]}
nodes:
  - mean: {Buffer: [0.1, -0.2, 0.3, 0.0]}
  - var: {Buffer: [1.5, 0.5, 2.0, 1.0]}
  - w: {Parameter: {shape: [4]}}
  - b: {Parameter: {shape: [4], init: zeros_}}
  - n: {batch_norm: {eps: 1.0e-5}, from: [x, mean, var, w, b]}
  - s: {batch_norm: {use_input_stats: true, eps: 1.0e-6}, from: [n]}
""",
    # timm's StdConv2d: batch_norm standardises a weight (no batch), which ONNX takes
    "batch_norm_of_a_weight": """
inputs: {x: [4, 6, 6]}
nodes:
  - weight: {Parameter: {shape: [8, 4, 3, 3]}}
  - rows_whole: {reshape: [1, 8, 36], from: weight}
  - rows: {squeeze: 0}
  - standard: {batch_norm: {use_input_stats: true, eps: 1.0e-6}}
  - kernel_whole: {reshape: [8, 4, 3, 3]}
  - kernel: {squeeze: 0}
  - conv: {conv2d: {padding: 1}, from: [x, kernel]}
""",
}

HINT = "export it with --format export (torch.export) or --format python"
#: (op, format) -> the one line its export is refused with
REFUSED: dict[tuple[str, str], str] = {
    ("rms_norm", "onnx"): "<spec>: node `r` (op rms_norm) cannot be exported to ONNX: torch.onnx.export "
    f"(TorchScript-based) translates no F.rms_norm at any opset; {HINT}",
    ("batch_norm", "onnx"): "<spec>: node `s` (op batch_norm) cannot be exported to ONNX: its statistics over a "
    f"dynamic batch (`use_input_stats: true` on an input with a batch) are not exported; {HINT}",
}

FORMATS = {"onnx": ".onnx", "export": ".pt2", "python": ".py"}


def _compiled(op: str) -> object:
    torch.manual_seed(0)
    return compile_spec(netspec.load_spec(text=f"name: {op}_net\n{OP_SPECS[op]}"))


def test_every_op_added_for_the_importer_has_a_case() -> None:
    from netspec.nodes.ops import OPS

    for op in ("put", "grid", "unfold", "norm", "rms_norm", "repeat_interleave", "conv2d", "batch_norm"):
        assert op in OPS and op in OP_SPECS, op


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("op", list(OP_SPECS))
def test_the_op_exports_and_equals_the_compiled_module_or_is_refused_in_one_line(
    op: str, fmt: str, tmp_path: Path
) -> None:
    if fmt == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (pip install onnxruntime)")
    c = _compiled(op)
    out = tmp_path / f"{op}{FORMATS[fmt]}"
    if (op, fmt) in REFUSED:
        with pytest.raises(ExportError) as e:
            export_model(c, fmt, out)
        assert str(e.value) == REFUSED[op, fmt] and not out.exists()
        return
    lines = export_model(c, fmt, out)  # raises unless the file's outputs equal the module's
    assert out.exists() and len(lines) >= 2
    assert "not compared" not in " ".join(lines), lines
