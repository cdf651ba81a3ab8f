"""Evaluation of a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from netspec.errors import SpecError
from netspec.training.evaluate import evaluate

from standins import loaders, make_spec, mlp, run


def test_evaluate_checkpoint(tmp_path: Path) -> None:
    spec = make_spec(train={"epochs": 2, "metrics": ["accuracy"]})
    result = run(spec, tmp_path)
    values = evaluate(spec, checkpoint=result.run_dir / "last.pt", model=mlp(5), loaders=loaders())
    assert values["val_loss"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)
    assert values["val_accuracy"] == pytest.approx(result.history[-1]["val_accuracy"])
    with pytest.raises(SpecError, match="no `test` split"):
        evaluate(spec, checkpoint=result.run_dir / "last.pt", split="test", model=mlp(), loaders=loaders())
