"""``--format python`` with hostile text: whatever a spec's strings and the command line hold
(quotes, triple quotes, backslashes, every kind of line break, NUL, payloads that close a
docstring or a comment and call ``os.system``), the written file parses, holds only the
statements netspec writes, runs nothing else when imported, and still reproduces the model.
Names that would hide the file's imports (a block `OrderedDict`, a parameter `nn`, a node
`add_n` beside the helper) are renamed."""

from __future__ import annotations

import ast
import builtins
import importlib.util
import json
import os
import sys
import tempfile
import tokenize
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netspec
from netspec.cli import main
from netspec.errors import SpecError
from netspec.interop.export import export_model
from netspec.interop.pysource import comment, doc_value, docstring
from netspec.training.checkpoint import CHECKPOINT_FORMAT

FAST = settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])

# Every character Python's tokenizer (\n, \r) or an editor (str.splitlines) takes for a line end.
LINE_ENDS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
PAYLOADS = [
    '"""; import os; os.system("touch PWNED"); """',
    "'''; import os; os.system('touch PWNED'); '''",
    '"',
    '""',
    "'",
    "\\",
    "C:\\Users\\new\\x",
    "\\N{",
    "\\U0001",
    "#",
    "\x00",
    "\u202e",
    "\ud800",
    "\nimport os\nos.system('touch PWNED')\n",
    "\rimport os; os.system('touch PWNED')",
    *LINE_ENDS,
]
TEXT = st.lists(st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=12)), min_size=1, max_size=6).map("".join)
# Names the file imports, defines or calls, and plain ones.
SHADOWING = [
    "torch",
    "nn",
    "F",
    "math",
    "fnmatch",
    "OrderedDict",
    "freeze",
    "inf",
    "nan",
    "add_n",
    "pad_to_match",
    "cast",
    "range",
    "layer",
    "super",
    "self_",
    "model",
    "cls",
    "list",
    "dict",
]  # not `getattr`: see below
NAME = st.one_of(st.sampled_from(SHADOWING), st.from_regex(r"\A[a-z][a-z0-9_]{0,6}\Z"))

# What the file may call: torch, its own classes and helpers, a few builtins; nothing else.
CALL_ROOTS = {
    "str",
    "load_file",  # load_state's, from safetensors
    "self",
    "torch",
    "nn",
    "super",
    "getattr",
    "range",
    "isinstance",
    "cls",
    "model",
    "state",
    "any",
    "fnmatch",
    "param",
    "module",
    "OrderedDict",
    "F",
    "float",
    "list",
    "x",
    "out",
    "like",
    "diff",
    "pads",
}


def _spec(t: dict[str, str], n: dict[str, str]) -> dict[str, Any]:
    """A small network whose every string that reaches the file is one of ``t`` (text) or ``n`` (names)."""
    block = {
        "description": t["block_doc"],
        "params": {n["param"]: 4},
        "nodes": [{n["inner"]: {"Linear": {"out_features": f"${n['param']}"}}}, "ReLU"],
    }
    return {
        "name": t["name"],
        "description": t["description"],
        "inputs": {"x": [4]},
        "blocks": {t["block"]: block, n["block2"]: dict(block, description=t["block_doc"])},
        "nodes": [
            {n["a"]: {t["block"]: {n["param"]: 3}}},
            {n["b"]: {n["block2"]: {n["param"]: 3}}},
            {n["c"]: {"add": [n["a"], n["b"]]}},
            {"head": [{"Linear": {"out_features": 2}}, "Tanh"]},
            {n["d"]: {"add": ["head", "head", "head"]}},
        ],
        "outputs": {t["out1"]: n["d"], t["out2"] + "'2": n["a"]},
        "output_type": "dict",
    }


def _file_name(text: str) -> str:
    name = text.replace("/", "_").replace("\x00", "_").encode("utf-8", "replace")[:200].decode("utf-8", "ignore")
    return (name or "m").lstrip(".") + ".py"  # a name the file system takes


def _check_file(path: Path, compiled: Any, scratch: Path) -> None:
    """The written file: parses, holds only netspec's statements, imports cleanly, reproduces the model."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    imports = {ast.unparse(s) for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))}
    assert imports <= {
        "from __future__ import annotations",
        "from collections import OrderedDict",
        "import torch",
        "from torch import nn",
        "import torch.nn.functional as F",
        "from math import inf",
        "from math import nan",
    }, imports
    assert all(isinstance(s, (ast.Expr, ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)) for s in tree.body)
    assert isinstance(tree.body[0], ast.Expr) and all(not isinstance(s, ast.Expr) for s in tree.body[1:])
    defined = {s.name for s in tree.body if isinstance(s, (ast.ClassDef, ast.FunctionDef))}
    for node in ast.walk(tree):
        nested = isinstance(node, (ast.Import, ast.ImportFrom)) and node not in tree.body
        assert not nested or ast.unparse(node) == "from safetensors.torch import load_file"  # load_state's, lazily
        if isinstance(node, ast.Call):
            root = node.func
            while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
                root = root.value if not isinstance(root, ast.Call) else root.func
            assert isinstance(root, ast.Name) and root.id in CALL_ROOTS | defined, ast.unparse(node)
    for tok in tokenize.generate_tokens(StringIO(source).readline):  # a comment is one line, whatever it holds
        assert tok.type != tokenize.COMMENT or len(tok.string.splitlines()) == 1
    assert len(source.splitlines()) == source.count("\n")  # no line break but \n anywhere in the file
    spec = importlib.util.spec_from_file_location("ejected_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing it runs only the class and function definitions
    cls = getattr(module, [s.name for s in tree.body if isinstance(s, ast.ClassDef)][-1])
    model = cls()
    model.load_state_dict(compiled.module.state_dict())
    x = torch.randn(3, 4)
    got, want = model.eval()(x), compiled.module.eval()(x)
    assert list(got) == list(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    assert not list(scratch.rglob("PWNED")) and not Path("PWNED").exists()


def _property(t: dict[str, str], n: dict[str, str]) -> bool:
    """Export the spec made of ``t`` and ``n`` and check the file; False when netspec refuses the spec."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        try:
            compiled = netspec.compile_spec(netspec.load_spec(_spec(t, n)), device="cpu")
        except SpecError as e:  # a spec netspec refuses (two outputs named alike, ...): one line
            assert "\n" not in str(e).strip()
            return False
        out = scratch / "out dir" / _file_name(t["out"])
        lines = export_model(
            compiled, "python", out, command=f"netspec export {t['command']}", checkpoint=t["checkpoint"]
        )
        assert lines[-1].endswith("its outputs equal the model's"), lines
        assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp file left
        cwd = os.getcwd()
        os.chdir(scratch)  # a payload's `touch PWNED` would land here
        try:
            _check_file(out, compiled, scratch)
        finally:
            os.chdir(cwd)
            sys.modules.pop("ejected_module", None)
    return True


FIELDS = ["name", "description", "block", "block_doc", "out1", "out2", "out", "command", "checkpoint"]
NAMES = ["param", "inner", "block2", "a", "b", "c", "d"]
TEXTS = st.fixed_dictionaries({f: TEXT for f in FIELDS})
IDENTS = st.lists(NAME, min_size=len(NAMES), max_size=len(NAMES), unique=True).map(lambda v: dict(zip(NAMES, v)))


def test_the_property_exports_benign_and_hostile_examples() -> None:
    """The spec of the property compiles (so the examples reach the file), with plain text and with
    every payload at once."""
    names = dict(zip(NAMES, ["width", "fc", "other", "a", "b", "c", "d"]))
    assert _property({f: f"plain {f}" for f in FIELDS}, names)
    hostile = {f: "".join(PAYLOADS) + f for f in FIELDS}
    assert _property(hostile, dict(zip(NAMES, ["nn", "torch", "f", "OrderedDict", "add_n", "inf", "layer"])))


@FAST
@given(t=TEXTS, n=IDENTS)
def test_hostile_text_never_reaches_the_file_as_code(t: dict[str, str], n: dict[str, str]) -> None:
    _property(t, n)


@pytest.mark.slow
@SLOW
@given(t=TEXTS, n=IDENTS)
def test_hostile_text_never_reaches_the_file_as_code_many(t: dict[str, str], n: dict[str, str]) -> None:
    _property(t, n)


@settings(deadline=None, max_examples=400)
@given(text=st.one_of(st.text(), TEXT))
def test_docstrings_and_comments_hold_any_text(text: str) -> None:
    """The two places spec text is written inside Python: a docstring's value is the text; a
    comment stays one comment on one line."""
    tree = ast.parse(f"def f():\n    {docstring(text)}\n    return 1  {comment(text)}\nx = 2\n")
    assert ast.get_docstring(tree.body[0], clean=False) == doc_value(text)  # a lone surrogate as its escape
    assert [type(s).__name__ for s in tree.body] == ["FunctionDef", "Assign"] and len(tree.body[0].body) == 2
    assert len(comment(text).splitlines()) == 1 and comment(text).isprintable()


def test_the_issue_examples(tmp_path) -> None:
    """The issue's cases, by hand: a block description closing the class docstring, a Windows path
    in the description, a block named `OrderedDict` with a parameter `nn`, a node named `add_n`."""
    payload = '"""; import os; os.system("touch PWNED"); """'
    spec = {
        "name": "demo",
        "description": "weights from C:\\Users\\me\\x.pt",
        "inputs": {"x": [4]},
        "blocks": {
            "OrderedDict": {
                "description": payload,
                "params": {"nn": 4},
                "nodes": [{"fc": {"Linear": {"out_features": "$nn"}}}],
            }
        },
        "nodes": [
            {"body": [{"a": {"OrderedDict": {"nn": 4}}}, {"b": {"OrderedDict": {"nn": 2}}}]},
            {"add_n": {"add": ["body", "body", "body"]}},
        ],
    }
    compiled = netspec.compile_spec(netspec.load_spec(spec), device="cpu")
    export_model(compiled, "python", tmp_path / "demo.py", checkpoint="C:\\new\\best.pt")
    source = (tmp_path / "demo.py").read_text()
    tree = ast.parse(source)
    assert ast.get_docstring(tree, clean=False).startswith("demo: weights from C:\\Users\\me\\x.pt\n")
    assert "model = Demo.load('C:\\\\new\\\\best.pt')" in ast.get_docstring(tree, clean=False)
    classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
    assert list(classes) == ["OrderedDict2", "Demo"]
    assert payload in ast.get_docstring(classes["OrderedDict2"])
    assert "def __init__(self, nn_: int) -> None:" in source and "self.fc = nn.Linear(4, nn_)" in source
    assert "add_n_1 = add_n(body, body, body)" in source and "return add_n_1" in source
    _check_file_runs(tmp_path / "demo.py", compiled)


def _check_file_runs(path: Path, compiled: Any) -> None:
    namespace: dict[str, Any] = {"__name__": "demo", "__builtins__": builtins}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    model = namespace["Demo"]()
    model.load_state_dict(compiled.module.state_dict())
    x = torch.randn(2, 4)
    torch.testing.assert_close(model(x), compiled.module(x), rtol=0, atol=0)


def test_a_failed_check_leaves_no_file_and_is_one_line(tmp_path, monkeypatch, capsys, specs_dir) -> None:
    """The file is checked under a temp name and moved into place only when it reproduces the
    model: a failure (here, a forward that computes something else) keeps an older file as it was."""
    from netspec.interop import export

    (tmp_path / "lenet.py").write_text("# the file from last time\n")
    real = export._seeded
    monkeypatch.setattr(
        export,
        "_seeded",
        lambda fn, *a: [t + 1 for t in real(fn, *a)] if type(fn).__module__ == "lenet" else real(fn, *a),
    )
    code = main(
        ["export", str(specs_dir / "lenet.yaml"), "--format", "python", "--out", str(tmp_path / "lenet.py"), "--force"]
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 2 and "Traceback" not in err[1], err  # err[0]: no --checkpoint
    assert "output `logits` of the exported model differs from the model's" in err[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet.py"]
    assert (tmp_path / "lenet.py").read_text() == "# the file from last time\n"


def test_a_file_that_fails_to_run_is_one_line(tmp_path, monkeypatch, capsys, specs_dir) -> None:
    from netspec.interop import eject_classes

    real = eject_classes._body
    monkeypatch.setattr(eject_classes, "_body", lambda children: [*real(children), "self.x = 1 / 0"])
    code = main(["export", str(specs_dir / "lenet.yaml"), "--format", "python", "--out", str(tmp_path / "lenet.py")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 2 and "Traceback" not in err[1], err
    assert "the written Python file does not rebuild the model: ZeroDivisionError" in err[1]
    assert list(tmp_path.iterdir()) == []


SHADOWING_SPEC = """\
name: f
description: 'C:\\Users\\me: the block below closes its docstring'
inputs: {x: [4]}
blocks:
  OrderedDict:
    description: '\"\"\"; import os; os.system(\"touch PWNED\"); \"\"\"'
    params: {nn: 4, torch: 2}
    nodes:
      - fc: {Linear: {out_features: $nn}}
      - range: {Linear: {out_features: $torch}}
  pad_to_match:
    nodes: [{ReLU: {}}]
nodes:
  - body:
      - a: {OrderedDict: {nn: 4, torch: 3}}
      - b: {OrderedDict: {nn: 2, torch: 5}}
  - add_n: {add: [body, body, body]}
  - cast: {pad_to_match: {}}
"""


def test_cli_renames_names_that_would_hide_the_files_imports(tmp_path, capsys) -> None:
    """A block `OrderedDict` (the file imports collections.OrderedDict), parameters `nn` and
    `torch`, a node `add_n` beside the helper add_n, a spec named `f` (the class F): the file
    renames its own names, keeps the spec's attribute names, and reproduces the model."""
    (tmp_path / "f.yaml").write_text(SHADOWING_SPEC)
    code = main(["export", str(tmp_path / "f.yaml"), "--format", "python", "--out", str(tmp_path / "f.py")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[-1] == "class FModel: the state_dict loads strictly; its outputs equal the model's"
    source = (tmp_path / "f.py").read_text()
    tree = ast.parse(source)
    assert sorted(s.name for s in tree.body if isinstance(s, ast.ClassDef)) == ["FModel", "OrderedDict2", "PadToMatch"]
    assert "def __init__(self, in_features: int, nn_: int, torch_: int) -> None:" in source
    assert "self.range = nn.Linear(nn_, torch_)" in source and "range_1 = self.range(fc)" in source
    assert "('a', OrderedDict2(in_features=4, nn_=4, torch_=3))," in source
    assert "add_n_1 = add_n(body, body, body)" in source
    assert not (tmp_path / "PWNED").exists()


def test_cli_checkpoint_and_weights_names_with_line_breaks_stay_in_their_comment(tmp_path, capsys) -> None:
    """`--checkpoint` and a torchvision node's weights file whose names hold a line break and
    code: the docstring and the `# weights:` comment keep them; nothing runs."""
    import torchvision

    evil = "w\nimport os; os.system('touch PWNED')\r#"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / f"{evil}.pt")
    spec = {
        "name": "tv",
        "inputs": {"image": [3, 32, 32]},
        "nodes": [{"net": {"resnet18": {"num_classes": 3, "weights": f"{evil}.pt"}}}],
    }
    (tmp_path / "tv.json").write_text(json.dumps(spec))
    torch.save(
        {"format": CHECKPOINT_FORMAT, "model": netspec.build_model(tmp_path / "tv.json").state_dict()},
        tmp_path / f"{evil}.best.pt",
    )
    code = main(
        [
            "export",
            str(tmp_path / "tv.json"),
            "--format",
            "python",
            "--checkpoint",
            str(tmp_path / f"{evil}.best.pt"),
            "--out",
            str(tmp_path / "tv.py"),
        ]
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    source = (tmp_path / "tv.py").read_text()
    assert "# weights: the checkpoint's (the spec loads w\\nimport os; os.system('touch PWNED')\\r#.pt)" in source
    tree = ast.parse(source)
    assert "--checkpoint " + str(tmp_path / "w\\nimport os") in ast.get_docstring(tree)
    assert not any(isinstance(n, ast.Import) and n.names[0].name == "os" for n in ast.walk(tree))
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, specs_dir) -> None:
    import errno

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    code = main(["export", str(specs_dir / "lenet.yaml"), "--format", "python", "--out", str(tmp_path / "lenet.py")])
    err = capsys.readouterr().err.splitlines()
    assert (
        code == 2
        and err[-1]
        == f"{specs_dir / 'lenet.yaml'}: --out: cannot write {tmp_path / 'lenet.py'}: No space left on device"
    ), err
    assert list(tmp_path.iterdir()) == []
