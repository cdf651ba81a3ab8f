"""The output policy (``netspec.files.outputs``): what a command may write, and how.

Each case is a way work was lost or a file landed where it should not: over an input (also
through a hard link or ``./``), over an existing file without ``--force``, into a folder, through
a symbolic link, into a FIFO, outside the working folder by a spec's ``name``, and a failed
write that leaves half a file or destroys the old one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netspec.errors import OutputRefused
from netspec.files.outputs import atomic_file, output_folder, output_path, safe_name


def _refused(match: str, given, **kw) -> str:
    with pytest.raises(OutputRefused, match=match) as err:
        output_path(given, option="--out", **kw)
    assert "\n" not in str(err.value) and err.value.path == ("--out",)
    return str(err.value)


def test_an_input_is_never_written_even_with_force(tmp_path: Path) -> None:
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"trained")
    os.link(ckpt, tmp_path / "hard.pt")
    for given in (ckpt, tmp_path / "hard.pt", tmp_path / "." / "best.pt"):
        _refused("is the checkpoint this command reads", given, reads={"the checkpoint": ckpt}, force=True)
    assert ckpt.read_bytes() == b"trained"


def test_an_existing_file_needs_force(tmp_path: Path) -> None:
    old = tmp_path / "m.onnx"
    old.write_bytes(b"old")
    line = _refused("exists", old)
    assert line.endswith("m.onnx exists; pass --force to replace it, or choose another name")
    assert output_path(old, option="--out", force=True) == old
    assert output_path(tmp_path / "new.onnx", option="--out") == tmp_path / "new.onnx"


def test_folders_links_and_fifos_are_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    _refused("is a folder; give --out a file name", tmp_path / "d", force=True)
    (tmp_path / "link.onnx").symlink_to(tmp_path / "target.onnx")  # dangling: would create the target
    _refused("is a symbolic link", tmp_path / "link.onnx", force=True)
    assert not (tmp_path / "target.onnx").exists()
    os.mkfifo(tmp_path / "pipe.csv")
    _refused("is not a regular file", tmp_path / "pipe.csv", force=True)
    (tmp_path / "file").write_text("")
    _refused("is not a folder", tmp_path / "file" / "out.onnx")
    with pytest.raises(OutputRefused, match="is a file, not a folder"):
        output_folder(tmp_path / "file", option="--write")


def test_a_default_name_from_the_spec_stays_in_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    path = output_path(None, option="--out", default="../../x.onnx")
    assert path.resolve().parent == work.resolve() and "/" not in str(path)
    assert safe_name("..") == "_" and safe_name("/etc/passwd") == "_etc_passwd"
    (work / "runs").symlink_to(tmp_path)  # a default name can still not leave through a link
    monkeypatch.setattr("netspec.files.outputs.safe_name", lambda name: "runs/x.onnx")
    _refused("outside the working folder", None, default="x")
    assert output_path(None, option="--out", default="x", roots=(tmp_path,)).name == "x.onnx"


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    old = tmp_path / "m.py"
    old.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(old) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the check failed")
    assert old.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]
    with atomic_file(old) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".py"  # exporters choose the format by suffix
        tmp.write_text("new")
    assert old.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]
