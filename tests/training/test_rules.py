"""The training sections are checked once, when the spec is loaded: each named entry against its
registry, and the rules across sections (netspec.training.rules). A run and `netspec eval` check
nothing again but what only the run can know."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import netspec.training.rules as rules
from netspec.cli import main
from netspec.errors import SpecError
from netspec.nodes.registry import Registry

from standins import loaders, make_spec, mlp, run


@pytest.mark.parametrize(
    "sections, path, hint",
    [
        ({"optimizer": {"Adamm": {"lr": 1e-3}}}, ("optimizer", "Adamm"), "did you mean `Adam`?"),
        ({"loss": "CrossEntropy"}, ("loss",), "did you mean `CrossEntropyLoss`?"),
        ({"loss": {"outputs": {"logit": "CrossEntropyLoss"}}}, ("loss", "outputs", "logit"), "did you mean `logits`?"),
        ({"train": {"metrics": ["acuracy"]}}, ("train", "metrics", 0), "did you mean `accuracy`?"),
        (
            {"train": {"metrics": [{"top_k_accuracy": {"kk": 5}}]}},
            ("train", "metrics", 0, "top_k_accuracy", "kk"),
            "did you mean `k`?",
        ),
        (
            {"train": {"early_stopping": {"monitor": "val_los"}}},
            ("train", "early_stopping", "monitor"),
            "did you mean `val_loss`?",
        ),
        (
            {"train": {"stop_when": {"monitor": "train_accuracy", "above": 0.99}}},
            ("train", "stop_when", "monitor"),
            "add `accuracy` to train.metrics",
        ),
        (
            {"train": {"checkpoint": {"monitor": "val_top5_accuracy"}}},
            ("train", "checkpoint", "monitor"),
            "add `top5_accuracy` to train.metrics",
        ),
        (
            {"init": {"rules": [{"layer": "Linear", "weight": "xavier"}]}},
            ("init", "rules", 0, "weight"),
            "did you mean `xavier_normal_`",
        ),
        ({"train": {"metrics": ["accuracy", {"accuracy": {"threshold": 0.2}}]}}, ("train", "metrics", 1), ""),
    ],
)
def test_mistakes_are_found_when_the_spec_is_loaded(sections: dict, path: tuple, hint: str) -> None:
    with pytest.raises(SpecError) as err:
        make_spec(**sections)
    assert err.value.path == path
    assert hint in (err.value.hint or ""), err.value.hint


def test_a_full_spec_is_accepted() -> None:
    make_spec(
        loss={"sum": [{"CrossEntropyLoss": {"label_smoothing": 0.1}}, {"Focal": {"gamma": 2}, "weight": 0.5}]},
        optimizer={"AdamW": {"lr": 3e-4}, "groups": [{"params": "0.*", "lr": 1e-4}]},
        scheduler=[{"LinearLR": {"start_factor": 0.1}, "duration": 2}, {"CosineAnnealingLR": {"eta_min": 1e-6}}],
        init={"rules": [{"layer": "Linear", "weight": "xavier_uniform_", "bias": "zeros_"}]},
        train={
            "epochs": 5,
            "metrics": ["accuracy", {"top_k_accuracy": {"k": 2}}],
            "early_stopping": {"monitor": "val_accuracy", "patience": 2},
            "checkpoint": {"monitor": "val_top2_accuracy"},
            "grad_clip": {"max_norm": 1.0, "norm_type": 2},
        },
    )


@pytest.mark.parametrize(
    "missing, hint", [("loss", "loss: CrossEntropyLoss"), ("optimizer", "optimizer: {Adam: {lr: 0.001}}")]
)
def test_a_run_needs_loss_and_optimizer(tmp_path: Path, missing: str, hint: str) -> None:
    spec = make_spec(**{missing: None})  # a model-only spec loads; training it does not
    with pytest.raises(SpecError) as err:
        run(spec, tmp_path)
    assert err.value.path == (missing,) and hint in (err.value.hint or "")
    assert not (tmp_path / "runs").exists()


def test_val_monitors_are_judged_once_the_loaders_are_known(tmp_path: Path) -> None:
    spec = make_spec(train={"early_stopping": {"monitor": "val_loss"}})  # no data section: val may exist
    data = loaders()
    data.val = None
    with pytest.raises(SpecError) as err:
        run(spec, tmp_path, model=mlp(), data=data)
    assert err.value.path == ("train", "early_stopping", "monitor")
    assert "there is no validation data" in (err.value.hint or "")


# --------------------------------------------------------------------------- checked exactly once


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts each registry check (one per named entry of a section) and each run of the
    cross-section rules."""
    counts: Counter = Counter()
    real_check, real_rules = Registry.check, rules.check_training_sections

    def check(self: Registry, call: Any, *args: Any, **kwargs: Any) -> Any:
        counts[self.kind] += 1
        return real_check(self, call, *args, **kwargs)

    def check_rules(spec: Any) -> None:
        counts["rules"] += 1
        real_rules(spec)

    monkeypatch.setattr(Registry, "check", check)
    monkeypatch.setattr(rules, "check_training_sections", check_rules)
    return counts


SEED_000_WITH_SCHEDULER = [
    "--epochs",
    "2",
    "--device",
    "cpu",
    "--set",
    "scheduler={StepLR: {step_size: 1}}",
    "--set",
    "init={rules: [{layer: Linear, weight: zeros_, bias: zeros_}]}",
]


def test_a_two_epoch_run_checks_each_section_once(repo_root: Path, tmp_path: Path, counted: Counter) -> None:
    spec = repo_root / "specs" / "logistic_regression.yaml"
    assert main(["run", str(spec), "--out", str(tmp_path), *SEED_000_WITH_SCHEDULER]) == 0
    assert counted == {"loss": 1, "optimizer": 1, "scheduler": 1, "metric": 1, "init function": 2, "rules": 1}


def test_eval_gets_the_same_checks_as_run(
    repo_root: Path, tmp_path: Path, counted: Counter, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = repo_root / "specs" / "logistic_regression.yaml"
    assert main(["run", str(spec), "--out", str(tmp_path), *SEED_000_WITH_SCHEDULER]) == 0
    counted.clear()
    (checkpoint,) = tmp_path.glob("*/last.pt")
    assert (
        main(
            [
                "eval",
                str(spec),
                "--checkpoint",
                str(checkpoint),
                "--split",
                "val",
                "--device",
                "cpu",
                "--set",
                "data.val={fraction: 0.2}",
                *SEED_000_WITH_SCHEDULER[4:],
            ]
        )
        == 0
    )
    assert counted == {"loss": 1, "optimizer": 1, "scheduler": 1, "metric": 1, "init function": 2, "rules": 1}
    # ... and a mistake either command would meet is reported by both, in the same words
    capsys.readouterr()
    bad = ["--set", "optimizer={SGDD: {lr: 0.1}}"]
    assert main(["run", str(spec), "--out", str(tmp_path), *bad]) == 2
    run_err = capsys.readouterr().err
    assert main(["eval", str(spec), "--checkpoint", str(checkpoint), *bad]) == 2
    assert capsys.readouterr().err == run_err
    assert "unknown optimizer `SGDD`" in run_err and "did you mean `SGD`?" in run_err
