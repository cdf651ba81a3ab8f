"""The ``train:`` section (epochs, hardware, precision, metrics, stopping, checkpoints) and the
mixin that gives a spec model the five training sections and their cross-section rules.

>>> TrainSpec(epochs=20, seed=118).precision
'fp32'
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import JsonSchemaValue

from ..compiler.spec_base import SpecModel, reported_at_spec_path
from .logger_spec import LoggerSpec
from .spec import InitSpec, LossSpec, MetricSpec, Mode, OptimizerSpec, SchedulerSpecs

__all__ = [
    "GradClipSpec",
    "EarlyStoppingSpec",
    "StopWhenSpec",
    "CheckpointPolicySpec",
    "DistributedSpec",
    "TrainSpec",
    "TrainingRules",
    "TrainingSections",
    "COMPILE_MODES",
]

#: torch.compile's modes (`reduce-overhead` replays CUDA graphs)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class GradClipSpec(SpecModel):
    """Clip the global gradient norm (``torch.nn.utils.clip_grad_norm_``); a number is `max_norm`."""

    max_norm: float = Field(gt=0, description="Largest allowed total gradient norm.")
    norm_type: float = Field(default=2.0, description="Order of the norm (2 = L2, `inf` = max).")

    @model_validator(mode="before")
    @classmethod
    def _number(cls, data: Any) -> Any:
        return {"max_norm": data} if isinstance(data, (int, float)) else data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> JsonSchemaValue:
        # The schema says what the validator accepts: `grad_clip: 1.0` as well as the mapping.
        number = {"type": "number", "exclusiveMinimum": 0, "description": "max_norm"}
        return {"anyOf": [number, handler(core_schema)]}


class EarlyStoppingSpec(SpecModel):
    """Stop when `monitor` has not improved for `patience` epochs."""

    monitor: str = Field(default="val_loss", description="Metric name such as `val_loss`, `val_accuracy`.")
    patience: int = Field(default=5, ge=1, description="Epochs without improvement before stopping.")
    mode: Mode = Field(default="auto", description="`min`, `max`, or `auto` (from the metric).")
    min_delta: float = Field(default=0.0, ge=0, description="Smallest change that counts as improvement.")


class StopWhenSpec(SpecModel):
    """Stop as soon as a metric crosses a target (seed 000: train accuracy above 0.99).

    >>> StopWhenSpec(monitor="train_accuracy", above=0.99, check_every="step").above
    0.99
    """

    monitor: str = Field(description="Metric name, e.g. `train_accuracy` or `val_loss`.")
    above: float | None = Field(default=None, description="Stop once the metric is greater than this.")
    below: float | None = Field(default=None, description="Stop once the metric is less than this.")
    check_every: Literal["epoch", "step"] = Field(
        default="epoch",
        description="`epoch`: test the epoch's value; `step`: test after every optimizer step "
        "(train_* metrics on that step's batch; val_* metrics evaluate the validation set).",
    )

    @model_validator(mode="after")
    def _one_bound(self) -> StopWhenSpec:
        if (self.above is None) == (self.below is None):
            raise ValueError("stop_when needs exactly one of `above:` or `below:`")
        return self


class CheckpointPolicySpec(SpecModel):
    """When last.pt and best.pt are written.

    Every ``every`` epochs and at the end, last.pt is written, and best.pt too when the
    monitored metric beats the best checkpoint so far. (A Ctrl-C also writes last.pt.)
    """

    every: int = Field(
        default=1,
        ge=0,
        description="Checkpoint every N epochs (0: only at the end). Raise it when epochs take "
        "milliseconds (seed 000's 1000 one-batch epochs).",
    )
    monitor: str | None = Field(
        default=None,
        description="Metric deciding best.pt (default: `val_loss`, or `train_loss` without validation data).",
    )
    mode: Mode = Field(default="auto", description="`min`, `max` or `auto` (from the metric).")


class DistributedSpec(SpecModel):
    """Data-parallel training under torchrun (DistributedDataParallel); read only when netspec runs
    in several processes (`netspec run --nproc N` or `torchrun ... -m netspec run`)."""

    backend: Literal["auto", "nccl", "gloo"] = Field(
        default="auto", description="`auto`: nccl on CUDA, gloo on the CPU."
    )
    sync_batchnorm: bool = Field(
        default=False,
        description="Turn every BatchNorm into SyncBatchNorm: batch statistics over the global batch, not each "
        "process's share (CUDA only).",
    )
    find_unused_parameters: bool = Field(
        default=False,
        description="DDP's `find_unused_parameters`: for models whose forward leaves some parameters out "
        "(`when:` branches chosen at run time); costs a graph walk per step.",
    )
    gradient_as_bucket_view: bool = Field(
        default=False,
        description="DDP's `gradient_as_bucket_view`: gradients are views into the all-reduce "
        "buckets (less memory, one copy fewer per step).",
    )
    static_graph: bool = Field(
        default=False,
        description="DDP's `static_graph`: the set of used parameters never changes between "
        "steps (lets DDP overlap more, and use `find_unused_parameters` for free). With `grad_accumulation` every "
        "batch is all-reduced: torch's no_sync breaks static graphs (pytorch/pytorch#143580).",
    )
    timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a process waits for the others (at a collective, or for a process that stopped "
        "answering) before it stops the run; a process that dies is noticed at once (its connections close).",
    )


class TrainSpec(SpecModel):
    """How to train: epochs, hardware, precision, reproducibility, metrics and stopping.

    >>> TrainSpec(epochs=20, seed=118).precision
    'fp32'
    """

    epochs: int = Field(default=1, ge=1, description="Number of passes over the training data.")
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="`auto` (cuda, then mps, then cpu), `cpu`, `cuda`, `cuda:N` or `mps`.",
    )
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        default="fp32",
        description="`fp16`: autocast to float16 with a GradScaler; `bf16`: autocast to bfloat16.",
    )
    seed: int = Field(default=0, ge=0, lt=2**32, description="Seeds python, numpy and torch (all devices).")
    deterministic: bool = Field(
        default=False,
        description="torch.use_deterministic_algorithms(True) and no cudnn autotuning: slower, but repeatable on GPU.",
    )
    grad_clip: GradClipSpec | None = Field(default=None, description="Clip the gradient norm; a number means max_norm.")
    grad_accumulation: int = Field(
        default=1, ge=1, description="Sum gradients over this many batches per optimizer step."
    )
    metrics: list[MetricSpec] = Field(
        default_factory=list,
        description="Metrics computed on train and val every epoch (the loss always is): "
        "`accuracy`, `{top_k_accuracy: {k: 5}}`, `dice`, `iou`, `mse`, `mae`.",
    )
    early_stopping: EarlyStoppingSpec | None = Field(default=None, description="Stop when a metric stops improving.")
    stop_when: StopWhenSpec | None = Field(default=None, description="Stop when a metric reaches a target.")
    checkpoint: CheckpointPolicySpec = Field(
        default_factory=CheckpointPolicySpec, description="When last.pt / best.pt are written."
    )
    on_nan: Literal["error", "skip"] = Field(
        default="error",
        description="A NaN/inf loss: `error` stops with the last good checkpoint kept; `skip` "
        "drops that batch and goes on.",
    )
    log_every: int = Field(
        default=1, ge=1, description="Print the epoch line every N epochs (metrics.jsonl always gets every epoch)."
    )
    progress: Literal["auto", "bar", "line"] = Field(
        default="auto",
        description="`bar`: tqdm progress bar; `line`: one line per epoch; `auto`: bar when stderr is a terminal.",
    )
    # ---- speed switches (netspec.training.speed)
    compile: bool | Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        default=False,
        description="torch.compile the model for training: `true` (mode `default`) or a mode; `reduce-overhead` "
        "also replays CUDA graphs. Compiling takes seconds to minutes at the start.",
    )
    channels_last: bool = Field(
        default=False,
        description="Keep 4-d weights and image batches channels-last (NHWC): faster convolutions on recent "
        "GPUs, above all with bf16/fp16.",
    )
    fused_optimizer: bool | Literal["auto"] = Field(
        default="auto",
        description="`auto`: the optimizer's fused kernels (`fused: true`) on CUDA where torch has them (Adam, "
        "AdamW, SGD, ...) unless the optimizer's arguments choose; `true`: also on the CPU. Fused steps "
        "round differently from the per-parameter ones in the last bits.",
    )
    cudnn_benchmark: bool | Literal["auto"] = Field(
        default="auto",
        description="`auto`: let cuDNN time its convolution algorithms on CUDA unless `deterministic`: faster "
        "for fixed input sizes, but the results may differ in the last bits from run to run.",
    )

    loggers: list[LoggerSpec] = Field(
        default_factory=list,
        description="Where the run is recorded besides its directory: `[mlflow]`, `[tensorboard]` (the hparams "
        "view), or `{mlflow: {tracking_uri: http://host:5000, experiment: x}}`.",
    )
    distributed: DistributedSpec = Field(
        default_factory=DistributedSpec,
        description="Options of data-parallel runs (`netspec run --nproc N`, torchrun); ignored in one process.",
    )

    @model_validator(mode="after")
    def _deterministic_means_no_autotuning(self) -> TrainSpec:
        if self.deterministic and self.cudnn_benchmark is True:
            raise ValueError(
                "`cudnn_benchmark: true` picks algorithms by timing, which `deterministic: true` "
                "rules out; drop one of them"
            )
        return self


class TrainingRules(SpecModel):
    """Checks the rules that span the training sections once the whole spec is validated (a
    loss names an output that exists, a monitor a metric that will be produced, a scheduler
    list's phases fit together): :func:`netspec.training.rules.check_training_sections`."""

    @model_validator(mode="after")
    def _training_rules(self) -> Any:
        from .rules import check_training_sections

        with reported_at_spec_path():
            check_training_sections(self)
        return self


class TrainingSections(TrainingRules):
    """The five training sections as one mixin, for a spec model to inherit (the tests' stand-ins)."""

    loss: LossSpec | None = Field(default=None, description="Loss (see LossSpec).")
    optimizer: OptimizerSpec | None = Field(default=None, description="Optimizer and parameter groups.")
    scheduler: SchedulerSpecs | None = Field(
        default=None, description="Learning-rate scheduler, or a list run one after the other."
    )
    init: InitSpec | None = Field(default=None, description="Weight initialisation and pretrained weights.")
    train: TrainSpec | None = Field(default=None, description="Epochs, device, precision, metrics, stopping.")
