"""netspec.data.spec: the data section's models, their errors and their schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netspec.data import SAMPLERS, SOURCES, DataSpec, SamplerSpec

from .helpers import load_error, spec

SRC = Path(__file__).resolve().parents[2] / "src"


def test_schema_is_generated_and_documented():
    schema = DataSpec.model_json_schema()
    assert "train" in schema["properties"]
    for model in [DataSpec, *{e.options for e in SOURCES.values()}]:
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"


def test_spec_errors_have_paths():
    cases = [
        ({"train": {"source": "FashionMNST", "root": "x"}}, ("train", "source"), "did you mean `FashionMNIST`"),
        ({"train": {"source": "random", "n": 0}}, ("train", "n"), "greater than"),
        ({"train": {"source": "random"}, "val": {"fraction": 1.5}}, ("val", "fraction"), "less than"),
        ({"val": {"fraction": 0.1}}, ("val",), "`train` is needed"),
        (
            {"train": {"source": "random"}, "loader": {"shuffle": True}, "sampler": {"RandomSampler": {}}},
            ("sampler",),
            "replaces shuffling",
        ),
        ({"train": {"source": "random"}, "transforms": ["ToImage", "Bogus"]}, ("transforms", 1), "unknown"),
    ]
    for data, path, msg in cases:
        err = load_error(data)
        assert err.path == ("data", *path) and msg in str(err), err


def test_unknown_source_without_a_close_name_lists_them():
    err = load_error({"train": {"source": "bogus"}})
    assert err.path == ("data", "train", "source") and "unknown source `bogus`; known sources: CIFAR10" in str(err)
    assert "missing `source:` (one of EMNIST, MNIST" in str(load_error({"train": {"root": "x"}}))


def test_sampler_spec_has_one_key_per_registered_sampler():
    assert list(SamplerSpec.model_fields) == list(SAMPLERS)
    for name, entry in SAMPLERS.items():
        assert SamplerSpec.model_fields[name].description == entry.description
        chosen = spec(
            train={"source": "random"},
            sampler={name: {}} if name == "RandomSampler" else {name: {"class_weights": "balanced"}},
        ).sampler
        assert chosen.name == name and isinstance(chosen.options, entry.options)


@pytest.mark.parametrize(
    "sampler, path, message",
    [
        (
            {"WeightedRandomSamplr": {}},
            ("sampler", "WeightedRandomSamplr"),
            "unknown sampler `WeightedRandomSamplr`; did you mean `WeightedRandomSampler`?",
        ),
        ({}, ("sampler",), "give exactly one sampler: WeightedRandomSampler or RandomSampler"),
        ({"RandomSampler": {}, "WeightedRandomSampler": {"class_weights": "balanced"}}, ("sampler",), "exactly one"),
        ({"RandomSampler": {"num_samples": 0}}, ("sampler", "RandomSampler", "num_samples"), "greater than"),
        (
            {"WeightedRandomSampler": {"default_weight": 1}},
            ("sampler", "WeightedRandomSampler"),
            "missing required key `class_weights`",
        ),
    ],
)
def test_sampler_errors(sampler, path, message):
    err = load_error({"train": {"source": "random"}, "sampler": sampler})
    assert err.path == ("data", *path) and message in str(err), str(err)


@pytest.mark.parametrize(
    "data, why",
    [
        (
            {"train": {"source": "random"}, "transforms": [{"RandomCrop": 28}, "ToTensor"]},
            "these transforms are random: RandomCrop",
        ),
        (
            {"train": {"source": "random"}, "test": {"source": "random"}, "eval_transforms": ["RandomVerticalFlip"]},
            "these transforms are random: RandomVerticalFlip",
        ),
        (
            {"test": {"source": "ImageFolder", "root": "x"}, "eval_transforms": [{"RandomCrop": 2}]},
            "these transforms are random: RandomCrop",
        ),
    ],
)
def test_impossible_in_memory_is_refused_when_the_spec_is_loaded(data, why):
    err = load_error({**data, "loader": {"in_memory": True}})
    assert err.path == ("data", "loader", "in_memory") and f"`in_memory: true` is impossible: {why}" in str(err)


def test_in_memory_true_is_accepted_where_it_holds():
    s = spec(
        train={"source": "csv", "path": "x.csv"},
        val={"fraction": 0.5},
        test={"source": "random"},
        transforms=[{"Resize": 8}, "ToTensor"],
        loader={"in_memory": True},
    )  # eval: the same, by default
    assert s.loader.in_memory is True


def test_validating_a_data_section_imports_no_torchvision_and_no_loaders():
    """netspec.compiler.spec needs netspec.data.spec; the loaders and torchvision wait for build_loaders
    (or for a spec that lists transforms)."""
    code = (
        "import sys, netspec.data.spec as S\n"
        "S.DataSpec.model_validate({'train': {'source': 'FashionMNIST', 'root': 'x'}, 'val': {'fraction': 0.1},\n"
        "                           'sampler': {'RandomSampler': {}}})\n"
        "print(sorted(m for m in sys.modules if m == 'torchvision' or m.startswith('netspec.data.')))\n"
        "S.DataSpec.model_validate({'train': {'source': 'random'}, 'transforms': ['ToTensor']})\n"
        "print('torchvision' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC), "PATH": ""},
    ).stdout.splitlines()
    assert out[0] == str(
        [
            "netspec.data.readers",
            "netspec.data.samplers",
            "netspec.data.sources",
            "netspec.data.sources.base",
            "netspec.data.sources.files",
            "netspec.data.sources.generated",
            "netspec.data.sources.torchvision_sets",
            "netspec.data.spec",
        ]
    )
    assert out[1] == "True"
