"""The ``--summary`` table against torchinfo's, which runs a real forward pass (small inputs here).

Every row's output shape, parameter count, trainable flag and mult-adds must be torchinfo's.
Two deliberate differences: a multi-output model's top row lists every output (torchinfo shows
the first), and "Params size" counts every parameter (torchinfo leaves out those a container
holds itself, such as a declared Parameter node).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchinfo

from netspec.api import Compiled, compile_spec, load_spec
from netspec.views.summary import summary_text
from netspec.views.summary_table import layer_table

ROOT = Path(__file__).resolve().parents[2]


def _compile(name: str, size: str | None) -> Compiled:
    overrides = []
    if size is not None:
        spec = load_spec(ROOT / "specs" / f"{name}.yaml")
        overrides = [f"inputs.{next(iter(spec.inputs))}.shape={[int(d) for d in size.split('x')]}"]
    return compile_spec(load_spec(ROOT / "specs" / f"{name}.yaml", overrides=overrides))


def _torchinfo(c: Compiled, depth: int) -> str:
    inputs = [torch.zeros((1, *v.shape[1:]), dtype=v.dtype) for v in c.graph.inputs.values()]
    return str(
        torchinfo.summary(
            c.module,
            input_data=inputs,
            depth=depth,
            verbose=0,
            device="cpu",
            mode="eval",
            col_names=("output_size", "num_params", "trainable", "mult_adds"),
            row_settings=("var_names",),
        )
    )


def _rows(table: str) -> list[list[str]]:
    """The layer rows, each split into label, shape, params, trainable, mult-adds.

    torchinfo shows 0 mult-adds for a layer whose children it saw no call of (MultiheadAttention
    computes with its out_proj's weights directly); the table shows "--" there, as for any zero.
    """
    body = table.split("\n=")[1]  # after the header's closing line
    rows = [re.split(r"\s{2,}", line.strip()) for line in body.splitlines()[1:] if line.strip()]
    return [row[:-1] + ["--" if row[-1] == "0" else row[-1]] for row in rows]


def _totals(table: str) -> dict[str, str]:
    lines = [line.split(": ") for line in table.splitlines() if ": " in line]
    return {re.sub(r" \(.*\)$", "", k): v for k, v in lines}


@pytest.mark.parametrize(
    "name,size,depth",
    [
        ("lenet", None, 2),
        ("unet", "3x64x64", 3),
        ("resnet18", "3x32x32", 3),
        ("resnet18_finetune", "3x32x32", 2),
        ("two_input_net", None, 2),
        ("transformer_classifier", None, 3),
    ],
)
def test_rows_are_torchinfos(name: str, size: str | None, depth: int) -> None:
    c = _compile(name, size)
    assert _rows(layer_table(c, depth)) == _rows(_torchinfo(c, depth))


@pytest.mark.parametrize("name,size", [("lenet", None), ("unet", "3x64x64"), ("resnet18", "3x32x32")])
def test_totals_are_torchinfos(name: str, size: str | None) -> None:
    c = _compile(name, size)
    ours, theirs = _totals(layer_table(c)), _totals(_torchinfo(c, 2))
    assert ours == {**theirs, "Total mult-adds": ours["Total mult-adds"]}
    assert float(ours["Total mult-adds"]) == pytest.approx(float(theirs["Total mult-adds"]))


def test_multi_output_top_row_lists_every_output() -> None:
    c = _compile("vae", None)
    assert _rows(layer_table(c, 1))[0][:2] == ["Vae (Vae)", "[[1, 784], [1, 20], [1, 20], [1, 1, 28, 28]]"]


def test_summary_runs_no_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table comes from the inferred shapes: no module is called once the model is built."""
    c = compile_spec(ROOT / "specs" / "unet.yaml")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the summary ran a module")

    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)
    text = summary_text(c)
    assert "├─Conv2d (logits)" in text and "[1, 2, 572, 572]" in text and "Total mult-adds (G): 270.59" in text
