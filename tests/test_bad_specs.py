"""The bad-spec corpus: every file in ``tests/bad_specs/`` is a mistake a user can make.

Each case must end the CLI with exit code 2 and exactly one line on stderr,
``file:line:col: spec.path (node): message; hint``, never a traceback. The expected
outcome is written in the case file's first lines (comments)::

    # expect: exit=2 at=4:5 path=nodes[0].Conv2 message="unknown layer" hint="did you mean `Conv2d`?"
    # args: --set width=abc            (optional: extra command-line arguments)
    # setup: pickled_model whole.pt    (optional: a file the case needs, made by the test)

``at`` is ``LINE:COL``, ``LINE:*`` (any column) or ``*`` (no line: e.g. a size limit);
``path`` is the spec path printed after the location, ``-`` when the message has none;
``node`` (optional) is the node name printed in parentheses; ``message`` and ``hint`` are
fragments that must appear in the line. ``.json`` cases carry the same header lines;
JSON has no comments, so the test blanks them (keeping line numbers) in a copy.

Training cases name their command: ``command=run`` / ``eval`` / ``validate`` (default
``compile``). They run on a copy of the case in a temporary folder, which is also the working
directory, so ``# args: --checkpoint ck.pt`` and the files ``# setup:`` makes (tiny IDX, CSV,
npz, image and checkpoint files, see :func:`make_setup`) sit next to the spec. ``run`` gets
``--out <tmp>/runs``, which must hold no run directory afterwards: a mistake is found before
one is made (``run_dir=kept`` for a mistake only training can find, such as a corrupt image
in the middle of a folder too big to decode when the loaders are built). ``needs=no_cuda`` skips a case on a machine with CUDA, ``needs=timm``
one on a machine without timm (the optional extra), each with the reason.

Adding a file adds a test. Run: ``pytest tests/test_bad_specs.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hostile
import numpy as np
import pytest
import torch

from netspec.cli import main

HERE = Path(__file__).parent
CORPUS = HERE / "bad_specs"
CASES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
HEADER = re.compile(r"^#\s*(expect|args|setup):\s*(.*)$")


@dataclass
class Expect:
    exit: int
    line: int | None  # None: no line printed
    col: int | None  # None: any column (when line is set)
    path: str | None  # None: no spec path printed
    message: str
    hint: str | None
    node: str | None
    args: list[str]
    setup: list[str]
    header_lines: int
    command: str = "compile"
    run_dir: str = "none"  # run: "none" (no run directory left) or "kept" (found while training)
    needs: str | None = None  # "no_cuda": the case is about a machine without CUDA; "timm": it needs timm


def parse_header(case: Path) -> Expect:
    fields: dict[str, str] = {}
    args: list[str] = []
    setup: list[str] = []
    n = 0
    for raw in case.read_bytes().decode("utf-8", "replace").splitlines():
        m = HEADER.match(raw)
        if not m:
            break
        n += 1
        kind, rest = m.groups()
        if kind == "expect":
            for item in shlex.split(rest):
                key, sep, value = item.partition("=")
                assert sep, f"{case.name}: `{item}` in the expect line is not key=value"
                fields[key] = value
        elif kind == "args":
            args += shlex.split(rest)
        else:
            setup += shlex.split(rest)
    assert fields, f'{case.name}: the first line must be `# expect: exit=2 at=L:C path=... message="..."`'
    unknown = set(fields) - {"exit", "at", "path", "message", "hint", "node", "command", "run_dir", "needs"}
    assert not unknown, f"{case.name}: unknown expect fields {unknown}"
    command = fields.get("command", "compile")
    assert command in ("compile", "validate", "run", "eval"), f"{case.name}: unknown command {command!r}"
    assert fields.get("run_dir", "none") in ("none", "kept"), f"{case.name}: run_dir is none or kept"
    assert fields.get("needs") in (None, "no_cuda", "timm"), f"{case.name}: needs is no_cuda or timm"
    at = fields.get("at", "*")
    line = col = None
    if at != "*":
        l_text, _, c_text = at.partition(":")
        line = int(l_text)
        col = None if c_text in ("", "*") else int(c_text)
    path = fields.get("path", "-")
    return Expect(
        int(fields.get("exit", "2")),
        line,
        col,
        None if path == "-" else path,
        fields["message"],
        fields.get("hint"),
        fields.get("node"),
        args,
        setup,
        n,
        command,
        fields.get("run_dir", "none"),
        fields.get("needs"),
    )


# The model of the checkpoint cases: `fc: {Linear: {out_features: 1}}` on `x: [2]`, as in the
# checkpoint cases' specs. `checkpoint` makes a checkpoint of it; the others of other models.
_CHECKPOINT_SPEC = """\
name: {name}
inputs: {{x: [{dim}]}}
nodes:
{nodes}
  - Sigmoid: {{}}
data:
  train: {{source: gaussian_clusters, n_per_class: 8, dim: {dim}}}
  batch_size: 8
loss: BCELoss
optimizer: {{SGD: {{lr: 0.1}}}}
train: {{epochs: 1, device: cpu, progress: line}}
"""
_CHECKPOINT_MODELS = {
    "checkpoint": ("tiny", 2, "  - fc: {Linear: {out_features: 1}}"),
    "checkpoint_other_spec": (
        "other",
        2,
        "  - hidden: {Linear: {out_features: 4}}\n  - ReLU: {}\n  - head: {Linear: {out_features: 1}}",
    ),
    "checkpoint_other_shape": ("wider", 3, "  - fc: {Linear: {out_features: 1}}"),
}


def _checkpoint(kind: str, target: Path) -> None:
    """A real netspec last.pt: one epoch of a tiny spec, trained in this process (~0.1 s)."""
    import io

    import netspec
    from netspec.training.loop import train

    name, dim, nodes = _CHECKPOINT_MODELS[kind]
    work = target.parent / f"_{kind}"
    work.mkdir()
    (work / "spec.yaml").write_text(_CHECKPOINT_SPEC.format(name=name, dim=dim, nodes=nodes))
    result = train(netspec.load_spec(str(work / "spec.yaml")), out=work / "runs", stream=io.StringIO())
    shutil.copy(result.run_dir / "last.pt", target)
    shutil.rmtree(work)


def make_setup(kind: str, target: Path, home: Path) -> None:
    """Files some cases need; made here so no binary file is committed.

    ``target`` is the path named after the kind, inside the case's temporary folder ``home``.
    Hostile and messy files (links that lead out, FIFOs, bombs, bad labels, forged checkpoints)
    come from tests/hostile.py.
    """
    from datafiles import write_csv, write_image_folder, write_mnist, write_npz

    target.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if kind in hostile.SETUPS:
        hostile.SETUPS[kind](target, home)
    elif kind in hostile.FORGED_CHECKPOINTS:
        hostile.forged(hostile.FORGED_CHECKPOINTS[kind])(target, _checkpoint)
    elif kind == "lenet_base":  # a base spec beside the case, for `extends` cases
        shutil.copy(Path(__file__).parents[1] / "specs" / "lenet.yaml", target)
    elif kind == "pickled_model":  # a whole pickled nn.Module: refused by weights_only
        torch.save(torch.nn.Linear(2, 2), target)
    elif kind == "garbage":  # not a torch file at all
        target.write_bytes(b"this is not a torch file\n" * 4)
    elif kind == "state_dict_linear":  # a valid state_dict of another model
        torch.save(torch.nn.Linear(2, 2).state_dict(), target)
    elif kind in _CHECKPOINT_MODELS:
        _checkpoint(kind, target)
    elif kind == "checkpoint_truncated":  # a netspec checkpoint cut short (a crash mid-copy)
        _checkpoint("checkpoint", target)
        target.write_bytes(target.read_bytes()[:600])
    elif kind.startswith("idx"):  # target: <root>/<data set name>, as torchvision lays it out
        write_mnist(target.parent, target.name, n_train=20, n_test=10)
        raw = target / "raw"
        if kind == "idx_truncated":  # the training images cut off mid-file
            images = raw / "train-images-idx3-ubyte"
            images.write_bytes(images.read_bytes()[:1000])
        elif kind == "idx_swapped":  # the test images and labels files exchanged
            images, labels = raw / "t10k-images-idx3-ubyte", raw / "t10k-labels-idx1-ubyte"
            data = images.read_bytes()
            images.write_bytes(labels.read_bytes())
            labels.write_bytes(data)
        elif kind == "idx_count_mismatch":  # the training labels of another (shorter) download
            write_mnist(target.parent / "_short", target.name, n_train=12, n_test=10)
            shutil.copy(
                target.parent / "_short" / target.name / "raw" / "train-labels-idx1-ubyte",
                raw / "train-labels-idx1-ubyte",
            )
            shutil.rmtree(target.parent / "_short")
        else:
            assert kind == "idx", f"unknown setup {kind!r}"
    elif kind.startswith("csv"):  # label, f1..f4 with a header line; 8 rows
        write_csv(target, rng.integers(0, 3, 8), rng.integers(0, 9, (8, 4)))
        lines = target.read_text().splitlines()
        if kind == "csv_bad_row":  # line 6: a cell that is not a number
            lines[5] = lines[5].replace(",", ",x", 1)
        elif kind == "csv_ragged":  # line 4: one column too many
            lines[3] += ",7"
        else:
            assert kind == "csv", f"unknown setup {kind!r}"
        target.write_text("\n".join(lines) + "\n")
    elif kind.startswith("npz"):  # x (12, 4) float32 and y (12,) labels
        x, y = rng.random((12, 4)).astype(np.float32), np.arange(12) % 3
        if kind == "npz_missing_array":  # the labels saved under another name
            write_npz(target, x=x, labels=y)
        elif kind == "npz_truncated":  # cut in the middle: not a zip file any more
            write_npz(target, x=x, y=y)
            target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        elif kind == "npz_target_pairs":  # two labels per sample: not the one class index CrossEntropyLoss reads
            write_npz(target, x=x, y=np.stack([y, y], axis=1))
        else:
            assert kind == "npz", f"unknown setup {kind!r}"
            write_npz(target, x=x, y=y)
    elif kind == "image_gray":  # target: an image folder (cat, dog; 3 each) of one-channel 8x8 PNGs
        from PIL import Image

        for c in ("cat", "dog"):
            (target / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(target / c / f"{i}.png")
    elif kind.startswith("image"):  # target: <root>/<class>/<i>.png of an image folder (cat, dog; 3 each)
        write_image_folder(target.parent.parent, per_class=3, size=(8, 8))
        assert kind == "image_corrupt", f"unknown setup {kind!r}"
        target.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")  # the file named: not an image
    else:
        raise AssertionError(f"unknown setup {kind!r}")


def prepare(case: Path, expect: Expect, tmp_path: Path) -> Path:
    """The file to run: the case itself, or a copy when it needs files beside it, is JSON or
    is a training case (those run in the copy's folder)."""
    if not expect.setup and case.suffix != ".json" and expect.command == "compile":
        return case
    target = tmp_path / case.name
    if case.suffix == ".json":
        lines = case.read_text().splitlines(keepends=True)
        target.write_text("\n" * expect.header_lines + "".join(lines[expect.header_lines :]))
    else:
        shutil.copy(case, target)
    for i in range(0, len(expect.setup), 2):
        make_setup(expect.setup[i], tmp_path / expect.setup[i + 1], tmp_path)
    return target


def skip_unless_possible(expect: Expect) -> None:
    if expect.needs == "no_cuda" and torch.cuda.is_available():
        pytest.skip("a case about a machine without CUDA")
    if expect.needs == "timm" and importlib.util.find_spec("timm") is None:
        pytest.skip("a case about timm models: needs timm (pip install 'netspec[timm]')")


def check_line(line: str, file: str, expect: Expect) -> None:
    """One stderr line against the expectation; the assertion message shows the line."""
    where = f"{file}:{expect.line}:" if expect.line is not None else f"{file}: "
    if expect.line is not None:
        where += f"{expect.col}: " if expect.col is not None else ""
    assert line.startswith(where), f"expected location `{where}` in:\n{line}"
    rest = line[len(where) :]
    if expect.line is not None and expect.col is None:
        rest = re.sub(r"^\d+: ", "", rest)
    if expect.path is not None:
        assert rest.startswith(expect.path + ": ") or rest.startswith(expect.path + " ("), (
            f"expected spec path `{expect.path}` in:\n{line}"
        )
        rest = rest[len(expect.path) :].lstrip()
    if expect.node is not None:
        assert rest.startswith(f"({expect.node}): "), f"expected node `({expect.node})` in:\n{line}"
    assert expect.message in line, f"expected message fragment `{expect.message}` in:\n{line}"
    if expect.hint is not None:
        assert expect.hint in line, f"expected hint fragment `{expect.hint}` in:\n{line}"


def _argv(expect: Expect, target: Path, out: Path) -> list[str]:
    argv = [expect.command, str(target), *expect.args]
    return argv + ["--out", str(out)] if expect.command == "run" else argv


def _run_dirs(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if (p / "spec.yaml").is_file()] if out.exists() else []


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 199
    training = [c for c in CASES if parse_header(c).command != "compile"]
    assert len(training) >= 84
    hostile = [c for c in CASES if c.name.startswith("access_")]
    assert len(hostile) >= 11  # a spec reading outside its folder, every way it can


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_spec(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expect = parse_header(case)
    skip_unless_possible(expect)
    target = prepare(case, expect, tmp_path)
    if expect.command != "compile":
        monkeypatch.chdir(tmp_path)  # relative --checkpoint / --resume paths, as a user types them
    out = tmp_path / "runs"
    start = time.process_time()  # CPU time, as the other bounds
    code = main(_argv(expect, target, out))
    elapsed = time.process_time() - start
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.splitlines()
    assert code == expect.exit, f"exit code {code}, stderr:\n{captured.err}"
    assert len(lines) == 1, f"expected exactly one stderr line, got:\n{captured.err}"
    check_line(lines[0], str(target), expect)
    assert elapsed < 30, f"took {elapsed:.1f}s"
    check_run_dirs(expect, out)
    check_nothing_leaked(tmp_path, captured.err + captured.out)


def check_nothing_leaked(folder: Path, output: str) -> None:
    """No pickle ran its command, and no error quoted a file it should not have read."""
    assert not (folder / hostile.MARKER).exists(), "a pickled command ran"
    assert hostile.SECRET not in output, "an error message quoted a file's contents"


def check_run_dirs(expect: Expect, out: Path) -> None:
    """`run`: no run directory when the mistake is found before training (the rule), one otherwise."""
    if expect.command != "run":
        return
    left = _run_dirs(out)
    if expect.run_dir == "none":
        assert not left and not (out.exists() and any(out.iterdir())), (
            f"a run directory was made before the mistake was found: {left or list(out.iterdir())}"
        )
    else:
        assert len(left) == 1, f"expected the run directory of the interrupted run, found {left}"


# ---- the same through a real process ---------------------------------------------------------


def _run_cli(args: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "netspec", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


# each process start costs ~5 s (torch import): a few by default, more with -m slow
SUBPROCESS_SAMPLE = [
    "set_unknown_key.yaml",
    "tv_weights_pickled_model.yaml",
    "warning_then_error.yaml",
    "data_csv_bad_row.yaml",
    "ckpt_eval_pickle_system.yaml",
]
SUBPROCESS_MORE = [
    "yaml_bad_indent.yaml",
    "yaml_python_object_tag.yaml",
    "unknown_layer.yaml",
    "expr_import.yaml",
    "json_unknown_key.json",
    "set_list_value.yaml",
    "repeat_huge.yaml",
    "ckpt_resume_other_spec.yaml",
    "ckpt_eval_other_shape.yaml",
    "data_image_corrupt.yaml",
    "train_init_layer_unknown.yaml",
    "train_device_cuda.yaml",
    "access_csv_link.yaml",
    "data_label_out_of_range.yaml",
    "data_csv_fifo.yaml",
]


@pytest.mark.parametrize("name", SUBPROCESS_SAMPLE + [pytest.param(n, marks=pytest.mark.slow) for n in SUBPROCESS_MORE])
def test_bad_spec_subprocess(name: str, tmp_path: Path) -> None:
    case = CORPUS / name
    expect = parse_header(case)
    skip_unless_possible(expect)
    target = prepare(case, expect, tmp_path)
    out = tmp_path / "runs"
    proc = _run_cli(_argv(expect, target, out), cwd=tmp_path if expect.command != "compile" else None)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == expect.exit, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    check_line(lines[0], str(target), expect)
    check_run_dirs(expect, out)
    check_nothing_leaked(tmp_path, proc.stderr + proc.stdout)


def test_validate_whole_corpus_in_one_process(tmp_path: Path) -> None:
    """`netspec validate` over every case that needs no options: one line per spec, in order."""
    plain = []
    for case in CASES:
        expect = parse_header(case)
        if (
            not expect.args
            and expect.command in ("compile", "validate")
            and (expect.needs != "timm" or importlib.util.find_spec("timm") is not None)
        ):
            (tmp_path / case.stem).mkdir()
            plain.append((prepare(case, expect, tmp_path / case.stem), expect))
    proc = _run_cli(["validate", *[str(t) for t, _ in plain]], timeout=300)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == len(plain), proc.stderr
    for line, (target, expect) in zip(lines, plain):
        check_line(line, str(target), expect)


# ---- cases made on the fly -------------------------------------------------------------------


def test_file_over_size_limit_is_refused_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netspec.compiler.source import MAX_BYTES

    big = tmp_path / "huge.yaml"
    body = 'name: demo\ninputs: {x: [4]}\nnodes:\n  - Linear: {out_features: 2}\ndescription: "'
    big.write_text(body + "a" * (MAX_BYTES + 10) + '"\n')
    start = time.process_time()  # CPU time: the bound is on netspec's work, not on the machine's load
    assert main(["compile", str(big)]) == 2
    assert time.process_time() - start < 1.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{big}: file is ")
    assert "over the 5242880-byte limit" in err


def test_parameter_limit_fails_before_allocating(tmp_path: Path) -> None:
    """Linear(4 -> 10**9): 5e9 parameters (~19 GiB). Refused on the meta device: fast, no memory."""
    case = CORPUS / "param_limit_linear.yaml"
    script = (
        "import resource, sys, time\n"
        "import netspec.cli, netspec.api\n"  # torch imported before the clock starts: the refusal is timed
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.process_time()\n"  # CPU time: the bound is on netspec's work, not on the machine's load
        f"code = netspec.cli.main(['compile', {str(case)!r}])\n"
        "dt = time.process_time() - t\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(code, dt, (after - before) * 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    code, seconds, grown = proc.stdout.split()
    assert int(code) == 2
    assert float(seconds) < 5.0
    assert int(grown) < 200 * 2**20, f"peak memory grew by {int(grown) / 2**20:.0f} MiB"
    assert "over the limit of 2,000,000,000" in proc.stderr


BOMBS = ["data_idx_gz_bomb.yaml", "data_npz_bomb.yaml", "data_png_bomb.yaml", "data_npz_huge_header.yaml"]


def test_bombs_are_refused_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """The decompression bombs (each under a megabyte, declaring 0.7 GB to 16 TB) run one after
    another in a fresh process: each refused in < 5 s, peak memory growing by < 200 MiB in all."""
    targets = []
    for name in BOMBS:
        (tmp_path / name).mkdir()
        targets.append(str(prepare(CORPUS / name, parse_header(CORPUS / name), tmp_path / name)))
    script = (
        "import os, resource, sys, time\n"
        "import netspec.cli, netspec.data.build, netspec.training.loop, PIL.PngImagePlugin\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for spec in sys.argv[1:]:\n"
        "    os.chdir(os.path.dirname(spec))\n"
        "    t = time.process_time()\n"
        "    code = netspec.cli.main(['run', spec, '--out', 'runs'])\n"
        "    print(code, time.process_time() - t)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *targets], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    *runs, grown = proc.stdout.split("\n")[:-1]
    assert len(runs) == len(BOMBS) and len(proc.stderr.splitlines()) == len(BOMBS), proc.stderr
    for name, line in zip(BOMBS, runs):
        code, seconds = line.split()
        assert int(code) == 2 and float(seconds) < 5.0, f"{name}: exit {code} after {seconds} s"
    assert int(grown) < 200 * 2**20, f"peak memory grew by {int(grown) / 2**20:.0f} MiB"


def test_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\ninputs: {x: [4]}\nnodes:\n  - ReLU: {}\n")
    assert main(["compile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not UTF-8 text" in err and "Traceback" not in err


def test_missing_file_and_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["compile", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
