"""Sources: generated data -- the seeds' toy problems, and random data for smoke runs.

Every generator draws from a private ``torch.Generator`` (:meth:`LoadContext.generator`):
seeded by the spec's ``seed`` or the run seed (offset per split), never the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from .base import LoadContext, SourceData, SourceOptions, register_source

if TYPE_CHECKING:  # torch is imported where data is generated: the spec models do without it
    from torch import Tensor


class GaussianClustersSource(SourceOptions):
    """Two Gaussian clusters (seed 000): class 0 around +mean+bias, class 1 around -mean+bias."""

    source: Literal["gaussian_clusters"] = Field(description="Source type.")
    n_per_class: int = Field(100, ge=1, description="Samples per class.")
    mean: float = Field(1.7, description="Class 0 is centred on +mean, class 1 on -mean (before the bias).")
    bias: float = Field(1.0, description="Added to every coordinate.")
    std: float = Field(1.0, gt=0, description="Standard deviation of each cluster.")
    dim: int = Field(2, ge=1, description="Features per sample.")
    label_dtype: Literal["float32", "int64"] = Field(
        "float32", description="float32 for BCELoss (the seed), int64 for CrossEntropyLoss."
    )
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")


@register_source(GaussianClustersSource)
def load_gaussian_clusters(opts: GaussianClustersSource, ctx: LoadContext) -> SourceData:
    """x ``(2n, dim)``, y ``(2n,)``: exactly seed 000's tensors when seeded like it (seed 10).

    >>> from pathlib import Path
    >>> raw = load_gaussian_clusters(GaussianClustersSource(source="gaussian_clusters", n_per_class=3),
    ...                              LoadContext(Path("."), seed=0, download=False))
    >>> raw.names, [tuple(t.shape) for t in raw.tensors], raw.tensors[1].tolist()
    (('x', 'y'), [(6, 2), (6,)], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    """
    import torch

    g = ctx.generator(opts.seed)
    ones = torch.ones(opts.n_per_class, opts.dim)
    x0 = torch.normal(opts.mean * ones, opts.std, generator=g) + opts.bias  # (n, dim), class 0
    x1 = torch.normal(-opts.mean * ones, opts.std, generator=g) + opts.bias  # (n, dim), class 1
    dtype = torch.float32 if opts.label_dtype == "float32" else torch.int64
    y = torch.cat([torch.zeros(opts.n_per_class, dtype=dtype), torch.ones(opts.n_per_class, dtype=dtype)])
    x = torch.cat([x0, x1])  # (2n, dim)
    return SourceData(
        ("x", "y"), ("value", "label"), tensors=(x, y), num_classes=2, labels=y.long(), classes=["0", "1"]
    )


_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "square": lambda x: x.pow(2),
    "cube": lambda x: x.pow(3),
    "sin": lambda x: x.sin(),
    "cos": lambda x: x.cos(),
    "abs": lambda x: x.abs(),
    "linear": lambda x: x,
    "exp": lambda x: x.exp(),
    "tanh": lambda x: x.tanh(),
}


class FunctionRegressionSource(SourceOptions):
    """y = f(x) + noise on x = linspace(low, high, n) (seeds 002/003): a 1-D regression toy."""

    source: Literal["function_regression"] = Field(description="Source type.")
    function: Literal["square", "cube", "sin", "cos", "abs", "linear", "exp", "tanh"] = Field(
        "square", description="f, from a fixed safe set (no code in specs)."
    )
    n: int = Field(1000, ge=1, description="Number of points.")
    low: float = Field(-1.0, description="Smallest x.")
    high: float = Field(1.0, description="Largest x.")
    noise: float = Field(0.1, ge=0, description="Standard deviation of the added Gaussian noise.")
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")


@register_source(FunctionRegressionSource)
def load_function_regression(opts: FunctionRegressionSource, ctx: LoadContext) -> SourceData:
    """x ``(n, 1)``, y ``(n, 1)``, as seed 003: ``y = x.pow(2) + 0.1 * torch.normal(torch.zeros(x.size()))``.

    >>> from pathlib import Path
    >>> opts = FunctionRegressionSource(source="function_regression", function="linear", n=3, noise=0)
    >>> [t.flatten().tolist() for t in load_function_regression(opts, LoadContext(Path("."), 0, False)).tensors]
    [[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]
    """
    import torch

    g = ctx.generator(opts.seed)
    x = torch.linspace(opts.low, opts.high, opts.n).unsqueeze(1)  # (n, 1)
    y = _FUNCTIONS[opts.function](x) + opts.noise * torch.normal(torch.zeros(x.size()), 1.0, generator=g)
    return SourceData(("x", "y"), ("value", "value"), tensors=(x, y))


class RandomSource(SourceOptions):
    """Random inputs of the declared shapes and random labels: for smoke runs, learns nothing."""

    source: Literal["random"] = Field(description="Source type.")
    n: int = Field(64, ge=1, description="Number of samples.")
    shapes: dict[str, list[int]] = Field(
        default_factory=lambda: {"x": [8]},
        description=("Field name -> per-sample shape of a standard-normal float32 input, e.g. {image: [1, 28, 28]}."),
    )
    n_classes: int = Field(10, ge=1, description="Labels are uniform in 0..n_classes-1 (int64).")
    target_shape: list[int] | None = Field(
        None, description="Give float32 regression targets of this per-sample shape instead of labels."
    )
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")

    @field_validator("shapes")
    @classmethod
    def _not_empty(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        """At least one field, every size positive."""
        if not v:
            raise ValueError("give at least one field shape")
        if any(d < 1 for shape in v.values() for d in shape):
            raise ValueError("shape sizes must be at least 1")
        return v


@register_source(RandomSource)
def load_random(opts: RandomSource, ctx: LoadContext) -> SourceData:
    """One ``(n, *shape)`` float tensor per declared field, then labels ``(n,)`` or targets.

    >>> from pathlib import Path
    >>> opts = RandomSource(source="random", n=4, shapes={"image": [1, 8, 8], "extra": [3]})
    >>> raw = load_random(opts, LoadContext(Path("."), 0, False))
    >>> raw.names, raw.kinds, [tuple(t.shape) for t in raw.tensors]
    (('image', 'extra', 'label'), ('image', 'value', 'label'), [(4, 1, 8, 8), (4, 3), (4,)])
    """
    import torch

    g = ctx.generator(opts.seed)
    tensors = [torch.randn(opts.n, *shape, generator=g) for shape in opts.shapes.values()]
    kinds = ["image" if len(shape) == 3 else "value" for shape in opts.shapes.values()]
    if opts.target_shape is not None:
        target, name, kind, num_classes = torch.randn(opts.n, *opts.target_shape, generator=g), "target", "value", None
    else:
        target = torch.randint(0, opts.n_classes, (opts.n,), generator=g)
        name, kind, num_classes = "label", "label", opts.n_classes
    return SourceData(
        (*opts.shapes, name),
        (*kinds, kind),
        tensors=(*tensors, target),
        num_classes=num_classes,
        labels=target if kind == "label" else None,
    )


def _masks_for(n_classes: int, mask: Tensor) -> tuple[Tensor, str]:
    """int64 class masks ``(N, H, W)``; for one class a float ``(N, 1, H, W)`` foreground mask (BCE/Dice)."""
    if n_classes == 1:
        return (mask > 0).float().unsqueeze(1), "mask"
    return mask, "mask"


class RandomSegmentationSource(SourceOptions):
    """Random images with random masks: for smoke runs of segmentation models."""

    source: Literal["random_segmentation"] = Field(description="Source type.")
    n: int = Field(16, ge=1, description="Number of samples.")
    image_shape: list[int] = Field([3, 64, 64], min_length=3, max_length=3, description="C, H, W of each image.")
    n_classes: int = Field(2, ge=1, description="Mask classes (int64 masks H x W); 1 gives float 1 x H x W masks.")
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")


@register_source(RandomSegmentationSource)
def load_random_segmentation(opts: RandomSegmentationSource, ctx: LoadContext) -> SourceData:
    """image ``(n, C, H, W)`` uniform in [0, 1), mask ``(n, H, W)``.

    >>> from pathlib import Path
    >>> opts = RandomSegmentationSource(source="random_segmentation", n=2, image_shape=[3, 8, 8])
    >>> [tuple(t.shape) for t in load_random_segmentation(opts, LoadContext(Path("."), 0, False)).tensors]
    [(2, 3, 8, 8), (2, 8, 8)]
    """
    import torch

    g = ctx.generator(opts.seed)
    c, h, w = opts.image_shape
    image = torch.rand(opts.n, c, h, w, generator=g)
    mask, kind = _masks_for(opts.n_classes, torch.randint(0, max(opts.n_classes, 2), (opts.n, h, w), generator=g))
    return SourceData(("image", "mask"), ("image", kind), tensors=(image, mask), num_classes=opts.n_classes)


class ShapesSource(SourceOptions):
    """A learnable toy segmentation task: circles and squares on a noisy background."""

    source: Literal["shapes"] = Field(description="Source type.")
    n: int = Field(256, ge=1, description="Number of images.")
    size: int = Field(64, ge=16, description="Image height and width.")
    channels: int = Field(1, ge=1, description="Image channels (the same picture in each).")
    max_shapes: int = Field(3, ge=1, description="At most this many shapes per image (at least one).")
    n_classes: Literal[1, 2, 3] = Field(
        3,
        description="3: background/circle/square; 2: background/shape "
        "(int64 masks); 1: float 1 x H x W foreground mask.",
    )
    noise: float = Field(0.1, ge=0, description="Standard deviation of the pixel noise.")
    seed: int | None = Field(None, description="Generator seed; default: the run seed (plus 1 for val, 2 for test).")


@register_source(ShapesSource)
def load_shapes(opts: ShapesSource, ctx: LoadContext) -> SourceData:
    """image ``(n, C, S, S)`` float in [0, 1], mask ``(n, S, S)`` (0 background, 1 circle, 2 square).

    >>> from pathlib import Path
    >>> raw = load_shapes(ShapesSource(source="shapes", n=2, size=16), LoadContext(Path("."), 0, False))
    >>> [tuple(t.shape) for t in raw.tensors], raw.classes
    ([(2, 1, 16, 16), (2, 16, 16)], ['background', 'circle', 'square'])
    """
    import torch

    g = ctx.generator(opts.seed)
    n, s = opts.n, opts.size
    yy, xx = torch.meshgrid(
        torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij"
    )  # (S, S) each
    image = torch.zeros(n, s, s)
    mask = torch.zeros(n, s, s, dtype=torch.int64)
    for k in range(opts.max_shapes):  # one shape slot at a time, vectorised over the n images
        present = torch.rand(n, generator=g) < (1.0 if k == 0 else 0.6)  # (n,)
        kind = torch.randint(0, 2, (n,), generator=g)  # 0 circle, 1 square
        r = torch.randint(s // 10, s // 5 + 1, (n,), generator=g).float()  # (n,)
        cy = r + torch.rand(n, generator=g) * (s - 1 - 2 * r)
        cx = r + torch.rand(n, generator=g) * (s - 1 - 2 * r)
        brightness = 0.6 + 0.4 * torch.rand(n, generator=g)
        dy = yy - cy[:, None, None]  # (n, S, S)
        dx = xx - cx[:, None, None]
        circle = dy.pow(2) + dx.pow(2) <= r[:, None, None].pow(2)
        half = 0.886 * r[:, None, None]  # a square of the circle's area: side sqrt(pi) * r
        square = (dy.abs() <= half) & (dx.abs() <= half)
        inside = torch.where((kind == 0)[:, None, None], circle, square) & present[:, None, None]
        mask = torch.where(inside, (kind + 1)[:, None, None], mask)
        image = torch.where(inside, brightness[:, None, None], image)
    image = (image + opts.noise * torch.randn(n, s, s, generator=g)).clamp(0, 1)
    image = image.unsqueeze(1).expand(n, opts.channels, s, s).contiguous()  # (n, C, S, S)
    if opts.n_classes == 2:
        mask = (mask > 0).long()
    target, kind_name = _masks_for(opts.n_classes, mask)
    return SourceData(
        ("image", "mask"),
        ("image", kind_name),
        tensors=(image, target),
        num_classes=opts.n_classes,
        classes=["background", "circle", "square"][: max(opts.n_classes, 1)] if opts.n_classes == 3 else None,
    )
