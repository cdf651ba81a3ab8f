"""Hostile input at the doors the importer opened: a Buffer's `file` outside the spec's folder,
a buffers file holding pickled code, and names that would reach generated Python (node names
that are keywords or hold quotes and newlines; block parameters named like the file's helpers)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import netspec
from netspec.api import compile_spec
from netspec.errors import SpecError
from netspec.interop import ExportError
from netspec.interop.eject import eject
from netspec.interop.export import export_model


def _buffer_spec(folder: Path, file: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "m.yaml"
    spec.write_text(
        f'name: m\ninputs: {{x: [3]}}\nnodes:\n  - b: {{Buffer: {{file: "{file}"}}}}\n  - y: {{add: [x, b]}}\n'
    )
    return spec


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "sibling"])
def test_a_buffer_file_outside_the_specs_folder_is_refused_in_one_located_line(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "elsewhere" / "t.pt"
    outside.parent.mkdir()
    torch.save(torch.ones(3), outside)
    folder = tmp_path / "specs" / "deep"
    folder.mkdir(parents=True)
    (folder / "link.pt").symlink_to(outside)
    name = {
        "dotdot": "../../elsewhere/t.pt",
        "absolute": str(outside),
        "symlink": "link.pt",  # inside by name, outside once resolved
        "sibling": "../t.pt",
    }[kind]
    if kind == "sibling":
        torch.save(torch.ones(3), tmp_path / "specs" / "t.pt")
    spec = _buffer_spec(folder, name)
    with pytest.raises(SpecError) as e:
        compile_spec(netspec.load_spec(spec))
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{spec}:4:")  # file:line:col of the `file` value
    assert "nodes[0].Buffer.file (b)" in text and "is outside the folders this spec may read" in text
    assert "--data-root" in text  # the fix


def test_a_buffer_file_is_read_with_weights_only_and_its_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.mkdir, (str(marker),))  # what a hostile pickle would do when loaded

    torch.save({"b": Payload()}, tmp_path / "m.buffers.pt")  # a torch file whose pickle calls os.mkdir
    spec = _buffer_spec(tmp_path, "m.buffers.pt")
    with pytest.raises(SpecError) as e:
        compile_spec(netspec.load_spec(spec))
    text = str(e.value)
    assert "holds a pickled Python object" in text and "refused" in text and "\n" not in text
    assert text.startswith(f"{spec}:4:") and "nodes[0].Buffer.file (b)" in text
    assert not marker.exists()


def test_the_ejected_file_reads_its_buffers_file_with_weights_only(tmp_path: Path) -> None:
    """A buffers file swapped for a hostile pickle beside an ejected file: torch refuses it, nothing runs."""
    import importlib.util

    torch.save({"noise": torch.randn(8, 625)}, tmp_path / "t.pt")
    (tmp_path / "m.yaml").write_text(
        "name: m\ninputs: {x: [9, 8]}\nnodes:\n"
        "  - noise: {Buffer: {file: t.pt, key: noise, persistent: false}}\n"
        "  - y: {matmul: [x, noise]}\n"
    )
    out = tmp_path / "out" / "m.py"
    export_model(compile_spec(netspec.load_spec(tmp_path / "m.yaml")), "python", out)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.mkdir, (str(marker),))

    torch.save({"k": Payload()}, out.parent / "m_buffers.pt")
    spec = importlib.util.spec_from_file_location("hostile_buffers_m", out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        module.M()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("class", "is a Python keyword"),
        ("lambda", "is a Python keyword"),
        ('a"b', "is not an identifier"),
        ("it's", "is not an identifier"),
        ("x\ny", "is not an identifier"),
        ("x\\ny", "is not an identifier"),
        ("convs.0\nimport os", "is not an identifier"),
    ],
)
def test_a_node_name_python_cannot_hold_is_refused_before_any_code_is_written(name: str, message: str) -> None:
    spec = {"name": "m", "inputs": {"x": [3]}, "nodes": [{name: {"Linear": {"out_features": 3}}}]}
    with pytest.raises(SpecError) as e:
        netspec.load_spec(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


SHADOW = """name: shadow
inputs: {x: [9, 8]}
blocks:
  B:
    params: {relative_position_index_: required, load_buffer: required, BUFFERS_FILE: required}
    nodes:
      - index: {Buffer: {shape: [9, 9], init: {relative_position_index_: {window: [3, 3]}}, dtype: int64, persistent: false}}
      - noise: {Buffer: {file: t.pt, key: noise, persistent: false}}
      - fc: {Linear: {out_features: $relative_position_index_}, from: x}
      - fc2: {Linear: {out_features: $load_buffer}, from: x}
      - fc3: {Linear: {out_features: $BUFFERS_FILE}, from: x}
      - m: {matmul: [x, noise]}
      - picked: {index: "[:, :, index]", from: m}
      - s: {mean: -1, from: picked}
      - out: {cat: {dim: -1}, from: [fc, fc2, fc3, s]}
nodes:
  - a: {B: {relative_position_index_: 8, load_buffer: 4, BUFFERS_FILE: 2}}
  - b: {B: {relative_position_index_: 16, load_buffer: 5, BUFFERS_FILE: 3}, from: x}
outputs: [a, b]
"""


def test_block_parameters_named_like_the_files_helpers_never_hide_them(tmp_path: Path) -> None:
    """One class for both uses (the same buffers): its constructor arguments are renamed so that
    `relative_position_index_(...)` and `load_buffer(...)` in __init__ still call the helpers."""
    torch.save({"noise": torch.randn(8, 625)}, tmp_path / "t.pt")  # 5,000 values: read by load_buffer
    (tmp_path / "shadow.yaml").write_text(SHADOW)
    c = compile_spec(netspec.load_spec(tmp_path / "shadow.yaml"))
    lines = export_model(c, "python", tmp_path / "out" / "shadow.py")  # runs it and compares
    assert lines[1].startswith("class Shadow: the state_dict loads strictly")
    source = (tmp_path / "out" / "shadow.py").read_text()
    assert source.count("class B(nn.Module):") == 1 and "class B2" not in source
    init = source.split("class B(nn.Module):")[1].split("def forward")[0]
    assert "relative_position_index_(torch.empty(9, 9" in init and "load_buffer('" in init
    signature = init.split("def __init__(")[1].split(")")[0]
    for helper in ("relative_position_index_", "load_buffer", "BUFFERS_FILE"):
        assert f"{helper}:" not in signature and f"{helper}=" not in signature, signature
    with pytest.raises(ExportError, match="in no checkpoint"):
        eject(c)  # no sidecar to put the buffers in: refused, never a file that lacks them


class KeywordChild(torch.nn.Module):
    """A child and a buffer named like Python keywords (torch allows any string)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_module("class", torch.nn.Linear(3, 3))
        self.register_buffer("if", torch.rand(3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3)
        return getattr(self, "class")(x) + getattr(self, "if")


def test_an_imported_child_named_like_a_keyword_is_refused_in_one_line_before_any_code() -> None:
    from netspec.importer.api import spec_from_module

    with pytest.raises(SpecError) as e:
        spec_from_module(KeywordChild().eval(), {"x": (3,)}, name="m")
    assert "`class` is a Python keyword, and a spec's node names are Python attributes" in str(e.value)
    assert "\n" not in str(e.value)
