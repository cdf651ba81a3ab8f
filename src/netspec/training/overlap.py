"""The torchmetrics metric behind ``dice`` and ``iou``: per-class intersection, predicted and true
sizes summed over every sample of the epoch (so a score is over the epoch's pixels, not a mean
of per-image scores), reduced across processes by torchmetrics. Imported only when a spec asks
for dice or iou (torchmetrics takes a second to import).

>>> m = OverlapCounts(classes=2, background=True, score="iou")
>>> m.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
>>> round(float(m.compute()), 4)  # class 0: 1/2, class 1: 1/2
0.5
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

__all__ = ["OverlapCounts"]


class OverlapCounts(Metric):
    """Dice or IoU from per-class counts; the mean over classes present in the prediction or
    the target (a class absent from both counts as nothing, not as 0 or 1)."""

    full_state_update = False
    inter: Tensor
    pred: Tensor
    true: Tensor

    def __init__(self, classes: int, background: bool, score: str) -> None:
        super().__init__()
        self.classes, self.background, self.score = classes, background, score
        size = classes if background else classes - 1
        for name in ("inter", "pred", "true"):
            self.add_state(name, torch.zeros(size, dtype=torch.int64), dist_reduce_fx="sum")  # exact counts

    def update(self, pred: Tensor, true: Tensor) -> None:
        """``pred``, ``true``: class indices (N, X)."""
        first = 0 if self.background else 1
        pred_1h = F.one_hot(pred, self.classes).movedim(-1, 1)[:, first:]  # (N, C, X); on CUDA without a sync
        true_1h = F.one_hot(true, self.classes).movedim(-1, 1)[:, first:]
        self.inter += (pred_1h & true_1h).sum((0, 2))
        self.pred += pred_1h.sum((0, 2))
        self.true += true_1h.sum((0, 2))

    def compute(self) -> Tensor:
        inter, pred, true = (t.to("cpu", torch.float64) for t in (self.inter, self.pred, self.true))
        present = (pred + true) > 0
        if self.score == "dice":
            score = 2 * inter / (pred + true).clamp_min(1)
        else:
            score = inter / (pred + true - inter).clamp_min(1)
        return score[present].mean() if bool(present.any()) else torch.ones((), dtype=torch.float64)
