"""The specs of specs/ as the interop tests use them: small input sizes where a spec allows any
(the weights do not depend on them), the big models marked slow, weights that are not the
initial ones (BatchNorm statistics included), and inputs with their expected outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import netspec
from netspec.api import compile_spec
from netspec.interop.export import flat_outputs, sample_inputs

SPECS = Path(__file__).resolve().parents[2] / "specs"
NAMES = sorted(p.stem for p in SPECS.glob("*.yaml"))

# Per-sample image sizes that keep the tests quick (the networks take any size at or above these).
SMALL = {
    "unet": [3, 36, 44],
    "alexnet_fashion": [1, 96, 96],
    "resnet18": [3, 64, 64],
    "resnet18_finetune": [3, 64, 64],
    "resnet50_extra_input": [3, 64, 64],
    "resnet50_extra_output": [3, 64, 64],
}

# More than a few seconds to build and run on 2 CPU cores (tens of millions of parameters).
SLOW = {
    "alexnet_fashion",
    "resnet18",
    "resnet18_finetune",
    "resnet50_extra_input",
    "resnet50_extra_output",
    "unet",
    "small_resnet",
}


def params(names: list[str] | None = None) -> list:
    """pytest parameters over the specs, the slow ones marked."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names or NAMES]


def compiled(name: str):
    """The compiled spec, its weights and BatchNorm statistics drawn at random (seeded)."""
    overrides = [f"inputs.image.shape={SMALL[name]}"] if name in SMALL else []
    torch.manual_seed(0)
    c = compile_spec(netspec.load_spec(SPECS / f"{name}.yaml", overrides=overrides))
    with torch.no_grad():
        for key, buffer in c.module.state_dict().items():
            if key.endswith(("running_mean", "running_var")):
                buffer.uniform_(0.5, 1.5)
    return c


def expected(c, batch: int = 3, seed: int = 5) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Inputs at ``batch`` and the compiled module's outputs for them (random ops seeded with 0)."""
    inputs = sample_inputs(c.graph, batch, seed)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        outputs = flat_outputs(c.module.eval()(*inputs))
    return inputs, outputs
