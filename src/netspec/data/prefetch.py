"""Batches on the device before the step that needs them.

:func:`device_batches` wraps one epoch of a loader's batches for a device:

* the batches are moved with ``non_blocking`` copies (from page-locked memory where the loader
  pins it), so the host never waits for a copy;
* with ``ahead`` (a loader whose batches may be cut in another thread: in-memory data left on
  the host, or per-sample loaders with worker processes), a background thread cuts the next
  batches into page-locked memory while the current step runs, and on CUDA each batch's copy
  is queued on a side stream one step early, the step waiting for it on the device (an event),
  never on the host;
* in-memory data already on the device (:func:`netspec.data.build.build_loaders` moves it
  there when it fits) is used where it lies.

Nothing here draws random numbers: a loader that draws from the global RNG per batch (random
transforms in the main process) is never run ahead, so a checkpoint's RNG state is where the
step left it.

>>> x = torch.arange(6.0).view(3, 2)
>>> [b[1].tolist() for b in device_batches(iter([({"x": x[:2]}, x[:2, 0]), ({"x": x[2:]}, x[2:, 0])]),
...                                       torch.device("cpu"), ahead=True)]
[[0.0, 2.0], [4.0]]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["device_batches", "move", "pinned", "PREFETCH_DEPTH"]

#: batches a background thread cuts ahead of the step
PREFETCH_DEPTH = 3


def device_batches(
    batches: Iterator[Any], device: torch.device, *, ahead: bool = False, channels_last: bool = False
) -> Iterator[Any]:
    """``batches`` on ``device`` (see the module docstring); ``channels_last`` converts 4-d
    floating inputs to that memory format on the way. Close it (where it has ``close``) when
    the epoch ends early: that stops a prefetching thread.

    >>> batches = iter([({"x": torch.ones(2, 3)}, torch.zeros(2))] * 3)
    >>> len(list(device_batches(batches, torch.device("cpu"), ahead=True)))
    3
    """

    def convert(batch: Any) -> Any:
        return move(batch, device, channels_last)

    if device.type == "cpu" and not channels_last and not ahead:
        return batches  # already where they are used: nothing to do per batch (not even a wrapper)
    if not ahead:
        return (convert(b) for b in batches)
    pin = device.type == "cuda" and torch.cuda.is_available()
    cut = _threaded(batches, pinned if pin else (lambda b: b))
    return _side_stream(cut, device, convert) if pin else (convert(b) for b in cut)


def move(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """A batch ``(inputs by name, target)`` on ``device``; copies do not wait on the host.

    >>> move(({"x": torch.zeros(1, 2, 3, 3)}, torch.zeros(1)), torch.device("cpu"), True)[0]["x"].stride()
    (18, 1, 6, 2)
    """
    inputs, target = batch
    inputs = {k: _to(v, device, channels_last) for k, v in inputs.items()}
    return inputs, _to(target, device, False)


def _to(value: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(value, Tensor):
        value = value.to(device, non_blocking=True)
        if channels_last and value.ndim == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)  # (N, C, H, W) stored as NHWC
        return value
    if isinstance(value, dict):
        return {k: _to(v, device, channels_last) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device, channels_last) for v in value)
    return value


def pinned(value: Any) -> Any:
    """Every host tensor of ``value`` in page-locked memory (the copy to a GPU is then truly
    asynchronous); tensors pinned already, or on a device, are left as they are, and so is
    everything on a machine without CUDA (pinning needs its driver).

    >>> pinned({"x": torch.zeros(2)})["x"].is_pinned() == torch.cuda.is_available()
    True
    """
    if isinstance(value, Tensor):
        pin = value.device.type == "cpu" and torch.cuda.is_available() and not value.is_pinned()
        return value.pin_memory() if pin else value
    if isinstance(value, dict):
        return {k: pinned(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(pinned(v) for v in value)
    return value


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def _threaded(
    batches: Iterator[Any], prepare: Callable[[Any], Any], depth: int = PREFETCH_DEPTH
) -> Generator[Any, None, None]:
    """``prepare(batch)`` for each batch, run up to ``depth`` batches ahead in a background
    thread. The first batch is drawn here, so whatever the loader does when an epoch starts
    (an eval loader's draw from the global RNG) happens in program order; an error in the
    thread is raised here; leaving early stops the thread."""
    it = iter(batches)
    try:
        first = prepare(next(it))
    except StopIteration:
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in it:
                if not put(prepare(batch)):
                    return
            put(_DONE)
        except BaseException as err:  # handed to the consumer, raised there
            put(_Raised(err))

    thread = threading.Thread(target=produce, name="netspec-prefetch", daemon=True)
    thread.start()
    try:
        yield first
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def _side_stream(
    batches: Iterator[Any], device: torch.device, convert: Callable[[Any], Any]
) -> Generator[Any, None, None]:
    """Each batch's copy queued on a side CUDA stream while the step before it runs; the step
    waits for it on the device (an event), and the allocator is told the tensors are used on
    the step's stream (``record_stream``), so their memory is not reused too early."""
    stream = torch.cuda.Stream(device)

    def issue(batch: Any) -> tuple[Any, Any]:
        with torch.cuda.stream(stream):
            moved = convert(batch)
        return moved, stream.record_event()

    def ready(moved: Any, event: Any) -> Any:
        current = torch.cuda.current_stream(device)
        current.wait_event(event)
        for t in _tensors(moved):
            t.record_stream(current)
        return moved

    it = iter(batches)
    try:
        try:
            upcoming = issue(next(it))
        except StopIteration:
            return
        for batch in it:
            now, upcoming = upcoming, issue(batch)  # the next copy overlaps this step
            yield ready(*now)
        yield ready(*upcoming)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()  # stops the prefetch thread when the epoch ends early


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
