"""ONNX, torch.export and TorchScript files of every spec of specs/: read back and compared with
the compiled module at another batch size than the one they were exported with."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from netspec.interop import ExportError
from netspec.interop.export import export_model, output_names

from .cases import NAMES, compiled, expected, params

# Outputs ONNX Runtime cannot reproduce, and why (compared for every other output).
NOT_COMPARED_IN_ONNX = {"vae": (["recon", "recon_image"], "randn_like: ONNX Runtime draws its own random numbers")}

# Specs that cannot be exported to ONNX at all, and why: none today.
CANNOT_EXPORT_TO_ONNX: dict[str, str] = {}

needs_onnxruntime = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed (pip install onnxruntime)"
)


@needs_onnxruntime
@pytest.mark.parametrize("name", params([n for n in NAMES if n not in CANNOT_EXPORT_TO_ONNX]))
def test_onnx_outputs_equal_pytorch(name, tmp_path) -> None:
    import onnx

    c = compiled(name)
    lines = export_model(c, "onnx", tmp_path / f"{name}.onnx")
    assert lines[1].startswith("onnx.checker: ok (opset ")
    compared = lines[-1]
    assert compared.startswith("onnxruntime at batch 3: ") and " to PyTorch" in compared, lines
    skipped, _why = NOT_COMPARED_IN_ONNX.get(name, ([], ""))
    assert compared.endswith(f"not compared (random): {', '.join(skipped)}" if skipped else "to PyTorch"), compared
    model = onnx.load(str(tmp_path / f"{name}.onnx"))
    assert [i.name for i in model.graph.input] == list(c.graph.inputs)
    assert [o.name for o in model.graph.output] == output_names(c.graph)
    assert all(i.type.tensor_type.shape.dim[0].dim_param == "batch" for i in model.graph.input)


def test_onnx_missing_is_one_line_with_the_install_command(tmp_path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(ExportError) as err:
        export_model(compiled("lenet"), "onnx", tmp_path / "lenet.onnx")
    assert str(err.value) == (
        "<spec>: --format onnx needs the `onnx` package; install it with: pip install 'netspec[onnx]'"
    )


@pytest.mark.parametrize(
    "name",
    params(["lenet", "two_input_net", "vae", "list_dense"])
    + [pytest.param(n, marks=pytest.mark.slow) for n in ("transformer_classifier", "unet", "resnet50_extra_output")],
)
def test_torch_export_program_loads_and_matches(name, tmp_path) -> None:
    lines = export_model(compiled(name), "export", tmp_path / f"{name}.pt2")
    assert lines[-1].startswith("torch.export.load at batch 3: "), lines
    program = torch.export.load(str(tmp_path / f"{name}.pt2"))
    c = compiled(name)
    inputs, want = expected(c, batch=4)
    torch.manual_seed(0)
    got = program.module()(*inputs)
    got = list(got.values()) if isinstance(got, dict) else [got] if torch.is_tensor(got) else list(got)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_torch_export_needs_a_pt2_name(tmp_path) -> None:
    with pytest.raises(ExportError, match=r"saved as \.pt2 files.*name the output lenet\.pt2"):
        export_model(compiled("lenet"), "export", tmp_path / "lenet.bin")


TORCHSCRIPT_RUNNER = textwrap.dedent("""
    import json, sys
    sys.modules["netspec"] = None
    import torch

    results = {}
    for name, (model_file, io_file) in json.loads(sys.argv[1]).items():
        model = torch.jit.load(model_file)
        io = torch.load(io_file, weights_only=True)
        torch.manual_seed(0)
        with torch.no_grad():
            out = model(*io["inputs"])
        out = list(out.values()) if isinstance(out, dict) else [out] if torch.is_tensor(out) else list(out)
        try:
            for got, want in zip(out, io["outputs"], strict=True):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            results[name] = "ok"
        except AssertionError as e:
            results[name] = str(e)
    print(json.dumps(results))
""")


def test_torchscript_runs_in_a_fresh_process_at_another_batch_size(tmp_path) -> None:
    cases = {}
    for name in ("two_input_net", "vae"):  # two inputs; a tuple of outputs with random draws
        c = compiled(name)
        lines = export_model(c, "torchscript", tmp_path / f"{name}.torchscript.pt")
        assert lines[-1].startswith("torch.jit.load at batch 3: "), lines
        inputs, outputs = expected(c, batch=5)
        torch.save({"inputs": inputs, "outputs": outputs}, tmp_path / f"{name}.io.pt")
        cases[name] = (str(tmp_path / f"{name}.torchscript.pt"), str(tmp_path / f"{name}.io.pt"))
    (tmp_path / "runner.py").write_text(TORCHSCRIPT_RUNNER)
    r = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "runner.py"), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == dict.fromkeys(cases, "ok")


def test_python_format_reports_a_strict_load_and_equal_outputs(tmp_path) -> None:
    lines = export_model(compiled("lenet"), "python", tmp_path / "lenet.py")
    assert lines[0].startswith(f"wrote {tmp_path / 'lenet.py'} (")
    assert lines[0].endswith("image (B, 1, 32, 32) -> logits (B, 10)")
    assert lines[1] == "class Lenet: the state_dict loads strictly; its outputs equal the model's"


def test_a_changed_export_is_caught(tmp_path, monkeypatch) -> None:
    """The check is real: an exported file that computes something else is refused."""
    real = torch.jit.load

    def off_by_a_little(*args, **kwargs):
        loaded = real(*args, **kwargs)
        return lambda *x: loaded(*x) + 1e-3

    monkeypatch.setattr(torch.jit, "load", off_by_a_little)
    with pytest.raises(ExportError, match="output `logits` of the exported model differs"):
        export_model(compiled("lenet"), "torchscript", tmp_path / "lenet.torchscript.pt")
