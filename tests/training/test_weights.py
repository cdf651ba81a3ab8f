"""Weights from files: prefixes, partial loads, shape mismatches, refused pickles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from netspec.errors import AccessRefused, CheckpointError
from netspec.training.spec import WeightsSpec
from netspec.training.weights import load_weights

from standins import Small, logged, make_spec, mlp, run


def test_load_state_dict_with_dataparallel_prefix(tmp_path: Path) -> None:
    src = Small()
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "dp.pt")
    dst = Small()
    with logged() as lines:
        load_weights(dst, WeightsSpec(path="dp.pt"), base_dir=tmp_path)
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)
    assert "removed DataParallel prefix `module.`" in lines[0] and "loaded 9/9 tensors" in lines[0]


def test_whole_pickled_model_is_refused(tmp_path: Path) -> None:
    torch.save(Small(), tmp_path / "whole.pt")  # seed 003: torch.save(model, save_path)
    with pytest.raises(CheckpointError) as err:
        load_weights(Small(), WeightsSpec(path="whole.pt"), base_dir=tmp_path)
    assert "a whole pickled model" in str(err.value) and "weights_only=True" in str(err.value)
    assert "state_dict()" in (err.value.hint or "")


def test_partial_load_reports_missing_and_unexpected(tmp_path: Path) -> None:
    state = {k: v for k, v in Small().state_dict().items() if not k.startswith("fc.")}
    state["head.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(
        CheckpointError, match=r"2 model keys missing .*fc.weight, fc.bias.*1 file keys not in the model"
    ):
        load_weights(Small(), WeightsSpec(path="w.pt"), base_dir=tmp_path)
    with logged() as lines:
        load_weights(Small(), WeightsSpec(path="w.pt", strict=False), base_dir=tmp_path)
    assert "loaded 7/9 tensors" in lines[0] and "kept from init: fc.weight, fc.bias" in lines[0]
    assert "ignored from the file: head.weight" in lines[0]


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    state = Small().state_dict()
    state["fc.weight"] = torch.zeros(10, 4)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"`fc.weight` has shape \(10, 4\) in w.pt but \(2, 4\) in the model"):
        load_weights(Small(), WeightsSpec(path="w.pt", strict=False), base_dir=tmp_path)


def test_prefixes_and_nested_state_dicts(tmp_path: Path) -> None:
    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = Small()

    src = Small()
    torch.save({"epoch": 3, "state_dict": src.state_dict()}, tmp_path / "ckpt.pt")  # found automatically
    dst = Wrapped()
    load_weights(dst, WeightsSpec.model_validate({"path": "ckpt.pt", "add_prefix": "net."}), base_dir=tmp_path)
    torch.testing.assert_close(dst.net.fc.weight, src.fc.weight)
    torch.save({"weights_v2": {f"backbone.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "b.pt")
    dst2 = Small()
    load_weights(
        dst2,
        WeightsSpec.model_validate({"path": "b.pt", "key": "weights_v2", "strip_prefix": "backbone."}),
        base_dir=tmp_path,
    )
    torch.testing.assert_close(dst2.conv.weight, src.conv.weight)


def test_bad_weight_files(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for name, text in [("missing.pt", "not found"), ("junk.pt", r"cannot be read \(truncated or not a PyTorch file\)")]:
        with pytest.raises(CheckpointError, match=text):
            load_weights(Small(), WeightsSpec(path=name), base_dir=tmp_path)
    torch.save({"epoch": 1}, tmp_path / "nostate.pt")
    with pytest.raises(CheckpointError, match="no state_dict found") as err:
        load_weights(Small(), WeightsSpec(path="nostate.pt"), base_dir=tmp_path)
    assert "key:" in (err.value.hint or "")


def test_init_then_weights_in_a_run(tmp_path: Path) -> None:
    src = mlp(3)
    torch.save(src.state_dict(), tmp_path / "pre.pt")
    spec = make_spec(
        optimizer={"SGD": {"lr": 0.0}},
        train={"epochs": 1},
        init={"rules": [{"layer": "Linear", "bias": "ones_"}], "weights": "pre.pt"},
    )
    result = run(spec, tmp_path, base_dir=tmp_path)  # the spec's folder: where it may read
    torch.testing.assert_close(result.model[0].bias, src[0].bias)  # the file wins over the rule
    assert "init rules[0] Linear" in result.log and "loaded 4/4 tensors" in result.log


def test_weights_outside_the_spec_folder_are_refused(tmp_path: Path) -> None:
    """A spec reads only under its folder and the data roots: `../`, absolute paths and links
    that lead out are refused before the file is opened."""
    (tmp_path / "spec").mkdir()
    torch.save(Small().state_dict(), tmp_path / "outside.pt")
    (tmp_path / "spec" / "link.pt").symlink_to(tmp_path / "outside.pt")
    for name in ["../outside.pt", str(tmp_path / "outside.pt"), "link.pt"]:
        with pytest.raises(AccessRefused, match="outside the folders this spec may read") as err:
            load_weights(Small(), WeightsSpec(path=name), base_dir=tmp_path / "spec")
        assert err.value.path == ("init", "weights", "path") and "--data-root" in (err.value.hint or "")
    load_weights(Small(), WeightsSpec(path="link.pt"), base_dir=tmp_path / "spec", roots=(tmp_path,))


def test_weights_that_are_not_finite_are_refused(tmp_path: Path) -> None:
    state = Small().state_dict()
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan.pt holds weights that are not finite \(fc.weight\)"):
        load_weights(Small(), WeightsSpec(path="nan.pt"), base_dir=tmp_path)


# ---- safetensors ---------------------------------------------------------------------------


def test_safetensors_loads_as_the_same_state_dict_saved_with_torch_save(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = Small()
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(src.state_dict(), tmp_path / "w.pt")
    a, b = Small(), Small()
    with logged() as lines:
        load_weights(a, WeightsSpec(path="w.safetensors"), base_dir=tmp_path)
    load_weights(b, WeightsSpec(path="w.pt"), base_dir=tmp_path)
    for k, v in src.state_dict().items():
        assert torch.equal(a.state_dict()[k], v) and torch.equal(b.state_dict()[k], v)
    assert "loaded 9/9 tensors" in lines[0]


def _saved(tmp_path: Path, state: dict[str, torch.Tensor]) -> str:
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "w.safetensors"))
    return "w.safetensors"


def test_safetensors_wrong_key_is_one_line_with_a_did_you_mean(tmp_path: Path) -> None:
    state = Small().state_dict()
    state["fc.wieght"] = state.pop("fc.weight")
    with pytest.raises(CheckpointError) as err:
        load_weights(Small(), WeightsSpec(path=_saved(tmp_path, state)), base_dir=tmp_path)
    assert str(err.value) == (
        "<spec>: init.weights: w.safetensors does not match the model: 1 model keys missing from the file "
        "(fc.weight); 1 file keys not in the model (fc.wieght); did you mean `fc.weight`?"
    )


def test_safetensors_wrong_shape_names_the_key_and_both_shapes(tmp_path: Path) -> None:
    state = Small().state_dict()
    state["fc.weight"] = torch.zeros(3, 4)
    with pytest.raises(CheckpointError) as err:
        load_weights(Small(), WeightsSpec(path=_saved(tmp_path, state)), base_dir=tmp_path)
    assert "\n" not in str(err.value)
    assert "`fc.weight` has shape (3, 4) in w.safetensors but (2, 4) in the model" in str(err.value)


def test_safetensors_truncated_is_one_line_naming_the_file(tmp_path: Path) -> None:
    name = _saved(tmp_path, Small().state_dict())
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_weights(Small(), WeightsSpec(path=name), base_dir=tmp_path)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"<spec>: init.weights.path: {tmp_path / name} cannot be read (truncated")


def test_safetensors_outside_the_allowed_folders_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _saved(outside, Small().state_dict())
    (tmp_path / "spec").mkdir()
    with pytest.raises(AccessRefused):
        load_weights(Small(), WeightsSpec(path="../elsewhere/w.safetensors"), base_dir=tmp_path / "spec")


def test_a_file_with_tied_weights_written_once_loads_strictly(tmp_path: Path) -> None:
    """safetensors' save_model writes tied tensors under one name; the other loads through it."""
    from safetensors.torch import save_model

    def tied() -> nn.Module:
        m = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
        m[1].weight = m[0].weight
        return m

    torch.manual_seed(0)
    src = tied()
    save_model(src, str(tmp_path / "t.safetensors"))
    dst = tied()
    with logged() as lines:
        load_weights(dst, WeightsSpec(path="t.safetensors"), base_dir=tmp_path)
    assert torch.equal(dst[0].weight, src[0].weight) and dst[1].weight is dst[0].weight
    assert "loaded 2/2 tensors" in lines[0] and "tied to a key in the file" in lines[0], lines
