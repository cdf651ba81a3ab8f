"""Data sources: the :data:`SOURCES` registry and the sources netspec ships.

=====================  ===============================================================
module                 sources
=====================  ===============================================================
``torchvision_sets``   MNIST, FashionMNIST, KMNIST, EMNIST, CIFAR10, CIFAR100
``files``              ImageFolder, csv, tensors (.npz / .pt)
``generated``          gaussian_clusters, function_regression, random,
                       random_segmentation, shapes
=====================  ===============================================================

Importing this package registers them all (it imports no torchvision: each load function
imports what it needs when it runs).

>>> SOURCES["csv"].options.__name__, SOURCES["ImageFolder"].in_memory
('CSVSource', None)
"""

from __future__ import annotations

# Importing registers the sources, in this order: the schema's and `netspec layers`' order.
from . import torchvision_sets, files, generated  # noqa: F401  # isort: skip
from .base import SOURCES, BadSample, LoadContext, SourceData, SourceEntry, SourceOptions, register_source, source_names

__all__ = [
    "SOURCES",
    "BadSample",
    "LoadContext",
    "SourceData",
    "SourceEntry",
    "SourceOptions",
    "register_source",
    "source_names",
]
