"""The docs' `netspec import` page (docs/import.md) shows real output: the commands are run here
and their output compared with the text the page shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netspec.cli import main


@pytest.fixture
def section(repo_root: Path) -> str:
    return (repo_root / "docs" / "import.md").read_text()


def _shown(section: str, command: str) -> str:
    """What the page shows after ``$ command``, up to the next command or the block's end."""
    after = section.split(f"$ {command}\n", 1)[1]
    return re.split(r"^\$ |^```", after, maxsplit=1, flags=re.MULTILINE)[0]


def _run(argv: list[str], capsys) -> str:
    main(argv)
    out, err = capsys.readouterr()
    return out + err


def test_the_resnet18_example(section: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    command = "netspec import torchvision.models:resnet18 -o resnet18.yaml"
    assert _run(command.split()[1:], capsys) == _shown(section, command)
    assert Path("resnet18.yaml").read_text() == _shown(section, "cat resnet18.yaml")
    table = _run(["compile", "resnet18.yaml"], capsys).splitlines()
    shown = [line for line in _shown(section, "netspec compile resnet18.yaml").splitlines() if line != "..."]
    assert [line for line in table if line in shown] == shown


def test_the_user_file_example(section: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("models").mkdir()
    Path("models/net.py").write_text(_source(section, "class Net("))
    for command in (
        "netspec import models/net.py:Net --input-size 5x8",
        ("netspec import models/net.py:Net --allow-import models/net.py --args depth=4 --input-size 5x8 -o net.yaml"),
    ):
        assert _run(command.split()[1:], capsys) == _shown(section, command)
    assert Path("net.yaml").read_text() == _shown(section, "cat net.yaml")


def _source(section: str, marker: str) -> str:
    """The page's Python block that holds ``marker``."""
    (source,) = [block for block in re.findall(r"```python\n(.*?)```", section, re.DOTALL) if marker in block]
    return source


def test_the_refusal_shown_is_the_importers(section: str, tmp_path: Path, capsys, monkeypatch) -> None:
    """A model the spec language cannot hold: the page shows the importer's real line and exit code."""
    monkeypatch.chdir(tmp_path)
    Path("models").mkdir()
    Path("models/gate.py").write_text(_source(section, "class Gate("))
    command = "netspec import models/gate.py:Gate --allow-import models/gate.py --input-size 8"
    assert main(command.split()[1:]) == 2
    out, err = capsys.readouterr()
    assert out + err == _shown(section, command)
