"""Losses: a registry (every torch.nn loss plus Dice, DiceBCE, IoU, Focal, NTXent), how a target is
adapted to each, and the check of one named loss.

Targets are adapted to the loss, the same way every time (documented in the README):

* ``float`` losses (BCELoss, BCEWithLogitsLoss, MSELoss, L1Loss, SmoothL1Loss, HuberLoss,
  SoftMarginLoss, KLDivLoss, PoissonNLLLoss, MultiLabelSoftMarginLoss): the target is cast
  to the output's dtype and, when it holds as many elements and differs only in size-1
  dimensions, reshaped to the output's shape. So seed 000's ``(N, 1)`` sigmoid output works
  with its ``(N,)`` float labels, and integer 0/1 labels work with BCE.
* ``index`` losses (CrossEntropyLoss, NLLLoss, MultiMarginLoss): a ``(N, 1)`` class-index
  target is squeezed to ``(N,)``; integer-valued float targets become ``int64``
  (CrossEntropyLoss keeps float targets of the output's shape: class probabilities).
* ``pair`` losses (NTXent) compare two model values of one shape (``from: [z1, z2]`` in
  ``loss: {terms: ...}``, :mod:`netspec.training.loss_graph`); the target is passed unchanged.
* the netspec losses (Dice, DiceBCE, IoU, Focal) accept both the binary form (logits and
  0/1 targets of the same number of elements) and the multi-class form (logits ``(N, C, ...)``
  and integer targets ``(N, ...)``).

Every loss is computed in float32, outside autocast (BCELoss refuses float16 inputs). The
criterion a ``loss:`` section compiles to (which output each loss reads, with what weight, and
their sum) is :mod:`netspec.training.criterion`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..errors import BuildError, SpecError, fmt_args, number_string_hint
from ..nodes.registry import Registry, SpecPath
from .class_weights import BALANCED, check_balanced

if TYPE_CHECKING:
    from .spec import LossSpec

__all__ = [
    "LOSSES",
    "LossEntry",
    "register_loss",
    "adapt_target",
    "check_loss",
    "construct_loss",
    "DiceLoss",
    "DiceBCELoss",
    "IoULoss",
    "FocalLoss",
    "NTXentLoss",
]


@dataclass(frozen=True)
class LossEntry:
    """A loss the spec can name: how to build it and what target it expects."""

    factory: Callable[..., nn.Module]
    target: str  # "float" | "index" | "custom" | "any" | "pair" (two values of one shape; see module docstring)
    inputs: int = 2  # tensors forward() takes; netspec passes (output, target)


# torch.nn losses, by introspection. The table says which target they want.
_FLOAT_TARGET = {
    "BCELoss",
    "BCEWithLogitsLoss",
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "SoftMarginLoss",
    "KLDivLoss",
    "PoissonNLLLoss",
    "MultiLabelSoftMarginLoss",
}
_INDEX_TARGET = {"CrossEntropyLoss", "NLLLoss", "MultiMarginLoss"}
# NLLLoss2d is deprecated; LinearCrossEntropyLoss owns a Linear layer whose weights the
# optimizer would never see.
_EXCLUDED = {"NLLLoss2d", "LinearCrossEntropyLoss"}


def _torch_losses(registry: Registry[LossEntry]) -> None:
    from torch.nn.modules.loss import _Loss

    for name, cls in vars(nn.modules.loss).items():
        if inspect.isclass(cls) and issubclass(cls, _Loss) and not name.startswith("_") and name not in _EXCLUDED:
            kind = "float" if name in _FLOAT_TARGET else "index" if name in _INDEX_TARGET else "any"
            registry.add(name, LossEntry(cls, kind, _forward_arity(cls)))


#: loss name -> entry: every torch.nn loss, then netspec's own (Dice, DiceBCE, IoU, Focal).
LOSSES: Registry[LossEntry] = Registry(
    "loss",
    fill=_torch_losses,
    signature=lambda entry: entry.factory,
    hint="any torch.nn loss or one of: Dice, DiceBCE, IoU, Focal, NTXent",
)


_M = TypeVar("_M", bound=nn.Module)


def register_loss(
    name: str, *, target: str = "custom", aliases: tuple[str, ...] = ()
) -> Callable[[type[_M]], type[_M]]:
    """Class decorator adding a loss to :data:`LOSSES` under ``name`` (and aliases).

    >>> @register_loss("Half", target="float")
    ... class Half(nn.Module):
    ...     def forward(self, output, target):
    ...         return 0.5 * F.mse_loss(output, target)
    >>> LOSSES["Half"].target
    'float'
    >>> LOSSES.remove("Half")
    """

    def add(cls: type[_M]) -> type[_M]:
        entry = LossEntry(cls, target, _forward_arity(cls))
        for key in (name, *aliases):
            LOSSES.add(key, entry)
        return cls

    return add


def _forward_arity(cls: type[nn.Module]) -> int:
    params = list(inspect.signature(cls.forward).parameters.values())[1:]
    return sum(p.default is inspect.Parameter.empty for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)


# --------------------------------------------------------------------------- target adaptation


def adapt_target(kind: str, output: Tensor, target: Tensor) -> Tensor:
    """Bring ``target`` to the shape/dtype a ``kind`` loss expects (see module docstring).

    >>> adapt_target("float", torch.zeros(3, 1), torch.tensor([1, 0, 1])).shape
    torch.Size([3, 1])
    >>> adapt_target("index", torch.zeros(3, 5), torch.tensor([[1], [0], [4]])).shape
    torch.Size([3])
    """
    if kind == "float":
        if target.shape != output.shape and target.numel() == output.numel() and _squeezed(target) == _squeezed(output):
            target = target.reshape(output.shape)
        if target.dtype != output.dtype and output.is_floating_point():
            target = target.to(output.dtype)
    elif kind == "index":
        if target.shape == output.shape and target.is_floating_point():
            return target  # class probabilities (CrossEntropyLoss)
        if target.ndim == output.ndim and target.ndim >= 2 and target.shape[1] == 1 and output.shape[1] != 1:
            target = target.squeeze(1)
        if target.is_floating_point():
            target = target.long()
    return target


def _squeezed(t: Tensor) -> tuple[int, ...]:
    return tuple(s for s in t.shape if s != 1)


# --------------------------------------------------------------------------- netspec losses
#
# The seed's versions called F.sigmod (typo), ignored their constructor arguments, applied
# BCE to probabilities (unstable) and computed "focal" loss from the batch-mean BCE (so it
# was just a rescaled BCE). These take logits by default and work per element.


def _probs_and_onehot(
    output: Tensor, target: Tensor, mode: str, from_logits: bool
) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """(probabilities, one-hot/float target, dims to sum over) for binary or multi-class."""
    if _is_multiclass(output, target, mode):
        probs = output.softmax(dim=1) if from_logits else output
        onehot = F.one_hot(target.long(), output.shape[1]).movedim(-1, 1).to(probs.dtype)  # (N, C, ...)
        dims = (0, *range(2, output.ndim))  # sum everything but the class dimension
        return probs, onehot, dims
    probs = output.sigmoid() if from_logits else output
    target = adapt_target("float", probs, target)
    return probs.reshape(-1), target.reshape(-1), (0,)


def _is_multiclass(output: Tensor, target: Tensor, mode: str) -> bool:
    if mode != "auto":
        return mode == "multiclass"
    return (
        output.ndim >= 2 and output.shape[1] > 1 and target.ndim == output.ndim - 1 and not target.is_floating_point()
    )


class _Overlap(nn.Module):
    """Shared arguments of Dice and IoU."""

    def __init__(self, smooth: float = 1.0, from_logits: bool = True, mode: str = "auto") -> None:
        super().__init__()
        if mode not in ("auto", "binary", "multiclass"):
            raise ValueError(f"mode must be auto, binary or multiclass, not {mode!r}")
        self.smooth, self.from_logits, self.mode = smooth, from_logits, mode


@register_loss("Dice", aliases=("DiceLoss",))
class DiceLoss(_Overlap):
    """1 - Dice coefficient, over the whole batch (as in the seed); per class, then averaged.

    Binary: logits of any shape with 0/1 targets of as many elements (sigmoid).
    Multi-class: logits ``(N, C, H, W)`` with class indices ``(N, H, W)`` (softmax, one-hot).
    ``from_logits: false`` when the model already outputs probabilities.

    >>> loss = DiceLoss(smooth=0.0)
    >>> float(loss(torch.tensor([[9.0, -9.0]]), torch.tensor([[1.0, 0.0]])))  # doctest: +ELLIPSIS
    0.0001...
    """

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        probs, onehot, dims = _probs_and_onehot(output, target, self.mode, self.from_logits)
        inter = (probs * onehot).sum(dims)
        dice = (2 * inter + self.smooth) / (probs.sum(dims) + onehot.sum(dims) + self.smooth)
        return 1 - dice.mean()


@register_loss("IoU", aliases=("IoULoss", "Jaccard"))
class IoULoss(_Overlap):
    """1 - intersection over union (Jaccard), binary or multi-class like :class:`DiceLoss`.

    >>> float(IoULoss(smooth=0.0)(torch.tensor([[9.0, 9.0]]), torch.tensor([[1.0, 0.0]])))  # doctest: +ELLIPSIS
    0.500...
    """

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        probs, onehot, dims = _probs_and_onehot(output, target, self.mode, self.from_logits)
        inter = (probs * onehot).sum(dims)
        union = probs.sum(dims) + onehot.sum(dims) - inter
        return 1 - ((inter + self.smooth) / (union + self.smooth)).mean()


@register_loss("DiceBCE", aliases=("DiceBCELoss",))
class DiceBCELoss(nn.Module):
    """Binary cross-entropy plus Dice (multi-class: cross-entropy plus Dice), from logits.

    >>> float(DiceBCELoss()(torch.zeros(2, 1), torch.ones(2, 1)))  # doctest: +ELLIPSIS
    0.943...
    """

    def __init__(
        self, smooth: float = 1.0, bce_weight: float = 1.0, dice_weight: float = 1.0, mode: str = "auto"
    ) -> None:
        super().__init__()
        self.dice = DiceLoss(smooth=smooth, mode=mode)
        self.bce_weight, self.dice_weight, self.mode = bce_weight, dice_weight, mode

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        if _is_multiclass(output, target, self.mode):
            ce = F.cross_entropy(output, target.long())
        else:
            ce = F.binary_cross_entropy_with_logits(output, adapt_target("float", output, target))
        return self.bce_weight * ce + self.dice_weight * self.dice(output, target)


@register_loss("Focal", aliases=("FocalLoss",))
class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017), per element, mean over elements.

    Binary (sigmoid): identical to ``torchvision.ops.sigmoid_focal_loss`` with
    ``reduction="mean"``: ``alpha`` weighs positives and ``1 - alpha`` negatives (``null``:
    no weighting). Multi-class (softmax, class-index targets): ``alpha`` is a number for all
    classes or a list with one weight per class.

    >>> float(FocalLoss(alpha=None, gamma=0.0)(torch.zeros(4), torch.ones(4)))  # = BCE  # doctest: +ELLIPSIS
    0.693...
    """

    def __init__(self, alpha: float | list[float] | None = 0.25, gamma: float = 2.0, mode: str = "auto") -> None:
        super().__init__()
        self.gamma, self.mode = gamma, mode
        self.alpha = alpha if not isinstance(alpha, (list, tuple)) else None
        self.class_alpha: Tensor | None  # a buffer: it moves with the module
        self.register_buffer(
            "class_alpha", torch.tensor(alpha, dtype=torch.float32) if isinstance(alpha, (list, tuple)) else None
        )

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        if _is_multiclass(output, target, self.mode):
            return self._multiclass(output, target.long())
        target = adapt_target("float", output, target)
        ce = F.binary_cross_entropy_with_logits(output, target, reduction="none")
        p = output.sigmoid()
        p_t = p * target + (1 - p) * (1 - target)
        loss = ce * (1 - p_t) ** self.gamma
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        return loss.mean()

    def _multiclass(self, output: Tensor, target: Tensor) -> Tensor:
        logp_t = output.log_softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)  # (N, ...)
        loss = -((1 - logp_t.exp()) ** self.gamma) * logp_t
        if self.class_alpha is not None:
            loss = loss * self.class_alpha[target]
        elif self.alpha is not None:
            loss = loss * self.alpha
        return loss.mean()


@register_loss("NTXent", target="pair", aliases=("NTXentLoss",))
class NTXentLoss(nn.Module):
    """NT-Xent (SimCLR, Chen et al. 2020): the embeddings of two views of the same samples,
    ``z1`` and ``z2`` ``(N, D)``; each of the 2N is classified (cross-entropy over its cosine
    similarities / ``temperature`` to the 2N - 1 others) as the other view of its sample.
    Read from a loss's ``from: [z1, z2]``.

    >>> z = torch.eye(4)[:2] * 5  # two orthogonal samples, the same embedding in both views
    >>> float(NTXentLoss(temperature=0.1)(z, z)) < 1e-3  # -log(e^10 / (e^10 + 2))
    True
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.temperature = temperature

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        n = z1.shape[0]
        z = F.normalize(torch.cat([z1.flatten(1), z2.flatten(1)]), dim=1)  # (2N, D), unit rows
        sim = z @ z.T / self.temperature  # (2N, 2N) cosine similarities
        self_pair = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        sim = sim.masked_fill(self_pair, float("-inf"))  # a sample is no candidate for itself
        other_view = torch.arange(2 * n, device=z.device).roll(n)  # i <-> i + N
        return F.cross_entropy(sim, other_view)


# --------------------------------------------------------------------------- one named loss


def check_loss(spec: LossSpec) -> None:
    """One named loss: its name, arguments and values (made once), when the spec is loaded.

    >>> from netspec.training.spec import LossSpec
    >>> check_loss(LossSpec.model_construct(name="MarginRankingLoss", args={}))
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: name: `MarginRankingLoss` compares 3 tensors; netspec losses compare one output with its target
    """
    assert spec.name is not None
    entry = LOSSES.check(spec)
    if entry.inputs != 2:
        raise SpecError(
            f"`{spec.name}` compares {entry.inputs} tensors; netspec losses compare one output with its target",
            path=spec.name_path(()),
        )
    check_balanced(spec, ())
    construct_loss(spec, entry, ())


def construct_loss(
    spec: LossSpec, entry: LossEntry, path: SpecPath, balanced: Callable[[str], Tensor] | None = None
) -> nn.Module:
    """The loss module; a ``balanced`` argument's tensor comes from ``balanced`` (when the spec is
    checked there is none yet: the loss is made without it)."""
    args = {
        k: (balanced(k) if balanced is not None else None) if v == BALANCED else _as_tensor_arg(k, v)
        for k, v in spec.args.items()
    }
    try:
        return entry.factory(**args)
    except (TypeError, ValueError, LookupError, RuntimeError) as err:
        raise BuildError(
            f"{spec.name}({fmt_args(spec.args)}) failed: {err}",
            path=spec.args_path(path),
            hint=number_string_hint(spec.args),
        ) from None


def _as_tensor_arg(key: str, value: Any) -> Any:
    # torch losses want class weights as tensors; YAML gives lists.
    if key in ("weight", "pos_weight") and isinstance(value, (list, tuple)):
        return torch.tensor(value, dtype=torch.float32)
    return value
