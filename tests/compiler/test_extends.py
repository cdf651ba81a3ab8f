"""``extends:``: specs built on base spec files. How documents merge, where errors point (into the
file where the value was written), and the one-line errors for a missing base, cycles and depth."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import netspec
import netspec.compiler.extends
from netspec.cli import main
from netspec.compiler.extends import MAX_EXTENDS
from netspec.errors import SpecError

from speclist import spec_params

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
name: base
params: {width: 8, n_classes: 3}
inputs: {x: [4]}
nodes:
  - hidden: {Linear: {out_features: $width}}
  - ReLU: {}
  - head: {Linear: {out_features: $n_classes}}
data:
  train: {source: random, n: 8, shapes: {x: [4]}, n_classes: 3}
  batch_size: 4
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.1}}
train: {epochs: 2, metrics: [accuracy]}
"""


def _write(folder: Path, **files: str) -> None:
    for name, text in files.items():
        path = folder / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _error(path: Path) -> str:
    with pytest.raises(SpecError) as err:
        netspec.load_spec(path)
    text = str(err.value)
    assert "\n" not in text
    return text


# ---- merging ------------------------------------------------------------------------------------


def test_mappings_merge_and_lists_replace(tmp_path: Path) -> None:
    _write(
        tmp_path,
        **{
            "base.yaml": BASE,
            "child.yaml": (
                "extends: base.yaml\nname: child\nparams: {width: 16}\ntrain: {epochs: 5}\n"
                "nodes:\n  - hidden: {Linear: {out_features: $width}}\n  - head: {Linear: {out_features: $n_classes}}\n"
            ),
        },
    )
    spec = netspec.load_spec(tmp_path / "child.yaml")
    assert spec.name == "child" and spec.params == {"width": 16, "n_classes": 3}  # merged, the child wins
    assert [n.name or n.op for n in spec.nodes] == ["hidden", "head"]  # replaced whole
    assert spec.train.epochs == 5 and [m.name for m in spec.train.metrics] == ["accuracy"]
    assert spec.loss.name == "CrossEntropyLoss"  # only in the base
    assert sum(p.numel() for p in netspec.build_model(spec).parameters()) == 4 * 16 + 16 + 16 * 3 + 3


def test_replace_takes_the_childs_mapping_whole(tmp_path: Path) -> None:
    _write(
        tmp_path,
        **{
            "base.yaml": BASE,
            "child.yaml": (
                "extends: {base: base.yaml, replace: [data]}\nname: child\n"
                "data:\n  train: {source: gaussian_clusters, dim: 4, label_dtype: int64}\n"
            ),
        },
    )
    spec = netspec.load_spec(tmp_path / "child.yaml")
    assert spec.data.train.source == "gaussian_clusters" and spec.data.batch_size != 4  # no leftovers


def test_several_bases_merge_in_order_and_bases_extend_bases(tmp_path: Path) -> None:
    _write(
        tmp_path,
        **{
            "common__base.yaml": BASE,
            "common__wide.yaml": "extends: base.yaml\nparams: {width: 32}\n",
            "common__long.yaml": "train: {epochs: 9}\n",
            "child.yaml": "extends: [common/wide.yaml, common/long.yaml]\nname: child\n",
        },
    )
    spec = netspec.load_spec(tmp_path / "child.yaml")  # wide.yaml's base is found beside wide.yaml
    assert spec.params["width"] == 32 and spec.train.epochs == 9 and spec.name == "child"


def test_keys_keep_the_bases_order(tmp_path: Path) -> None:
    """Input order is forward order: a child overriding the first input must not move it last."""
    _write(
        tmp_path,
        **{
            "base.yaml": "name: b\ninputs: {a: [2], b: [3]}\nnodes: [{cat: [a, b]}]\n",
            "child.yaml": "extends: base.yaml\ninputs: {a: [5]}\n",
        },
    )
    spec = netspec.load_spec(tmp_path / "child.yaml")
    assert list(spec.inputs) == ["a", "b"] and spec.inputs["a"].shape == [5]


def test_set_overrides_and_json_files(tmp_path: Path) -> None:
    _write(tmp_path, **{"base.yaml": BASE, "child.json": '{"extends": "base.yaml", "name": "child"}'})
    spec = netspec.load_spec(tmp_path / "child.json", overrides=["width=4", "train.epochs=1"])
    assert spec.params["width"] == 4 and spec.train.epochs == 1


def test_print_config_shows_the_merged_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, **{"base.yaml": BASE, "child.yaml": "extends: base.yaml\nname: child\n"})
    assert main(["compile", str(tmp_path / "child.yaml"), "--print-config"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert "extends" not in data and data["name"] == "child" and data["loss"]["name"] == "CrossEntropyLoss"


@pytest.mark.parametrize("path", spec_params([ROOT / "specs" / "timm_resnet34_fashion.yaml"]))
def test_the_example_spec_differs_from_its_base_only_in_data(path: Path) -> None:
    child, base = netspec.load_spec(path), netspec.load_spec(ROOT / "specs" / "timm_resnet34.yaml")
    assert child.nodes == base.nodes and child.inputs == base.inputs and child.optimizer == base.optimizer
    assert child.data.train.source == "FashionMNIST" and base.data.train.source == "random"
    assert child.train.epochs == 5 and child.train.metrics == base.train.metrics


def test_a_spec_built_in_python_cannot_extend() -> None:
    with pytest.raises(ValidationError, match="a Spec built in Python cannot extend"):
        netspec.Spec.model_validate({"name": "m", "extends": "base.yaml", "inputs": {"x": [2]}, "nodes": ["ReLU"]})


# ---- where errors point ---------------------------------------------------------------------------


def test_an_error_in_a_base_value_points_into_the_base(tmp_path: Path) -> None:
    _write(
        tmp_path,
        **{"base.yaml": BASE.replace("lr: 0.1", "lr: 0.1, momentun: 0.9"), "child.yaml": "extends: base.yaml\n"},
    )
    text = _error(tmp_path / "child.yaml")
    assert text.startswith(f"{tmp_path / 'base.yaml'}:12:") and "did you mean `momentum`?" in text


def test_an_error_in_the_childs_value_points_into_the_child(tmp_path: Path) -> None:
    _write(tmp_path, **{"base.yaml": BASE, "child.yaml": "extends: base.yaml\ntrain: {epochs: -1}\n"})
    assert _error(tmp_path / "child.yaml").startswith(f"{tmp_path / 'child.yaml'}:2:")


def test_leftovers_of_a_merged_mapping_say_how_to_replace_it(tmp_path: Path) -> None:
    _write(
        tmp_path,
        **{"base.yaml": BASE, "child.yaml": "extends: base.yaml\ndata: {train: {source: gaussian_clusters}}\n"},
    )
    text = _error(tmp_path / "child.yaml")
    assert text.startswith(f"{tmp_path / 'base.yaml'}:9:") and "unknown key `n`" in text
    assert (
        "`data.train.n` comes from base.yaml and was merged with the `data.train` of child.yaml; to replace "
        "that mapping whole, write `extends: {base: ..., replace: [data.train]}`" in text
    )


# ---- one-line errors ------------------------------------------------------------------------------


def test_missing_base_with_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, **{"base.yaml": BASE, "child.yaml": "name: c\nextends: bsae.yaml\n"})
    assert main(["validate", str(tmp_path / "child.yaml")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path / 'child.yaml'}:2:10: extends: base spec `bsae.yaml` does not exist (looked for "
        f"{tmp_path / 'bsae.yaml'}); did you mean `base.yaml`?"
    ]


@pytest.mark.parametrize(
    "files,at,cycle",
    [
        ({"a.yaml": "extends: a.yaml\n"}, "a.yaml:1:10", "a.yaml -> a.yaml"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "b.yaml:1:10", "a.yaml -> b.yaml -> a.yaml"),
        (
            {"a.yaml": "extends: [ok.yaml, b.yaml]\n", "ok.yaml": "name: ok\n", "b.yaml": "extends: {base: a.yaml}\n"},
            "b.yaml:1:17",
            "a.yaml -> b.yaml -> a.yaml",
        ),
    ],
)
def test_cycles(tmp_path: Path, files: dict, at: str, cycle: str) -> None:
    _write(tmp_path, **files)
    assert _error(tmp_path / "a.yaml") == (
        f"{tmp_path / at}: extends{'.base' if '{' in files.get('b.yaml', '') else ''}: "
        f"`extends` makes a cycle: {cycle}; a spec cannot build on itself"
    )


def test_chains_deeper_than_the_limit(tmp_path: Path) -> None:
    files = {f"s{i}.yaml": f"extends: s{i + 1}.yaml\n" for i in range(MAX_EXTENDS + 1)}
    _write(tmp_path, **files, **{f"s{MAX_EXTENDS + 1}.yaml": BASE})
    assert f"`extends` chain is longer than {MAX_EXTENDS} files" in _error(tmp_path / "s0.yaml")
    assert netspec.load_spec(tmp_path / "s2.yaml").name == "base"  # 8 files deep: fine


@pytest.mark.parametrize(
    "text,message",
    [
        ("extends: 3\n", "`extends` names a base spec file or a list of them, got 3"),
        ("extends: []\n", "`extends` names a base spec file or a list of them, got []"),
        ("extends: base.txt\n", "base spec `base.txt` is not a .yaml, .yml or .json file"),
        ("extends: {bsae: base.yaml}\n", "`extends` as a mapping has `base`"),
        (
            "extends: {base: base.yaml, replace: [dta]}\ndata: {batch_size: 2}\n",
            "`replace` names `dta`, which this spec does not set; did you mean `data`?",
        ),
    ],
)
def test_malformed_extends(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, **{"base.yaml": BASE, "child.yaml": text})
    assert message in _error(tmp_path / "child.yaml")


# ---- each base once, and the limits ---------------------------------------------------------------


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files ``extends`` reads, in order (load_document as extends.py calls it)."""
    loads: list[str] = []
    real = netspec.compiler.extends.load_document

    def counting(source, **kwargs):
        loads.append(Path(source).name)
        return real(source, **kwargs)

    monkeypatch.setattr(netspec.compiler.extends, "load_document", counting)
    return loads


def test_a_base_listed_many_times_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's fan-out: each of 8 files lists the next one 8 times (8^8 loads without a cache)."""
    _write(
        tmp_path,
        **{
            f"f{i}.yaml": f"extends: [{', '.join([f'f{i + 1}.yaml'] * 8)}]\nparams: {{p{i}: {i}}}\n"
            for i in range(MAX_EXTENDS - 1)
        },
        **{f"f{MAX_EXTENDS - 1}.yaml": BASE},
    )
    loads = _count_loads(monkeypatch)
    start = time.perf_counter()
    spec = netspec.load_spec(tmp_path / "f0.yaml")
    assert time.perf_counter() - start < 1.0
    assert sorted(loads) == [f"f{i}.yaml" for i in range(1, MAX_EXTENDS)]  # one load per base file
    assert spec.params == {"width": 8, "n_classes": 3, **{f"p{i}": i for i in range(MAX_EXTENDS - 1)}}


def test_a_diamond_reads_the_shared_base_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        tmp_path,
        **{
            "base.yaml": BASE,
            "wide.yaml": "extends: base.yaml\nparams: {width: 32}\n",
            "long.yaml": "extends: base.yaml\ntrain: {epochs: 9}\n",
            "child.yaml": "extends: [wide.yaml, long.yaml]\nname: child\n",
        },
    )
    loads = _count_loads(monkeypatch)
    spec = netspec.load_spec(tmp_path / "child.yaml")
    assert loads == ["wide.yaml", "base.yaml", "long.yaml"]
    # long.yaml's copy of base.yaml merges over wide.yaml's width: bases merge in order, as before
    assert spec.params["width"] == 8 and spec.train.epochs == 9


def test_depth_counts_through_a_base_loaded_before(tmp_path: Path) -> None:
    """A base already loaded at a shallow place still makes a chain too long at a deep one."""
    chain = {f"c{i}.yaml": f"extends: c{i + 1}.yaml\n" for i in range(MAX_EXTENDS - 2)}
    _write(
        tmp_path,
        **chain,
        **{
            f"c{MAX_EXTENDS - 2}.yaml": BASE,
            "top.yaml": "extends: [c1.yaml, deep.yaml]\n",
            "deep.yaml": "extends: c0.yaml\n",
        },
    )
    assert netspec.load_spec(tmp_path / "c0.yaml").name == "base"  # MAX_EXTENDS - 1 files: fine
    text = _error(tmp_path / "top.yaml")  # top -> deep -> c0 -> ... : one file too many
    assert f"`extends` chain is longer than {MAX_EXTENDS} files (at base spec `c1.yaml`)" in text
    assert text.startswith(f"{tmp_path / 'c0.yaml'}:1:10: extends:")


def test_too_many_base_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netspec.compiler.extends, "MAX_BASE_FILES", 3)
    _write(
        tmp_path,
        **{f"b{i}.yaml": f"params: {{p{i}: {i}}}\n" for i in range(4)},
        **{"child.yaml": "extends:\n  - b0.yaml\n  - b1.yaml\n  - b0.yaml\n  - b2.yaml\n  - b3.yaml\n"},
    )
    assert _error(tmp_path / "child.yaml") == (
        f"{tmp_path / 'child.yaml'}:6:5: extends[4]: base spec `b3.yaml` would be base file number 4; a spec may "
        "build on at most 3 files; merge some of the bases into one"
    )


def test_bases_over_the_byte_limit_are_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        tmp_path,
        **{
            "big.yaml": "# " + "x" * (netspec.compiler.extends.MAX_BASE_BYTES + 10) + "\nname: big\n",
            "child.yaml": "name: c\nextends: big.yaml\n",
        },
    )
    loads = _count_loads(monkeypatch)
    start = time.perf_counter()
    text = _error(tmp_path / "child.yaml")
    assert time.perf_counter() - start < 1.0 and loads == []
    assert text.startswith(
        f"{tmp_path / 'child.yaml'}:2:10: extends: base spec `big.yaml` (5,242,903 bytes) "
        "takes the bases over 5,242,880 bytes in all"
    )


def test_values_merged_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A base listed many times is read once but merged each time: the merges' work is bounded."""
    monkeypatch.setattr(netspec.compiler.extends, "MAX_MERGED_VALUES", 500)
    _write(
        tmp_path,
        **{
            "base.yaml": "params: {" + ", ".join(f"p{i}: {i}" for i in range(100)) + "}\n",
            "child.yaml": "extends: [" + ", ".join(["base.yaml"] * 5) + "]\n",
        },
    )
    text = _error(tmp_path / "child.yaml")
    assert text.startswith(f"{tmp_path / 'child.yaml'}:1:")
    assert "`extends` merges more than 500 values in all, over the limit for a spec with its bases" in text


@pytest.mark.parametrize("kind,what", [("folder", "a folder"), ("fifo", "a FIFO (a named pipe)")])
def test_a_base_that_is_not_a_file(tmp_path: Path, kind: str, what: str) -> None:
    """Named for what it is (not "does not exist; did you mean" the same name), and a FIFO is never
    opened: opening one for reading waits for a writer."""
    base = tmp_path / "base.yaml"
    base.mkdir() if kind == "folder" else os.mkfifo(base)
    _write(tmp_path, **{"child.yaml": "name: c\nextends: base.yaml\n"})
    start = time.perf_counter()
    assert _error(tmp_path / "child.yaml") == (
        f"{tmp_path / 'child.yaml'}:2:10: extends: base spec `base.yaml` is {what}, not a spec file ({base}); "
        "name a .yaml, .yml or .json file"
    )
    assert time.perf_counter() - start < 1.0


def test_a_missing_base_never_suggests_itself(tmp_path: Path) -> None:
    _write(tmp_path, **{"child.yaml": "name: c\nextends: base.yaml\n"})
    text = _error(tmp_path / "child.yaml")
    assert "does not exist" in text and "did you mean" not in text
