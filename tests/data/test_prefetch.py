"""netspec.data.prefetch: batches run ahead in a thread are the same batches in the same order;
errors and early exits; the CUDA side-stream copies (GPU only)."""

from __future__ import annotations

import threading

import pytest
import torch

from netspec.data.prefetch import device_batches, move, pinned

CPU = torch.device("cpu")


def numbered(n: int, seen: list[str] | None = None):
    for i in range(n):
        if seen is not None:
            seen.append(threading.current_thread().name)
        yield {"x": torch.full((2, 3), float(i))}, torch.tensor([i, i])


@pytest.mark.parametrize("ahead", [False, True])
def test_same_batches_in_the_same_order(ahead: bool) -> None:
    ours = list(device_batches(numbered(20), CPU, ahead=ahead))
    for (a, ya), (b, yb) in zip(ours, numbered(20), strict=True):
        assert torch.equal(a["x"], b["x"]) and torch.equal(ya, yb)


def test_cpu_batches_pass_through_untouched() -> None:
    """Training on the CPU: the loader's own batches, with no per-batch work (no move, no copy)."""
    batches = [({"x": torch.ones(2, 3)}, torch.zeros(2)) for _ in range(3)]
    out = list(device_batches(iter(batches), torch.device("cpu")))
    assert all(a is b for a, b in zip(out, batches)) and len(out) == 3


def test_the_first_batch_is_drawn_by_the_caller_the_rest_ahead() -> None:
    """Whatever a loader does when an epoch starts (an eval loader's draw from the global RNG)
    happens in program order, in the calling thread."""
    seen: list[str] = []
    it = device_batches(numbered(6, seen), CPU, ahead=True)
    next(it)
    assert seen[0] == threading.current_thread().name
    rest = list(it)
    assert len(rest) == 5 and set(seen[1:]) == {"netspec-prefetch"}


def test_an_error_in_the_thread_is_raised_to_the_caller() -> None:
    def broken():
        yield from numbered(3)
        raise ValueError("bad batch 3")

    it = device_batches(broken(), CPU, ahead=True)
    assert len([next(it) for _ in range(3)]) == 3
    with pytest.raises(ValueError, match="bad batch 3"):
        next(it)


def test_leaving_early_stops_the_thread() -> None:
    it = device_batches(numbered(1000), CPU, ahead=True)
    next(it)
    it.close()
    assert not any(t.name == "netspec-prefetch" for t in threading.enumerate())


def test_channels_last_and_dict_targets() -> None:
    batch = ({"image": torch.randn(2, 3, 4, 4), "extra": torch.randn(2, 3)}, {"mask": torch.zeros(2, 1, 4, 4)})
    inputs, target = move(batch, CPU, channels_last=True)
    assert inputs["image"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(inputs["image"], batch[0]["image"]) and inputs["extra"] is batch[0]["extra"]
    assert target["mask"].is_contiguous()  # targets keep their layout
    assert pinned(batch)[1]["mask"].shape == (2, 1, 4, 4)


@pytest.mark.gpu
def test_cuda_copies_ahead_on_a_side_stream() -> None:
    """Pinned batches copied on a side stream one step early: the same values, on the device,
    and usable on the current stream without a host sync."""
    cuda = torch.device("cuda")
    batches = list(device_batches(numbered(8), cuda, ahead=True, channels_last=False))
    assert all(b[0]["x"].device.type == "cuda" for b in batches)
    for (a, ya), (b, yb) in zip(batches, numbered(8), strict=True):
        assert torch.equal(a["x"].cpu(), b["x"]) and torch.equal(ya.cpu(), yb)
    assert pinned(torch.zeros(3)).is_pinned()
