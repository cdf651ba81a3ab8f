"""The sweep: section is checked when the spec loads: each mistake is one located line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netspec import SpecError, load_spec

from sweepspecs import write_sweep_spec


def _error(tmp_path: Path, params: str, **kw: object) -> str:
    path = write_sweep_spec(tmp_path, params=params, **kw)  # type: ignore[arg-type]
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_a_valid_sweep_loads(tmp_path: Path) -> None:
    spec = load_spec(write_sweep_spec(tmp_path))
    assert spec.sweep is not None and spec.sweep.total == 4
    assert [s.kind for s in spec.sweep.params.values()] == ["choice", "loguniform"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # a float space on an integer key: found with a fractional value
        ("    train.epochs: {uniform: [1, 4]}", r"uniform space does not fit `train.epochs`.*valid integer"),
        # strings for an integer spec parameter (a layer's width)
        ("    width: {choice: [a, b]}", r"`width` is an integer parameter.*cannot hold it"),
        ("    width: {uniform: [2, 8]}", r"`width` is an integer parameter"),
        ("    train.epochz: {int: [1, 2]}", r"unknown key `epochz`; did you mean `epochs`"),
        ("    widht: {int: [1, 2]}", r"no such spec parameter; did you mean `width`"),
        ("    optimizer.args.lrr: {uniform: [0.1, 0.2]}", r"SGD has no argument `lrr`.*did you mean `lr`"),
        ("    optimizer.args.lr: {uniform: [-1, 0.1]}", r"uniform space does not fit `optimizer.args.lr`"),
        ("    nodes.0.out_features: {int: [1, 2]}", r"through a spec parameter.*sweep `width`"),
        ("    width: {int: [4, 2]}", r"needs low < high"),
        ("    optimizer.args.lr: {loguniform: [0, 1]}", r"needs low > 0"),
        ("    width: {int: [1, 2], choice: [1]}", r"exactly one of"),
        ("    width: {grid: [4, 8]}\n    optimizer.args.lr: {uniform: [0.1, 0.2]}", r"grids alone"),
    ],
)
def test_a_space_that_cannot_hold_its_key_is_one_located_line(tmp_path: Path, params: str, expected: str) -> None:
    text = _error(tmp_path, params)
    assert re.search(r"clf\.yaml:\d+:\d+: sweep\.params", text), text
    assert re.search(expected, text), text


def test_the_metric_is_one_the_run_produces(tmp_path: Path) -> None:
    path = write_sweep_spec(tmp_path)
    path.write_text(path.read_text().replace("metric: val_loss", "metric: val_acc"))
    with pytest.raises(SpecError, match=r"clf\.yaml:\d+:\d+: sweep\.metric: no metric `val_acc`.*val_accuracy"):
        load_spec(path)


def test_a_grid_sweep_runs_every_combination_at_most(tmp_path: Path) -> None:
    spec = load_spec(
        write_sweep_spec(tmp_path, trials=50, params="    width: {grid: [4, 8]}\n    train.epochs: {grid: [1, 2, 3]}")
    )
    assert spec.sweep is not None and spec.sweep.sampler_name == "grid" and spec.sweep.total == 6


def test_a_trial_spec_is_plain(tmp_path: Path) -> None:
    from netspec.sweep.trial import trial_overrides

    spec = load_spec(write_sweep_spec(tmp_path), overrides=trial_overrides([], {"width": 16, "optimizer.args.lr": 0.1}))
    assert spec.sweep is None and spec.params["width"] == 16 and "sweep" not in spec.to_yaml()
