"""Stage 6: spec + module -> trained module in a run directory.

:func:`train` reads top to bottom: check the spec, pick the hardware, make the run
directory, seed, build model / data / loss / optimizer / scheduler, then loop over epochs.
Everything the loop needs lives in one :class:`_Run`; hardware choices (device, autocast,
grad scaling, and later the DDP rank) live in one :class:`Hardware`.

Run directory (``runs/<spec name>/<timestamp>`` unless ``out`` says otherwise)::

    spec.yaml  spec.sha256   the resolved spec and the sha256 of that file
    train.log                everything printed
    metrics.jsonl            one JSON line per epoch
    last.pt  best.pt         checkpoints (written atomically)
    curves.png               loss / metric curves
    tb/                      TensorBoard logs, when tensorboard is installed

>>> from netspec.runner import Hardware
>>> Hardware.pick("cpu", "fp32").device
device(type='cpu')
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import inspect
import json
import math
import os
import pickle
import random
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch import Tensor

from .errors import CheckpointError, DataError, Location, SpecError, TrainingError, did_you_mean
from .losses import Criterion, build_criterion
from .metrics import MetricSet, higher_is_better, split_metric_name
from .train_spec import (
    InitRuleSpec,
    InitSpec,
    OptimizerSpec,
    SchedulerSpec,
    TrainSpec,
    WeightsSpec,
    check_args,
    lookup,
    number_string_hint,
)

SpecPath = tuple[str | int, ...]

__all__ = [
    "train",
    "evaluate",
    "check_training",
    "RunResult",
    "Interrupted",
    "NonFiniteLoss",
    "WriteFailed",
    "Hardware",
    "set_seed",
    "init_model",
    "load_weights",
    "build_optimizer",
    "build_scheduler",
    "Schedule",
    "save_checkpoint",
    "load_checkpoint",
    "OPTIMIZERS",
    "SCHEDULERS",
    "INIT_FUNCTIONS",
]

# --------------------------------------------------------------------------- registries

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    name: cls
    for name, cls in vars(torch.optim).items()
    if inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
}
# Optimizers that cannot work in a plain step loop, and why.
_REFUSED_OPTIMIZERS = {"LBFGS": "LBFGS needs a closure that re-evaluates the model on every step"}

_sched = torch.optim.lr_scheduler
SCHEDULERS: dict[str, type] = {
    name: cls
    for name, cls in vars(_sched).items()
    if inspect.isclass(cls)
    and (issubclass(cls, _sched.LRScheduler) or cls is _sched.ReduceLROnPlateau)
    and not name.startswith("_")
    and name not in ("LRScheduler", "SequentialLR", "ChainedScheduler", "LambdaLR", "MultiplicativeLR")
}
_REFUSED_SCHEDULERS = {
    "LambdaLR": "takes a Python function, which a spec cannot hold; StepLR, MultiStepLR, "
    "ExponentialLR, LinearLR, PolynomialLR or a list of schedulers cover the usual shapes",
    "MultiplicativeLR": "takes a Python function; ExponentialLR multiplies by a constant `gamma`",
    "SequentialLR": "write a list under `scheduler:`; each entry but the last sets `duration:`",
    "ChainedScheduler": "write a list under `scheduler:` instead",
}
# Arguments netspec works out when missing: the length of the phase (epochs or steps).
_LENGTH_ARGS = {"OneCycleLR": "total_steps", "CosineAnnealingLR": "T_max"}

INIT_FUNCTIONS = {
    name: fn for name, fn in vars(nn.init).items() if name.endswith("_") and not name.startswith("_") and callable(fn)
}


# --------------------------------------------------------------------------- results and errors


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    model: nn.Module
    history: list[dict[str, Any]]  # the metrics.jsonl records
    stop_reason: str  # "epochs" | "early_stopping" | "stop_when"
    epochs: int  # completed epochs
    steps: int  # optimizer steps
    best: dict[str, Any] | None  # {"monitor", "value", "epoch"}


class NonFiniteLoss(TrainingError):
    """The loss, or the weights about to be checkpointed, became NaN or infinite (the CLI exits
    with code 3, not 2). The last good checkpoint is left as it was."""


class WriteFailed(TrainingError):
    """A file of the run could not be written (a full disk, a read-only or vanished directory).

    Raised at the failing write; the CLI prints the one-line message and exits with code 3. The
    last good checkpoint is left as it was, so the run continues with ``--resume`` once there is
    room. The message names the file and the checkpoint to resume from.
    """

    def __str__(self) -> str:  # the file is the location: no "<spec>:" prefix
        text = self.message + (f"; {self.hint}" if self.hint else "")
        return " ".join(text.split("\n"))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C: a checkpoint was saved at ``checkpoint``; the CLI exits with code 130."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(f"interrupted; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint


# --------------------------------------------------------------------------- hardware


@dataclass
class Hardware:
    """Device, mixed precision and (later) the distributed rank: the one place that knows.

    DDP under torchrun would add: rank/world_size from the environment, a
    DistributedSampler's set_epoch, wrapping the model, all-reducing metric sums and
    writing files only where ``is_main``.
    """

    device: torch.device
    precision: str = "fp32"
    rank: int = 0
    world_size: int = 1

    @classmethod
    def pick(cls, device: str, precision: str) -> Hardware:
        """Resolve ``auto`` and check the device exists.

        >>> Hardware.pick("auto", "bf16").precision
        'bf16'
        """
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
        elif device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise TrainingError(
                    f"device `{device}` asked for, but CUDA is not available "
                    f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})",
                    path=("train", "device"),
                    hint="use `device: cpu` or `auto`, or `--device cpu`",
                )
            index = int(device.split(":")[1]) if ":" in device else 0
            if index >= torch.cuda.device_count():
                raise TrainingError(
                    f"device `{device}` asked for, but only {torch.cuda.device_count()} CUDA device(s) exist",
                    path=("train", "device"),
                )
        elif device == "mps" and not _mps_available():
            raise TrainingError("device `mps` asked for, but MPS is not available", path=("train", "device"))
        return cls(torch.device(device), precision)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def to_device(self, value: Any) -> Any:
        if isinstance(value, Tensor):
            return value.to(self.device, non_blocking=True)
        if isinstance(value, dict):
            return {k: self.to_device(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.to_device(v) for v in value)
        return value


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


# --------------------------------------------------------------------------- reproducibility


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch on every device (seed 003's ``set_seed``).

    >>> set_seed(118); a = torch.rand(1); set_seed(118); bool(a == torch.rand(1))
    True
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms for the run's duration, restored afterwards."""
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_keys, py_gauss = random.getstate()
    return {
        # 625 Python ints pickle slowly; as one tensor a checkpoint takes a millisecond.
        "python": (version, torch.tensor(py_keys, dtype=torch.int64), py_gauss),
        # numpy arrays are not allowed by torch.load(weights_only=True): store a tensor.
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    version, py_keys, py_gauss = state["python"]
    random.setstate((version, tuple(py_keys.tolist()), py_gauss))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- static checks


def check_training(spec: Any, *, has_val: bool | None = None) -> None:
    """Check the training sections against torch and the model's outputs, before any work.

    Raises SpecError at the exact spec path, with a suggestion: unknown loss / optimizer /
    scheduler / init function / metric, a bad argument, a loss or metric for an output that
    does not exist, a monitored metric nobody produces. ``has_val=False`` also refuses
    ``val_*`` monitors.

    >>> from types import SimpleNamespace as NS
    >>> from netspec.train_spec import LossSpec, OptimizerSpec
    >>> s = NS(output_names=["y"], loss=LossSpec.model_validate("MSELoss"), init=None,
    ...        optimizer=OptimizerSpec.model_validate({"Adamm": {}}), scheduler=None, train=None)
    >>> check_training(s)
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: optimizer.Adamm: unknown optimizer `Adamm`; did you mean `Adam`?
    """
    outputs = list(spec.output_names)
    tspec = spec.train or TrainSpec()
    if spec.loss is None:
        raise SpecError("training needs a `loss:` section", path=("loss",), hint="for example `loss: CrossEntropyLoss`")
    build_criterion(spec.loss, outputs)
    produced = _metric_names(MetricSet(tspec.metrics, outputs), has_val)
    _check_optimizer(spec.optimizer)
    _check_schedulers(spec.scheduler, produced)
    _dry_build(spec.optimizer, spec.scheduler, tspec, produced)
    _check_init(spec.init)
    for section in ("early_stopping", "stop_when", "checkpoint"):
        sub = getattr(tspec, section)
        if sub is not None and sub.monitor is not None:
            _check_monitor(sub.monitor, produced, ("train", section, "monitor"))


def _metric_names(metrics: MetricSet, has_val: bool | None) -> list[str]:
    splits = ("train",) if has_val is False else ("train", "val")
    return [f"{s}_{k}" for s in splits for k in metrics.keys()]


def _check_monitor(name: str, produced: list[str], path: SpecPath) -> None:
    if name in produced:
        return
    split = split_metric_name(name)
    hint = did_you_mean(name, produced)
    if split and split[0] == "val" and not any(p.startswith("val_") for p in produced):
        hint = "there is no validation data: add a val split under `data:` or monitor a train_* metric"
    elif split and f"train_{split[1]}" not in produced and f"val_{split[1]}" not in produced and not hint:
        hint = f"add `{split[1]}` to train.metrics" if split[1] != "loss" else None
    raise SpecError(
        f"no metric `{name}` is produced; the run produces {', '.join(produced)}",
        path=path,
        hint=hint,
    )


def _optimizer_class(spec: OptimizerSpec, path: SpecPath) -> type[torch.optim.Optimizer]:
    if spec.name in _REFUSED_OPTIMIZERS:
        raise SpecError(f"{spec.name} is not supported: {_REFUSED_OPTIMIZERS[spec.name]}", path=spec.name_path(path))
    return lookup(OPTIMIZERS, spec, path, "optimizer", f"torch.optim has: {', '.join(sorted(OPTIMIZERS))}")


def _check_optimizer(spec: OptimizerSpec | None, path: SpecPath = ("optimizer",)) -> None:
    if spec is None:
        raise SpecError(
            "training needs an `optimizer:` section", path=path, hint="for example `optimizer: {Adam: {lr: 0.001}}`"
        )
    cls = _optimizer_class(spec, path)
    check_args(cls, spec.args, spec.args_path(path), what=spec.name, skip=("params",))
    for i, group in enumerate(spec.groups):
        extra = {k: v for k, v in (("lr", group.lr), ("weight_decay", group.weight_decay)) if v is not None}
        check_args(cls, {**group.args, **extra}, (*path, "groups", i), what=spec.name, skip=("params",), filled=tuple(inspect.signature(cls).parameters))
        for j, pattern in enumerate(group.patterns()):
            if group.match == "regex":
                try:
                    re.compile(pattern)
                except re.error as err:
                    raise SpecError(f"bad regular expression `{pattern}`: {err}", path=_pattern_path(path, i, group.params, j)) from None


def _dry_build(optimizer: OptimizerSpec, scheduler: Any, tspec: TrainSpec, produced: list[str]) -> None:
    """Construct optimizer and schedulers on a stand-in parameter: wrong values (a negative
    lr, `lr: "1e-5"` read as text) are reported before a run directory is made."""
    stand_in = nn.Module()
    stand_in.weight = nn.Parameter(torch.zeros(2, 2))  # no random init: the run's RNG stays untouched
    opt = build_optimizer(optimizer.model_copy(update={"groups": [], "ungrouped": "default"}), stand_in)
    build_scheduler(scheduler, opt, epochs=tspec.epochs, steps_per_epoch=1, produced=produced)


def _pattern_path(path: SpecPath, i: int, params: str | list[str], j: int) -> SpecPath:
    base = (*path, "groups", i, "params")
    return base if isinstance(params, str) else (*base, j)


def _scheduler_list(spec: SchedulerSpec | list[SchedulerSpec] | None) -> list[tuple[SchedulerSpec, SpecPath]]:
    if spec is None:
        return []
    if isinstance(spec, list):
        return [(s, ("scheduler", i)) for i, s in enumerate(spec)]
    return [(spec, ("scheduler",))]


def _scheduler_class(spec: SchedulerSpec, path: SpecPath) -> type:
    if spec.name in _REFUSED_SCHEDULERS:
        raise SpecError(f"{spec.name} cannot be declared: {_REFUSED_SCHEDULERS[spec.name]}", path=spec.name_path(path))
    return lookup(SCHEDULERS, spec, path, "scheduler",
                  f"torch.optim.lr_scheduler has: {', '.join(sorted(SCHEDULERS))}",
                  choices=[*SCHEDULERS, *_REFUSED_SCHEDULERS])


def _check_schedulers(spec: SchedulerSpec | list[SchedulerSpec] | None, produced: list[str]) -> None:
    phases = _scheduler_list(spec)
    if isinstance(spec, list) and not spec:
        raise SpecError("an empty scheduler list; leave `scheduler:` out for a constant learning rate", path=("scheduler",))
    for k, (phase, path) in enumerate(phases):
        cls = _scheduler_class(phase, path)
        filled = (_LENGTH_ARGS[phase.name],) if phase.name in _LENGTH_ARGS else ()
        check_args(cls, phase.args, phase.args_path(path), what=phase.name, skip=("optimizer",), filled=filled)
        plateau = cls is _sched.ReduceLROnPlateau
        if plateau:
            if len(phases) > 1:
                raise SpecError("ReduceLROnPlateau cannot be part of a scheduler list", path=path)
            if phase.interval != "epoch":
                raise SpecError("ReduceLROnPlateau steps once per epoch, on a metric", path=(*path, "interval"))
            if phase.monitor is not None:
                _check_monitor(phase.monitor, produced, (*path, "monitor"))
        elif phase.monitor is not None:
            raise SpecError(f"`monitor:` is for ReduceLROnPlateau; {phase.name} does not watch a metric", path=(*path, "monitor"))
        if len(phases) > 1:
            if phase.interval != phases[0][0].interval:
                raise SpecError("every scheduler in a list steps on the same `interval:`", path=(*path, "interval"))
            if k < len(phases) - 1 and phase.duration is None:
                raise SpecError(
                    "every scheduler in a list but the last needs `duration:` (epochs or steps before the next one)",
                    path=path,
                )
        elif phase.duration is not None:
            raise SpecError("`duration:` is for schedulers in a list", path=(*path, "duration"))


def _init_function(spec: Any, path: SpecPath) -> Any:
    fn = INIT_FUNCTIONS.get(spec.name)
    if fn is None:
        hint = did_you_mean(spec.name, INIT_FUNCTIONS) or did_you_mean(spec.name + "_", INIT_FUNCTIONS)
        raise SpecError(f"unknown init function `{spec.name}`", path=spec.name_path(path), hint=hint or f"torch.nn.init has: {', '.join(INIT_FUNCTIONS)}")
    check_args(fn, spec.args, spec.args_path(path), what=spec.name, skip=("tensor",))
    return fn


def _check_init(spec: InitSpec | None) -> None:
    if spec is None:
        return
    for i, rule in enumerate(spec.rules):
        for part in ("weight", "bias"):
            fn_spec = getattr(rule, part)
            if fn_spec is not None:
                _init_function(fn_spec, ("init", "rules", i, part))


# --------------------------------------------------------------------------- init and weights


def init_model(model: nn.Module, spec: InitSpec | None, *, base_dir: Path = Path("."), log: Any = None) -> None:
    """Apply init rules in order, then load weights; log what was initialised, loaded, frozen.

    >>> from netspec.train_spec import InitSpec
    >>> m = nn.Sequential(nn.Linear(2, 2))
    >>> init_model(m, InitSpec.model_validate({"rules": [{"layer": "Linear", "bias": {"constant_": {"val": 0.3}}}]}))
    >>> m[0].bias.tolist()
    [0.30000001192092896, 0.30000001192092896]
    """
    log = log or _Log(None, None)
    if spec is not None:
        for i, rule in enumerate(spec.rules):
            _apply_rule(model, rule, ("init", "rules", i), log)
        if spec.weights is not None:
            load_weights(model, spec.weights, base_dir=base_dir, log=log)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        count = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        log.info(f"frozen: {len(frozen)} tensors, {count:,} parameters ({_summarise(frozen)})")


def _apply_rule(model: nn.Module, rule: InitRuleSpec, path: SpecPath, log: Any) -> None:
    modules = _rule_modules(model, rule, path)
    done = []
    for part in ("weight", "bias"):
        fn_spec = getattr(rule, part)
        if fn_spec is None:
            continue
        fn = _init_function(fn_spec, (*path, part))
        names = []
        for name, module in modules:
            tensor = getattr(module, part, None)
            if not isinstance(tensor, Tensor):
                continue
            try:
                with torch.no_grad():
                    fn(tensor, **fn_spec.args)
            except (ValueError, RuntimeError, TypeError) as err:
                raise SpecError(f"{fn_spec.name} cannot initialise `{name}.{part}` {tuple(tensor.shape)}: {err}", path=(*path, part)) from None
            names.append(f"{name}.{part}")
        done.append(f"{part} {fn_spec.name}{_fmt_call(fn_spec.args)} on {len(names)} tensors ({_summarise(names)})")
    what = " ".join(filter(None, [_as_text(rule.layer), _as_text(rule.name)]))
    log.info(f"init rules[{path[-1]}] {what}: " + "; ".join(done))


def _rule_modules(model: nn.Module, rule: InitRuleSpec, path: SpecPath) -> list[tuple[str, nn.Module]]:
    named = [(n, m) for n, m in model.named_modules() if n]
    selected = named
    if rule.layer is not None:
        types = _as_list(rule.layer)
        present = {type(m).__name__ for _, m in named}
        for j, t in enumerate(types):
            if not _is_torch_layer(t) and t not in present:
                layer_path = (*path, "layer") if isinstance(rule.layer, str) else (*path, "layer", j)
                raise SpecError(
                    f"no layer type `{t}` in torch.nn or in the model",
                    path=layer_path,
                    hint=did_you_mean(t, [*present, *_torch_layer_names()]),
                )
        selected = [(n, m) for n, m in selected if any(_is_layer(m, t) for t in types)]
    if rule.name is not None:
        patterns = _as_list(rule.name)
        for j, pat in enumerate(patterns):
            if not any(fnmatch.fnmatchcase(n, pat) for n, _ in named):
                name_path = (*path, "name") if isinstance(rule.name, str) else (*path, "name", j)
                raise SpecError(
                    f"init pattern `{pat}` matches no module",
                    path=name_path,
                    hint=did_you_mean(pat, [n for n, _ in named]) or f"module names look like {_summarise([n for n, _ in named], 4)}",
                )
        selected = [(n, m) for n, m in selected if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    return selected


def _is_torch_layer(name: str) -> bool:
    cls = getattr(nn, name, None)
    return inspect.isclass(cls) and issubclass(cls, nn.Module)


def _torch_layer_names() -> list[str]:
    return [n for n in dir(nn) if _is_torch_layer(n)]


def _is_layer(module: nn.Module, name: str) -> bool:
    cls = getattr(nn, name, None)
    if inspect.isclass(cls) and issubclass(cls, nn.Module):
        return isinstance(module, cls)  # subclasses count, as with the seed's isinstance
    return type(module).__name__ == name


def load_weights(model: nn.Module, spec: WeightsSpec, *, base_dir: Path = Path("."), log: Any = None, path: SpecPath = ("init", "weights")) -> None:
    """Load a state_dict (or a checkpoint holding one) into ``model``.

    Uses ``torch.load(weights_only=True)``: a file holding a whole pickled model is refused
    (unpickling can run arbitrary code). ``module.`` prefixes (DataParallel) are removed.
    A shape mismatch is a CheckpointError naming the key and both shapes.
    """
    log = log or _Log(None, None)
    file = Path(spec.path) if Path(spec.path).is_absolute() else Path(base_dir) / spec.path
    option = str(path[0]).startswith("--")  # eval's --checkpoint: named as typed, no `strict:` to offer
    state = _state_dict_from(_load_file(file, path if option else (*path, "path")), spec.key, file, path)
    state, notes = _rename_keys(state, spec)
    own = model.state_dict()
    missing, unexpected = _check_fits(own, state, str(file) if option else file.name, path, strict=spec.strict,
                                      hint=_OTHER_SPEC_HINT.get(str(path[0])))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    msg = f"loaded {len(own) - len(missing)}/{len(own)} tensors from {file}" + "".join(f" ({n})" for n in notes)
    if missing:
        msg += f"; kept from init: {_summarise(missing)}"
    if unexpected:
        msg += f"; ignored from the file: {_summarise(unexpected)}"
    log.info(msg)


_OTHER_SPEC_HINT = {
    "--checkpoint": "was it saved by another spec? evaluate it with the spec it was trained with",
    "--resume": "was it saved by another spec? resume with the spec it was trained with, or start a new run "
                "from its weights with `init: {weights: {path: ..., strict: false}}`",
}


def _check_fits(own: dict[str, Tensor], state: dict[str, Tensor], name: str, path: SpecPath, *, strict: bool,
                hint: str | None = None) -> tuple[list[str], list[str]]:
    """CheckpointError unless ``state`` fits the model's state_dict ``own``: every shared key has
    the same shape and (``strict``) the keys are the same. Returns (missing, unexpected) keys."""
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"`{key}` has shape {tuple(value.shape)} in {name} but {tuple(own[key].shape)} in the model",
                path=path,
                hint=hint or "a different number of classes or channels? load with `strict: false` and drop the layer's weights from the file",
            )
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if strict and (missing or unexpected):
        parts = [f"{len(missing)} model keys missing from the file ({_summarise(missing)})" if missing else "",
                 f"{len(unexpected)} file keys not in the model ({_summarise(unexpected)})" if unexpected else ""]
        close = did_you_mean(unexpected[0], own) if unexpected and len(unexpected) == len(missing) == 1 else None
        raise CheckpointError(
            f"{name} does not match the model: " + "; ".join(filter(None, parts)),
            path=path,
            hint=close or hint or "set `strict: false` to load what matches",
        )
    return missing, unexpected


def _load_file(file: Path, path: SpecPath) -> Any:
    if not file.is_file():
        raise CheckpointError(f"weights file {file} not found", path=path)
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:
            what = found.group(1)
            whole = _is_module_class(what)
            raise CheckpointError(
                f"{file} holds {'a whole pickled model' if whole else 'a pickled Python object'} ({what}); "
                "netspec loads weights only, with torch.load(weights_only=True), because unpickling "
                "can run arbitrary code",
                path=path,
                hint="in a trusted environment re-save it as a state_dict: "
                "torch.save(torch.load(f, weights_only=False).state_dict(), f)",
            ) from None
        raise CheckpointError(f"{file} is not a PyTorch weights file: {_first_line(err)}", path=path) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        why = _first_line(err).split(". This is an internal miniz error")[0]  # then 3 sentences of advice
        raise CheckpointError(f"{file} cannot be read (truncated or not a PyTorch file): {why}", path=path) from None


def _is_module_class(dotted: str) -> bool:
    module_name, _, attr = dotted.rpartition(".")
    mod = sys.modules.get(module_name)
    cls = getattr(mod, attr, None) if mod else None
    return inspect.isclass(cls) and issubclass(cls, nn.Module)


_STATE_KEYS = ("model", "state_dict", "model_state_dict", "net", "weights")


def _state_dict_from(obj: Any, key: str | None, file: Path, path: SpecPath) -> dict[str, Tensor]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file} holds a {type(obj).__name__}, not a state_dict", path=path)
    if key is not None:
        if key not in obj:
            raise CheckpointError(f"{file} has no entry `{key}`; it has {', '.join(map(str, obj))}", path=(*path, "key"), hint=did_you_mean(key, map(str, obj)))
        obj = obj[key]
    elif not _is_state_dict(obj):
        found = [k for k in _STATE_KEYS if k in obj and _is_state_dict(obj[k])]
        if not found:
            raise CheckpointError(f"no state_dict found in {file}; its entries are {', '.join(map(str, obj))}", path=path, hint="name the entry with `key:`")
        obj = obj[found[0]]
    if not _is_state_dict(obj):
        raise CheckpointError(f"entry `{key}` of {file} is not a state_dict", path=(*path, "key"))
    return obj


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _rename_keys(state: dict[str, Tensor], spec: WeightsSpec) -> tuple[dict[str, Tensor], list[str]]:
    notes = []
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("removed DataParallel prefix `module.`")
    if spec.strip_prefix:
        state = {k[len(spec.strip_prefix):] if k.startswith(spec.strip_prefix) else k: v for k, v in state.items()}
        notes.append(f"removed prefix `{spec.strip_prefix}`")
    if spec.add_prefix:
        state = {spec.add_prefix + k: v for k, v in state.items()}
        notes.append(f"added prefix `{spec.add_prefix}`")
    return state, notes


# --------------------------------------------------------------------------- optimizer


def build_optimizer(spec: OptimizerSpec, model: nn.Module, *, log: Any = None, path: SpecPath = ("optimizer",)) -> torch.optim.Optimizer:
    """A torch.optim optimizer over the model's trainable parameters, grouped by pattern.

    Frozen parameters are left out; those matching no group form the default group (or are
    excluded with ``ungrouped: exclude``); a parameter matching two groups is an error.

    >>> from netspec.train_spec import OptimizerSpec
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    >>> opt = build_optimizer(OptimizerSpec.model_validate({"SGD": {"lr": 1e-5}, "groups": [{"params": "1.*", "lr": 1e-2}]}), m)
    >>> [g["lr"] for g in opt.param_groups]
    [0.01, 1e-05]
    """
    log = log or _Log(None, None)
    _check_optimizer(spec, path)
    cls = OPTIMIZERS[spec.name]
    named = list(model.named_parameters())
    owner: dict[str, int] = {}
    groups: list[dict[str, Any]] = []
    for i, group in enumerate(spec.groups):
        names = _group_names(group, i, named, model, path)
        for n in (n for n, _ in named if n in names):  # model order: the first clash is reported
            if n in owner:
                raise SpecError(
                    f"parameter `{n}` matches groups {owner[n]} and {i}; each parameter may be in one group",
                    path=(*path, "groups", i, "params"),
                    hint="make the patterns disjoint",
                )
            owner[n] = i
        trainable = [(n, p) for n, p in named if n in names and p.requires_grad]
        options = {**group.args, **{k: v for k, v in (("lr", group.lr), ("weight_decay", group.weight_decay)) if v is not None}}
        if trainable:
            groups.append({"params": [p for _, p in trainable], **options})
        log.info(f"optimizer group {i} ({_as_text(group.params)}): {len(trainable)} tensors{' ' + _fmt_call(options) if options else ''}"
                 + (f", {len(names) - len(trainable)} frozen left out" if len(names) > len(trainable) else ""))
    rest = [(n, p) for n, p in named if n not in owner and p.requires_grad]
    if rest and spec.ungrouped == "exclude":
        for _, p in rest:
            p.requires_grad_(False)  # not optimised, so no gradient needed
        log.info(f"not optimised (ungrouped: exclude): {len(rest)} tensors ({_summarise([n for n, _ in rest])})")
    elif rest:
        groups.append({"params": [p for _, p in rest]})
        if spec.groups:
            log.info(f"optimizer default group: {len(rest)} tensors{' ' + _fmt_call(spec.args) if spec.args else ''}")
    if not groups:
        raise TrainingError("nothing to train: every parameter is frozen or excluded", path=path)
    try:
        return cls(groups, **spec.args)
    except (TypeError, ValueError, RuntimeError) as err:
        raise SpecError(f"{spec.name}({_fmt_args(spec.args)}) failed: {err}", path=spec.args_path(path),
                        hint=number_string_hint(spec.args)) from None


def _group_names(group: Any, i: int, named: list[tuple[str, nn.Parameter]], model: nn.Module, path: SpecPath) -> set[str]:
    names: set[str] = set()
    for j, pattern in enumerate(group.patterns()):
        if group.match == "regex":
            rx = re.compile(pattern)
            hits = {n for n, _ in named if rx.fullmatch(n)}
        else:
            hits = {n for n, _ in named if fnmatch.fnmatchcase(n, pattern)}
        if not hits:
            choices = [n for n, _ in named] + [f"{m}.*" for m, _ in model.named_modules() if m]
            raise SpecError(
                f"pattern `{pattern}` matches no parameter",
                path=_pattern_path(path, i, group.params, j),
                hint=did_you_mean(pattern, choices, n=2) or f"parameter names look like {_summarise([n for n, _ in named], 4)}",
            )
        names |= hits
    return names


# --------------------------------------------------------------------------- scheduler


@dataclass
class Schedule:
    """The compiled ``scheduler:`` section: knows when to step and on which metric."""

    scheduler: Any = None  # LRScheduler | ReduceLROnPlateau | None
    interval: str = "epoch"
    monitor: str | None = None

    def after_step(self) -> None:
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()

    def after_epoch(self, values: dict[str, float]) -> None:
        if self.scheduler is None or self.interval != "epoch":
            return
        if self.monitor is not None:
            self.scheduler.step(values[self.monitor])  # ReduceLROnPlateau
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scheduler.state_dict() if self.scheduler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)


def build_scheduler(
    spec: SchedulerSpec | list[SchedulerSpec] | None,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    produced: list[str],
    log: Any = None,
) -> Schedule:
    """Compile ``scheduler:``; a list becomes a SequentialLR with milestones at the durations.

    ``OneCycleLR.total_steps`` and ``CosineAnnealingLR.T_max`` default to the length of their
    phase (epochs, or optimizer steps with ``interval: step``).

    >>> from netspec.train_spec import SchedulerSpec
    >>> opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> s = build_scheduler(SchedulerSpec.model_validate({"StepLR": {"step_size": 30, "gamma": 0.1}}), opt,
    ...                     epochs=60, steps_per_epoch=10, produced=["train_loss"])
    >>> for _ in range(30): opt.step(); s.after_epoch({})
    >>> round(opt.param_groups[0]["lr"], 6)   # lr * 0.1 ** (epoch // 30)
    0.01
    """
    log = log or _Log(None, None)
    phases = _scheduler_list(spec)
    if not phases:
        return Schedule()
    _check_schedulers(spec, produced)
    interval = phases[0][0].interval
    total = epochs if interval == "epoch" else epochs * steps_per_epoch
    made, start = [], 0
    for k, (phase, path) in enumerate(phases):
        length = phase.duration if k < len(phases) - 1 else max(1, total - start)
        made.append(_make_scheduler(phase, path, optimizer, length, log))
        start += phase.duration or 0
    if len(made) == 1:
        sched = made[0]
    else:
        milestones = list(np.cumsum([p.duration for p, _ in phases[:-1]]))
        sched = _sched.SequentialLR(optimizer, made, milestones=[int(m) for m in milestones])
    monitor = None
    if isinstance(sched, _sched.ReduceLROnPlateau):
        monitor = phases[0][0].monitor or ("val_loss" if "val_loss" in produced else "train_loss")
        _check_monitor(monitor, produced, (*phases[0][1], "monitor"))
    log.info(f"scheduler: {' then '.join(p.name for p, _ in phases)} every {interval}" + (f", watching {monitor}" if monitor else ""))
    return Schedule(sched, interval, monitor)


def _make_scheduler(phase: SchedulerSpec, path: SpecPath, optimizer: torch.optim.Optimizer, length: int, log: Any) -> Any:
    cls = SCHEDULERS[phase.name]
    args = dict(phase.args)
    fill = _LENGTH_ARGS.get(phase.name)
    if fill and fill not in args and not (phase.name == "OneCycleLR" and "epochs" in args):
        args[fill] = length
        log.info(f"scheduler {phase.name}: {fill}={length} (the length of its phase)")
    try:
        return cls(optimizer, **args)
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise SpecError(f"{phase.name}({_fmt_args(phase.args)}) failed: {err}", path=phase.args_path(path),
                        hint=number_string_hint(phase.args)) from None


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` with torch.save atomically: temp file in the same dir, fsync, rename.

    A crash mid-write leaves the previous checkpoint intact (and at worst a hidden
    ``.last.pt.<pid>.tmp``, removed when the run is resumed). A failing write raises its
    OSError (errno ENOSPC for a full disk), not the RuntimeError torch.save would make of it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            sink = _Sink(f)
            try:
                torch.save(state, sink)
            except RuntimeError:
                if sink.error is not None:  # torch.save reports a failed write as "unexpected pos"
                    raise sink.error from None
                raise
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half
    finally:
        if tmp.exists():
            tmp.unlink()


class _Sink:
    """A file for torch.save that remembers the exception a write raised (torch.save turns any
    exception inside a write, an OSError or a KeyboardInterrupt, into a RuntimeError)."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except BaseException as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def _link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` hold ``src``'s bytes, atomically; a hard link costs nothing."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        import shutil

        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a netspec checkpoint (``last.pt``, ``best.pt``, or a run directory's last.pt)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "last.pt").is_file():
            raise CheckpointError(f"{path} has no last.pt: the run stopped before its first checkpoint",
                                  path=("--resume",), hint="start it again without --resume")
        path = path / "last.pt"
    elif not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found", path=("--resume",))
    state = _load_file(path, ("--resume",))
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a netspec checkpoint (last.pt / best.pt)", path=("--resume",),
                              hint="to start from plain weights use `init: {weights: ...}`")
    state["path"] = path
    return state


CHECKPOINT_FORMAT = "netspec-checkpoint-1"


# --------------------------------------------------------------------------- run directory and log


class _Log:
    """Prints to a stream and appends to the run's train.log.

    ``hold=True``: messages wait (neither printed nor written) until :meth:`release` names the
    log file; a run is set up, and every mistake found, before its directory exists.
    """

    def __init__(self, stream: TextIO | None, file: Path | None, hold: bool = False) -> None:
        self.stream, self.file = stream, file
        self.held: list[str] | None = [] if hold else None

    def release(self, file: Path, *first: str) -> None:
        """Log to ``file`` from now on: the ``first`` lines, then the held messages."""
        held, self.held, self.file = self.held or [], None, file
        for msg in (*first, *held):
            self.info(msg)

    def info(self, msg: str) -> None:
        if self.held is not None:
            self.held.append(msg)
            return
        if self.stream is not None:
            print(msg, file=self.stream, flush=True)
        if self.file is not None:
            with _writing(self.file), open(self.file, "a", encoding="utf-8") as f:
                f.write(msg + "\n")

    def warn(self, msg: str) -> None:
        self.info(f"warning: {msg}")


class RunDir:
    """A run's directory: spec, log, metrics, checkpoints, plots."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved: tuple[int, int] | None = None  # (epoch, step) of the last.pt known to be good

    @classmethod
    def create(cls, out: str | Path | None, spec_name: str) -> RunDir:
        """A new directory under ``out`` (default ``runs/<spec name>``), never reused."""
        parent = Path(out) if out is not None else Path("runs") / _safe_name(spec_name)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            for n in range(1, 10_000):
                path = parent / (stamp if n == 1 else f"{stamp}-{n}")
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    continue
            _probe(path)
        except OSError as err:
            raise TrainingError(
                f"cannot write the run directory under {parent}: {err.strerror or err}",
                path=("--out",),
                hint="choose a writable place with --out DIR",
            ) from None
        return cls(path)

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def write_spec(self, resolved: dict[str, Any]) -> str:
        """Write spec.yaml and spec.sha256 (``sha256sum -c`` format); return the hash.

        Each file is written whole or not at all (temp file + rename), and a resumed run leaves
        an identical spec.yaml untouched, so a kill at any moment never leaves a partial spec.
        """
        text = _spec_yaml(resolved)
        digest = hashlib.sha256(text.encode()).hexdigest()
        name = "spec.yaml"
        existing = self.path / name
        if existing.exists() and existing.read_text(encoding="utf-8") != text:
            name = f"spec.{digest[:12]}.yaml"  # a resumed run with a changed spec keeps both
        _write_text(self.path / name, text)
        _write_text(self.path / name.replace(".yaml", ".sha256"), f"{digest}  {name}\n")
        return digest

    def append_metrics(self, record: dict[str, Any]) -> None:
        file = self.path / "metrics.jsonl"
        with _writing(file), open(file, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records; a line left incomplete by a crash or a full disk is dropped."""
        file = self.path / "metrics.jsonl"
        if not file.exists():
            return []
        records = []
        for line in file.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("epoch"), int):
                    records.append(record)
        return records

    def keep_metrics_before(self, epoch: int) -> list[dict[str, Any]]:
        """Drop records of epochs after a checkpoint (they will be redone); return the rest."""
        kept = [r for r in self.read_metrics() if r["epoch"] <= epoch]
        _write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept), force=True)
        return kept

    def remove_stale_temps(self) -> list[str]:
        """Delete temp files a killed process left (``.last.pt.<pid>.tmp``, ...); return their names.

        Only files of processes that are gone: a live writer's temp file is left alone.
        """
        removed = []
        for tmp in self.path.glob(".*.tmp"):
            found = re.fullmatch(r"\..+\.(\d+)\.tmp", tmp.name)
            if found and (int(found.group(1)) == os.getpid() or _pid_alive(int(found.group(1)))):
                continue
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp.name)
        return removed

    def kept(self) -> str:
        """Which checkpoint a failure leaves, for its message."""
        if self.saved is not None:
            return f"the last good checkpoint is {self.last}; it holds epoch {self.saved[0]}, step {self.saved[1]}"
        if self.last.exists():
            return f"the last good checkpoint is {self.last}"
        return "no checkpoint was written yet"


def _probe(directory: Path) -> None:
    """Raise OSError unless a file can be created in ``directory``."""
    probe = directory / f".write-test.{os.getpid()}.tmp"
    with open(probe, "wb"):
        pass
    probe.unlink()


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return False  # no cheap, harmless check (os.kill would terminate it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


@contextlib.contextmanager
def _writing(file: Path) -> Iterator[None]:
    """Turn an OSError while writing ``file`` into a one-line WriteFailed naming it."""
    try:
        yield
    except OSError as err:
        raise WriteFailed(f"cannot write {file}: {err.strerror or _first_line(err)}", path=("--out",)) from None


def _write_text(file: Path, text: str, force: bool = False) -> None:
    """Replace ``file`` by ``text`` atomically (temp file + rename); skip it if already equal."""
    with _writing(file):
        if not force and file.exists() and file.read_text(encoding="utf-8") == text:
            return
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, file)
        finally:
            if tmp.exists():
                tmp.unlink()


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name) or "run"


def _spec_yaml(resolved: dict[str, Any]) -> str:
    return yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)


def spec_hash(spec: Any) -> str:
    """sha256 of the resolved spec's YAML, as written to spec.yaml."""
    return hashlib.sha256(_spec_yaml(_resolved(spec)).encode()).hexdigest()


def _resolved(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------- the loop


@dataclass
class _State:
    """Where training is; all of it goes into the checkpoint."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # optimizer steps done
    best: float | None = None  # best.pt's monitored value
    best_epoch: int | None = None
    stale: int = 0  # epochs without improvement (early stopping)
    stale_best: float | None = None
    skipped: int = 0  # non-finite losses skipped


@dataclass
class _Run:
    """Everything the loop touches, built once by :func:`train`."""

    spec: Any
    tspec: TrainSpec
    hw: Hardware
    model: nn.Module
    loaders: Any
    criterion: Criterion
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler | None
    meters: dict[str, MetricSet]
    window_meter: MetricSet | None  # stop_when on a train metric, checked every step
    run_dir: RunDir
    log: _Log
    spec_hash: str
    input_names: list[str]
    output_names: list[str]
    params: list[nn.Parameter]
    best_monitor: str
    state: _State = field(default_factory=_State)
    history: list[dict[str, Any]] = field(default_factory=list)
    resume_rng: dict[str, Any] | None = None
    tb: Any = None


def train(
    spec: Any,
    *,
    model: nn.Module | None = None,
    loaders: Any = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    base_dir: str | Path | None = None,
    allow_download: bool = False,
    stream: TextIO | None = None,
) -> RunResult:
    """Train a spec's model as its training sections say; return where it went.

    ``model`` and ``loaders`` default to ``build_model(spec)`` and ``build_loaders(spec.data)``;
    ``resume`` is a checkpoint or run directory to continue exactly where it stopped.
    The log goes to ``stream`` (default: stdout) and to train.log.

    Example::

        spec = netspec.load_spec("specs/fashion_cnn.yaml", ["train.epochs=2"])
        result = train(spec)          # -> runs/fashion_cnn/20250101-120000/
        result.history[-1]["val_accuracy"]
    """
    with _located(spec):
        return _train(spec, model, loaders, out, resume, _base_dir(spec, base_dir), allow_download, stream)


def _train(spec: Any, model: nn.Module | None, loaders: Any, out: str | Path | None, resume: str | Path | None,
           base: Path, allow_download: bool, stream: TextIO | None) -> RunResult:
    tspec = spec.train or TrainSpec()
    check_training(spec)
    hw = Hardware.pick(tspec.device, tspec.precision)
    ckpt = load_checkpoint(resume) if resume is not None else None
    # Model, init, weights, data, optimizer, schedule and checkpoint are set up before the run
    # directory is made, so a mistake in any of them leaves no directory behind; the log holds
    # its messages until then.
    log = _Log(stream if stream is not None else sys.stdout, None, hold=True)
    with _deterministic(tspec.deterministic):
        set_seed(tspec.seed)
        run = _setup(spec, tspec, hw, model, loaders, base, allow_download, log, ckpt)
        run_dir = run.run_dir = _resume_dir(ckpt, out) if ckpt is not None else RunDir.create(out, spec.name)
        try:
            digest = run.spec_hash = run_dir.write_spec(_resolved(spec))
            first = [f"run directory: {run_dir.path}  (device {hw.device}, precision {hw.precision})"]
            if ckpt is not None and ckpt["spec_hash"] != digest:
                first.append(f"warning: the spec changed since {ckpt['path']} was saved (sha256 {ckpt['spec_hash'][:12]} -> {digest[:12]}); resuming anyway")
            log.release(run_dir.path / "train.log", *first)
            if ckpt is not None:
                run.history = run_dir.keep_metrics_before(run.state.epoch)
            run.tb = _tensorboard(run)
            return _fit(run)
        except WriteFailed as err:
            # Said at the failing write, with what is left to continue from.
            err.message += f"; {run_dir.kept()}"
            if err.hint is None:
                err.hint = (f"make room, then continue with --resume {run_dir.path}" if run_dir.last.exists()
                            else "make room (or choose another --out), then start again")
            raise


def _setup(spec: Any, tspec: TrainSpec, hw: Hardware, model: nn.Module | None, loaders: Any, base: Path,
           allow_download: bool, log: _Log, ckpt: dict[str, Any] | None) -> _Run:
    """Everything a run needs but its directory (set by the caller, with ``spec_hash``)."""
    input_names, output_names = list(spec.inputs), list(spec.output_names)
    # ---- model: built, initialised (unless resuming: the checkpoint has the weights), moved
    if model is None:
        from . import build_model

        model = build_model(spec)
    if ckpt is None:
        init_model(model, spec.init, base_dir=base, log=log)
    model.to(hw.device)
    # ---- data
    if loaders is None:
        if getattr(spec, "data", None) is None:
            raise SpecError("training needs a `data:` section", path=("data",))
        from .data import build_loaders

        loaders = build_loaders(spec.data, base_dir=base, input_names=input_names, seed=tspec.seed,
                                device=hw.device, allow_download=allow_download)
    has_val = getattr(loaders, "val", None) is not None
    check_training(spec, has_val=has_val)  # now val_* monitors can be judged
    # ---- loss, metrics, optimizer, schedule
    criterion = build_criterion(spec.loss, output_names).to(hw.device)
    meters = {split: MetricSet(tspec.metrics, output_names) for split in ("train", "val")}
    produced = _metric_names(meters["train"], has_val)
    optimizer = build_optimizer(spec.optimizer, model, log=log)
    steps_per_epoch = math.ceil(len(loaders.train) / tspec.grad_accumulation)
    schedule = build_scheduler(spec.scheduler, optimizer, epochs=tspec.epochs, steps_per_epoch=steps_per_epoch,
                               produced=produced, log=log)
    stop = tspec.stop_when
    window_meter = MetricSet(tspec.metrics, output_names) if stop and stop.check_every == "step" and stop.monitor.startswith("train_") else None
    best_monitor = tspec.checkpoint.monitor or ("val_loss" if has_val else "train_loss")
    run = _Run(spec, tspec, hw, model, loaders, criterion, optimizer, schedule, hw.make_scaler(), meters, window_meter,
               None, log, "", input_names, output_names,  # type: ignore[arg-type]  # run_dir: set by _train
               [p for g in optimizer.param_groups for p in g["params"]], best_monitor)
    _report_model(run)
    if ckpt is not None:
        _restore(run, ckpt)
    return run


def _fit(run: _Run) -> RunResult:
    """The epoch loop: train, validate, record, checkpoint, stop."""
    t, st = run.tspec, run.state
    reason = "epochs"
    try:
        with _SigintGuard() as interrupt:
            while st.epoch < t.epochs and reason == "epochs":
                started = time.perf_counter()
                reason = _train_epoch(run, interrupt) or reason
                train_time = time.perf_counter() - started
                values = _epoch_values(run)
                run.schedule.after_epoch(values)
                st.epoch, st.batch = st.epoch + 1, 0
                record = _record(run, values, train_time, time.perf_counter() - started)
                reason = _check_stopping(run, values) if reason == "epochs" else reason
                final = st.epoch == t.epochs or reason != "epochs"
                saved = _save_epoch(run, values, final)
                _log_epoch(run, record, final)
                if interrupt.requested and reason == "epochs" and not final:
                    if not saved:
                        _save(run, run.run_dir.last)
                    raise Interrupted(run.run_dir.last)
        return RunResult(run.run_dir.path, run.model, run.history, reason, st.epoch, st.step,
                         {"monitor": run.best_monitor, "value": st.best, "epoch": st.best_epoch} if st.best is not None else None)
    finally:
        _finish(run)


def _finish(run: _Run) -> None:
    """curves.png and TensorBoard: best effort. This runs in a `finally`, so an error here (a
    full disk) must not replace the one that ended the run, nor fail a finished one."""
    try:
        _plot_curves(run)
    except Exception as err:
        with contextlib.suppress(Exception):
            run.log.warn(f"curves.png not written: {_first_line(err)}")
    if run.tb is not None:
        with contextlib.suppress(Exception):
            run.tb.close()


def _train_epoch(run: _Run, interrupt: _SigintGuard) -> str | None:
    """One pass over the training data; returns "stop_when" if a step-level target is met."""
    model, st, t, hw = run.model, run.state, run.tspec, run.hw
    loader = run.loaders.train
    meter = run.meters["train"]
    model.train()
    _set_epoch(loader, st.epoch)
    n_batches, accum = len(loader), t.grad_accumulation
    if st.batch == 0:
        meter.reset()
        _restore_rng_once(run)  # resumed at an epoch boundary: before the loader draws
    batches = iter(loader)
    for _ in range(st.batch):  # resumed mid-epoch: replay the order, skip what was done
        next(batches)
    _restore_rng_once(run)
    bar = _progress(run, n_batches)
    pending = 0  # batches whose gradients were accumulated since the last optimizer step
    for i, (inputs, target) in enumerate(batches, start=st.batch):
        inputs, target = hw.to_device(inputs), hw.to_device(target)
        # ---- forward: the model under autocast, the loss in float32
        with hw.autocast():
            outputs = _as_outputs(model(*[inputs[n] for n in run.input_names]), run.output_names)
        loss = run.criterion(outputs, target)
        n = _batch_size(inputs)
        # ---- backward: gradients summed over `accum` batches, each weighted 1/window
        window = min(accum, n_batches - (i // accum) * accum)
        if _finite(run, loss, i, n_batches):
            scaled = loss if window == 1 else loss / window
            (run.scaler.scale(scaled) if run.scaler else scaled).backward()
            meter.update(outputs, target, loss, n)
            if run.window_meter is not None:
                run.window_meter.update(outputs, target, loss, n)
            pending += 1
        st.batch = i + 1
        if bar is not None:
            bar.update(n, loss)
        if st.batch % accum and st.batch != n_batches:
            continue
        # ---- optimizer step (none when every batch of the window was skipped)
        if not pending:
            continue
        if t.on_nan == "skip" and run.scaler is None and not _grads_finite(run):
            # a finite loss whose gradient overflowed: the step would make the weights NaN/inf
            st.skipped += pending
            run.log.warn(f"gradients are not finite at epoch {st.epoch + 1}, step {st.step + 1} "
                         f"(batch {i + 1} of {n_batches}); step skipped (train.on_nan: skip)")
            run.optimizer.zero_grad(set_to_none=True)
            pending = 0
            continue
        _optimizer_step(run)
        pending = 0
        st.step += 1
        run.schedule.after_step()
        if _stop_at_step(run):
            _close(bar)
            return "stop_when"
        if interrupt.requested:
            _close(bar)
            _save(run, run.run_dir.last)
            raise Interrupted(run.run_dir.last)
    _close(bar)
    return None


def _optimizer_step(run: _Run) -> None:
    clip, scaler, opt = run.tspec.grad_clip, run.scaler, run.optimizer
    if clip is not None:
        if scaler is not None:
            scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(run.params, clip.max_norm, norm_type=clip.norm_type)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)


def _grads_finite(run: _Run) -> bool:
    """Whether every gradient is finite (one device sync). Used by `on_nan: skip` only: fp16
    runs have the GradScaler, which already skips such steps."""
    grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad for p in run.params if p.grad is not None]
    return not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def _finite(run: _Run, loss: Tensor, i: int, n_batches: int) -> bool:
    """False (skip the batch) or TrainingError when the loss is NaN/inf."""
    if bool(torch.isfinite(loss)):
        return True
    st = run.state
    where = f"epoch {st.epoch + 1}, step {st.step + 1} (batch {i + 1} of {n_batches})"
    if run.tspec.on_nan == "skip":
        st.skipped += 1
        run.log.warn(f"loss is {float(loss.detach())} at {where}; batch skipped (train.on_nan: skip)")
        return False
    raise NonFiniteLoss(
        f"loss is {float(loss.detach())} at {where}; {run.run_dir.kept()}",
        path=("train", "on_nan"),
        hint="lower the learning rate, set `train.grad_clip`, or `train.on_nan: skip`",
    )


def _stop_at_step(run: _Run) -> bool:
    stop = run.tspec.stop_when
    if stop is None or stop.check_every != "step":
        return False
    if run.window_meter is not None:
        value = run.window_meter.compute()[stop.monitor[len("train_"):]]
        run.window_meter.reset()
    else:
        run.model.eval()
        value = _evaluate_loader(run, run.loaders.val, run.meters["val"])[stop.monitor[len("val_"):]]
        run.model.train()
    if _reached(stop, value):
        run.log.info(f"stop_when: {stop.monitor} = {value:.4f} after step {run.state.step}")
        return True
    return False


def _reached(stop: Any, value: float) -> bool:
    return value > stop.above if stop.above is not None else value < stop.below


def _epoch_values(run: _Run) -> dict[str, float]:
    """train_* from the epoch's running sums, val_* from a pass over the validation data."""
    values = {f"train_{k}": v for k, v in run.meters["train"].compute().items()}
    if getattr(run.loaders, "val", None) is not None:
        run.model.eval()
        values.update({f"val_{k}": v for k, v in _evaluate_loader(run, run.loaders.val, run.meters["val"]).items()})
        run.model.train()
    return values


@torch.no_grad()
def _evaluate_loader(run: Any, loader: Any, meter: MetricSet) -> dict[str, float]:
    """Loss and metrics over a loader; the caller sets model.eval()."""
    meter.reset()
    for inputs, target in loader:
        inputs, target = run.hw.to_device(inputs), run.hw.to_device(target)
        with run.hw.autocast():
            outputs = _as_outputs(run.model(*[inputs[n] for n in run.input_names]), run.output_names)
        meter.update(outputs, target, run.criterion(outputs, target), _batch_size(inputs))
    return meter.compute()


def _record(run: _Run, values: dict[str, float], train_time: float, epoch_time: float) -> dict[str, Any]:
    st = run.state
    lrs = [g["lr"] for g in run.optimizer.param_groups]
    samples = getattr(run.loaders.train, "dataset_size", None)
    record: dict[str, Any] = {"epoch": st.epoch, "step": st.step, **values, "lr": lrs[0]}
    if len(lrs) > 1:
        record["lr_groups"] = lrs
    record["time_s"] = round(epoch_time, 4)
    if samples:
        record["samples_per_s"] = round(samples / train_time, 1) if train_time > 0 else None
    if st.skipped:
        record["skipped_batches"] = st.skipped
    record["t"] = time.time()
    run.history.append(record)
    if run.hw.is_main:
        run.run_dir.append_metrics(record)
        if run.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step", "t"):
                    run.tb.add_scalar(k, v, st.epoch)
    return record


def _improved(value: float, best: float | None, higher: bool, min_delta: float = 0.0) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if higher else value < best - min_delta


def _update_best(run: _Run, values: dict[str, float]) -> bool:
    st, policy = run.state, run.tspec.checkpoint
    higher = _higher(run, run.best_monitor, policy.mode)
    value = values[run.best_monitor]
    if _improved(value, st.best, higher):
        st.best, st.best_epoch = value, st.epoch
        return True
    return False


def _higher(run: _Run, monitor: str, mode: str) -> bool:
    return higher_is_better(monitor, run.meters["train"]) if mode == "auto" else mode == "max"


def _check_stopping(run: _Run, values: dict[str, float]) -> str:
    st, t = run.state, run.tspec
    es = t.early_stopping
    if es is not None:
        if _improved(values[es.monitor], st.stale_best, _higher(run, es.monitor, es.mode), es.min_delta):
            st.stale_best, st.stale = values[es.monitor], 0
        else:
            st.stale += 1
            if st.stale >= es.patience:
                run.log.info(f"early stopping: {es.monitor} has not improved for {st.stale} epochs (best {st.stale_best:.6g})")
                return "early_stopping"
    stop = t.stop_when
    if stop is not None and stop.check_every == "epoch" and _reached(stop, values[stop.monitor]):
        run.log.info(f"stop_when: {stop.monitor} = {values[stop.monitor]:.4f} after epoch {st.epoch}")
        return "stop_when"
    return "epochs"


def _save_epoch(run: _Run, values: dict[str, float], final: bool) -> bool:
    """Every `checkpoint.every` epochs and at the end: last.pt, and best.pt when the monitored
    metric beats the best checkpoint so far. True if last.pt was written."""
    every = run.tspec.checkpoint.every
    if not run.hw.is_main or not (final or (every and run.state.epoch % every == 0)):
        return False
    improved = _update_best(run, values)
    if improved:
        # best.pt first, then last.pt as a hard link to it (no second write): killed in between,
        # last.pt is the previous epoch's and the resumed run redoes this epoch and this save.
        # (The other order would leave a last.pt whose `best` names an epoch best.pt lacks.)
        _save(run, run.run_dir.best)
        with _writing(run.run_dir.last):
            _link_or_copy(run.run_dir.best, run.run_dir.last)
    else:
        _save(run, run.run_dir.last)
    run.run_dir.saved = (run.state.epoch, run.state.step)
    return True


def _save(run: _Run, path: Path) -> None:
    """Checkpoint the run to ``path``, unless its weights are no longer finite."""
    st = run.state
    _check_weights(run)
    with _writing(path):
        _save_state(run, path)
    if path == run.run_dir.last:
        run.run_dir.saved = (st.epoch, st.step)


def _check_weights(run: _Run) -> None:
    """NonFiniteLoss if a trained parameter is NaN/inf: a finite loss whose gradient overflowed.
    Checked before every checkpoint (one pass over the parameters, one device sync), so a saved
    checkpoint is always good. Buffers are not checked: -inf attention masks are legitimate."""
    trained = {id(p) for p in run.params}
    floats = {k: v.detach() for k, v in run.model.named_parameters() if id(v) in trained}
    if not floats or bool(torch.stack([torch.isfinite(v).all() for v in floats.values()]).all()):
        return
    st = run.state
    bad = [k for k, v in floats.items() if not bool(torch.isfinite(v).all())]
    where = f"after epoch {st.epoch}, step {st.step}" if st.batch == 0 else f"at epoch {st.epoch + 1}, step {st.step}"
    raise NonFiniteLoss(
        f"parameters are not finite {where} ({_summarise(bad, 3)}): a gradient overflowed; "
        f"not saved, {run.run_dir.kept()}",
        path=("train", "on_nan"),
        hint="lower the learning rate, set `train.grad_clip`, or `train.on_nan: skip` (skips such steps)",
    )


def _save_state(run: _Run, path: Path) -> None:
    st = run.state
    save_checkpoint(path, {
        "format": CHECKPOINT_FORMAT,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.schedule.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "epoch": st.epoch,
        "batch": st.batch,
        "step": st.step,
        "state": {k: getattr(st, k) for k in ("best", "best_epoch", "stale", "stale_best", "skipped")},
        "meters": run.meters["train"].state_dict(),
        "window_meter": run.window_meter.state_dict() if run.window_meter is not None else None,
        "rng": _rng_state(),
        "spec_hash": run.spec_hash,
        "best": {"monitor": run.best_monitor, "value": st.best, "epoch": st.best_epoch},
        "torch": str(torch.__version__),
    })


def _restore(run: _Run, ckpt: dict[str, Any]) -> None:
    """Put model, optimizer, scheduler, scaler, counters and meters back as saved.

    The RNG state is set later, at the point of the epoch where it was captured; the metrics
    history is cut back by the caller, once the run directory is known.
    """
    _check_fits(run.model.state_dict(), ckpt["model"], str(ckpt["path"]), ("--resume",), strict=True,
                hint=_OTHER_SPEC_HINT["--resume"])
    run.model.load_state_dict(ckpt["model"])
    try:
        run.optimizer.load_state_dict(ckpt["optimizer"])
    except ValueError as err:
        raise CheckpointError(f"the optimizer in {ckpt['path']} does not fit this spec's optimizer: {err}", path=("optimizer",)) from None
    run.schedule.load_state_dict(ckpt["scheduler"])
    if run.scaler is not None and ckpt["scaler"] is not None:
        run.scaler.load_state_dict(ckpt["scaler"])
    st = run.state
    st.epoch, st.batch, st.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
    for k, v in ckpt["state"].items():
        setattr(st, k, v)
    if st.batch:
        run.meters["train"].load_state_dict(ckpt["meters"])
    if run.window_meter is not None and ckpt.get("window_meter"):
        run.window_meter.load_state_dict(ckpt["window_meter"])
    run.resume_rng = ckpt["rng"]
    run.log.info(f"resumed from {ckpt['path']}: epoch {st.epoch} done, batch {st.batch}, step {st.step}")


def _restore_rng_once(run: _Run) -> None:
    if run.resume_rng is not None:
        _set_rng_state(run.resume_rng)
        run.resume_rng = None


def _resume_dir(ckpt: dict[str, Any], out: str | Path | None) -> RunDir:
    """Continue in the checkpoint's run directory, unless it is elsewhere or --out is given."""
    directory = Path(ckpt["path"]).parent
    if out is None and (directory / "spec.yaml").exists():
        try:
            _probe(directory)
        except OSError as err:
            raise TrainingError(
                f"cannot write the run directory {directory}: {err.strerror or err}",
                path=("--resume",),
                hint="make it writable, or continue in a new directory with --out DIR",
            ) from None
        run = RunDir(directory)
        run.remove_stale_temps()  # left by a process killed while writing
        if Path(ckpt["path"]).resolve() == run.last.resolve():
            run.saved = (ckpt["epoch"], ckpt["step"])
        return run
    run = RunDir.create(out if out is not None else directory, "resumed")
    return run


# --------------------------------------------------------------------------- small helpers


@contextlib.contextmanager
def _located(spec: Any) -> Iterator[None]:
    """Give a SpecError raised here the file:line of its spec path (when loaded from a file)."""
    try:
        yield
    except SpecError as err:
        doc = _document(spec)
        if doc is not None and err.path and str(err.path[0]).startswith("--"):
            err.with_location(Location(file=doc.file))  # an option: the spec, without a line
        elif doc is not None and err.path:
            err.with_location(doc.locate(err.path, key=True))
        raise


def _document(spec: Any) -> Any:
    try:
        from .spec import document_of

        return document_of(spec)
    except (ImportError, TypeError, AttributeError):
        return None


def _base_dir(spec: Any, given: str | Path | None) -> Path:
    """Relative paths in a spec (weights, data) are relative to the spec file's folder."""
    if given is not None:
        return Path(given)
    doc = _document(spec)
    if doc is not None and doc.file and not doc.file.startswith("<"):
        return Path(doc.base_dir)
    return Path(".")


def _as_outputs(raw: Any, names: list[str]) -> dict[str, Tensor]:
    if isinstance(raw, Tensor):
        return {names[0]: raw}
    if isinstance(raw, dict):
        return raw
    return dict(zip(names, raw))


def _batch_size(inputs: dict[str, Tensor]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def _set_epoch(loader: Any, epoch: int) -> None:
    set_epoch = getattr(loader, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)


def _report_model(run: _Run) -> None:
    total = sum(p.numel() for p in run.model.parameters())
    trained = sum(p.numel() for p in run.params)
    run.log.info(f"model: {total:,} parameters, {trained:,} trained; {len(run.loaders.train)} batches per epoch")


def _summarise(names: list[str], limit: int = 6) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... (+{len(names) - limit})"


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _as_text(value: str | list[str] | None) -> str:
    return "" if value is None else value if isinstance(value, str) else ",".join(value)


def _fmt_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _fmt_call(args: dict[str, Any]) -> str:
    return f"({_fmt_args(args)})" if args else ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------- progress, plots, tensorboard


class _Bar:
    """tqdm bar with loss and samples/s; the loss is read every few steps (it syncs the GPU)."""

    def __init__(self, total: int, initial: int, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True)
        self.samples, self.start, self.calls = 0, time.perf_counter(), 0

    def update(self, n: int, loss: Tensor) -> None:
        self.samples += n
        self.calls += 1
        self.bar.update(1)
        if self.calls % 10 == 1:
            rate = self.samples / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix(loss=f"{float(loss.detach()):.4f}", samples_s=f"{rate:.0f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def _progress(run: _Run, total: int) -> _Bar | None:
    mode = run.tspec.progress
    if mode == "line" or (mode == "auto" and not sys.stderr.isatty()) or not run.hw.is_main:
        return None
    return _Bar(total, run.state.batch, f"epoch {run.state.epoch + 1}/{run.tspec.epochs}")


def _close(bar: _Bar | None) -> None:
    if bar is not None:
        bar.close()


def _log_epoch(run: _Run, record: dict[str, Any], final: bool) -> None:
    if not final and record["epoch"] % run.tspec.log_every and record["epoch"] != 1:
        return
    skip = {"epoch", "step", "t", "lr_groups", "time_s", "samples_per_s", "lr"}
    parts = [f"epoch {record['epoch']}/{run.tspec.epochs}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items() if k not in skip and isinstance(v, float)]
    parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record['time_s']:.1f}s")
    if record.get("samples_per_s"):
        parts.append(f"{record['samples_per_s']:.0f} samples/s")
    run.log.info("  ".join(parts))


def _plot_curves(run: _Run) -> None:
    """curves.png: one panel per metric, train and val; Agg canvas, no pyplot state."""
    if not run.history or not run.hw.is_main:
        return
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return
    keys = run.meters["train"].keys()
    fig = Figure(figsize=(4 * len(keys), 3.2))
    FigureCanvasAgg(fig)
    epochs = [r["epoch"] for r in run.history]
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for split in ("train", "val"):
            ys = [r.get(f"{split}_{key}") for r in run.history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [math.nan if y is None else y for y in ys], marker="o", label=split)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(run.run_dir.path / "curves.png", dpi=80)


def _tensorboard(run: _Run) -> Any:
    if not run.hw.is_main:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(run.run_dir.path / "tb"))


# --------------------------------------------------------------------------- Ctrl-C


class _SigintGuard:
    """First Ctrl-C: finish the step, save last.pt, raise Interrupted. Second: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _SigintGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to quit now)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# --------------------------------------------------------------------------- evaluation


def evaluate(
    spec: Any,
    *,
    checkpoint: str | Path | None = None,
    split: str = "val",
    model: nn.Module | None = None,
    loaders: Any = None,
    base_dir: str | Path | None = None,
    allow_download: bool = False,
) -> dict[str, float]:
    """Loss and metrics of a model (weights from ``checkpoint``) on the ``val`` or ``test`` split.

    Example::

        evaluate(spec, checkpoint="runs/fashion_cnn/20250101-120000/best.pt", split="test")
        # {'test_loss': 0.25, 'test_accuracy': 0.91}
    """
    with _located(spec):
        return _evaluate(spec, checkpoint, split, model, loaders, _base_dir(spec, base_dir), allow_download)


def _evaluate(spec: Any, checkpoint: str | Path | None, split: str, model: nn.Module | None, loaders: Any,
              base: Path, allow_download: bool) -> dict[str, float]:
    tspec = spec.train or TrainSpec()
    hw = Hardware.pick(tspec.device, tspec.precision)
    if model is None:
        from . import build_model

        model = build_model(spec)
    if checkpoint is not None:
        load_weights(model, WeightsSpec(path=str(checkpoint)), base_dir=Path("."), path=("--checkpoint",))
    model.to(hw.device).eval()
    if loaders is None:
        from .data import build_loaders

        loaders = build_loaders(spec.data, base_dir=base, input_names=list(spec.inputs), seed=tspec.seed,
                                device=hw.device, allow_download=allow_download)
    loader = getattr(loaders, split, None)
    if loader is None:
        raise DataError(f"the data has no `{split}` split", path=("data",),
                        hint=f"add `{split}:` under `data:`" + (" or use --split val" if loaders.val is not None else ""))
    outputs = list(spec.output_names)
    run = _EvalRun(hw, model, build_criterion(spec.loss, outputs).to(hw.device), list(spec.inputs), outputs)
    values = _evaluate_loader(run, loader, MetricSet(tspec.metrics, outputs))
    return {f"{split}_{k}": v for k, v in values.items()}


@dataclass
class _EvalRun:
    hw: Hardware
    model: nn.Module
    criterion: Criterion
    input_names: list[str]
    output_names: list[str]
