"""The README stays true: its reference section is generated, its Python examples run."""

from __future__ import annotations

import re

from netspec.compiler.schema import reference_markdown


def _readme(repo_root) -> str:
    return (repo_root / "README.md").read_text()


def test_reference_section_matches_the_models(repo_root):
    text = _readme(repo_root)
    m = re.search(r"<!-- reference:start -->\n(.*)<!-- reference:end -->", text, re.S)
    assert m, "README lost its reference markers"
    assert m.group(1) == reference_markdown(), (
        "README's key reference is stale: run `python -m netspec schema --reference` and paste it "
        "between the reference markers (or `python tests/test_readme.py`)")


def test_readme_commands_exist(repo_root):
    text = _readme(repo_root)
    assert "python3 -m venv .venv && .venv/bin/pip install torch==2.14.1 torchvision==0.29.1 -e '.[dev]'" in text
    tests = ".venv/bin/python -m pytest && .venv/bin/python -m pytest -m slow"  # both suites
    assert tests in text
    ci = (repo_root / ".ci" / "run").read_text()
    assert ".venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 -e '.[dev]'" in ci
    assert tests in ci.splitlines()


def update_readme(path) -> None:
    text = path.read_text()
    new = re.sub(r"(<!-- reference:start -->\n).*(<!-- reference:end -->)",
                 lambda m: m.group(1) + reference_markdown() + m.group(2), text, flags=re.S)
    path.write_text(new)


if __name__ == "__main__":
    from pathlib import Path

    update_readme(Path(__file__).resolve().parent.parent / "README.md")


def test_training_examples_in_the_readme_validate(repo_root, tmp_path):
    """Each YAML block of the README's training section is a valid part of a spec."""
    import yaml

    import netspec

    text = _readme(repo_root)
    section = text[text.index("## Training: `netspec run`"):text.index("## Command line")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) >= 4
    base = {"name": "m", "inputs": {"image": [1, 28, 28], "extra": [3]},
            "nodes": [{"cat": {}, "from": ["flat", "extra"]} if False else {"flat": {"Flatten": {}}, "from": "image"},
                      {"cat": ["flat", "extra"]}, {"fc": {"Linear": {"out_features": 10}}}]}
    for block in blocks:
        spec = dict(base, **yaml.safe_load(block.replace("1e-5", "1.0e-5").replace("1e-2", "1.0e-2")))
        spec.setdefault("loss", "CrossEntropyLoss")
        spec.setdefault("optimizer", {"SGD": {"lr": 0.1}})
        netspec.load_spec(spec)  # checks every training section (param-group names need the model)


def test_graph_and_print_config_examples_are_real_output(repo_root, capsys, monkeypatch):
    """The README's Mermaid picture and --print-config text are what the commands print today."""
    import netspec
    from netspec.cli import main
    from netspec.views.picture import picture_of, to_mermaid

    text = _readme(repo_root)
    (mermaid,) = re.findall(r"```mermaid\n(.*?)\n```", text, re.S)
    graph = netspec.compile_spec(repo_root / "specs" / "two_input_net.yaml").graph
    assert mermaid == to_mermaid(picture_of(graph))
    command = "netspec run specs/logistic_regression.yaml --print-config --epochs 50"
    shown = text.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(repo_root)  # the README's paths are relative to the repository
    assert main(command.split()[1:]) == 0
    assert capsys.readouterr().out == shown
