"""Reading the device without stalling it: non-finite losses found without a host sync per step.

On a GPU, reading a value the device computes (``float(loss)``, ``bool(torch.isfinite(loss))``)
waits for every kernel queued before it, so the host stops running ahead of the device and each
step pays the launch latency of the next. The loop therefore reads nothing per step. The losses
stay on the device (:class:`~netspec.training.meters.LossMeter`); every :data:`CHECK_EVERY`
batches a check of the new ones is queued and its answer copied to the host without waiting
(:class:`Lagged`), to be read a few batches later once it has arrived; at the end of every epoch
and before every checkpoint the check is read at once. A NaN therefore stops the run a few
batches after it happened (naming the batch where it happened) and never reaches a checkpoint.

>>> from netspec.training.meters import LossMeter
>>> meter, watch = LossMeter(), NanWatch()
>>> watch.start(meter, epoch=0, batches=3)
>>> for i, value in enumerate([0.5, float("inf"), float("nan")]):
...     meter.update(torch.tensor(value), 8); watch.record(i, step=i)
>>> bad = watch.check(); (bad.batch, bad.value)
(1, inf)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import NonFiniteLoss

if TYPE_CHECKING:
    from .meters import LossMeter

__all__ = ["CHECK_EVERY", "Lagged", "NanWatch", "BadLoss", "all_finite"]

#: batches between two queued checks of the losses (their answers are read when they arrive)
CHECK_EVERY = 32


class Lagged:
    """A device value on its way to the host: the copy is queued behind the work that computes
    it; :meth:`ready` says whether it has arrived, without waiting.

    >>> Lagged(torch.tensor(2.0)).get()
    tensor(2.)
    """

    def __init__(self, value: Tensor) -> None:
        self.event = None
        if value.device.type == "cuda":
            self.host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
            self.host.copy_(value, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:  # computed already on the CPU (on MPS the copy waits: no events to ask)
            self.host = value.detach().to("cpu")

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def get(self) -> Tensor:
        """The value (waiting for it if it has not arrived)."""
        if self.event is not None:
            self.event.synchronize()
        return self.host


@dataclass
class BadLoss:
    """Where the first non-finite loss of an epoch was (all 0-based) and what it was."""

    epoch: int
    batch: int
    batches: int
    step: int  # optimizer steps done before this batch
    value: float
    culprit: str | None = None  # the batch's field holding NaN/inf (``input `x```), if one did

    def __str__(self) -> str:
        text = "nan" if math.isnan(self.value) else str(self.value)
        where = f"epoch {self.epoch + 1}, step {self.step + 1} (batch {self.batch + 1} of {self.batches})"
        return f"loss is {text} at {where}"

    def error(self, kept: str) -> NonFiniteLoss:
        """The run's one-line error; ``kept`` says which checkpoint is left. The data is blamed
        when the batch itself held NaN/inf (a transform dividing by zero, a loader from Python)."""
        if self.culprit is not None:
            return NonFiniteLoss(
                f"{self}: the batch's {self.culprit} holds NaN or inf; {kept}",
                path=("train", "on_nan"),
                hint="check the data and its transforms (a Normalize with std 0?)",
            )
        return NonFiniteLoss(
            f"{self}; {kept}",
            path=("train", "on_nan"),
            hint="lower the learning rate, set `train.grad_clip`, or `train.on_nan: skip`",
        )


class NanWatch:
    """Finds the first non-finite value among an epoch's losses (a LossMeter's) with no host
    sync per batch: :meth:`poll` every batch (a queued check every :data:`CHECK_EVERY`),
    :meth:`check` (waits) at the end of the epoch and before a checkpoint."""

    def __init__(self, every: int = CHECK_EVERY) -> None:
        self.every = every
        self.meter: LossMeter | None = None
        self.checked = 0  # the meter's first `checked` losses are known to be finite
        self.where: list[tuple[int, int, Any]] = []  # (batch, step, fields' check) of each loss from `checked` on
        self.pending: tuple[int, Lagged] | None = None  # (losses it covers, the queued answer)
        self.bad: BadLoss | None = None  # found: poll() says it once, check() every time
        self.reported = False  # whether poll() said it
        self.epoch = self.batches = 0

    def start(self, meter: LossMeter, epoch: int, batches: int) -> None:
        """Watch ``meter`` (a LossMeter) from its current length: what it holds already was
        checked before it was saved."""
        self.meter, self.epoch, self.batches = meter, epoch, batches
        self.checked, self.where, self.pending, self.bad = len(meter), [], None, None
        self.reported = False

    def record(self, batch: int, step: int, fields: Any = None) -> None:
        """The loss just added to the meter came from this batch, before optimizer step ``step``;
        ``fields`` (the batch's inputs and target) are checked for NaN/inf on the device, so that
        a NaN loss caused by the data can be blamed on the data (no host read here either).

        A loss the meter read at once (on the CPU) is judged here: the fields are checked only
        when it is not finite, and nothing is queued for a finite one."""
        meter = self.meter
        last = meter.last if meter is not None else None
        if (
            meter is not None
            and last is not None
            and self.bad is None
            and len(self.where) == len(meter) - self.checked - 1
        ):
            if math.isfinite(last):
                self.checked = len(meter)  # every loss before it was judged the same way
                return
            self.where.append((batch, step, _finite_fields(fields)))
            self._first_bad(len(meter))
            return
        self.where.append((batch, step, _finite_fields(fields)))

    def poll(self) -> BadLoss | None:
        """The answer of the last queued check if it has arrived (None if all finite); queue
        the next one every ``every`` batches. Never waits. A loss judged when it was recorded
        (on the CPU) is answered at the next poll."""
        meter = self.meter
        if meter is None:
            return None
        if self.bad is not None:
            found, self.reported = (None if self.reported else self.bad), True
            return found
        found = None
        if self.pending is not None and self.pending[1].ready():
            upto, answer = self.pending
            self.pending = None
            if bool(answer.get()):
                self._advance(upto)
            else:
                found = self._first_bad(upto)
                self.reported = True
        if self.pending is None and len(meter) - self.checked >= self.every:
            upto = len(meter)
            self.pending = (upto, Lagged(torch.isfinite(meter.used()[self.checked : upto]).all()))
        return found

    def check(self) -> BadLoss | None:
        """Every loss so far, read at once (one host sync)."""
        meter = self.meter
        if self.bad is not None or meter is None or len(meter) == self.checked:
            return self.bad
        upto = len(meter)
        self.pending = None
        if bool(torch.isfinite(meter.used()[self.checked : upto]).all()):
            self._advance(upto)
            return None
        return self._first_bad(upto)

    def _advance(self, upto: int) -> None:
        del self.where[: upto - self.checked]
        self.checked = upto

    def _first_bad(self, upto: int) -> BadLoss:
        assert self.meter is not None
        values = self.meter.used()[self.checked : upto]
        k = int((~torch.isfinite(values)).nonzero()[0, 0])
        batch, step, fields = self.where[k]
        self.bad = BadLoss(self.epoch, batch, self.batches, step, float(values[k]), _first_not_finite(fields))
        return self.bad


def _finite_fields(fields: Any) -> tuple[list[str], Tensor] | None:
    """(names, a device bool per name) of a batch's floating inputs and target: is each finite."""
    if fields is None:
        return None
    inputs, target = fields
    named = {
        **{f"input `{k}`": v for k, v in inputs.items()},
        **({f"target `{k}`": v for k, v in target.items()} if isinstance(target, dict) else {"target": target}),
    }
    floats = {k: v for k, v in named.items() if isinstance(v, Tensor) and v.is_floating_point()}
    if not floats:
        return None
    return list(floats), torch.stack([torch.isfinite(v).all() for v in floats.values()])  # (fields,)


def _first_not_finite(flags: tuple[list[str], Tensor] | None) -> str | None:
    if flags is None:
        return None
    names, finite = flags
    bad = [name for name, ok in zip(names, finite.tolist()) if not ok]
    return bad[0] if bad else None


def all_finite(tensors: list[Tensor]) -> bool:
    """Whether every value of every tensor is finite: one fused kernel per device (GradScaler's
    own check, with a scale of 1, which leaves the values as they are), then one host read.

    >>> all_finite([torch.ones(3), torch.tensor([1.0, float("nan")])])
    False
    """
    by_device: dict[torch.device, list[Tensor]] = {}
    for t in tensors:
        by_device.setdefault(t.device, []).append(t)
    try:
        flags = []
        for device, group in by_device.items():
            found, one = torch.zeros(1, device=device), torch.ones(1, device=device)
            torch._amp_foreach_non_finite_check_and_unscale_(group, found, one)
            flags.append(found)
        return not bool(torch.stack([f.to(flags[0].device) for f in flags]).any())
    except (AttributeError, RuntimeError, NotImplementedError):  # a torch or device without it
        return bool(torch.stack([torch.isfinite(t).all().to(tensors[0].device) for t in tensors]).all())
