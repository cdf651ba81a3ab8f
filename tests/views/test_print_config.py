"""``--print-config``: every spec in specs/ printed resolved (defaults filled in) reads back, through
``netspec validate``, to an equal spec; compile, validate and run print it and exit 0 without
compiling or training."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

import netspec
import netspec.views.print_config
from netspec.cli import main
from netspec.compiler.source import MAX_BYTES
from netspec.errors import SpecError
from netspec.views.print_config import MAX_PRINTED, resolved_config

from speclist import spec_params

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", spec_params(SPECS))
def test_printed_config_validates_to_the_same_spec(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(path), "--print-config"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# {path}: resolved (bases merged, --set applied, defaults filled in)\n")
    printed = tmp_path / path.name  # relative paths are kept as written; validate reads no data
    printed.write_text(text, encoding="utf-8")
    assert main(["validate", str(printed)]) == 0, capsys.readouterr().err
    assert netspec.load_spec(printed) == netspec.load_spec(path)


def test_defaults_are_filled_in_and_set_applied(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "compile",
                str(ROOT / "specs" / "lenet.yaml"),
                "--print-config",
                "--set",
                "n_classes=5",
                "--set",
                "train.epochs=3",
            ]
        )
        == 0
    )
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["params"] == {"n_classes": 5}
    assert data["inputs"] == {"image": {"shape": [1, 32, 32], "dtype": "float32"}}  # short form, filled in
    assert data["train"]["epochs"] == 3 and data["train"]["precision"] == "fp32" and data["train"]["seed"] == 0
    assert data["data"]["loader"]["num_workers"] == 0  # a default nobody wrote
    assert "extends" not in data and "$schema" not in data


def test_short_lists_read_like_a_person_wrote_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(ROOT / "specs" / "lenet.yaml"), "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "    shape: [1, 32, 32]\n" in text and "    Conv2d: {out_channels: 6, kernel_size: 5}\n" in text


def test_run_prints_and_does_not_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "run",
                str(ROOT / "specs" / "logistic_regression.yaml"),
                "--print-config",
                "--epochs",
                "7",
                "--out",
                str(tmp_path / "runs"),
            ]
        )
        == 0
    )
    assert yaml.safe_load(capsys.readouterr().out)["train"]["epochs"] == 7
    assert not (tmp_path / "runs").exists()


def test_validate_prints_one_document_per_spec(capsys: pytest.CaptureFixture[str]) -> None:
    specs = [str(ROOT / "specs" / f"{n}.yaml") for n in ("lenet", "mlp")]
    assert main(["validate", *specs, "--print-config"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["name"] for d in docs] == ["lenet", "mlp"]


def test_a_broken_spec_is_still_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\ninputs: {x: [2]}\nnodes: [Linaer]\n")
    assert main(["compile", str(bad), "--print-config"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"{bad}:3:9: ") and "did you mean `Linear`?" in err[0]


# ---- a bounded size --------------------------------------------------------------------------------


def test_a_long_value_repeated_is_refused_before_the_text_is_built() -> None:
    """3 000 params sharing one 1 MB string would print 3 GB: refused by counting, in little memory."""
    big = "x" * 1_000_000
    spec = netspec.load_spec(
        {"name": "m", "inputs": {"x": [3]}, "nodes": ["ReLU"], "params": {f"p{i}": big for i in range(3000)}}
    )
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(SpecError) as err:
            resolved_config(spec, "m.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0 and peak < 20 * 2**20
    assert str(err.value) == (
        f"<dict>: params.p5: --print-config: the resolved spec is over {MAX_PRINTED:,} "
        "characters, the limit for a spec file; refused; is a long value repeated through "
        "aliases or bases?"
    )


def test_aliases_repeating_a_value_are_one_line_from_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same through the CLI, with the limit scaled down (the loader's own expansion limit is
    MAX_BYTES too, so a file that reads could print only a little over it). An aliased value is
    located where it is written, at its anchor."""
    monkeypatch.setattr(netspec.views.print_config, "MAX_PRINTED", 5_000)
    spec = tmp_path / "aliases.yaml"
    spec.write_text(
        "name: m\ndescription: &d " + "x" * 1000 + "\ninputs: {x: [3]}\nnodes: [ReLU]\n"
        "params: {" + ", ".join(f"p{i}: *d" for i in range(8)) + "}\n"
    )
    assert main(["validate", str(spec)]) == 0  # the spec itself is fine
    capsys.readouterr()
    assert main(["validate", str(spec), "--print-config"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"{spec}:2:14: params.p3: --print-config: the resolved spec is over 5,000 characters, the limit for a spec "
        "file; refused; is a long value repeated through aliases or bases?"
    ]


def test_the_limit_is_the_size_a_spec_file_may_have() -> None:
    assert MAX_PRINTED == MAX_BYTES
