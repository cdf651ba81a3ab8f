"""The ``data:`` section of a spec: sources, transforms, splits, samplers, loaders.

One front door, :func:`build_loaders`, turns a validated :class:`DataSpec` into loaders that
yield ``(inputs by model input name, target)`` batches::

    data:
      train: {source: FashionMNIST, root: data/fashion, split: train}
      val: {fraction: 0.1, seed: 0}
      test: {source: FashionMNIST, root: data/fashion, split: test}
      transforms: [RandomHorizontalFlip, ToTensor]     # training only
      eval_transforms: [ToTensor]                       # val / test
      batch_size: 256
      loader: {num_workers: 0}
      sampler: {WeightedRandomSampler: {class_weights: {1: 0.85}, default_weight: 0.1}}
      fields: {inputs: {image: 0}, target: 1}

Sources, samplers and transforms are registries (:data:`SOURCES`, :data:`SAMPLERS`,
:data:`TRANSFORMS`): adding a source is one options model plus one load function. A source
returns :class:`SourceData`: either tensors held in memory (MNIST family, CIFAR, CSV, tensor
files, generated data) or a per-sample ``Dataset`` (ImageFolder). Each split gets one of two
loaders: :class:`TensorLoader` (in memory, batches cut by indexing) or :class:`SampleLoader`
(a ``DataLoader`` that transforms each sample); both give exactly a ``DataLoader``'s batches.

==================  ==========================================================================
module              holds
==================  ==========================================================================
``spec``            the pydantic models of the section (validation; no torchvision)
``sources``         the SOURCES registry, SourceData, LoadContext, the sources themselves
``readers``         IDX, CSV and tensor-file readers
``transforms``      the TRANSFORMS registry (torchvision.transforms.v2 + ToTensor), building
``samplers``        the SAMPLERS registry, sampler_order
``fields``          FieldMap, resolve_fields, split_indices
``loaders``         TensorLoader, SampleLoader, the per-sample dataset and collate
``build``           build_loaders, Loaders
==================  ==========================================================================

The names below are imported from their modules on first use (PEP 562), so that
``import netspec.data.spec`` -- what validating a spec needs -- imports neither torchvision
nor the loaders.

>>> from netspec.data import DataSpec, build_loaders
>>> build_loaders.__module__
'netspec.data.build'
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module of this package that defines it
_HOME = {
    **dict.fromkeys(["DataSpec", "LoaderSpec", "FieldsSpec", "FractionSplit", "SamplerSpec", "SourceSpec"], "spec"),
    **dict.fromkeys(
        ["SOURCES", "register_source", "source_names", "SourceData", "LoadContext", "SourceOptions", "SourceEntry"],
        "sources",
    ),
    **dict.fromkeys(["read_idx", "read_csv", "read_tensor_file"], "readers"),
    **dict.fromkeys(["TRANSFORMS"], "transforms"),
    **dict.fromkeys(["SAMPLERS", "register_sampler", "SamplerContext", "sampler_order"], "samplers"),
    **dict.fromkeys(["Batch", "FieldMap", "resolve_fields", "split_indices"], "fields"),
    **dict.fromkeys(["TensorLoader", "SampleLoader"], "loaders"),
    **dict.fromkeys(["Loaders", "build_loaders"], "build"),
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
