"""Stand-ins for the training tests: a pydantic Spec with the training sections (what the runner
reads of netspec.compiler.spec.Spec), a small MLP, loaders with ``set_epoch`` like netspec.data's, and
the plain PyTorch loop the runner is compared with."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ValidationError

from netspec.compiler.source import Document
from netspec.compiler.spec_errors import spec_error_from_pydantic
from netspec.training.hardware import set_seed
from netspec.training.loop import train
from netspec.training.options import TrainingSections


def validated(model: type[BaseModel], data: Any) -> Any:
    """``model.model_validate(data)``, with errors reported as load_spec reports them: one
    SpecError at the spec path."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise spec_error_from_pydantic(err, Document(data, "<test>")) from None


class Spec(TrainingSections):
    """What the runner reads from netspec.compiler.spec.Spec."""

    name: str = "standin"
    inputs: dict[str, Any] = {"x": {"shape": [8]}}  # noqa: RUF012 - pydantic copies defaults per instance
    outputs: list[str] = ["logits"]  # noqa: RUF012 - likewise
    data: Any = None

    @property
    def output_names(self) -> list[str]:
        return self.outputs


def make_spec(**sections: Any) -> Spec:
    sections.setdefault("loss", "CrossEntropyLoss")
    sections.setdefault("optimizer", {"SGD": {"lr": 0.1, "momentum": 0.9}})
    train = {"progress": "line", "device": "cpu", **sections.pop("train", {})}  # never `auto`: CPU references
    data = {**sections, "train": train}
    try:
        return Spec.model_validate(data)
    except ValidationError as err:  # as load_spec reports it: one SpecError at the spec path
        raise spec_error_from_pydantic(err, Document(data, "<test>")) from None


class Loader:
    """Batches sliced from tensors; the order comes from a generator reseeded by set_epoch."""

    def __init__(
        self,
        x: torch.Tensor,
        y: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        name: str = "x",
        on_batch: Any = None,
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle, self.seed, self.name = x, y, batch_size, shuffle, seed, name
        self.epoch, self.on_batch = 0, on_batch
        self.dataset_size = len(x)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.x), generator=g) if self.shuffle else torch.arange(len(self.x))
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.on_batch is not None:
                self.on_batch(self.epoch, b)
            y = {k: v[idx] for k, v in self.y.items()} if isinstance(self.y, dict) else self.y[idx]
            yield {self.name: self.x[idx]}, y


@dataclass
class Loaders:
    train: Any
    val: Any = None
    test: Any = None
    info: dict = field(default_factory=dict)


def blobs(n: int = 96, classes: int = 3, features: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    centers = torch.randn(classes, features, generator=g) * 2
    return centers[y] + torch.randn(n, features, generator=g), y


def loaders(batch: int = 16, n: int = 96, on_batch: Any = None) -> Loaders:
    x, y = blobs(n)
    xv, yv = blobs(48, seed=2)
    return Loaders(Loader(x, y, batch, on_batch=on_batch), Loader(xv, yv, 32, shuffle=False))


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def run(spec: Spec, tmp_path: Path, model: nn.Module | None = None, data: Loaders | None = None, **kw: Any):
    log = io.StringIO()
    out = None if "resume" in kw else tmp_path / "runs"  # a resumed run continues in its own directory
    result = train(spec, model=model or mlp(), loaders=data or loaders(), out=out, stream=log, **kw)
    result.log = log.getvalue()  # type: ignore[attr-defined]
    return result


def plain_loop(
    model: nn.Module,
    data: Loaders,
    opt: torch.optim.Optimizer,
    epochs: int,
    *,
    seed: int = 0,
    accum: int = 1,
    sched: Any = None,
    interval: str = "epoch",
    clip: float | None = None,
) -> None:
    """The textbook loop (seed 003), the reference the runner must match exactly."""
    set_seed(seed)
    loader = data.train
    for epoch in range(epochs):
        model.train()
        loader.set_epoch(epoch)
        n = len(loader)
        for i, (inputs, y) in enumerate(loader):
            loss = F.cross_entropy(model(inputs["x"]), y)
            window = min(accum, n - (i // accum) * accum)
            (loss / window if window > 1 else loss).backward()
            if (i + 1) % accum == 0 or i + 1 == n:
                if clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                opt.zero_grad()
                if sched is not None and interval == "step":
                    sched.step()
        if sched is not None and interval == "epoch":
            sched.step()


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


def strip_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("t", "time_s", "samples_per_s")} for r in records]


class NanAt(nn.Module):
    """The MLP, but its output is NaN on the batch where it sees the marker input."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out * float("nan") if bool((x == 1234.0).any()) else out


def nan_loaders() -> Loaders:
    x, y = blobs(96)
    x[40] = 1234.0  # sample 40; unshuffled: batch 2 (0-based) of epoch 1
    xv, yv = blobs(48, seed=2)
    return Loaders(Loader(x, y, 16, shuffle=False), Loader(xv, yv, 32, shuffle=False))


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


@contextlib.contextmanager
def logged() -> Iterator[list[str]]:
    """The messages the ``netspec`` loggers emit inside the block (INFO and up), as a caller's
    own handler receives them."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger, handler = logging.getLogger("netspec"), Collect()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
