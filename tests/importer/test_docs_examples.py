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
    (source,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    Path("models").mkdir()
    Path("models/net.py").write_text(source)
    for command in (
        "netspec import models/net.py:Net --input-size 5x8",
        ("netspec import models/net.py:Net --allow-import models/net.py --args depth=4 --input-size 5x8 -o net.yaml"),
    ):
        assert _run(command.split()[1:], capsys) == _shown(section, command)
    assert Path("net.yaml").read_text() == _shown(section, "cat net.yaml")


@pytest.mark.parametrize(("name", "size"), [("mvitv2_tiny", "3x224x224")])
def test_the_refusals_shown_are_the_ones_tested(section: str, name: str, size: str) -> None:
    """test_timm.py runs these models and asserts exactly these lines."""
    from .test_timm import REFUSALS  # here: timm is optional, and the other examples need none

    assert (
        _shown(section, f"netspec import timm:create_model --args model_name={name} --input-size {size}")
        == f"timm:create_model: {REFUSALS[name]}\n"
    )
