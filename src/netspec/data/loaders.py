"""The two loaders, and the epoch bookkeeping they share.

* :class:`TensorLoader` (in memory): the data is one tensor per field; batches are cut by
  indexing, with no per-sample Python work.
* :class:`SampleLoader` (per sample): a ``torch.utils.data.DataLoader`` over
  :class:`SampleDataset`, which transforms each sample; used for random augmentation and
  image folders.

Both draw from their ``torch.Generator`` exactly what a ``DataLoader`` draws, so a train
loader yields the same batches, in the same order, as
``DataLoader(TensorDataset(*fields), batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))``
(and eval loaders the same as ``DataLoader(TensorDataset(*fields), batch_size)``, which draws
one number from the global RNG per epoch, as ours do). Both yield ``(inputs by model input
name, target)`` batches (:class:`netspec.data.fields.Batch`).

In data-parallel training each process iterates only its share of every epoch
(:meth:`_EpochLoader.shard`): the epoch's order is drawn exactly as in one process, then dealt
out as ``DistributedSampler`` deals it (``order[rank::world_size]``), so global batch ``k`` is
the union of every process's batch ``k`` and is the single-process batch ``k``.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing.util  # noqa: F401  (registers its exit hook now, so that ours, below, runs before it)
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils.collate import default_collate

from ..errors import DataError
from .fields import Batch, FieldMap, describe_sample
from .readers import first_line
from .samplers import sampler_order
from .sources import BadSample, SourceData
from .transforms import apply

__all__ = ["TensorLoader", "SampleLoader", "SampleDataset", "collate"]


class _EpochLoader:
    """Shared epoch bookkeeping: the generator, and :meth:`set_epoch` for exact resume.

    The generator is seeded once with ``seed`` and then advances across epochs exactly as a
    ``DataLoader``'s does. ``set_epoch(e)`` makes the next iteration yield epoch ``e`` (0-based)
    as if epochs ``0..e-1`` had been iterated in full, by re-seeding and replaying the cheap
    index draws (no data is touched).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        drop_last: bool,
        sampler: Sampler | None,
        generator: torch.Generator | None,
        seed: int | None,
        fmap: FieldMap,
        path: tuple[str, ...],
    ):
        self.dataset_size = n
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.generator = generator
        self.seed = seed
        self.fmap = fmap
        self.path = path
        self._epochs_started = 0
        self._complete = True
        self.rank, self.world_size = 0, 1  # this process's share of each epoch (see shard)
        self.global_batch_size = batch_size

    def __len__(self) -> int:
        """Batches per epoch (this process's, when sharded)."""
        total = self._share()
        return total // self.batch_size if self.drop_last else math.ceil(total / self.batch_size)

    def _epoch_samples(self) -> int:
        """Samples of an epoch in one process: the sampler's draw, or the whole data set."""
        return len(self.sampler) if self.sampler is not None else self.dataset_size  # type: ignore[arg-type]

    @property
    def training(self) -> bool:
        """A training loader (its order is drawn from its generator), not an eval loader."""
        return self.generator is not None

    def shard(self, rank: int, world_size: int) -> None:
        """Yield only process ``rank``'s share of every epoch, as ``DistributedSampler`` does.

        A training loader's ``batch_size`` is the global batch: each process takes
        ``batch_size // world_size`` (the caller checks it divides). The epoch's order is padded
        with its own first samples to a multiple of ``world_size`` (``drop_last``: cut to whole
        global batches instead), then process ``r`` takes ``order[r::world_size]``. An eval
        loader is dealt out without padding (each sample counted once), unless it has fewer
        samples than processes: then every process reads all of it.

        >>> x, y = torch.arange(10.).view(5, 2), torch.arange(5)
        >>> loader = TensorLoader((x, y), kinds=("value", "label"), batch_transform=None, batch_size=2,
        ...                       drop_last=False, sampler=None, generator=torch.Generator(), seed=0,
        ...                       fmap=FieldMap({"x": 0}, 1), path=("data", "train"))
        >>> loader.shard(1, 2)
        >>> [target.tolist() for _, target in loader]  # 0..4 padded with 0: rank 1 takes 1, 3, 0
        [[1], [3], [0]]
        """
        self.rank, self.world_size = rank, world_size
        share = self.global_batch_size / world_size  # an eval batch may be uneven: rounded up
        self.batch_size = max(1, int(share) if self.training else math.ceil(share))

    def _share(self) -> int:
        """Samples this process reads of an epoch (the length of its :meth:`_shard`)."""
        total = self._epoch_samples()
        return total if self.world_size == 1 else len(self._shard(torch.arange(total)))  # type: ignore[arg-type]

    def _shard(self, order: Tensor | None) -> Tensor | None:
        """This process's share of an epoch's order (None: sequential, in one process)."""
        world = self.world_size
        if world == 1:
            return order
        if order is None:
            order = torch.arange(self.dataset_size)
        total = len(order)
        if not self.training:
            return order[self.rank :: world] if total >= world else order
        if self.drop_last:
            return order[: total // self.global_batch_size * self.global_batch_size][self.rank :: world]
        pad = -total % world
        if pad:  # DistributedSampler's padding: the epoch's first samples again (repeated if short)
            order = torch.cat([order, order.repeat(-(-pad // total))[:pad]])
        return order[self.rank :: world]

    def ahead_safe(self, device: torch.device) -> bool:
        """Whether batches for ``device`` may be cut ahead, in another thread (the training
        loop then prefetches them): only when they must be copied to it, and drawing them
        touches no global RNG."""
        return False

    def _draw_order(self) -> Tensor | None:
        """The generator calls a DataLoader makes for one epoch; the epoch's sample order.

        A DataLoader draws a base seed for its workers when the epoch's iterator is made (from
        its generator, or from the global RNG when it has none), then the sampler draws.
        """
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        if self.sampler is None:
            return None  # sequential
        return sampler_order(self.sampler)

    def close(self) -> None:
        """Release what the loader holds between epochs (worker processes); nothing here."""

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration yield epoch ``epoch`` (0-based), for exact resume."""
        if self.generator is None or self.seed is None:
            return  # eval loaders: always the same sequential order
        if epoch == self._epochs_started and self._complete:
            return
        self.generator.manual_seed(self.seed)
        for _ in range(epoch):
            self._draw_order()
        self._epochs_started = epoch
        self._complete = True


class TensorLoader(_EpochLoader):
    """In-memory loader: one tensor per field, batches cut by indexing.

    Yields the same batches as ``DataLoader(TensorDataset(*tensors), batch_size, shuffle/sampler,
    drop_last, generator)`` with the transforms applied to each sample.

    >>> x, y = torch.arange(10.).view(5, 2), torch.arange(5)
    >>> loader = TensorLoader((x, y), kinds=("value", "label"), batch_transform=None, batch_size=2,
    ...                       drop_last=False, sampler=None, generator=None, seed=None,
    ...                       fmap=FieldMap({"x": 0}, 1), path=("data", "test"))
    >>> [target.tolist() for _, target in loader]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(
        self,
        tensors: tuple[Tensor, ...],
        *,
        kinds: tuple[str, ...],
        batch_transform: Callable | None,
        pin_memory: bool = False,
        **kwargs: Any,
    ):
        super().__init__(len(tensors[0]), **kwargs)
        self.tensors = tensors
        self.kinds = kinds
        self.batch_transform = batch_transform  # deterministic transforms too big to apply up front
        # Pinning only helps copies to a GPU, and needs one; data already on the device needs none.
        self.pin_memory = pin_memory and tensors[0].device.type == "cpu" and torch.cuda.is_available()
        self.copy_views = False  # set once a model is seen writing into its input (see _views)
        self._probed = False
        self._lent: tuple[list[Tensor], list[int], bool] | None = None  # the last unshuffled batch handed out

    def ahead_safe(self, device: torch.device) -> bool:
        return self.tensors[0].device != device  # batches are cut by indexing: no RNG involved

    def _batch(self, idx: Tensor | None, lo: int = 0, hi: int = 0) -> list[Tensor]:
        """Fields of the samples ``idx`` (a slice of the epoch's order), or, unshuffled
        (``idx`` None), of the samples at positions ``lo:hi``."""
        if idx is None:
            fields = [t[lo:hi] for t in self.tensors]  # views: no copy (see _views)
            if self.pin_memory:
                fields = [f.pin_memory() for f in fields]
        else:
            # a copy, ~4x faster than t[idx]; straight into page-locked memory when pinning
            fields = [
                torch.index_select(t, 0, idx, out=_pinned_like(t, len(idx)))
                if self.pin_memory
                else t.index_select(0, idx)
                for t in self.tensors
            ]
        if self.batch_transform is not None:
            try:
                fields = list(apply(self.batch_transform, fields, self.kinds))
            except Exception as e:
                raise DataError(f"transforms failed on a batch: {first_line(e)}", path=self.path) from None
        return fields

    def __iter__(self) -> Iterator[Batch]:
        order = self._shard(self._draw_order())
        self._epochs_started += 1
        self._complete = False
        device = self.tensors[0].device
        if order is not None and order.device != device:
            order = order.to(device)
        total = len(order) if order is not None else self.dataset_size
        bs = self.batch_size
        if order is not None:
            # The order cut into the epoch's index slices at once (views, one op), not a slice per
            # batch; the plain case inlined: a step of a small model is tens of microseconds.
            slices = order.split(bs)[: len(self)]  # drop_last: whole batches only
            fmap, tensors = self.fmap, self.tensors
            if self.batch_transform is None and not self.pin_memory:
                for idx in slices:
                    yield fmap([t.index_select(0, idx) for t in tensors])
            else:
                for idx in slices:
                    yield fmap(self._batch(idx))
        else:
            batches = (self._batch(None, b * bs, min((b + 1) * bs, total)) for b in range(len(self)))
            yield from (self.fmap(fields) for fields in self._views(batches))
        self._complete = True

    def _views(self, batches: Iterator[list[Tensor]]) -> Iterator[list[Tensor]]:
        """Unshuffled batches are views of the data set, not copies. A model that writes into
        its input (an in-place op on it) would change the data set through them: the first
        batch is a copy, and if the model wrote into it, every batch is copied from then on.
        A write found later (a model that writes only sometimes) is an error, not a silent
        change of the data."""
        self._check_lent()
        for fields in batches:
            probe = not self.copy_views and not self._probed
            if self.copy_views or probe:
                fields = [f.clone() for f in fields]
            self._lent = (fields, [f._version for f in fields], probe)  # versions: bumped by every in-place write
            yield fields
            self._check_lent()

    def _check_lent(self) -> None:
        """Whether the model wrote into the batch lent last (checked when the next is asked for)."""
        if self._lent is None:
            return
        fields, versions, probe = self._lent
        self._lent = None
        written = any(f._version != v for f, v in zip(fields, versions))
        if probe:
            self._probed, self.copy_views = True, written
        elif written and not self.copy_views:
            raise DataError(
                "the model wrote into its input batch (an in-place op on an input), changing the data set",
                path=self.path,
                hint="make the first op on an input out-of-place (e.g. `ReLU: {inplace: false}`)",
            )


def _pinned_like(t: Tensor, n: int) -> Tensor:
    return torch.empty((n, *t.shape[1:]), dtype=t.dtype, pin_memory=True)


class SampleDataset(Dataset):
    """Per-sample path: raw sample -> transformed tuple of tensors (or a :class:`BadSample`).

    >>> raw = SourceData(("x", "y"), ("value", "label"), tensors=(torch.zeros(3, 2), torch.arange(3)))
    >>> SampleDataset(raw, None)[2]
    (tensor([0., 0.]), tensor(2))
    """

    def __init__(self, raw: SourceData, transform: Callable | None):
        self.raw = raw
        self.transform = transform
        self._seeded: tuple[int, int] | None = None  # (epoch, seed) this worker was seeded for

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int | tuple[int, int, int]) -> tuple[Any, ...] | BadSample:
        if isinstance(i, tuple):  # (epoch, seed, index) from _EpochSeeds: persistent workers
            epoch, seed, i = i
            if (epoch, seed) != self._seeded:
                _seed_worker(seed)
                self._seeded = (epoch, seed)
        raw = self.raw
        sample = tuple(t[i] for t in raw.tensors) if raw.tensors is not None else raw.dataset[i]  # type: ignore[index]
        if isinstance(sample, BadSample) or self.transform is None:
            return sample
        try:
            return apply(self.transform, sample, raw.kinds)
        except Exception as e:  # any failure inside torchvision is the spec's transforms not fitting the data
            return BadSample(f"transforms failed on sample {i} ({describe_sample(sample, raw.names)}): {first_line(e)}")


def collate(samples: list[Any]) -> Any:
    """default_collate, but bad samples and size mismatches come back as a :class:`BadSample`.

    >>> collate([(torch.zeros(2), 0), (torch.ones(2), 1)])[1].tolist()
    [0, 1]
    >>> collate([(torch.zeros(2), 0), (torch.ones(3), 1)]).message.split(":")[0]
    'cannot batch samples of different shapes 2, 3 (add a Resize or CenterCrop transform)'
    """
    for s in samples:
        if isinstance(s, BadSample):
            return s
    try:
        return default_collate(samples)
    except RuntimeError as e:
        shapes = sorted({"x".join(map(str, s[0].shape)) for s in samples if isinstance(s[0], Tensor)})
        hint = " (add a Resize or CenterCrop transform)" if len(shapes) > 1 else ""
        return BadSample(f"cannot batch samples of different shapes {', '.join(shapes[:3])}{hint}: {first_line(e)}")


def _seed_worker(base_seed: int) -> None:
    """Seed this worker process as the DataLoader seeds a fresh worker for an epoch whose base
    seed is ``base_seed`` (python, torch and numpy), so persistent workers draw exactly what
    new workers would."""
    import random

    import numpy as np
    from torch.utils.data import get_worker_info
    from torch.utils.data._utils.worker import _generate_state

    info = get_worker_info()
    if info is None:
        return  # the main process (no workers): nothing is seeded per epoch there
    random.seed(base_seed + info.id)
    torch.manual_seed(base_seed + info.id)
    np.random.seed(_generate_state(base_seed, info.id))


class _EpochSeeds(Sampler):
    """The sampler of a loader with persistent workers: draws each epoch's base seed from the
    generator first (where a DataLoader draws it for new workers), then the sampler's order,
    and hands the seed to the workers with every index. The generator sees the same calls as
    with non-persistent workers, so the order, the workers' random numbers and ``set_epoch``
    are unchanged."""

    def __init__(self, sampler: Sampler | None, n: int, generator: torch.Generator | None, offset: int = 0) -> None:
        self.sampler, self.n, self.generator, self.epoch = sampler, n, generator, 0
        self.offset = offset  # added to the seed: the workers of each process of a distributed run differ

    def __len__(self) -> int:
        return len(self.sampler) if self.sampler is not None else self.n  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator))
        self.epoch += 1
        for i in self.sampler if self.sampler is not None else range(self.n):
            yield self.epoch, seed + self.offset, int(i)


class _Shard(Sampler):
    """A sampler yielding one process's share of the epoch its inner sampler draws (or of the
    sequential order): the inner sampler draws from the generator exactly as in one process."""

    def __init__(self, loader: _EpochLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return self.loader._share()

    def __iter__(self) -> Iterator[int]:
        inner = self.loader.sampler
        order = sampler_order(inner) if inner is not None else None
        shard = self.loader._shard(order)
        assert shard is not None
        yield from shard.tolist()


# Loaders whose worker processes may be running. The workers ignore SIGTERM (below), so the
# `terminate()` that multiprocessing sends its children at exit does not stop them and its
# `join()` would wait forever: the loaders still open are closed first, at exit.
_OPEN: weakref.WeakSet[SampleLoader] = weakref.WeakSet()


@atexit.register  # after multiprocessing.util registered its own: exit hooks run last-registered first
def _close_open_loaders() -> None:
    for loader in list(_OPEN):
        loader.close()


def _ignore_sigint(_worker_id: int) -> None:
    """Workers leave Ctrl-C and SIGTERM (a scheduler stops the whole job) to the main process,
    which saves a checkpoint before exiting; a worker killed first would fail the batch."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class SampleLoader(_EpochLoader):
    """Per-sample loader: a ``DataLoader`` over a Dataset that transforms each sample.

    With worker processes, the workers persist from epoch to epoch (no start-up per epoch); the
    DataLoader's own seed draw goes to a dummy generator and :class:`_EpochSeeds` draws and hands
    out each epoch's seed, so the batches are those of non-persistent workers.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_workers: int,
        pin_memory: bool,
        check: Callable[[Batch], None] | None = None,
        **kwargs: Any,
    ):
        super().__init__(len(dataset), **kwargs)  # type: ignore[arg-type]
        self.num_workers = num_workers
        self.check = check  # of each batch's labels, on the CPU (their values were not known up front)
        self.dataset, self.pin_memory = dataset, pin_memory
        self.loader = self._data_loader()

    def _data_loader(self) -> DataLoader:
        """The DataLoader: over this process's share of each epoch once sharded; with workers, over
        :class:`_EpochSeeds` (whose seeds differ from process to process)."""
        workers = self.num_workers
        sampler = _Shard(self) if self.world_size > 1 else self.sampler
        if workers:
            sampler = _EpochSeeds(sampler, len(self.dataset), self.generator, offset=self.rank * workers)  # type: ignore[arg-type]
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=self.drop_last,
            num_workers=workers,
            pin_memory=self.pin_memory,
            collate_fn=collate,
            generator=torch.Generator() if workers else self.generator,
            persistent_workers=workers > 0,
            worker_init_fn=_ignore_sigint if workers else None,
        )

    def shard(self, rank: int, world_size: int) -> None:
        super().shard(rank, world_size)
        self.loader = self._data_loader()

    def __len__(self) -> int:
        return len(self.loader)

    def ahead_safe(self, device: torch.device) -> bool:
        return self.num_workers > 0  # workers draw their own random numbers; the main process none

    def close(self) -> None:
        """Stop the worker processes, which persist from epoch to epoch; the next epoch starts
        new ones. The training loop calls it when a run ends, and an epoch that fails does."""
        iterator = getattr(self.loader, "_iterator", None)  # where a DataLoader keeps persistent workers
        if iterator is not None:
            self.loader._iterator = None
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
        _OPEN.discard(self)

    def __iter__(self) -> Iterator[Batch]:
        self._epochs_started += 1
        self._complete = False
        if self.num_workers:
            _OPEN.add(self)
        try:
            for batch in self.loader:
                if isinstance(batch, BadSample):
                    raise DataError(batch.message, path=batch.path(self.path))
                batch = self.fmap(batch)
                if self.check is not None:
                    self.check(batch)
                yield batch
        except Exception:  # the epoch failed: its workers would otherwise wait for the next one
            self.close()
            raise
        self._complete = True
