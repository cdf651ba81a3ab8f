"""The command line: exit codes, one-line errors, help, listing, validate."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netspec.cli import main


def test_help_has_examples(capsys):
    for argv in (["--help"], ["compile", "--help"], ["validate", "--help"], ["schema", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "netspec compile specs/unet.yaml --summary" in out


def test_compile_prints_header_and_table(capsys, specs_dir):
    assert main(["compile", str(specs_dir / "unet.yaml"), "--input-size", "3x64x64"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "unet: 1 input (image 3x64x64) -> 1 output (logits 2x64x64)"
    assert "31,037,698 total" in out


def test_compile_code_with_set(capsys, specs_dir):
    assert main(["compile", str(specs_dir / "unet.yaml"), "--set", "n_classes=5", "--set", "bilinear=true",
                 "--code", "--input-size", "3x32x32"]) == 0
    out = capsys.readouterr().out
    assert "def forward(self, image):" in out and "logits = self.logits(up_3)" in out
    assert "# (B, 5, 32, 32)" in out
    assert "torch.cat([skip, pad_to], dim = 1)" in out  # the Up block's code is shown too


def test_errors_are_one_line_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ninputs: {x: [4]}\nnodes:\n  - Linear: {out_featurs: 3}\n")
    assert main(["compile", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"{bad}:4:")
    assert "did you mean `out_features`?" in err


def test_validate_reports_each_file(tmp_path, capsys, specs_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ninputs: {x: [4]}\nnodes:\n  - Linear: {out_features: 3, from: y}\n")
    code = main(["validate", str(specs_dir / "unet.yaml"), str(bad)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "unet.yaml: ok (unet, 31,037,698 parameters)" in out
    assert "bad.yaml:4" in err


def test_layers_lists_inferred_arguments(capsys):
    assert main(["layers", "layers"]) == 0
    assert "Conv2d(in_channels*, out_channels" in capsys.readouterr().out


def test_python_dash_m_and_no_traceback(tmp_path):
    bad = tmp_path / "cyc.yaml"
    bad.write_text("name: t\ninputs: {x: [4]}\nnodes:\n  - a: {Linear: {out_features: 4}, from: b}\n"
                   "  - b: {Linear: {out_features: 4}, from: a}\n")
    r = subprocess.run([sys.executable, "-m", "netspec", "compile", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "cycle: a -> b -> a" in r.stderr
    assert r.stderr.startswith(f"{bad}:4:")
