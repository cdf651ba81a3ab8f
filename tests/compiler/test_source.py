"""The loader (``netspec.compiler.source``): safety against hostile YAML, and positions of keys and values.

Safety: no YAML tag ever constructs a Python object (``!!python/object/apply:os.system`` is
refused with a located SpecSyntaxError and nothing runs); alias bombs, deep nesting and huge
files are refused before they cost time or memory; control characters and non-UTF-8 bytes
are errors, not crashes.
Positions: every value and key has a 1-based line and column, in YAML (block and flow
style) and JSON, and spec paths of the normalised node form map back to the text.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from netspec.compiler.source import MAX_BYTES, MAX_CHARS, MAX_DEPTH, MAX_VALUES, Document, load_document
from netspec.compiler.spec import load_spec
from netspec.errors import SpecError, SpecSyntaxError

VALID = "name: demo\ninputs: {x: [4]}\nnodes:\n  - Linear: {out_features: 2}\n"


def load(text: str, name: str = "t.yaml") -> Document:
    return load_document(name, text=text)


def syntax_error(text: str, name: str = "t.yaml") -> SpecSyntaxError:
    with pytest.raises(SpecSyntaxError) as info:
        load(text, name)
    assert "\n" not in str(info.value)
    return info.value


# ---- YAML safety -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/apply:os.system\n  args: ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/object:argparse.Namespace {{a: 1}}",
        "!!python/tuple [1, 2]",
        "!custom {{a: 1}}",
        "!!set {{a, b}}",
        "!!binary aGVsbG8=",
    ],
)
def test_python_and_custom_tags_are_refused(tagged: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    err = syntax_error(f"name: demo\ndescription: {tagged.format(marker=marker)}\n")
    assert err.location.line == 2 and err.location.col == 14
    assert "not allowed" in err.message or "invalid YAML" in err.message
    assert not marker.exists()


def test_tag_on_a_sequence_is_not_silently_read_as_a_list(tmp_path: Path) -> None:
    """Regression: the builder used to walk tagged sequences/mappings as plain data."""
    marker = tmp_path / "pwned"
    err = syntax_error(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "YAML tag `!!python/object/apply:os.system` is not allowed" in err.message
    assert (err.location.line, err.location.col) == (1, 7)
    assert not marker.exists()


def test_standard_tags_are_fine() -> None:
    doc = load("a: !!str 3\nb: !!int '4'\nc: !!float 1\nd: !!map {x: 1}\ne: !!seq [1]\nf: !!null ''\n")
    assert doc.data == {"a": "3", "b": 4, "c": 1.0, "d": {"x": 1}, "e": [1], "f": None}


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    err = syntax_error("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 5
    assert "alias bomb" in err.message and err.location.line is not None


def test_reasonable_aliases_work() -> None:
    doc = load("base: &b {out_features: 4}\nother: *b\nmerged: {<<: *b, bias: false}\n")
    assert doc.data["other"] == {"out_features": 4}
    assert doc.data["merged"] == {"out_features": 4, "bias": False}


def test_a_merged_key_may_be_overridden_but_not_written_twice() -> None:
    """YAML's merge: the mapping's own keys win over merged ones, and the merged mappings combine
    as PyYAML combines them; only a key the mapping itself writes twice is a duplicate."""
    text = (
        "base: &b {epochs: 2, seed: 1}\nmore: &m {seed: 9, lr: 3}\ntrain: {<<: [*b, *m], epochs: 5}\n"
        "again: {<<: *b, seed: 4}\n"
    )
    doc = load(text)
    assert doc.data == yaml.safe_load(text)
    assert doc.data["train"]["epochs"] == 5 and doc.data["again"] == {"epochs": 2, "seed": 4}
    assert (doc.locate(("train", "epochs")).line, doc.locate(("train", "epochs")).col) == (3, 31)  # its own value
    err = syntax_error("base: &b {epochs: 2}\ntrain: {<<: *b, seed: 1, seed: 2}\n")
    assert "duplicate key `seed`" in err.message and (err.location.line, err.location.col) == (2, 26)


def test_an_aliased_merge_is_built_the_same_twice() -> None:
    doc = load("b: &b {x: 1}\nm: &m {<<: *b, x: 2}\nuse: [*m, *m]\n")
    assert doc.data["use"] == [{"x": 2}, {"x": 2}]


def test_a_big_spec_is_not_called_an_alias_bomb() -> None:
    """100 000 nodes and no alias: over the value limit, said as such."""
    err = syntax_error("name: big\nnodes:\n" + "  - ReLU: {}\n" * 100_000)
    assert f"more than {MAX_VALUES:,} values, over the limit for a spec" in err.message
    assert "alias" not in err.message and "repeat" in (err.hint or "")


def test_a_long_string_repeated_through_aliases_is_refused_quickly() -> None:
    """Few values, but 3 000 copies of a 1 MB string: cheap to hold, gigabytes to print or copy.
    Characters are counted as aliases expand, to the limit a file's own text has."""
    text = (
        "name: m\ndescription: &s "
        + "x" * 1_000_000
        + "\nparams: {"
        + ", ".join(f"p{i}: *s" for i in range(3000))
        + "}\n"
    )
    start = time.perf_counter()
    err = syntax_error(text)
    assert time.perf_counter() - start < 5
    assert err.message == (
        f"the document expands to more than {MAX_CHARS:,} characters through its aliases "
        "(a long value repeated?), over the limit for a spec; refused"
    )
    assert MAX_CHARS == MAX_BYTES
    assert load("name: m\ndescription: &s " + "x" * 1_000_000 + "\nparams: {a: *s, b: *s}\n").data["params"]["b"]


def test_nan_is_refused_where_it_is_written() -> None:
    err = syntax_error("name: n\noptimizer: {SGD: {lr: .nan}}\n")
    assert "`.nan` is not a number" in err.message and (err.location.line, err.location.col) == (2, 23)
    assert err.path == ("optimizer", "SGD", "lr")  # the spec path, as every error names it
    assert load("norm: .inf\n").data["norm"] == float("inf")  # inf is a value (grad_clip.norm_type: inf)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/null"])
def test_a_spec_that_is_not_a_regular_file_is_refused_at_once(kind: str, tmp_path: Path) -> None:
    """A FIFO would wait for a writer forever, /dev/zero never end: refused before reading."""
    path = tmp_path / "spec.yaml" if kind == "fifo" else Path(kind)
    if kind == "fifo":
        os.mkfifo(path)
    result: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catch(lambda: load_document(path), result), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), f"reading {kind} as a spec hangs"
    assert isinstance(result[0], SpecSyntaxError) and "is not a regular file" in result[0].message


def _catch(fn, into: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as err:
        into.append(err)


def test_value_count_limit_is_what_stops_the_bomb() -> None:
    # just under the limit loads; the bomb above expands to 9**9 values
    side = int(MAX_VALUES**0.5) - 10
    text = f"a: &a [{','.join(['1'] * side)}]\nb: [{','.join(['*a'] * side)}]\n"
    assert len(load(text).data["b"]) == side


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_refused(opener: str, closer: str) -> None:
    depth = MAX_DEPTH + 5
    err = syntax_error("name: " + opener * depth + "1" + closer * depth + "\n")
    assert f"nesting deeper than {MAX_DEPTH} levels" in err.message


def test_very_deep_nesting_does_not_crash() -> None:
    """Far past the limit (and past Python's recursion limit in a naive loader)."""
    depth = 5000
    err = syntax_error("name: " + "[" * depth + "]" * depth + "\n")
    assert "deep" in err.message


def test_nesting_just_under_the_limit_loads() -> None:
    depth = MAX_DEPTH - 2
    doc = load("a: " + "[" * depth + "1" + "]" * depth + "\n")
    value = doc.data["a"]
    for _ in range(depth):
        value = value[0]
    assert value == 1


def test_size_limit_file(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"description: '" + b"a" * MAX_BYTES + b"'\n")
    start = time.perf_counter()
    with pytest.raises(SpecSyntaxError) as info:
        load_document(big)
    assert time.perf_counter() - start < 1
    assert "over the 5242880-byte limit" in info.value.message


def test_size_limit_text() -> None:
    with pytest.raises(SpecSyntaxError, match="limit"):
        load("a: '" + "b" * MAX_BYTES + "'\n")


def test_control_characters_are_a_located_error() -> None:
    err = syntax_error("name: demo\ndescription: a\x07b\n")
    assert (err.location.line, err.location.col) == (2, 15)
    assert "#x0007" in err.message


def test_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecSyntaxError, match="not UTF-8"):
        load_document(f)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "bom.yaml"
    f.write_bytes("\ufeff".encode() + VALID.encode())
    assert load_document(f).data["name"] == "demo"


def test_multiple_documents_are_refused() -> None:
    err = syntax_error(VALID + "---\nname: other\n")
    assert err.location.line == 5


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("a: [1, 2\n", "invalid YAML"),
        ("a: {b: 1\n", "invalid YAML"),
        ("a:\n\t- 1\n", "invalid YAML"),
        ("a: 1\na: 2\n", "duplicate key `a`"),
        ("? [1, 2]\n: x\n", "mapping keys must be strings"),
        ("a: 'unclosed\n", "invalid YAML"),
        ("a: *nope\n", "invalid YAML"),
    ],
)
def test_syntax_errors(text: str, problem: str) -> None:
    err = syntax_error(text)
    assert problem in err.message
    assert err.location.line is not None and err.location.file == "t.yaml"


def test_empty_document_marker_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="the document is empty"):
        load_spec("t.yaml", text="---\n")


# ---- positions -------------------------------------------------------------------------------

POSITIONS = """\
name: demo
params:
  width: 8
inputs: {x: [1, 28, 28]}
nodes:
  - Conv2d: {out_channels: $width, kernel_size: 3}
  - stem: {ReLU: {}, from: conv2d}
  - op: Flatten
    args: {}
  - Linear:
      out_features: 10
"""


def test_value_positions() -> None:
    doc = load(POSITIONS)
    assert doc.positions[("name",)] == (1, 7)
    assert doc.positions[("params", "width")] == (3, 10)
    assert doc.positions[("inputs", "x", 1)] == (4, 17)
    assert doc.positions[("nodes", 0)] == (6, 5)
    assert doc.positions[("nodes", 0, "Conv2d", "kernel_size")] == (6, 49)
    assert doc.positions[("nodes", 3, "Linear", "out_features")] == (11, 21)


def test_key_positions() -> None:
    doc = load(POSITIONS)
    assert doc.key_positions[("params",)] == (2, 1)
    assert doc.key_positions[("params", "width")] == (3, 3)
    assert doc.key_positions[("nodes", 0, "Conv2d", "kernel_size")] == (6, 36)
    assert doc.key_positions[("nodes", 3, "Linear", "out_features")] == (11, 7)
    assert doc.locate(("params", "width"), key=True).line == 3
    assert doc.locate(("params", "width"), key=True).col == 3


def test_locate_falls_back_to_the_nearest_ancestor() -> None:
    doc = load(POSITIONS)
    loc = doc.locate(("nodes", 0, "Conv2d", "no_such_arg"))
    assert (loc.file, loc.line, loc.col) == ("t.yaml", 6, 13)
    assert doc.locate(("nothing", "here")).line == 1


def test_locate_maps_normalised_node_paths_to_the_text() -> None:
    """Errors use the normalised node form; the text may use the named or explicit form."""
    doc = load(POSITIONS)
    # `stem: {ReLU: {}, from: conv2d}` -> spec path nodes[1].from
    assert (doc.locate(("nodes", 1, "from")).line, doc.locate(("nodes", 1, "from")).col) == (7, 28)
    # explicit form `op: Flatten / args: {}` -> spec path nodes[2].Flatten
    assert doc.locate(("nodes", 2, "Flatten")).line == 9


def test_error_points_at_the_named_node_from() -> None:
    text = "name: d\ninputs: {x: [4]}\nnodes:\n  - a: {Linear: {out_features: 2}}\n  - b: {ReLU: {}, from: aa}\n"
    with pytest.raises(SpecError) as info:
        from netspec.api import compile_spec

        compile_spec(load_spec("t.yaml", text=text))
    assert str(info.value).startswith("t.yaml:5:25: nodes[1].from (b): `from` names `aa`")


JSON = """{
  "name": "demo",
  "inputs": {"x": [4]},
  "nodes": [
    {"Linear": {"out_features": 2}},
    {"ReLU": {"inplace": true}}
  ]
}
"""


def test_json_positions() -> None:
    doc = load(JSON, "t.json")
    assert doc.data["nodes"][1] == {"ReLU": {"inplace": True}}
    assert doc.positions[("name",)] == (2, 11)
    assert doc.key_positions[("inputs",)] == (3, 3)
    assert doc.positions[("inputs", "x", 0)] == (3, 20)
    assert doc.positions[("nodes", 1, "ReLU", "inplace")] == (6, 26)
    assert doc.key_positions[("nodes", 0, "Linear", "out_features")] == (5, 17)


@pytest.mark.parametrize(
    "text,line,col,fragment",
    [
        ('{"name": "demo",}', 1, 17, "invalid JSON"),
        ('{"name": "demo"\n "inputs": {}}', 2, 2, "invalid JSON"),
        ("{name: 'demo'}", 1, 2, "double quotes"),  # YAML would accept this; JSON must not
        ('{"a": 1, "a": 2}', 1, 10, "duplicate key `a`"),
        ("", 1, 1, "invalid JSON"),
    ],
)
def test_json_errors(text: str, line: int, col: int, fragment: str) -> None:
    err = syntax_error(text, "t.json")
    assert (err.location.line, err.location.col) == (line, col)
    assert fragment in err.message


def test_json_spec_error_is_located() -> None:
    text = JSON.replace('"inplace": true', '"inplce": true')
    with pytest.raises(SpecError) as info:
        from netspec.api import compile_spec

        compile_spec(load_spec("t.json", text=text))
    # the unknown argument's value `true` is at line 6, column 25
    assert str(info.value).startswith("t.json:6:25: nodes[1].ReLU.inplce (relu): ReLU has no argument `inplce`")
