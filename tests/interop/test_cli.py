"""``netspec export`` and ``netspec predict`` on the command line: what they print, exit codes,
one-line errors; ``netspec --help`` still imports no torch."""

from __future__ import annotations

import subprocess
import sys

import torch

import netspec
from netspec.cli import main
from netspec.training.checkpoint import CHECKPOINT_FORMAT


def test_export_python_prints_what_it_wrote_and_checked(specs_dir, tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = netspec.build_model(specs_dir / "lenet.yaml")
    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict()}, tmp_path / "best.pt")
    code = main(
        [
            "export",
            str(specs_dir / "lenet.yaml"),
            "--checkpoint",
            str(tmp_path / "best.pt"),
            "--format",
            "python",
            "--out",
            str(tmp_path / "lenet.py"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    wrote, checked = out.splitlines()
    assert wrote.startswith(f"wrote {tmp_path / 'lenet.py'} (")
    assert wrote.endswith("): image (B, 1, 32, 32) -> logits (B, 10)")
    assert checked == "class Lenet: the state_dict loads strictly; its outputs equal the model's"
    source = (tmp_path / "lenet.py").read_text()
    assert f"netspec export {specs_dir / 'lenet.yaml'} --format python --checkpoint {tmp_path / 'best.pt'}" in source


def test_export_without_checkpoint_says_so(specs_dir, tmp_path, capsys) -> None:
    code = main(
        [
            "export",
            str(specs_dir / "regression.yaml"),
            "--format",
            "torchscript",
            "--out",
            str(tmp_path / "r.torchscript.pt"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and err == "no --checkpoint: exporting the model's initial (random) weights\n"
    assert out.splitlines()[-1] == "torch.jit.load at batch 3: equal to the model"


def test_export_errors_are_one_line_with_exit_2(specs_dir, tmp_path, capsys) -> None:
    code = main(
        ["export", str(specs_dir / "lenet.yaml"), "--checkpoint", str(tmp_path / "missing.pt"), "--format", "onnx"]
    )
    _, err = capsys.readouterr()
    assert code == 2 and err == f"<spec>: --checkpoint: {tmp_path / 'missing.pt'}: no such file or run directory\n"
    torch.save(
        {"format": CHECKPOINT_FORMAT, "model": netspec.build_model(specs_dir / "mlp.yaml").state_dict()},
        tmp_path / "other.pt",
    )
    code = main(
        ["export", str(specs_dir / "lenet.yaml"), "--checkpoint", str(tmp_path / "other.pt"), "--format", "onnx"]
    )
    _, err = capsys.readouterr()
    assert code == 2 and "does not match the model" in err and err.count("\n") == 1


def test_help_lists_the_verbs_without_importing_torch() -> None:
    code = (
        "import sys\nfrom netspec.cli import build_parser\n"
        "p = build_parser()\nassert 'torch' not in sys.modules, 'torch imported'\n"
        "print(p.format_help())"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "predict" in r.stdout and "export" in r.stdout


def test_export_never_replaces_its_checkpoint_and_asks_for_force(specs_dir, tmp_path, capsys) -> None:
    spec = specs_dir / "regression.yaml"
    torch.save({"format": CHECKPOINT_FORMAT, "model": netspec.build_model(spec).state_dict()}, tmp_path / "best.pt")
    trained = (tmp_path / "best.pt").read_bytes()
    base = ["export", str(spec), "--checkpoint", str(tmp_path / "best.pt"), "--format", "torchscript"]
    assert main([*base, "--out", str(tmp_path / "best.pt"), "--force"]) == 2
    _, err = capsys.readouterr()
    assert err == (
        f"{spec}: --out: {tmp_path / 'best.pt'} is the checkpoint this command reads; writing it would "
        "destroy it; choose another file name\n"
    )
    assert (tmp_path / "best.pt").read_bytes() == trained
    out = str(tmp_path / "m.pt")
    assert main([*base, "--out", out]) == 0
    assert main([*base, "--out", out]) == 2
    _, err = capsys.readouterr()
    assert err.endswith(f"--out: {out} exists; pass --force to replace it, or choose another name\n"), err
    assert main([*base, "--out", out, "--force"]) == 0
    assert main([*base, "--out", str(tmp_path)]) == 2
    _, err = capsys.readouterr()
    assert err == f"{spec}: --out: {tmp_path} is a folder; give --out a file name\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "m.pt"]  # no temp file left


def test_export_names_its_default_file_after_a_cleaned_spec_name(specs_dir, tmp_path, monkeypatch, capsys) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "up.yaml").write_text(
        (specs_dir / "regression.yaml").read_text().replace("name: regression", "name: ../../x", 1)
    )
    monkeypatch.chdir(work)
    assert main(["export", "up.yaml", "--format", "torchscript"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == ["__.._x.torchscript.pt", "up.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_export_safetensors_round_trips_through_init_weights(specs_dir, tmp_path, capsys) -> None:
    """export --format safetensors -> `init: {weights: file}`: the same weights, key for key;
    the file carries the spec's hash; the output policy refuses to write over it."""
    from netspec.files.safetensorfile import safetensors_metadata
    from netspec.training.rundir import spec_hash

    spec = specs_dir / "lenet.yaml"
    torch.manual_seed(0)
    model = netspec.build_model(spec)
    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict()}, tmp_path / "best.pt")
    out = tmp_path / "lenet.safetensors"
    base = ["export", str(spec), "--checkpoint", str(tmp_path / "best.pt"), "--format", "safetensors"]
    assert main([*base, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"wrote {out} (") and lines[0].endswith("the state_dict of lenet")
    assert lines[1].startswith("read back: 10 tensors, each equal to the model's state_dict")
    meta = safetensors_metadata(out)
    assert meta["spec_sha256"] == spec_hash(netspec.load_spec(spec)) and meta["spec_name"] == "lenet"
    from netspec.training.init import init_model

    loaded_spec = netspec.load_spec(spec, overrides=[f"init.weights={out}"], data_roots=[tmp_path])
    loaded = netspec.build_model(loaded_spec)
    init_model(loaded, loaded_spec.init, base_dir=specs_dir, roots=(tmp_path,))  # as `netspec run` starts
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert main([*base, "--out", str(out)]) == 2  # exists: --force needed
    assert "pass --force" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "lenet.st")]) == 2
    assert capsys.readouterr().err.endswith("; name the output lenet.safetensors\n")
    again = ["export", str(spec), "--checkpoint", str(out), "--format", "safetensors", "--out", str(out), "--force"]
    before = out.read_bytes()
    assert main(again) == 2  # never over the file it reads, --force or not
    assert "is the checkpoint this command reads" in capsys.readouterr().err and out.read_bytes() == before


def test_a_safetensors_checkpoint_is_exported_with_its_weights(specs_dir, tmp_path, capsys) -> None:
    """--checkpoint takes a .safetensors file (a state_dict), as it takes a .pt one."""
    from safetensors.torch import save_file

    spec = specs_dir / "lenet.yaml"
    torch.manual_seed(1)
    model = netspec.build_model(spec).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    out = tmp_path / "lenet.torchscript.pt"
    args = ["export", str(spec), "--checkpoint", str(tmp_path / "w.safetensors"), "--format", "torchscript"]
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(torch.jit.load(str(out))(x), model(x))
