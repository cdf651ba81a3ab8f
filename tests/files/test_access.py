"""netspec.files.access: a spec reads only under its own folder and the data roots the user names;
nothing outside is opened, not even to see whether it exists."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.cli import main
from netspec.errors import AccessRefused, SpecError
from netspec.files.access import ENV_VAR, FileAccess, check_roots

from datafiles import write_csv

SPEC = """name: csv_model
inputs: {{x: [4]}}
nodes:
  - fc: {{Linear: {{out_features: 3}}}}
data:
  train: {{source: csv, path: {path}}}
  batch_size: 4
loss: CrossEntropyLoss
optimizer: {{SGD: {{lr: 0.1}}}}
train: {{epochs: 1, device: cpu, progress: line}}
"""


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``home/`` holds the spec, ``shared/data.csv`` lies beside it (outside)."""
    home, shared = tmp_path / "home", tmp_path / "shared"
    home.mkdir()
    write_csv(shared / "data.csv", np.array([0, 1, 2, 1]), np.ones((4, 4), dtype=int))
    return home, shared


def test_inside_is_read_outside_is_refused(layout: tuple[Path, Path]) -> None:
    home, shared = layout
    (home / "sub").mkdir()
    (home / "sub" / "in.csv").write_text("1\n")
    access = FileAccess(home)
    assert access.resolve("sub/in.csv") == (home / "sub" / "in.csv").resolve()
    assert access.resolve("sub/../sub/in.csv") == (home / "sub" / "in.csv").resolve()
    for name in ["../shared/data.csv", str(shared / "data.csv"), "~/../../etc/passwd", "/"]:
        with pytest.raises(AccessRefused, match="is outside the folders this spec may read"):
            access.resolve(name)
    assert FileAccess(home, (shared,)).resolve("../shared/data.csv") == (shared / "data.csv").resolve()


def test_links_are_resolved_before_the_check(layout: tuple[Path, Path]) -> None:
    home, shared = layout
    (home / "out.csv").symlink_to(shared / "data.csv")
    (home / "folder").symlink_to(shared)
    (home / "inner.csv").symlink_to(home / "out.csv")  # a link to a link that leads out
    for name in ["out.csv", "folder/data.csv", "inner.csv"]:
        with pytest.raises(AccessRefused, match="it resolves to"):
            FileAccess(home).resolve(name)
    (home / "real.csv").write_text("1\n")
    (home / "alias.csv").symlink_to(home / "real.csv")  # a link that stays inside is fine
    assert FileAccess(home).resolve("alias.csv") == (home / "real.csv").resolve()


def test_nothing_outside_is_opened(layout: tuple[Path, Path]) -> None:
    """The check comes before any open: a FIFO outside (which an open would block on) is refused
    at once, and a missing file outside is refused the same way (its existence is not revealed)."""
    home, shared = layout
    os.mkfifo(shared / "pipe.csv")
    for name in ["../shared/pipe.csv", "../shared/missing.csv"]:
        with pytest.raises(AccessRefused, match="outside the folders"):
            FileAccess(home).resolve(name)


def test_environment_variable_adds_roots(layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    home, shared = layout
    monkeypatch.setenv(ENV_VAR, os.pathsep.join(["", str(shared)]))
    assert FileAccess(home).resolve("../shared/data.csv") == (shared / "data.csv").resolve()


def test_roots_must_be_folders(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is not a folder"):
        check_roots([tmp_path / "missing"])
    assert check_roots([tmp_path]) == (tmp_path.resolve(),)


def test_cli_data_root_lets_a_run_read_there(layout: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    home, shared = layout
    spec = home / "spec.yaml"
    spec.write_text(SPEC.format(path="../shared/data.csv"))
    out = str(home / "runs")
    assert main(["run", str(spec), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.train.path: `../shared/data.csv`" in err and "--data-root" in err
    assert not (home / "runs").exists()
    assert main(["run", str(spec), "--out", out, "--data-root", str(shared)]) == 0
    assert main(["validate", str(spec), "--data-root", str(shared)]) == 0


def test_python_api_roots_travel_with_the_spec(layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """load_spec(data_roots=...) is what --data-root does; a spec given as text reads under the
    working directory."""
    home, shared = layout
    spec_file = home / "spec.yaml"
    spec_file.write_text(SPEC.format(path=str(shared / "data.csv")))
    with pytest.raises(AccessRefused):
        netspec.train(netspec.load_spec(spec_file), out=home / "runs")
    result = netspec.train(netspec.load_spec(spec_file, data_roots=[shared]), out=home / "runs")
    assert result.epochs == 1
    monkeypatch.chdir(shared)
    text = SPEC.format(path="data.csv")
    assert netspec.train(netspec.load_spec(text), out=home / "runs").epochs == 1
