"""The package type-checks with mypy (configured in pyproject.toml's ``[tool.mypy]``), and its
public signatures are typed: a wrong argument to ``netspec.train`` is a type error, not ``Any``.

One mypy run checks both (about 30 s cold on 2 loaded CPU cores, a few seconds with its cache
in ``.mypy_cache``); the same check from the shell is ``.venv/bin/python -m mypy``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Calls a user might write, each wrong in one argument; mypy must flag each line (so the
# parameter is typed), and infer what the front doors return.
USER_CODE = """\
import netspec

netspec.train(42)  # line 3: a number is not a Spec
netspec.load_spec(3.5)  # line 4: nor a spec source
netspec.compile_spec(None)  # line 5
netspec.evaluate(netspec.load_spec("m.yaml"), split=2)  # line 6
netspec.import_model(["torch.nn:Linear"])  # line 7
reveal_type(netspec.build_model("m.yaml"))  # line 8
reveal_type(netspec.train(netspec.load_spec("m.yaml")).run_dir)  # line 9
try:
    pass
except netspec.NetspecError as err:
    reveal_type(err.exit_code)  # line 13


netspec.register_module(int)  # line 16: not a module
netspec.register_loss("half")(str)  # line 17: nor this


reveal_type(netspec.register_module(netspec.build_model("m.yaml").__class__))  # line 20
reveal_type(netspec.register_loss("half")(type(netspec.build_model("m.yaml"))))  # line 21
"""


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[str]]:
    """mypy's exit code and its lines for the package and :data:`USER_CODE` together."""
    if importlib.util.find_spec("mypy") is None:  # a missing checker fails, never skips: CI runs this
        pytest.fail("mypy is not installed; it is in the dev extra: pip install -e '.[dev]'")
    user = tmp_path_factory.mktemp("types") / "user_code.py"
    user.write_text(USER_CODE)
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}  # this checkout's netspec, not an installed one
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "src/netspec", str(user)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "error: " in done.stdout or done.returncode == 0, done.stdout + done.stderr  # it ran
    return done.returncode, done.stdout.splitlines()


def test_the_package_type_checks(mypy_output: tuple[int, list[str]]) -> None:
    _, lines = mypy_output
    in_package = [line for line in lines if ": error:" in line and "user_code.py:" not in line]
    assert in_package == [], "\n".join(in_package)
    checked = [int(m[1]) for line in lines if (m := re.search(r"checked (\d+) source files", line))]
    assert checked and checked[0] > 50, lines  # it read the package, not just the user code


def test_public_signatures_are_typed(mypy_output: tuple[int, list[str]]) -> None:
    _, lines = mypy_output
    errors = {int(m[1]) for line in lines if (m := re.search(r"user_code\.py:(\d+): error:", line))}
    assert errors == {3, 4, 5, 6, 7, 16, 17}, "\n".join(lines)
    revealed = {
        int(m[1]): m[2]
        for line in lines
        if (m := re.search(r'user_code\.py:(\d+): note: Revealed type is "(.*)"', line))
    }
    assert revealed[8] == "torch.fx.graph_module.GraphModule"
    assert revealed[9] == "pathlib.Path"
    assert revealed[13].removeprefix("builtins.") == "int"
    # the registering decorators give back the class they were given, typed as it
    assert revealed[20] == revealed[21] == "type[torch.fx.graph_module.GraphModule]"
