"""timm's model families, each at its smallest size, imported and checked by the importer's own
round trip (the spec compiles, takes the model's state_dict strictly and gives the same outputs
in eval mode). A family is a module of `timm.models` (`timm.list_modules()`); its model here is
the one with the fewest parameters. The families netspec cannot import are listed with the
one-line reason, and asserted to fail with exactly that line, so a fix shows.

A few small families run in the default suite; all of them with `pytest -m slow`. The counts
the docs state are computed from these tables by `test_the_docs_state_the_counts_of_the_lists`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netspec.errors import SpecError
from netspec.importer.api import spec_from_module

from . import test_torchvision as tv

timm = pytest.importorskip("timm")

# family (a timm.models module) -> its smallest model
FAMILIES = {
    "beit": "beit_base_patch16_224",
    "byoanet": "halonet_h1",
    "byobnet": "test_byobnet",
    "cait": "cait_xxs24_224",
    "coat": "coat_tiny",
    "convit": "convit_tiny",
    "convmixer": "convmixer_768_32",
    "convnext": "test_convnext",
    "cpubone": "cpubone_nano",
    "crossvit": "crossvit_tiny_240",
    "csatv2": "csatv2",
    "cspnet": "cs3darknet_focus_s",
    "cspnext": "cspnext_tiny",
    "davit": "davit_tiny",
    "deepseek_vit": "deepseek_vit_412m",
    "deit": "deit_tiny_patch16_224",
    "densenet": "densenet121",
    "dla": "dla46x_c",
    "dpn": "dpn48b",
    "edgenext": "edgenext_xx_small",
    "efficientformer": "efficientformer_l1",
    "efficientformer_v2": "efficientformerv2_s0",
    "efficientnet": "test_efficientnet",
    "efficientvim": "efficientvim_m1",
    "efficientvit_mit": "efficientvit_b0",
    "efficientvit_msra": "efficientvit_m0",
    "eva": "vit_tiny_patch16_dinov3_qkvb",
    "fasternet": "fasternet_t0",
    "fastvit": "fastvit_t8",
    "focalnet": "focalnet_tiny_srf",
    "gcvit": "gcvit_xxtiny",
    "gemma4_vit": "gemma4_vit_167m",
    "ghostnet": "ghostnet_050",
    "hardcorenas": "hardcorenas_b",
    "hgnet": "hgnetv2_b0",
    "hiera": "hiera_tiny_224",
    "hieradet_sam2": "sam2_hiera_tiny",
    "hrnet": "hrnet_w18_small",
    "iformer": "iformer_t",
    "inception_next": "inception_next_atto",
    "inception_resnet_v2": "inception_resnet_v2",
    "inception_v3": "inception_v3",
    "inception_v4": "inception_v4",
    "lcnetv2": "lcnetv2_small",
    "levit": "levit_128s",
    "lowformer": "lowformer_b0",
    "mambaout": "test_mambaout",
    "maxxvit": "test_coatnet",
    "metaformer": "poolformerv2_s12",
    "mlp_mixer": "gmlp_ti16_224",
    "mobilenetv3": "mobilenetv3_small_050",
    "mobilenetv5": "mobilenetv5_base",
    "mobilevit": "mobilevit_xxs",
    "mvitv2": "mvitv2_tiny",
    "naflexvit": "naflexvit_base_patch16_parfac_gap",
    "nasnet": "nasnetalarge",
    "nest": "nest_tiny",
    "nextvit": "nextvit_small",
    "nfnet": "test_nfnet",
    "pit": "pit_ti_224",
    "pnasnet": "pnasnet5large",
    "pvt_v2": "pvt_v2_b0",
    "qwen3_vit": "qwen3_vit_88m",
    "rdnet": "rdnet_tiny",
    "regnet": "regnetx_002",
    "repghost": "repghostnet_050",
    "repvit": "repvit_m1",
    "res2net": "res2next50",
    "resnest": "resnest14d",
    "resnet": "test_resnet",
    "resnetv2": "resnetv2_18",
    "rexnet": "rexnet_100",
    "selecsls": "selecsls42",
    "senet": "legacy_seresnet18",
    "sequencer": "sequencer2d_s",
    "shvit": "shvit_s1",
    "sknet": "skresnet18",
    "starnet": "starnet_s050",
    "swiftformer": "swiftformer_xs",
    "swin_transformer": "swin_tiny_patch4_window7_224",
    "swin_transformer_v2": "swinv2_tiny_window8_256",
    "swin_transformer_v2_cr": "swinv2_cr_tiny_224",
    "tiny_vit": "tiny_vit_5m_224",
    "tnt": "tnt_s_legacy_patch16_224",
    "tresnet": "tresnet_m",
    "twins": "twins_svt_small",
    "vgg": "vgg11",
    "visformer": "visformer_tiny",
    "vision_transformer": "test_vit",
    "vision_transformer_hybrid": "vit_tiny_r_s16_p8_224",
    "vision_transformer_relpos": "test_vit_relpos",
    "vision_transformer_sam": "samvit_base_patch16_224",
    "vitamin": "vitamin_small_224",
    "volo": "volo_d1_224",
    "vovnet": "ese_vovnet19b_slim_dw",
    "xception": "legacy_xception",
    "xception_aligned": "xception41p",
    "xcit": "xcit_nano_12_p8_224",
}

# model -> the one line `netspec import` prints after the model's name: what the spec cannot hold
REFUSALS: dict[str, str] = {}

FAST = {"resnet", "efficientnet", "convnext", "regnet"}  # small and quick: the default suite


def _param(family: str) -> object:
    return family if family in FAST else pytest.param(family, marks=pytest.mark.slow)


@pytest.mark.parametrize("family", [_param(f) for f in FAMILIES])
def test_timm_family_round_trips(family: str) -> None:
    name = FAMILIES[family]
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    size = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
    label = f"timm:{name}"
    if name in REFUSALS:
        with pytest.raises(SpecError) as e:
            spec_from_module(model, {"x": size}, name="m", label=label)
        assert str(e.value) == f"{label}: {REFUSALS[name]}"
        assert "\n" not in str(e.value)
    else:
        imported = spec_from_module(model, {"x": size}, name="m", label=label)
        assert imported.checked is not None and imported.checked.tensors == len(model.state_dict())


def counts() -> list[str]:
    """The lines the docs state, from the tables of this test and of test_torchvision."""
    ok_tv, ok_timm = len(tv.MODELS) - len(tv.LIMITATIONS), len(FAMILIES) - len(REFUSALS)
    return [
        f"{ok_tv} of torchvision's {len(tv.MODELS)} classifiers",
        f"{len(tv.SEGMENTATION) - len(tv.SEG_LIMITATIONS)} of its {len(tv.SEGMENTATION)} segmentation models",
        f"{ok_timm} of timm's {len(FAMILIES)} model families",
    ]


def test_the_docs_state_the_counts_of_the_lists() -> None:
    """README.md and docs/import.md say how many models round-trip: the counts of these tables
    (which the slow tests hold to what the importer does)."""
    root = Path(__file__).resolve().parents[2]
    for page in ("README.md", "docs/import.md"):
        text = " ".join((root / page).read_text().split())
        for line in counts():
            assert line in text, f"{page} should say: {line}"
