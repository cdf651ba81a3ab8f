"""Ejected files (``netspec export --format python``) of imported specs with buffers outside the
state_dict: made by the same init code (a table function copied into the file), written as a
literal, or read from ``NAME_buffers.pt`` beside the file. Each file is run as a person would
run it (imported from its folder) and compared with the compiled spec, same weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from netspec.api import compile_spec, load_spec
from netspec.importer.api import spec_from_module
from netspec.interop import ExportError
from netspec.interop.eject import eject
from netspec.interop.export import export_model


def _load(path: Path, name: str) -> object:
    """A module from its file (tests/ is no package: the importer's test models are read so)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # fx reads the models' source through their module
    spec.loader.exec_module(module)
    return module


bm: Any = _load(Path(__file__).parents[1] / "importer" / "buffer_models.py", "netspec_test_buffer_models")


def _imported(model: nn.Module, shape: tuple[int, ...], folder: Path) -> tuple[Path, nn.Module]:
    """The spec ``netspec import -o`` would write (and its buffers file), compiled, with the model's weights."""
    torch.manual_seed(0)
    imported = spec_from_module(model.eval(), {"x": shape}, name="m")
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensors in imported.files.items():
        torch.save(tensors, folder / name)
    (folder / "m.yaml").write_text(imported.text)
    module = compile_spec(load_spec(folder / "m.yaml")).module.eval()
    module.load_state_dict(model.state_dict(), strict=True)
    return folder / "m.yaml", module


def _run_file(path: Path, state: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """Import the written file from its folder (so it reads what lies beside it), build, load, run."""
    module = _load(path, f"ejected_{path.parent.parent.name}")
    root = [c for n, c in vars(module).items() if isinstance(c, type) and issubclass(c, nn.Module)][-1]
    model = root().eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        return model, model(x)


class BigBuffers(nn.Module):
    """A table init (Swin's index), a zeros buffer and a buffer of 4,800 random values, none persistent."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = bm.WindowBias()  # (B, 9, 8): Swin's relative position index, k_bias zeros
        self.register_buffer("noise", torch.rand(600, 8), persistent=False)  # 4,800 values: no init makes them
        self.register_buffer("scale", torch.zeros(9, 600) + 0.5, persistent=False)  # 5,400 equal values

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 9, 8)
        y = nn.functional.linear(self.inner(x), self.noise)  # (B, 9, 600)
        return (y * self.scale).sum(-1)  # (B, 9)


def test_an_imported_specs_big_buffers_are_remade_or_read_from_the_file_beside_the_ejected_one(
    tmp_path: Path,
) -> None:
    original = BigBuffers()
    spec, module = _imported(original, (9, 8), tmp_path / "spec")
    out = tmp_path / "out" / "m.py"
    lines = export_model(compile_spec(load_spec(spec)), "python", out)
    assert lines[-1].startswith("wrote m_buffers.pt beside it") and (tmp_path / "out" / "m_buffers.pt").exists()
    source = out.read_text()
    assert "def relative_position_index_(" in source  # the same init code, copied
    assert "relative_position_index_(torch.empty(9, 9, dtype=torch.int64), window=[3, 3])" in source
    assert "torch.zeros(8, dtype=torch.float32), persistent=False" in source  # k_bias: zeros, as a person writes
    assert "nn.init.constant_(torch.empty(9, 600, dtype=torch.float32), val=0.5)" in source  # scale: its init
    assert source.count("load_buffer('") == 1 and 'torch.load(path, map_location="cpu", weights_only=True)' in source
    x = torch.randn(3, 9, 8)
    ejected, got = _run_file(out, original.state_dict(), x)
    with torch.no_grad():
        want = module(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    for name, buffer in module.named_buffers():
        assert torch.equal(ejected.get_buffer(name), buffer), name


def test_eject_alone_refuses_a_big_buffer_in_one_line_that_says_what_writes_it(tmp_path: Path) -> None:
    spec, _ = _imported(BigBuffers(), (9, 8), tmp_path)
    with pytest.raises(ExportError) as e:
        eject(compile_spec(load_spec(spec)))
    assert "\n" not in str(e.value) and "values are in no checkpoint" in str(e.value)
    assert "netspec export --format python" in str(e.value)


def test_a_failed_check_leaves_neither_the_file_nor_its_buffers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netspec.interop import export

    spec, _ = _imported(BigBuffers(), (9, 8), tmp_path / "spec")
    monkeypatch.setattr(export, "_compare", lambda *a, **k: (_ for _ in ()).throw(ExportError("differs")))
    with pytest.raises(ExportError):
        export_model(compile_spec(load_spec(spec)), "python", tmp_path / "out" / "m.py")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_the_tables_of_attention_models_are_remade_in_the_ejected_file(tmp_path: Path) -> None:
    original = bm.Tables()
    spec, module = _imported(original, (20, 16, 16), tmp_path / "spec")
    out = tmp_path / "out" / "m.py"
    export_model(compile_spec(load_spec(spec)), "python", out)
    source = out.read_text()
    for table in ("shifted_window_mask_", "attention_bias_index_", "log_relative_coords_"):
        assert f"def {table}(" in source and f"{table}(torch.empty(" in source
    assert not (tmp_path / "out" / "m_buffers.pt").exists()  # every table remade: no file beside it
    x = torch.randn(2, 20, 16, 16)
    _, got = _run_file(out, original.state_dict(), x)
    with torch.no_grad():
        torch.testing.assert_close(got, module(x), rtol=0, atol=0)


class Keyed(nn.Module):
    """A zip over two ModuleLists: the importer writes nodes at keys (`convs.0`, `norms.1`)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 3, 3, padding=1) for _ in range(2)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(3) for _ in range(2)])
        self.register_buffer("scale", torch.rand(3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 8, 8)
        for conv, norm in zip(self.convs, self.norms):
            x = norm(conv(x))
        return x * self.scale


def test_nodes_at_a_key_of_an_imported_spec_are_written_in_their_holders_and_run(tmp_path: Path) -> None:
    original = Keyed()
    for norm in original.norms:  # running statistics that are not the defaults
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 1.5)
    spec, module = _imported(original, (3, 8, 8), tmp_path / "spec")
    assert "  - convs.0: {Conv2d:" in spec.read_text()
    out = tmp_path / "out" / "m.py"
    export_model(compile_spec(load_spec(spec)), "python", out)
    source = out.read_text()
    assert "self.convs = nn.Module()\n        self.convs.add_module('0', nn.Conv2d(" in source
    assert 'convs_0 = getattr(self.convs, "0")(x)' in source  # fx's own escape: a string, never an attribute
    assert "convs.0" not in source.split("class M(nn.Module):")[1]
    x = torch.randn(2, 3, 8, 8)
    _, got = _run_file(out, original.state_dict(), x)
    with torch.no_grad():
        torch.testing.assert_close(got, module(x), rtol=0, atol=0)


def test_every_table_init_copies_into_a_file_and_makes_the_same_values() -> None:
    """Registry-wide: each of netspec's own init functions (not torch.nn.init's), copied as an
    ejected file holds it, fills a tensor as the registry's function does."""
    import inspect

    from netspec.interop.pysource import helper_sources
    from netspec.nodes import initializers
    from netspec.nodes.initializers import INIT_FUNCTIONS

    args = {
        "sinusoidal_": ((6, 8), {}),
        "relative_position_index_": ((10, 10), {"window": [3, 3], "class_token": True}),
        "shifted_window_mask_": ((4, 4, 4), {"size": [4, 4], "window": [2, 2], "shift": [1, 1]}),
        "attention_bias_index_": ((4, 16), {"resolution": [4, 4], "stride": 2}),
        "log_relative_coords_": ((36, 2), {"window": [2, 3]}),
        "log_offsets_": ((3, 5, 2), {"window": [2, 3], "mode": "swin"}),
    }
    tables = [n for n in INIT_FUNCTIONS if getattr(INIT_FUNCTIONS[n], "__module__", "") == initializers.__name__]
    assert sorted(tables) == sorted(args)  # a new table needs its case here
    for name in tables:
        imports, blocks = helper_sources({name: INIT_FUNCTIONS[name]})
        namespace: dict[str, Any] = {}
        exec("\n".join([*imports, "import torch", *blocks]), namespace)  # what the file holds, run alone
        shape, kwargs = args[name]
        dtype = torch.int64 if "index" in name else torch.float32
        got = namespace[name](torch.empty(shape, dtype=dtype), **kwargs)
        want = INIT_FUNCTIONS[name](torch.empty(shape, dtype=dtype), **kwargs)
        assert torch.equal(got, want), name
        assert inspect.getsource(INIT_FUNCTIONS[name]) in blocks


def _big_model(tmp_path: Path, model: nn.Module) -> None:
    """A torchvision or timm model imported, exported as Python, run from its folder, compared."""
    size = tuple(getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224)))
    spec, module = _imported(model, size, tmp_path / "spec")
    out = tmp_path / "out" / "m.py"
    export_model(compile_spec(load_spec(spec)), "python", out)
    x = torch.randn(1, *size)
    _, got = _run_file(out, model.state_dict(), x)
    with torch.no_grad():
        torch.testing.assert_close(got, module(x), rtol=0, atol=0)


@pytest.mark.slow
def test_torchvision_swin_t_imported_then_ejected_runs_as_the_spec(tmp_path: Path) -> None:
    from torchvision import models

    torch.manual_seed(0)
    _big_model(tmp_path, models.swin_t())


@pytest.mark.slow
def test_timm_levit_imported_then_ejected_runs_as_the_spec(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    _big_model(tmp_path, timm.create_model("levit_128s"))


def test_export_in_the_imported_specs_folder_keeps_its_buffers_file_and_replaces_its_own_only_with_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`netspec import -o m.yaml` wrote m.buffers.pt, which the spec reads; `netspec export m.yaml
    --format python` there writes m.py and m_buffers.pt, never over the spec's file."""
    from netspec.cli import main

    spec, _ = _imported(BigBuffers(), (9, 8), tmp_path)
    theirs = (tmp_path / "m.buffers.pt").read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["export", spec.name, "--format", "python"]) == 0
    assert (tmp_path / "m.buffers.pt").read_bytes() == theirs and (tmp_path / "m_buffers.pt").exists()
    (tmp_path / "m.py").unlink()
    capsys.readouterr()
    assert main(["export", spec.name, "--format", "python"]) == 2  # m_buffers.pt is there: --force
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the note: no --checkpoint
    assert err == "m.yaml: --out: m_buffers.pt exists; pass --force to replace it, or choose another name"
    assert not (tmp_path / "m.py").exists()
    assert main(["export", spec.name, "--format", "python", "--force"]) == 0
    assert (tmp_path / "m.buffers.pt").read_bytes() == theirs
