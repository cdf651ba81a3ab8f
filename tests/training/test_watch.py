"""netspec.training.watch: the first non-finite loss of an epoch found from the device values,
with queued checks read only once they have arrived; the fused finiteness check."""

from __future__ import annotations

import math

import pytest
import torch

from netspec.training.meters import LossMeter
from netspec.training.watch import Lagged, NanWatch, all_finite


def fill(watch: NanWatch, meter: LossMeter, values: list[float], start: int = 0) -> list:
    found = []
    for i, v in enumerate(values, start=start):
        meter.update(torch.tensor(v), 4)
        watch.record(i, step=i // 2)
        found.append(watch.poll())
    return found


def test_polls_queue_checks_and_report_the_first_bad_batch() -> None:
    meter, watch = LossMeter(read_cpu=False), NanWatch(every=4)  # kept as on a GPU
    watch.start(meter, epoch=2, batches=20)
    values = [0.5] * 9 + [math.inf, math.nan] + [0.5] * 9
    found = [f for f in fill(watch, meter, values) if f is not None]
    # checks are queued after batches 4, 8, 12...; on the CPU an answer is in at the next poll
    assert len(found) == 1
    bad = found[0]
    assert (bad.epoch, bad.batch, bad.step, bad.value) == (2, 9, 4, math.inf)
    assert str(bad) == "loss is inf at epoch 3, step 5 (batch 10 of 20)"
    error = bad.error("no checkpoint was written yet")
    assert error.path == ("train", "on_nan") and "batch 10 of 20); no checkpoint" in str(error)


def test_check_reads_everything_not_checked_yet() -> None:
    meter, watch = LossMeter(read_cpu=False), NanWatch(every=100)  # no queued check would come in time
    watch.start(meter, epoch=0, batches=3)
    assert all(f is None for f in fill(watch, meter, [0.1, 0.2, -math.inf]))
    bad = watch.check()
    assert bad is not None and (bad.batch, bad.value) == (2, -math.inf)


@pytest.mark.parametrize("read_cpu", [False, True])
def test_a_resumed_epoch_starts_after_what_the_checkpoint_held(read_cpu: bool) -> None:
    meter = LossMeter(read_cpu=read_cpu)
    for v in (0.1, 0.2):
        meter.update(torch.tensor(v), 4)  # restored from a checkpoint: checked before it was saved
    watch = NanWatch(every=1)
    watch.start(meter, epoch=0, batches=5)
    fill(watch, meter, [0.3, math.nan], start=2)
    bad = watch.check()
    assert bad is not None and bad.batch == 3
    meter2, watch2 = LossMeter(), NanWatch()
    watch2.start(meter2, 0, 1)
    assert watch2.check() is None and watch2.poll() is None


def test_a_loss_read_on_the_cpu_is_judged_at_once_and_blames_the_data() -> None:
    meter, watch = LossMeter(), NanWatch(every=4)
    watch.start(meter, epoch=1, batches=10)
    found = []
    for i, v in enumerate([0.5, 0.5, math.nan, math.inf, 0.5]):
        meter.update(torch.tensor(v), 4)
        x = torch.full((4, 2), math.nan if i == 2 else 1.0)
        watch.record(i, step=i, fields=({"x": x}, torch.zeros(4, dtype=torch.long)))
        found.append(watch.poll())
        assert i >= 2 or not watch.where  # nothing kept for a finite loss already judged
    assert found[:2] == [None, None] and found[3:] == [None, None]  # said once, at the bad batch
    bad = found[2]
    assert bad is not None and (bad.batch, bad.step, bad.culprit) == (2, 2, "input `x`")
    assert math.isnan(bad.value) and watch.check() is bad
    assert meter.compute() != meter.compute()  # the NaN is in the epoch's mean too


def test_the_cpu_meter_keeps_float32_values_and_moves_to_a_buffer_when_asked() -> None:
    values = [0.1, 1 / 3, 2.5e-8]
    a, b = LossMeter(), LossMeter(read_cpu=False)
    for v in values:
        a.update(torch.tensor(v), 3)
        b.update(torch.tensor(v), 3)
    assert a.on_host and not b.on_host
    assert torch.equal(a.used(), b.used()) and a.compute() == b.compute()
    assert a.state_dict()["values"].dtype == torch.float32


def test_lagged_and_all_finite() -> None:
    assert Lagged(torch.tensor([1, 2])).ready() and Lagged(torch.tensor(3.0)).get().item() == 3.0
    grads = [torch.ones(3), torch.ones(2, 2, dtype=torch.float64), torch.zeros(0)]
    assert all_finite(grads)
    before = [g.clone() for g in grads]
    grads[1][0, 1] = float("inf")
    assert not all_finite(grads)
    assert torch.equal(grads[0], before[0])  # the check leaves the values as they are


@pytest.mark.gpu
def test_lagged_copy_from_the_gpu_arrives_without_waiting() -> None:
    value = torch.randn(1000, 1000, device="cuda").sum()
    lagged = Lagged(torch.isfinite(value))
    assert lagged.host.is_pinned()
    torch.cuda.synchronize()
    assert lagged.ready() and bool(lagged.get())
