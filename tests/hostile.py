"""Files a stranger's spec or messy real data brings: links that lead out of the spec's folder,
FIFOs, decompression bombs, labels a loss cannot use, NaN, forged checkpoints, pickles that
would run a command. The bad-spec corpus makes them with ``# setup: KIND TARGET`` (see
``make_setup`` in test_bad_specs.py); each function writes ``target`` (a path inside the case's
folder) and whatever it needs elsewhere.

Nothing here is big on disk: the bombs are built from one compressed block repeated, so a file
of a megabyte declares (and would inflate to) the better part of a gigabyte.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from datafiles import write_csv, write_image_folder, write_mnist, write_npz

MIB = 1 << 20
SECRET = "root:x:0:0:root:/root:/bin/bash"  # what a leaking error message would show
MARKER = "PWNED"  # the file a pickle's command would create next to the case


def outside(home: Path) -> Path:
    """A folder beside the case's folder ``home``: outside everything the case's spec may read."""
    folder = home.parent / f"{home.name}-outside"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _link(target: Path, to: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(to)


# ---- reading outside ------------------------------------------------------------------------


def link_out_csv(target: Path, home: Path) -> None:
    """``target`` is a link to a CSV file outside the spec's folder."""
    secret = outside(home) / "secret.csv"
    secret.write_text(f"{SECRET}\n1,2,3,4,5\n")
    _link(target, secret)


def link_out_folder(target: Path, home: Path) -> None:
    """``target`` is a link to an image folder outside the spec's folder."""
    write_image_folder(outside(home) / "images", per_class=2, size=(8, 8))
    _link(target, outside(home) / "images")


def link_out_image(target: Path, home: Path) -> None:
    """An image folder inside; one image (``target``) is a link to a file outside."""
    write_image_folder(target.parent.parent, per_class=2, size=(8, 8))
    target.unlink()
    (outside(home) / "x.png").write_bytes(target.parent.joinpath("1.png").read_bytes())
    _link(target, outside(home) / "x.png")


def link_out_idx(target: Path, home: Path) -> None:
    """An MNIST layout inside (``target`` = <root>/FashionMNIST); its training images link out."""
    write_mnist(target.parent, target.name, n_train=20, n_test=10)
    images = target / "raw" / "train-images-idx3-ubyte"
    moved = outside(home) / images.name
    images.rename(moved)
    images.symlink_to(moved)


# ---- files that never end or never open -----------------------------------------------------


def fifo(target: Path, home: Path) -> None:
    """A named pipe: opening it for reading waits for a writer, forever."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(target)


def folder(target: Path, home: Path) -> None:
    """A folder named like a file (`base.yaml/`)."""
    target.mkdir(parents=True)


# ---- spec files that cost more than they say ---------------------------------------------------


def many_bases(target: Path, home: Path) -> None:
    """40 small base specs in the folder ``target``: 0.yaml .. 39.yaml, one parameter each."""
    target.mkdir(parents=True)
    for i in range(40):
        (target / f"{i}.yaml").write_text(f"params: {{p{i}: {i}}}\n")


def big_base(target: Path, home: Path) -> None:
    """A base spec of 6 MiB (a comment, then a name): over the bytes all bases may have."""
    target.write_text("# " + "x" * (6 << 20) + "\nname: big\n")


# ---- decompression bombs --------------------------------------------------------------------


def deflate_zeros(mib: int) -> bytes:
    """A raw deflate stream of ``mib`` MiB of zeros, about 1 kB per MiB: one fully flushed block
    (which refers to nothing before it) repeated, then the final empty block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * mib + b"\x03\x00"


def idx_gz_bomb(target: Path, home: Path) -> None:
    """``<root>/FashionMNIST`` whose gzipped training images declare 900 000 images (705 MB):
    the file is under a megabyte. (Its CRC is not computed: it must be refused before inflating.)"""
    write_mnist(target.parent, target.name, n_train=20, n_test=10)
    raw = target / "raw"
    (raw / "train-images-idx3-ubyte").unlink()
    header = struct.pack(">BBBBIII", 0, 0, 0x08, 3, 900_000, 28, 28)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    size = len(header) + 900_000 * 784
    body = head + deflate_zeros(900_000 * 784 // MIB + 1)
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body + struct.pack("<II", 0, size % 2**32)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gz)


def zip_archive(members: dict[str, tuple[bytes, int, int]]) -> bytes:
    """A zip archive: name -> (stored bytes, declared size, method 0 stored / 8 deflated). A
    deflated member's CRC is left 0: the bombs must be refused before they are inflated."""
    out, central = b"", b""
    for name, (data, size, method) in members.items():
        encoded, crc = name.encode(), zlib.crc32(data) if method == 0 else 0
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data), size, len(encoded), 0)
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0,
                crc,
                len(data),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                len(out),
            )
            + encoded
        )
        out += local + encoded + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return out + central + end


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def npz_bomb(target: Path, home: Path) -> None:
    """An npz of about 700 kB whose deflated `x` inflates to 700 MB (700 000 x 1000 uint8)."""
    header = _npy_header((700_000, 1000), "|u1")
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH) + deflate_zeros(700_000 * 1000 // MIB + 1)
    ybytes = _npy_header((700_000,), "<i8")
    target.write_bytes(
        zip_archive({"x.npy": (data, len(header) + 700_000 * 1000, 8), "y.npy": (ybytes, len(ybytes), 0)})
    )


def npz_huge_header(target: Path, home: Path) -> None:
    """An npz whose `x` says it has 10^12 rows and holds 48 bytes."""
    x = _npy_header((10**12, 4), "<f4") + bytes(48)
    y = _npy_header((3,), "<i8") + bytes(24)
    target.write_bytes(zip_archive({"x.npy": (x, len(x), 0), "y.npy": (y, len(y), 0)}))


def png_bomb(target: Path, home: Path) -> None:
    """An image folder whose first image is a 12 kB PNG of 10 000 x 10 000 pixels."""
    write_image_folder(target.parent.parent, per_class=2, size=(8, 8))
    width = height = 10_000
    rows = zlib.compress(bytes((1 + width // 8) * height), 9)  # 1-bit grey, filter byte 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    target.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


# ---- messy labels and values ----------------------------------------------------------------


def _csv_with(target: Path, row: int, cell: str, column: int = 0) -> None:
    """label, f1..f4 with a header line, 8 rows of labels 0..2; data row ``row`` gets ``cell``."""
    rng = np.random.default_rng(0)
    write_csv(target, rng.integers(0, 3, 8), rng.integers(0, 9, (8, 4)))
    lines = target.read_text().splitlines()
    cells = lines[1 + row].split(",")
    cells[column] = cell
    lines[1 + row] = ",".join(cells)
    target.write_text("\n".join(lines) + "\n")


def csv_label_7(target: Path, home: Path) -> None:
    _csv_with(target, 3, "7")  # line 5


def csv_label_fraction(target: Path, home: Path) -> None:
    _csv_with(target, 5, "2.5")  # line 7


def csv_nan(target: Path, home: Path) -> None:
    _csv_with(target, 2, "nan", column=3)  # line 4, column 4


def csv_secret(target: Path, home: Path) -> None:
    """A CSV file whose second line is a line of /etc/passwd."""
    _csv_with(target, 0, SECRET)


def npz_inf(target: Path, home: Path) -> None:
    x = np.random.default_rng(0).random((12, 4)).astype(np.float32)
    x[5, 2] = np.inf
    write_npz(target, x=x, y=np.arange(12) % 3)


def npz_label_negative(target: Path, home: Path) -> None:
    y = np.arange(12) % 3
    y[9] = -1
    write_npz(target, x=np.zeros((12, 4), np.float32), y=y)


def npz_mask_5(target: Path, home: Path) -> None:
    """Images (12, 1, 8, 8) and masks (12, 8, 8) of classes 0..1, but mask 4 holds a 5."""
    masks = np.zeros((12, 8, 8), np.int64)
    masks[4, 3, 3] = 5
    write_npz(target, image=np.zeros((12, 1, 8, 8), np.float32), mask=masks)


def image_3_classes(target: Path, home: Path) -> None:
    """An image folder with three classes (cat, dog, fox) at ``target``."""
    write_image_folder(target, per_class=2, size=(8, 8), classes=("cat", "dog", "fox"))


# ---- checkpoints and pickles ----------------------------------------------------------------


class _System:
    """Unpickles to os.system(...): what a hostile "checkpoint" carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def pickle_system(target: Path, home: Path) -> None:
    """A .pt file that would run `touch PWNED` if unpickled without weights_only."""
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _System(home / MARKER)}, target)


def forged(change: Callable[[dict], None]) -> Callable[[Path, Callable[[str, Path], None]], None]:
    """A setup that takes a real netspec checkpoint (made by ``checkpoint``) and changes it."""

    def setup(target: Path, checkpoint: Callable[[str, Path], None]) -> None:
        checkpoint("checkpoint", target)
        state = torch.load(target, weights_only=True)
        change(state)
        torch.save(state, target)

    return setup


def _nan_weight(state: dict) -> None:
    state["model"]["fc.weight"][0, 0] = float("nan")


def _optimizer_shape(state: dict) -> None:
    state["optimizer"]["state"][0] = {"momentum_buffer": torch.zeros(5, 5)}


def _loss_counts_text(state: dict) -> None:
    """Mid-epoch, with the loss meter's batch sizes as text: right keys, wrong types (the epoch's
    mean would fail only when it is computed)."""
    state["batch"] = 1  # an epoch's end holds no meters (nothing reads them): a first batch's, forged
    state["meters"] = {"loss": {"values": torch.zeros(1), "counts": ["8"]}}


FORGED_CHECKPOINTS = {
    "ckpt_format_only": lambda state: [state.pop(k) for k in list(state) if k != "format"],
    "ckpt_epoch_str": lambda state: state.update(epoch="3"),
    "ckpt_model_list": lambda state: state.update(model=[1, 2, 3]),
    "ckpt_nan_weights": _nan_weight,
    "ckpt_rng_garbage": lambda state: state.update(rng={"torch": torch.zeros(3)}),
    "ckpt_optimizer_shape": _optimizer_shape,
    "ckpt_loss_counts_text": _loss_counts_text,
    "ckpt_format_1": lambda state: state.update(format="netspec-checkpoint-1"),  # what netspec wrote before format 2
}

SETUPS: dict[str, Callable[[Path, Path], None]] = {
    "link_out_csv": link_out_csv,
    "link_out_folder": link_out_folder,
    "link_out_image": link_out_image,
    "link_out_idx": link_out_idx,
    "fifo": fifo,
    "idx_gz_bomb": idx_gz_bomb,
    "npz_bomb": npz_bomb,
    "npz_huge_header": npz_huge_header,
    "png_bomb": png_bomb,
    "csv_label_7": csv_label_7,
    "csv_label_fraction": csv_label_fraction,
    "csv_nan": csv_nan,
    "csv_secret": csv_secret,
    "npz_inf": npz_inf,
    "npz_label_negative": npz_label_negative,
    "npz_mask_5": npz_mask_5,
    "image_3_classes": image_3_classes,
    "pickle_system": pickle_system,
    "folder": folder,
    "many_bases": many_bases,
    "big_base": big_base,
}


def images(target: Path, home: Path) -> None:
    """A plain image folder (cat, dog; two 8x8 images each) at ``target``."""
    write_image_folder(target, per_class=2, size=(8, 8))


SETUPS["images"] = images
