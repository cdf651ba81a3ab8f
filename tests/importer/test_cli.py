"""`netspec import`: exit codes, one-line errors, --allow-import, --args, -o, and `netspec compile`
of what it wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netspec.cli import main

USER_MODEL = """
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return x + self.fc(torch.relu(self.norm(x)))


class Net(nn.Module):
    def __init__(self, dim: int = 16, depth: int = 2, n_classes: int = 10):
        super().__init__()
        self.embed = nn.Linear(8, dim)
        self.blocks = nn.Sequential(*[Block(dim) for _ in range(depth)])
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        return self.head(self.blocks(self.embed(x)).mean(dim=1))
"""


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "user_net.py"
    path.write_text(USER_MODEL)
    return path


def test_a_user_file_is_imported_only_when_allowed(user_file: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(user_file.parent)
    assert main(["import", "user_net.py:Net", "--input-size", "5x8"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "user_net.py:Net: importing `user_net.py` runs its code; refused; allow it explicitly: "
        "--allow-import user_net.py\n"
    )


def test_import_writes_a_spec_that_compiles(user_file: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(user_file.parent)
    code = main(
        [
            "import",
            "user_net.py:Net",
            "--allow-import",
            "user_net.py",
            "--args",
            "depth=3",
            "n_classes=4",
            "--input-size",
            "5x8",
            "-o",
            "net.yaml",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "wrote net.yaml: Net: 1 block(s) (Block x3)"
    assert out[1].startswith("round trip checked: the spec loads the model's state_dict strictly (16 tensors)")
    text = (user_file.parent / "net.yaml").read_text()
    assert text.startswith(
        "# written by `netspec import user_net.py:Net --allow-import user_net.py --args depth=3 n_classes=4 "
        "--input-size 5x8` "
        "from user_net.py:Net\n"
    )
    assert "  - blocks: {Block: {}}\n    repeat: 3\n" in text
    assert main(["compile", "net.yaml"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "Net: 1 input (x 5x8) -> 1 output (head 4)"
    assert "blocks       Block x3" in table or "Block" in table


def test_without_output_the_spec_goes_to_stdout_and_the_report_to_stderr(user_file: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(user_file.parent)
    assert (
        main(
            [
                "import",
                "user_net.py:Net",
                "--allow-import",
                "user_net.py",
                "--input-size",
                "5x8",
                "--no-check",
                "--name",
                "tiny",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "\nname: tiny\n" in out and out.endswith("outputs: [head]\n")
    assert err == "tiny: 1 block(s) (Block x2)\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nothing"], "nothing: `nothing` is not MODULE:CALLABLE; e.g. torchvision.models:resnet18 or net.py:Net"),
        (
            ["no_such_module_here:Net"],
            ("no_such_module_here:Net: cannot import `no_such_module_here`: No module named 'no_such_module_here'"),
        ),
        (["torch.nn:NoSuchLayer"], "torch.nn:NoSuchLayer: `torch.nn` has no `NoSuchLayer`"),
        (
            ["torch.nn:ReLU"],
            ("torch.nn:ReLU: the model is a torch.nn layer (torch.nn.modules.activation.ReLU): write it as a node"),
        ),
        (
            ["torchvision.models:resnet18", "--args", "num_classes"],
            "torchvision.models:resnet18: --args `num_classes` is not KEY=VALUE; e.g. --args num_classes=10",
        ),
        (
            ["torchvision.models:resnet18", "--args", "num_clases=3"],
            (
                "torchvision.models:resnet18: --args: `torchvision.models:resnet18` cannot be called with "
                "num_clases=3: TypeError: ResNet.__init__() got an unexpected keyword argument 'num_clases'; "
                "pass constructor arguments with --args KEY=VALUE"
            ),
        ),
        (
            ["torchvision.models:resnet18", "--input-size", "3x32x32:long"],
            (
                "torchvision.models:resnet18: --input-size `3x32x32:long`: dtype `long` is not one of "
                "float32, float64, float16, bfloat16, int64, int32, bool"
            ),
        ),
        (
            ["torchvision.models:resnet18", "--input-size", "image=3x32x32"],
            "torchvision.models:resnet18: --input-size `image=3x32x32`: forward takes x",
        ),
        (
            ["torchvision.models:resnet18", "--input-size", "3x32"],
            (
                "torchvision.models:resnet18: the traced forward fails on inputs of 3x32: Given groups=1, "
                "weight of size [64, 3, 7, 7], expected input[1, 1, 3, 32] to have 3 channels, but got 1 "
                "channels instead; check --input-size (token ids and masks need a dtype: tokens=16:int64, mask=16:bool)"
            ),
        ),
    ],
)
def test_mistakes_are_one_line_with_exit_2(argv: list[str], message: str, capsys) -> None:
    assert main(["import", *argv]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_the_current_folder_is_not_searched_for_module_names(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "user_net.py").write_text(USER_MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m netspec` would put it there
    monkeypatch.delitem(sys.modules, "user_net", raising=False)
    assert main(["import", "user_net:Net"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "user_net:Net: cannot import `user_net`: No module named 'user_net'; a file of yours is "
        "imported as PATH.py:CALLABLE with --allow-import PATH.py"
    )


def test_torch_is_not_imported_for_help() -> None:
    code = (
        "import sys; from netspec.cli import main\ntry:\n    main(['import', '--help'])\nexcept SystemExit:\n"
        "    pass\nprint('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout  # on a hang, run kills the child
    assert out.strip().endswith("False")


def test_output_never_replaces_the_imported_source_and_asks_for_force(user_file: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(user_file.parent)
    base = ["import", "user_net.py:Net", "--allow-import", "user_net.py", "--input-size", "5x8", "--no-check"]
    assert main([*base, "-o", "./user_net.py", "--force"]) == 2
    assert capsys.readouterr().err == (
        "user_net.py:Net: -o: user_net.py is the imported source this command reads; "
        "writing it would destroy it; choose another file name\n"
    )
    assert user_file.read_text() == USER_MODEL
    assert main([*base, "-o", "."]) == 2
    assert capsys.readouterr().err == "user_net.py:Net: -o: . is a folder; give -o a file name\n"
    assert main([*base, "-o", "net.yaml"]) == 0
    assert main([*base, "-o", "net.yaml"]) == 2
    assert capsys.readouterr().err.endswith("-o: net.yaml exists; pass --force to replace it, or choose another name\n")
    assert main([*base, "-o", "net.yaml", "--force", "--name", "again"]) == 0
    assert "name: again" in (user_file.parent / "net.yaml").read_text()


FAILING_MODEL = """
from torch import nn


class Net(nn.Module):
    def __init__(self, depth: int = 2):
        super().__init__()
        assert depth <= 4, "depth must be at most 4"
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x)
"""


def test_every_constructor_error_is_one_line_naming_args(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "net.py").write_text(FAILING_MODEL)
    monkeypatch.chdir(tmp_path)
    assert main(["import", "net.py:Net", "--allow-import", "net.py", "--args", "depth=9", "--input-size", "8"]) == 2
    assert capsys.readouterr().err == (
        "net.py:Net: --args: `net.py:Net` cannot be called with depth=9: "
        "AssertionError: depth must be at most 4; pass constructor arguments with "
        "--args KEY=VALUE\n"
    )


def test_a_huge_model_is_refused_before_it_is_built(capsys) -> None:
    """resnet18 with 10^7 classes: a 512 x 10^7 layer (20 GB) is counted on the meta device, never allocated."""
    import time

    start = time.monotonic()
    assert main(["import", "torchvision.models:resnet18", "--args", "num_classes=10000000"]) == 2
    assert time.monotonic() - start < 20  # allocating and initialising 5e9 parameters takes minutes
    assert capsys.readouterr().err == (
        "torchvision.models:resnet18: --args: `torchvision.models:resnet18` would have 5,141,186,132 parameters, "
        "over the limit of 2,000,000,000; check the --args; raise the limit with --max-params if this is intended\n"
    )
    assert main(["import", "torchvision.models:resnet18", "--max-params", "1000", "--no-check"]) == 2
    assert "over the limit of 1,000" in capsys.readouterr().err


def test_output_never_replaces_an_installed_module_it_imports(tmp_path: Path, capsys, monkeypatch) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "netspec_test_installed.py").write_text(USER_MODEL)
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.chdir(tmp_path)
    argv = ["import", "netspec_test_installed:Net", "--input-size", "5x8", "--no-check", "--force"]
    assert main([*argv, "-o", "lib/netspec_test_installed.py"]) == 2
    assert capsys.readouterr().err.startswith(
        "netspec_test_installed:Net: -o: lib/netspec_test_installed.py is the imported source this command reads"
    )
    assert (lib / "netspec_test_installed.py").read_text() == USER_MODEL


BIG_BUFFER_MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1000, 8)
        self.register_buffer("noise", torch.rand(5, 1000), persistent=False)  # 5,000 values

    def forward(self, x):  # x: (B, 5, 8)
        return self.fc(x.mean(-1, keepdim=True) * self.noise)
"""


def test_a_big_buffer_outside_the_state_dict_is_written_beside_the_spec(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "big.py").write_text(BIG_BUFFER_MODEL)
    monkeypatch.chdir(tmp_path)
    command = ["import", "big.py:Net", "--allow-import", "big.py", "--input-size", "5x8"]
    assert main(command) == 2  # to standard output: the file would be lost
    assert capsys.readouterr().err == (
        "big.py:Net: -o: the spec reads Net.buffers.pt, beside it, for buffers outside the state_dict of over "
        "4,096 values: it is written with -o only; give -o FILE (the file of buffers is written in the same folder)\n"
    )
    assert main([*command, "-o", "out/net.yaml"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == ("wrote out/Net.buffers.pt: the buffers the spec reads from it")
    assert "file: Net.buffers.pt, key: noise_" in (tmp_path / "out/net.yaml").read_text()
    assert main(["compile", "out/net.yaml"]) == 0  # read from beside the spec, wherever it is run from
    assert main([*command, "-o", "out/net.yaml"]) == 2  # nothing replaced without --force
    assert "exists" in capsys.readouterr().err
