"""netspec.data.loaders: the in-memory loader == a DataLoader over a TensorDataset, epoch after
epoch (the runner's parity test depends on it); exact resume; worker errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from netspec.data import SampleLoader, TensorLoader

from .helpers import batches, build, data_error, same_batches, tensor_file
from datafiles import write_image_folder, write_mnist, write_pt


@pytest.mark.parametrize(
    "shuffle, drop_last, bs",
    [(True, False, 8), (True, True, 8), (False, False, 5), (False, True, 10), (True, False, 64)],
)
def test_in_memory_equals_dataloader(tmp_path, shuffle, drop_last, bs):
    x, y = tensor_file(tmp_path)
    loaders = build(
        {
            "train": {"source": "tensors", "path": "d.pt"},
            "batch_size": bs,
            "loader": {"shuffle": shuffle, "drop_last": drop_last},
        },
        tmp_path,
        ["x"],
        seed=123,
    )
    assert isinstance(loaders.train, TensorLoader)
    ref = DataLoader(
        TensorDataset(x, y),
        batch_size=bs,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(123),
    )
    assert len(loaders.train) == len(ref)
    for _ in range(3):  # the generator carries on across epochs in both
        same_batches(batches(loaders.train), list(ref))


def test_eval_loader_equals_dataloader_and_global_rng(tmp_path):
    x, y = tensor_file(tmp_path)
    loaders = build(
        {"test": {"source": "tensors", "path": "d.pt"}, "batch_size": 8, "loader": {"eval_batch_size": 6}},
        tmp_path,
        ["x"],
    )
    torch.manual_seed(0)
    ours = batches(loaders.test)
    after_ours = torch.rand(1)
    torch.manual_seed(0)
    theirs = list(DataLoader(TensorDataset(x, y), batch_size=6))
    assert torch.equal(after_ours, torch.rand(1))  # both drew the same from the global RNG
    same_batches(ours, theirs)


def test_equivalence_property(tmp_path_factory):
    """For any size, batch size, shuffle and drop_last: the same batches as a DataLoader, epoch after epoch."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    root = tmp_path_factory.mktemp("prop")

    @settings(max_examples=25, deadline=None)
    @given(
        n=st.integers(1, 40),
        bs=st.integers(1, 50),
        shuffle=st.booleans(),
        drop_last=st.booleans(),
        seed=st.integers(0, 2**31),
    )
    def check(n, bs, shuffle, drop_last, seed):
        x, y = torch.arange(n * 2.0).reshape(n, 2), torch.arange(n) % 3
        write_pt(root / "p.pt", {"x": x, "y": y})
        loaders = build(
            {
                "train": {"source": "tensors", "path": "p.pt"},
                "batch_size": bs,
                "loader": {"shuffle": shuffle, "drop_last": drop_last},
            },
            root,
            ["x"],
            seed=seed,
        )
        ref = DataLoader(
            TensorDataset(x, y),
            batch_size=bs,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=torch.Generator().manual_seed(seed),
        )
        for _ in range(2):
            same_batches(batches(loaders.train), list(ref))

    check()


def test_per_sample_path_gives_the_same_batches(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", n_train=30)
    common = {
        "train": {"source": "FashionMNIST", "root": "."},
        "batch_size": 7,
        "transforms": [{"Resize": 14}, "ToTensor", {"Normalize": {"mean": [0.5], "std": [0.25]}}],
    }
    fast = build(common, tmp_path, seed=3)
    slow = build({**common, "loader": {"in_memory": False}}, tmp_path, seed=3)
    assert isinstance(fast.train, TensorLoader) and isinstance(slow.train, SampleLoader)
    for _ in range(2):
        for (a, ya), (b, yb) in zip(batches(fast.train), batches(slow.train), strict=True):
            assert torch.allclose(a["image"], b["image"], atol=1e-6) and torch.equal(ya, yb)
    assert fast.info["train"]["shapes"]["inputs"]["image"]["shape"] == [1, 14, 14]


@pytest.mark.parametrize("in_memory", [True, False])
def test_set_epoch_resumes_exactly(tmp_path, in_memory):
    tensor_file(tmp_path)
    s = {"train": {"source": "tensors", "path": "d.pt"}, "batch_size": 8, "loader": {"in_memory": in_memory}}
    first = build(s, tmp_path, ["x"], seed=9).train
    epochs = [batches(first) for _ in range(3)]
    resumed = build(s, tmp_path, ["x"], seed=9).train
    resumed.set_epoch(2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches(resumed), epochs[2], strict=True))
    first.set_epoch(1)  # going back works too
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches(first), epochs[1], strict=True))
    half = iter(first)
    next(half)  # an abandoned epoch does not spoil the next set_epoch
    first.set_epoch(2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches(first), epochs[2], strict=True))


def test_unreadable_image_in_worker(tmp_path, monkeypatch):
    from netspec.data.sources import files

    monkeypatch.setattr(files, "KEEP_DECODED_BYTES", 0)  # too big to keep: decoded per sample, in the workers
    write_image_folder(tmp_path / "imgs", ("a",), per_class=3, size=(8, 8))
    loaders = build(
        {
            "train": {"source": "ImageFolder", "root": "imgs"},
            "batch_size": 1,
            "loader": {"num_workers": 1, "shuffle": False},
        },
        tmp_path,
    )
    (tmp_path / "imgs" / "a" / "2.png").write_bytes(b"broken after the scan")
    err = data_error(batches, loaders.train)
    assert (
        "cannot read image" in str(err) and "2.png" in str(err) and err.path == ("data", "train", "root")
    )  # the option naming the folder


# A process that ignores SIGTERM (as some CI harnesses start it) leaves a loader's workers
# mid-epoch, held by a reference cycle, and exits.
_EXIT_SCRIPT = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the workers
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from helpers import build
    loaders = build({"train": {"source": "ImageFolder", "root": "imgs"}, "batch_size": 2,
                     "transforms": ["RandomHorizontalFlip", "ToTensor"],  # random: per sample, in workers
                     "loader": {"num_workers": 1}}, Path(sys.argv[1]))
    epoch = iter(loaders.train)
    next(epoch)
    keep = [epoch, loaders]
    keep.append(keep)
""")


def test_a_process_exits_with_workers_still_open(tmp_path):
    """multiprocessing joins its children at exit after a terminate() the workers ignore: the
    loaders still open are closed first, or the process would never end."""
    write_image_folder(tmp_path / "imgs", ("a", "b"), per_class=4, size=(8, 8))
    (tmp_path / "exit.py").write_text(_EXIT_SCRIPT)
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(Path(__file__).parent.parent)])}
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "exit.py"), str(tmp_path), str(Path(__file__).parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_persistent_workers_give_the_batches_of_fresh_workers(tmp_path):
    """Workers persist across epochs, yet every epoch (random flips drawn in the workers
    included) equals a DataLoader whose workers start afresh, and set_epoch still resumes."""
    from torch.utils.data import RandomSampler

    from netspec.data.loaders import collate

    write_mnist(tmp_path, "FashionMNIST", n_train=30)
    s = {
        "train": {"source": "FashionMNIST", "root": "."},
        "batch_size": 7,
        "transforms": ["RandomHorizontalFlip", "RandomVerticalFlip", "ToTensor"],
        "loader": {"num_workers": 2},
    }
    ours = build(s, tmp_path, seed=3).train
    assert isinstance(ours, SampleLoader) and ours.loader.persistent_workers
    g = torch.Generator().manual_seed(3)
    ref = DataLoader(
        ours.loader.dataset,
        batch_size=7,
        sampler=RandomSampler(range(30), generator=g),
        num_workers=2,
        collate_fn=collate,
        generator=g,
    )
    epochs = []
    for _ in range(3):
        epochs.append(batches(ours))
        same_batches(epochs[-1], list(ref), names=("image",))
    resumed = build(s, tmp_path, seed=3).train
    resumed.set_epoch(2)
    same_batches(batches(resumed), [[b[0]["image"], b[1]] for b in epochs[2]], names=("image",))


def test_eval_batches_are_views_unless_the_model_writes_into_them(tmp_path):
    tensor_file(tmp_path)
    spec = {"test": {"source": "tensors", "path": "d.pt"}, "batch_size": 8}
    clean = build(spec, tmp_path, ["x"]).test
    data = clean.tensors[0]
    first, second = [inputs["x"] for inputs, _ in clean][:2]
    assert first.data_ptr() != data.data_ptr()  # the first batch is a copy (the probe)
    assert second.data_ptr() == data[8:].data_ptr()  # then views: no copy
    writer = build(spec, tmp_path, ["x"]).test
    before = writer.tensors[0].clone()
    for _ in range(2):
        for inputs, _ in writer:
            inputs["x"].mul_(2)  # a model with an in-place op on its input
    assert torch.equal(writer.tensors[0], before) and writer.copy_views  # the data set is untouched
    for inputs, _ in clean:  # a model that starts writing later: said, not silently absorbed
        inputs["x"].add_(1)
        break
    err = data_error(batches, clean)  # found when the next epoch starts (the probe was spent)
    assert "wrote into its input" in str(err)
