"""What each command imports, and the catalog that lets `--help`, `schema` and `layers` skip torch.

Each check runs the command in a fresh interpreter (``sys.modules`` of this test process is full
of torch) with its own catalog folder, warmed by one run first as on a user's machine after
their first command. Speed itself is measured by ``benchmarks/bench_startup.py``, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netspec.nodes import catalog as catalog_module
from netspec.nodes.catalog import catalog, layer_infos

ROOT = Path(__file__).resolve().parent.parent

# Runs netspec's main() with argv, then prints which of the watched packages got imported.
_SCRIPT = """
import json, sys
from netspec.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # --help
    code = e.code
watched = ["torch", "torchvision", "numpy", "torch._dynamo", "sympy"]
print(json.dumps({"code": code, "imported": [m for m in watched if m in sys.modules]}))
"""


def _imports(argv: list[str], cache: Path) -> list[str]:
    env = {**os.environ, "NETSPEC_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, proc.stderr
    return result["imported"]


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog folder after one first command (which imports torch to fill it)."""
    cache = tmp_path_factory.mktemp("catalog")
    assert "torch" in _imports(["layers", "models"], cache)  # the first run works the catalog out
    assert list(cache.glob("catalog-*.json"))
    return cache


def test_help_imports_no_torch_even_without_a_catalog(tmp_path: Path) -> None:
    assert _imports(["--help"], tmp_path) == []


@pytest.mark.parametrize("argv", [["schema"], ["schema", "--reference"], ["layers"]], ids=" ".join)
def test_schema_and_layers_import_no_torch(warm_cache: Path, argv: list[str]) -> None:
    assert _imports(argv, warm_cache) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "specs/unet.yaml"],
        ["compile", "specs/unet.yaml", "--summary"],
        ["compile", "specs/two_input_net.yaml", "--summary"],
    ],
    ids=" ".join,
)
def test_validate_and_compile_import_only_torch_for_plain_specs(warm_cache: Path, argv: list[str]) -> None:
    """No torchvision, and none of what torch imports on demand: torch._dynamo (the stand-in
    optimizer, the meta batch norm, cat and pad) and sympy (the meta convolution's checks).
    Together they were more than the whole of `import torch`."""
    assert _imports(argv, warm_cache) == ["torch", "numpy"]


def test_a_spec_naming_a_torchvision_model_imports_it(warm_cache: Path) -> None:
    assert "torchvision" in _imports(["validate", "specs/resnet50_extra_input.yaml"], warm_cache)


# ---- the catalog ----------------------------------------------------------------------------


def test_catalog_matches_the_installed_libraries() -> None:
    """What the cached file says is what the registries, filled from torch, hold."""
    from netspec.nodes.catalog import torchvision_model_names
    from netspec.nodes.layers import LAYERS
    from netspec.nodes.ops import OPS

    cat = catalog()
    torch_layers = {n: e for n, e in LAYERS.items() if not e.custom}
    assert list(cat.layers) == list(torch_layers)
    for name, entry in torch_layers.items():
        info = cat.layers[name]
        assert (list(info.params), list(info.inferable), info.var_kwargs) == (
            list(entry.params),
            entry.inferable,
            entry.accepts_var_kwargs,
        ), name
    assert {n: (list(o.params), o.doc) for n, o in cat.ops.items()} == {
        n: (list(o.params), o.doc) for n, o in OPS.items()
    }
    assert list(cat.models) == torchvision_model_names()
    assert layer_infos() == cat.layers  # no netspec.modules entry points installed here


def test_catalog_file_is_keyed_by_versions_and_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Another torch (or Python, or netspec source) is another file: a stale one never answers."""
    monkeypatch.setenv("NETSPEC_CACHE_DIR", str(tmp_path))
    here = catalog_module.cache_file()
    assert here is not None and here.parent == tmp_path
    real = catalog_module.version
    monkeypatch.setattr(catalog_module, "version", lambda d: "9.9.9" if d == "torch" else real(d))
    assert catalog_module.cache_file() not in (None, here)

    def missing(dist: str) -> str:
        raise catalog_module.PackageNotFoundError(dist)

    monkeypatch.setattr(catalog_module, "version", missing)
    assert catalog_module.cache_file() is None  # no metadata: nothing to key by, so no cache


def test_unreadable_catalog_file_is_worked_out_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETSPEC_CACHE_DIR", str(tmp_path))
    path = catalog_module.cache_file()
    assert path is not None
    path.write_text('{"layers": ')  # half a file
    catalog.cache_clear()
    try:
        assert catalog().layers["Linear"].inferable == ("in_features",)
        assert json.loads(path.read_text())["layers"]["Linear"]["inferable"] == ["in_features"]
    finally:
        catalog.cache_clear()


def test_catalog_in_a_folder_that_cannot_be_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NETSPEC_CACHE_DIR", str(blocker / "sub"))  # a folder under a file
    catalog.cache_clear()
    try:
        assert "resnet18" in catalog().models
    finally:
        catalog.cache_clear()
