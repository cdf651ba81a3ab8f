"""Small classifier specs for the sweep, runs and logger tests: two Gaussian clusters, generated
(`SPEC` with a sweep: section; `TINY` a plain run of one Linear layer)."""

from __future__ import annotations

from pathlib import Path

SPEC = """\
name: clf
params: {width: 8}
inputs: {x: [2]}
nodes:
  - Linear: {out_features: $width}
  - ReLU
  - Linear: {out_features: 2}
data:
  train: {source: gaussian_clusters, n_per_class: 48, label_dtype: int64, seed: 1, std: 2.0}
  val: {source: gaussian_clusters, n_per_class: 32, label_dtype: int64, seed: 2, std: 2.0}
  batch_size: 32
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.01}}
train: {epochs: 3, device: cpu, metrics: [accuracy], progress: line, checkpoint: {every: 0}}
sweep:
  metric: val_loss
  trials: {trials}
  seed: 3
  pruner: {pruner}
  params:
{params}
"""

TINY = """\
name: tiny
inputs: {x: [2]}
nodes:
  - Linear: {out_features: 2}
data:
  train: {source: gaussian_clusters, n_per_class: 16, label_dtype: int64, seed: 1}
  val: {source: gaussian_clusters, n_per_class: 8, label_dtype: int64, seed: 2}
  batch_size: 16
loss: CrossEntropyLoss
optimizer: {SGD: {lr: 0.05}}
train: {epochs: 2, device: cpu, metrics: [accuracy], progress: line}
"""


def tiny_spec(epochs: int = 2, loggers: str | None = None) -> str:
    """`TINY` for `epochs` epochs, with `train.loggers` set to `loggers` (YAML) when given."""
    extra = f", loggers: {loggers}" if loggers else ""
    return TINY.replace("epochs: 2,", f"epochs: {epochs},").replace("progress: line}", f"progress: line{extra}}}")


PARAMS = """\
    width: {choice: [4, 8, 16]}
    optimizer.args.lr: {loguniform: [0.001, 0.5]}
"""


def write_sweep_spec(folder: Path, trials: int = 4, pruner: str = "none", params: str = PARAMS) -> Path:
    path = folder / "clf.yaml"
    text = SPEC.replace("{trials}", str(trials)).replace("{pruner}", pruner).replace("{params}", params.rstrip("\n"))
    path.write_text(text)
    return path
