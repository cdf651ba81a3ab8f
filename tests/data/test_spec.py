"""netspec.data.spec: the data section's models, their errors and their schema."""

from __future__ import annotations

from netspec.data import SOURCES, DataSpec
from .helpers import load_error


def test_schema_is_generated_and_documented():
    schema = DataSpec.model_json_schema()
    assert "train" in schema["properties"]
    for model in [DataSpec, *{e.options for e in SOURCES.values()}]:
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"


def test_spec_errors_have_paths():
    cases = [({"train": {"source": "FashionMNST", "root": "x"}}, ("train", "source"), "did you mean `FashionMNIST`"),
             ({"train": {"source": "random", "n": 0}}, ("train", "n"), "greater than"),
             ({"train": {"source": "random"}, "val": {"fraction": 1.5}}, ("val", "fraction"), "less than"),
             ({"val": {"fraction": 0.1}}, ("val",), "`train` is needed"),
             ({"train": {"source": "random"}, "loader": {"shuffle": True},
               "sampler": {"RandomSampler": {}}}, ("sampler",), "replaces shuffling"),
             ({"train": {"source": "random"}, "transforms": ["ToImage", "Bogus"]}, ("transforms", 1), "unknown")]
    for data, path, msg in cases:
        err = load_error(data)
        assert err.path == ("data", *path) and msg in str(err), err
