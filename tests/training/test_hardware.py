"""Hardware and reproducibility: device checks, deterministic mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netspec.errors import TrainingError

from standins import make_spec, run


def test_cuda_asked_but_absent(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TrainingError, match="CUDA is not available") as err:
        run(make_spec(train={"device": "cuda:0"}), tmp_path)
    assert err.value.path == ("train", "device")


def test_deterministic_flag_is_restored(tmp_path: Path) -> None:
    before = torch.are_deterministic_algorithms_enabled()
    run(make_spec(train={"deterministic": True}), tmp_path)
    assert torch.are_deterministic_algorithms_enabled() == before
