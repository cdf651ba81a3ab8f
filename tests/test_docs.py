"""The docs stay true: the reference pages are generated and current, the examples on the pages
are real (YAML validated, commands run and their output compared), the README keeps the install
and test commands CI runs, and the site builds with `mkdocs build --strict`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from netspec import reference


def _page(repo_root, name: str) -> str:
    return (repo_root / "docs" / name).read_text()


def test_reference_pages_are_current(repo_root):
    """Compared under the torch and torchvision the pages were made with (their signatures and
    lists are in the pages); elsewhere skipped with the reason, as the committed schema is."""
    committed = (repo_root / reference.FOLDER / "cli.md").read_text()
    if reference.made_with(committed) != reference.versions():
        pytest.skip(
            f"docs/reference was generated with {reference.made_with(committed)}; this is "
            f"{reference.versions()}: compared only under the same versions"
        )
    assert reference.stale_pages(repo_root) == [], (
        "docs/reference is stale: run `python -m netspec.reference` and commit the pages"
    )


def test_a_stale_reference_page_is_found(tmp_path, capsys):
    reference.write_reference(tmp_path)
    assert reference.stale_pages(tmp_path) == []
    page = tmp_path / "docs" / "reference" / "cli.md"
    page.write_text(page.read_text().replace("--summary", "--sumary"))
    (tmp_path / "docs" / "reference" / "nodes.md").unlink()
    assert reference.stale_pages(tmp_path) == ["nodes.md", "cli.md"]
    assert reference.main(["--check", str(tmp_path)]) == 1
    assert "cli.md is stale: run `python -m netspec.reference`" in capsys.readouterr().err


def test_the_cli_reference_has_every_command_and_option():
    from netspec.cli import build_parser

    page = reference.cli_page()
    for name, sub in reference._subparsers(build_parser()).items():
        section = page.split(f"## netspec {name}\n", 1)[1].split("\n## netspec ", 1)[0]
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section, f"{name}: {option} missing from the reference"
    assert {"compile", "validate", "schema", "layers", "run", "eval", "predict", "export", "import"} <= set(
        re.findall(r"^## netspec (\S+)$", page, re.M)
    )


def test_the_name_references_have_every_registry_entry():
    from netspec.data.samplers import SAMPLERS
    from netspec.data.sources import SOURCES
    from netspec.data.transforms import TRANSFORMS
    from netspec.nodes.catalog import catalog
    from netspec.nodes.initializers import INIT_FUNCTIONS
    from netspec.training.losses import LOSSES
    from netspec.training.metrics import METRICS
    from netspec.training.optimizers import OPTIMIZERS
    from netspec.training.schedulers import SCHEDULERS

    cat = catalog()
    pages = {
        "nodes": (reference.nodes_page(), [*cat.layers, *cat.ops, *cat.models]),
        "training": (reference.training_page(), [*LOSSES, *METRICS, *OPTIMIZERS, *SCHEDULERS, *INIT_FUNCTIONS]),
        "data": (reference.data_page(), [*SOURCES, *SAMPLERS, *TRANSFORMS]),
    }
    for page, (text, names) in pages.items():
        missing = [n for n in names if f"| `{n}` |" not in text]
        assert not missing, f"{page}: {missing[:5]}"
    assert "| `SGD` | `lr=0.001`, `momentum=0`" in pages["training"][0]  # arguments, params left out
    assert "| `Conv2d` | `in_channels`*, `out_channels`" in pages["nodes"][0]


def test_readme_commands_exist(repo_root):
    text = (repo_root / "README.md").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install torch==2.14.1 torchvision==0.29.1 -e '.[dev]'" in text
    tests = ".venv/bin/python -m pytest && .venv/bin/python -m pytest -m slow"  # both suites
    assert tests in text
    ci = (repo_root / ".ci" / "run").read_text()
    assert ".venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 -e '.[dev]'" in ci
    # a failing suite stops the run (set -e spares a failure on the left of &&), so the floor's
    # result cannot hide it
    assert any(line.startswith(f"{tests} || exit 1") for line in ci.splitlines())
    # the floor: the oldest torch pyproject.toml allows, installed and tested as the README says
    floor = "python3 -m venv .venv-floor && .venv-floor/bin/pip install torch==2.11.0 torchvision==0.26.0 -e '.[dev]'"
    assert floor in text and "torch>=2.11" in (repo_root / "pyproject.toml").read_text()
    assert ".venv-floor/bin/pip install -q torch==2.11.0 torchvision==0.26.0 -e '.[dev]'" in ci
    floor_tests = ".venv-floor/bin/python -m pytest"
    assert floor_tests in text.splitlines() and ci.splitlines()[-1] == floor_tests
    lint = ".venv/bin/ruff check . && .venv/bin/ruff format --check ."  # before the tests, and said so
    assert lint in text
    # in .ci/run it must stop the run: `set -e` spares a failure on the left of `&&`
    assert any(line.startswith(f"{lint} || exit 1") for line in ci.splitlines())
    assert ci.index(lint) < ci.index(tests)


def test_readme_is_a_front_page_that_links_every_page(repo_root):
    """About 300 lines; the rest lives in docs/, and every page there is reachable from it."""
    text = (repo_root / "README.md").read_text()
    assert len(text.splitlines()) <= 330
    pages = sorted(
        p.relative_to(repo_root).as_posix() for p in (repo_root / "docs").rglob("*.md") if p.name != "index.md"
    )
    assert [p for p in pages if f"]({p})" not in text] == []


def test_training_examples_validate(repo_root):
    """Each YAML block of the data and training pages is a valid part of a spec."""
    import yaml

    import netspec

    blocks = [
        b for page in ("data.md", "training.md") for b in re.findall(r"```yaml\n(.*?)```", _page(repo_root, page), re.S)
    ]
    assert len(blocks) >= 4
    base = {
        "name": "m",
        "inputs": {"image": [1, 28, 28], "extra": [3]},
        "nodes": [
            {"flat": {"Flatten": {}}, "from": "image"},
            {"cat": ["flat", "extra"]},
            {"fc": {"Linear": {"out_features": 10}}},
        ],
    }
    for block in blocks:
        spec = dict(base, **yaml.safe_load(block.replace("1e-5", "1.0e-5").replace("1e-2", "1.0e-2")))
        spec.setdefault("loss", "CrossEntropyLoss")
        spec.setdefault("optimizer", {"SGD": {"lr": 0.1}})
        netspec.load_spec(spec)  # checks every training section (param-group names need the model)


def test_graph_and_print_config_examples_are_real_output(repo_root, capsys, monkeypatch):
    """The command-line page's Mermaid picture and --print-config text are what the commands print today."""
    import netspec
    from netspec.cli import main
    from netspec.views.picture import picture_of, to_mermaid

    text = _page(repo_root, "command-line.md")
    (mermaid,) = re.findall(r"```mermaid\n(.*?)\n```", text, re.S)
    graph = netspec.compile_spec(repo_root / "specs" / "two_input_net.yaml").graph
    assert mermaid == to_mermaid(picture_of(graph))
    command = "netspec run specs/logistic_regression.yaml --print-config --epochs 50"
    shown = text.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(repo_root)  # the page's paths are relative to the repository
    assert main(command.split()[1:]) == 0
    assert capsys.readouterr().out == shown


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs-material is not installed (it is in the dev extra: pip install -e '.[dev]')",
)
def test_the_site_builds_strictly(repo_root, tmp_path):
    """`mkdocs build --strict`: every page in the nav, no broken link or anchor, the README's
    front page included on the home page. Offline: no plugin fetches anything."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    home = (tmp_path / "site" / "index.html").read_text()
    assert 'id="install-and-test"' in home and 'id="quick-tour"' in home and "8&lt;" not in home


def _shown(text: str, command: str) -> str:
    """What a page shows after ``$ command``, up to the next command or the block's end."""
    after = text.split(f"$ {command}\n", 1)[1]
    return re.split(r"^\$ |^```", after, maxsplit=1, flags=re.MULTILINE)[0]


def test_readme_tour_commands_are_real_output(repo_root, capsys, monkeypatch):
    """The quick tour's node table in full, and its `--code` lines (the text elides with `...`) in order."""
    from netspec.cli import main

    text = (repo_root / "README.md").read_text()
    monkeypatch.chdir(repo_root)
    command = "netspec compile specs/lenet.yaml"
    assert main(command.split()[1:]) == 0
    assert capsys.readouterr().out == _shown(text, command)
    command = "netspec compile specs/unet.yaml --set n_classes=5 --code"
    assert main(command.split()[1:]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = iter(out)  # every shown line, in order (`line in lines` consumes the output up to it)
    missing = [line for line in _shown(text, command).splitlines() if line != "..." and line not in lines]
    assert missing == [], "the README's --code example is not what the command prints"


def test_readme_python_example_prints_what_it_shows(repo_root, capsys):
    """The MLP family example runs and prints the table shown under it."""
    text = (repo_root / "README.md").read_text()
    code, shown = re.search(
        r"```python\n(import netspec\nfrom netspec import Spec, node\n.*?)```\n\n```text\n(.*?)```", text, re.S
    ).groups()
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out == shown
