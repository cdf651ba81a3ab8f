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
('CSVSource', False)
"""

from __future__ import annotations

from .base import (SOURCES, BadSample, LoadContext, SourceData, SourceEntry, SourceOptions, register_source,
                   source_names)
from . import torchvision_sets, files, generated  # noqa: E402,F401  (registers; this order is the schema's)

__all__ = ["SOURCES", "BadSample", "LoadContext", "SourceData", "SourceEntry", "SourceOptions",
           "register_source", "source_names"]
