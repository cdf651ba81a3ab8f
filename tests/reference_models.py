"""Hand-written PyTorch reference modules for the models in the seed documents.

Each class is what the seed's author meant, written as plain ``torch.nn`` code, so that
netspec's compiled specs can be held against it (same parameter count, same output shape,
and - after :func:`copy_weights_in_order` - the same outputs). The seeds live in
``/work/shared/seeds/`` (see its README.md); their code has typos and small bugs
(``nn.Relu``, ``fowward``, ``Dropout(0, 3)``, ``slef``, a forward that drops an input ...).
Every fix is named in the docstring of the class that makes it.

Attribute names follow the seeds, so ``state_dict`` keys are those the seed code would give
(for U-Net: the same keys as milesial/Pytorch-UNet).

Parameter counts (torch 2.14.1, torchvision 0.29.1) are asserted in
``tests/test_reference_models.py`` and listed in ``/work/shared/notes/reference-figures.md``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

__all__ = [
    "AlexNet",
    "DoubleConv",
    "Down",
    "FashionCNN",
    "LeNet",
    "LogisticRegression",
    "MnistCNN",
    "MyListDense",
    "OutConv",
    "RegressionNet",
    "ResNet50ExtraInput",
    "ResNet50ExtraOutput",
    "SmallCNN",
    "TransformerClassifier",
    "TwoInputNet",
    "UNet",
    "Up",
    "VAE",
    "copy_weights_in_order",
    "count_parameters",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module`` (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def copy_weights_in_order(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters AND buffers from src to dst pairing them by registration order.

    Pairs by state_dict order, asserting equal shapes; raises with both key names on mismatch.
    The i-th entry of ``src.state_dict()`` is copied into the i-th entry of
    ``dst.state_dict()``; key names are ignored, so a hand-written module and a compiled
    netspec module (which registers its parameters in node order) can be given the same
    weights. Everything in the state dict is paired: parameters and persistent buffers
    (BatchNorm ``running_mean``/``running_var``/``num_batches_tracked``) alike.
    Non-persistent buffers are not in a state dict and are not copied.

    Raises:
        ValueError: the two state dicts have different lengths (the message names the first
            unpaired key), or a pair differs in shape or dtype (the message names both keys).
    """
    src_sd = src.state_dict(keep_vars=True)
    dst_sd = dst.state_dict(keep_vars=True)
    src_items = list(src_sd.items())
    dst_items = list(dst_sd.items())
    # Check everything before copying anything, so a failure leaves dst untouched.
    for (s_key, s_val), (d_key, d_val) in zip(src_items, dst_items):
        if s_val.shape != d_val.shape:
            raise ValueError(
                f"shape mismatch: src {s_key!r} {tuple(s_val.shape)} vs dst {d_key!r} {tuple(d_val.shape)}"
            )
        if s_val.dtype != d_val.dtype:
            raise ValueError(f"dtype mismatch: src {s_key!r} {s_val.dtype} vs dst {d_key!r} {d_val.dtype}")
    if len(src_items) != len(dst_items):
        n = min(len(src_items), len(dst_items))
        if len(src_items) > n:
            extra = f"src {src_items[n][0]!r} has no partner in dst"
        else:
            extra = f"dst {dst_items[n][0]!r} has no partner in src"
        raise ValueError(
            f"state_dict length mismatch: src has {len(src_items)} entries, dst has {len(dst_items)}; {extra}"
        )
    with torch.no_grad():
        for (_, s_val), (_, d_val) in zip(src_items, dst_items):
            d_val.copy_(s_val.detach())


# --------------------------------------------------------------------------------------------
# seed 000: logistic regression
# --------------------------------------------------------------------------------------------


class LogisticRegression(nn.Module):
    """Logistic regression on 2-d points (seed 000, "step 2/5 选择模型", class ``LR``).

    ``features = Linear(2, 1)`` then ``Sigmoid``; trained with BCELoss in the seed.
    Input ``(B, 2)``, output ``(B, 1)`` probabilities. 3 parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Linear(2, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1)
        return self.sigmoid(x)  # (B, 1)


# --------------------------------------------------------------------------------------------
# seed 001: MNIST CNN
# --------------------------------------------------------------------------------------------


class MnistCNN(nn.Module):
    """MNIST CNN (seed 001, the second ``NN_Module``: the complete MNIST example, "定义模型").

    The variant with 1 input channel: Conv2d(1,32,5,1,2) -> ReLU -> MaxPool2d(2) ->
    Conv2d(32,64,5,1,2) -> MaxPool2d(2) -> Flatten -> Linear(3136,1024) -> ReLU ->
    Linear(1024,10) -> Softmax(dim=1). Exactly as in the seed (no ReLU after the second
    conv; the output is a softmax, which the seed then feeds to CrossEntropyLoss).
    Input ``(B, 1, 28, 28)``, output ``(B, 10)``. 3,274,634 parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(1, 32, 5, 1, 2),  # (B, 32, 28, 28)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 5, 1, 2),  # (B, 64, 14, 14)
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(),  # (B, 3136)
            nn.Linear(7 * 7 * 64, 1024),  # (B, 1024)
            nn.ReLU(),
            nn.Linear(1024, 10),  # (B, 10)
            nn.Softmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, 1, 28, 28) -> (B, 10)


# --------------------------------------------------------------------------------------------
# seeds 002 / 003: regression MLP and the 002 CNN
# --------------------------------------------------------------------------------------------


class RegressionNet(nn.Module):
    """One-hidden-layer regression MLP (seed 003, "优化器" section, "3.网络结构"; seed 002,
    "模型构建", ``Net(n_feature, n_hidden, n_output)``).

    ``hidden = Linear(n_feature, n_hidden)`` -> ReLU -> ``predict = Linear(n_hidden, n_output)``.
    The default (1, 20, 1) is the 003 net (61 parameters); seed 002 builds ``Net(1, 10, 1)``
    (31 parameters). Fixes the 003 typos ``f.relu`` / ``slef.predict``.
    Input ``(B, n_feature)``, output ``(B, n_output)``.
    """

    def __init__(self, n_feature: int = 1, n_hidden: int = 20, n_output: int = 1) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_feature, n_hidden)
        self.predict = nn.Linear(n_hidden, n_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.hidden(x))  # (B, n_hidden)
        return self.predict(x)  # (B, n_output)


class SmallCNN(nn.Module):
    """Two-conv MNIST CNN (seed 002, "模型构建", class ``CNN``).

    conv1 = Sequential(Conv2d(1,16,5,1,2), ReLU, MaxPool2d(2)); conv2 = Sequential(
    Conv2d(16,32,5,1,2), ReLU, MaxPool2d(2)); out = Linear(32*7*7, 10); forward returns
    ``output`` only, as in the seed.
    Input ``(B, 1, 28, 28)``, output ``(B, 10)`` logits. 28,938 parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels=1, out_channels=16, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(16, 32, 5, 1, 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.out = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, 16, 14, 14)
        x = self.conv2(x)  # (B, 32, 7, 7)
        x = x.view(x.size(0), -1)  # (B, 1568)
        return self.out(x)  # (B, 10)


# --------------------------------------------------------------------------------------------
# seed 003: LeNet, AlexNet, the Fashion-MNIST CNN
# --------------------------------------------------------------------------------------------


class LeNet(nn.Module):
    """LeNet (seed 003, "3、模型示例" -> "**LeNet**", class ``Net``).

    conv1 = Conv2d(1,6,5), conv2 = Conv2d(6,16,5), fc1 400->120, fc2 120->84, fc3 84->10,
    with ``F.relu`` and ``F.max_pool2d`` (2x2) after each conv and ReLU after fc1/fc2.
    The seed's ``x.view(-1, self.num_flat_features(x))`` is written as ``torch.flatten(x, 1)``
    (same result for a batch). Input ``(B, 1, 32, 32)``, output ``(B, 10)`` logits.
    61,706 parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))  # (B, 6, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 16, 5, 5)
        x = torch.flatten(x, 1)  # (B, 400)
        x = F.relu(self.fc1(x))  # (B, 120)
        x = F.relu(self.fc2(x))  # (B, 84)
        return self.fc3(x)  # (B, 10)


class AlexNet(nn.Module):
    """AlexNet for Fashion-MNIST (seed 003, "3、模型示例" -> "**AlexNet**"; the d2l version).

    1 input channel, 10 classes, ``Linear(256*5*5, 4096)``: the input must be resized to
    224x224. Not torchvision's ``alexnet`` (3 channels, 1000 classes, 61,100,840 parameters).
    Input ``(B, 1, 224, 224)``, output ``(B, 10)`` logits. 46,764,746 parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 96, 11, 4),  # (B, 96, 54, 54)
            nn.ReLU(),
            nn.MaxPool2d(3, 2),  # (B, 96, 26, 26)
            nn.Conv2d(96, 256, 5, 1, 2),  # (B, 256, 26, 26)
            nn.ReLU(),
            nn.MaxPool2d(3, 2),  # (B, 256, 12, 12)
            nn.Conv2d(256, 384, 3, 1, 1),  # (B, 384, 12, 12)
            nn.ReLU(),
            nn.Conv2d(384, 384, 3, 1, 1),  # (B, 384, 12, 12)
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, 1, 1),  # (B, 256, 12, 12)
            nn.ReLU(),
            nn.MaxPool2d(3, 2),  # (B, 256, 5, 5)
        )
        self.fc = nn.Sequential(
            nn.Linear(256 * 5 * 5, 4096),  # (B, 4096)
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),  # (B, 4096)
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(4096, 10),  # (B, 10)
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        feature = self.conv(img)  # (B, 256, 5, 5)
        return self.fc(feature.view(img.shape[0], -1))  # (B, 6400) -> (B, 10)


class FashionCNN(nn.Module):
    """Fashion-MNIST CNN (seed 003, "PyTorch实战(MNIST)" -> "4、模型设计", class ``Net``).

    Fixes the seed's bugs as the author meant: ``nn.Relu`` -> ``nn.ReLU``; the second
    ``nn.Dropout(0, 3)`` -> ``nn.Dropout(0.3)`` (like the first); ``fowward`` -> ``forward``,
    and the forward goes conv -> ``view(-1, 64*4*4)`` -> fc (the seed never applied ``self.fc``
    and returned the flattened features). The commented-out ``normalize`` stays out.
    Input ``(B, 1, 28, 28)``, output ``(B, 10)`` logits (the seed trains with
    CrossEntropyLoss). 582,026 parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 5),  # (B, 32, 24, 24)
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2),  # (B, 32, 12, 12)
            nn.Dropout(0.3),
            nn.Conv2d(32, 64, 5),  # (B, 64, 8, 8)
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2),  # (B, 64, 4, 4)
            nn.Dropout(0.3),
        )
        self.fc = nn.Sequential(
            nn.Linear(64 * 4 * 4, 512),  # (B, 512)
            nn.ReLU(),
            nn.Linear(512, 10),  # (B, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, 64, 4, 4)
        x = x.view(-1, 64 * 4 * 4)  # (B, 1024)
        return self.fc(x)  # (B, 10)


# --------------------------------------------------------------------------------------------
# seed 003: U-Net (milesial/Pytorch-UNet)
# --------------------------------------------------------------------------------------------


class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2 (seed 003, "利用模型搭建网络" -> "3、U-Net模型块实现").

    Two 3x3 convs (padding 1, no bias), each followed by BatchNorm2d and ReLU(inplace).
    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        if not mid_channels:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)  # (B, out_channels, H, W)


class Down(nn.Module):
    """Downscaling with maxpool then double conv (seed 003, "3、U-Net模型块实现").

    ``(B, in_channels, H, W) -> (B, out_channels, H // 2, W // 2)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(2),  # (B, in_channels, H // 2, W // 2)
            DoubleConv(in_channels, out_channels),  # (B, out_channels, H // 2, W // 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)  # (B, out_channels, H // 2, W // 2)


class Up(nn.Module):
    """Upscaling then double conv (seed 003, "3、U-Net模型块实现").

    ``bilinear=True``: Upsample(x2, bilinear, align_corners=True) and
    DoubleConv(in, out, mid=in // 2); else ConvTranspose2d(in, in // 2, 2, stride 2) and
    DoubleConv(in, out). The upsampled ``x1`` is zero-padded (F.pad, half on each side, the
    odd pixel at the bottom/right) to ``x2``'s spatial size, then ``cat([x2, x1], dim=1)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = False) -> None:
        super().__init__()
        # if bilinear, use the normal convolutions to reduce the number of channels
        self.up: nn.Module
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        # x1: (B, C1, h, w) from below; x2: (B, C2, H, W) skip connection, H >= 2h, W >= 2w
        x1 = self.up(x1)  # (B, C1 or C1 // 2, 2h, 2w)
        diff_y = x2.size()[2] - x1.size()[2]
        diff_x = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])  # (B, ., H, W)
        x = torch.cat([x2, x1], dim=1)  # (B, in_channels, H, W)
        return self.conv(x)  # (B, out_channels, H, W)


class OutConv(nn.Module):
    """1x1 output convolution (seed 003, "3、U-Net模型块实现").

    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, out_channels, H, W)


class UNet(nn.Module):
    """U-Net from reusable blocks (seed 003, "4、利用模型块组装U-Net"; = milesial/Pytorch-UNet).

    Input ``(B, n_channels, H, W)`` for any H, W >= 16 (``Up`` pads to match the skip
    connection, so odd sizes work); output ``(B, n_classes, H, W)`` logits.
    Parameters: (3, 2, False) 31,037,698; (3, 2, True) 17,263,042; (1, 1, False) 31,036,481.
    """

    def __init__(self, n_channels: int, n_classes: int, bilinear: bool = False) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.bilinear = bilinear

        self.inc = DoubleConv(n_channels, 64)
        self.down1 = Down(64, 128)
        self.down2 = Down(128, 256)
        self.down3 = Down(256, 512)
        factor = 2 if bilinear else 1
        self.down4 = Down(512, 1024 // factor)
        self.up1 = Up(1024, 512 // factor, bilinear)
        self.up2 = Up(512, 256 // factor, bilinear)
        self.up3 = Up(256, 128 // factor, bilinear)
        self.up4 = Up(128, 64, bilinear)
        self.outc = OutConv(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # f = 2 if bilinear else 1; sizes below are for H, W divisible by 16
        x1 = self.inc(x)  # (B, 64, H, W)
        x2 = self.down1(x1)  # (B, 128, H/2, W/2)
        x3 = self.down2(x2)  # (B, 256, H/4, W/4)
        x4 = self.down3(x3)  # (B, 512, H/8, W/8)
        x5 = self.down4(x4)  # (B, 1024/f, H/16, W/16)
        x = self.up1(x5, x4)  # (B, 512/f, H/8, W/8)
        x = self.up2(x, x3)  # (B, 256/f, H/4, W/4)
        x = self.up3(x, x2)  # (B, 128/f, H/2, W/2)
        x = self.up4(x, x1)  # (B, 64, H, W)
        return self.outc(x)  # (B, n_classes, H, W)


# --------------------------------------------------------------------------------------------
# seed 003: modifying torchvision's resnet50 (extra input, extra output)
# --------------------------------------------------------------------------------------------


def _resnet50() -> nn.Module:
    """torchvision resnet50 with random weights (never downloads anything)."""
    return torchvision.models.resnet50(weights=None)


class ResNet50ExtraInput(nn.Module):
    """ResNet-50 with an extra scalar input (seed 003, "模型修改" -> "2、添加外部输入").

    ``net`` (torchvision resnet50, 1000-d output) -> ReLU -> Dropout(0.5) ->
    ``cat(., add_variable.unsqueeze(1), dim=1)`` -> ``fc_add = Linear(1001, 10)`` ->
    Softmax(dim=1). ``net`` defaults to ``torchvision.models.resnet50(weights=None)``
    (the seed passes ``models.resnet50()``).
    Inputs ``x (B, 3, 224, 224)`` and ``add_variable (B,)`` (one scalar per sample, as the
    seed explains); output ``(B, 10)`` probabilities. 25,567,052 parameters.
    """

    def __init__(self, net: nn.Module | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else _resnet50()
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.fc_add = nn.Linear(1001, 10, bias=True)
        self.output = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor, add_variable: torch.Tensor) -> torch.Tensor:
        x = self.net(x)  # (B, 1000)
        x = self.dropout(self.relu(x))  # (B, 1000)
        x = torch.cat((x, add_variable.unsqueeze(1)), 1)  # (B, 1001)
        x = self.fc_add(x)  # (B, 10)
        return self.output(x)  # (B, 10)


class ResNet50ExtraOutput(nn.Module):
    """ResNet-50 returning a second output (seed 003, "模型修改" -> "3、添加额外输出").

    ``x1000 = net(x)``; ``x10 = Softmax(fc1(Dropout(0.5)(ReLU(x1000))))`` with
    ``fc1 = Linear(1000, 10)``; returns ``(x10, x1000)``.
    The seed's ``forward(self, x, add_variable)`` never uses ``add_variable`` (copied from the
    extra-input example); this reference takes only ``x``.
    Input ``x (B, 3, 224, 224)``; outputs ``(B, 10)`` probabilities and ``(B, 1000)`` features.
    25,567,042 parameters.
    """

    def __init__(self, net: nn.Module | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else _resnet50()
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.fc1 = nn.Linear(1000, 10, bias=True)
        self.output = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1000 = self.net(x)  # (B, 1000)
        x10 = self.dropout(self.relu(x1000))  # (B, 1000)
        x10 = self.fc1(x10)  # (B, 10)
        x10 = self.output(x10)  # (B, 10)
        return x10, x1000


# --------------------------------------------------------------------------------------------
# seed 004: two-input conv net
# --------------------------------------------------------------------------------------------


class TwoInputNet(nn.Module):
    """Conv net with two inputs (seed 004, "网络模型的搭建", class ``MyConvNet``).

    What the author meant, with these choices (the seed's code is not runnable as written):

    * ``x`` is ``(B, 1, 10, 18)``: the seed hard-codes ``Linear(21, ...)`` after
      conv3x3 -> relu -> conv3x3 -> max_pool2d(2, 2) -> relu, and 1x10x18 is the size that
      gives exactly 1x3x7 = 21 features (10x18 -> 8x16 -> 6x14 -> 3x7).
    * The seed's forward takes ``DCGR_feature`` but never uses it; the training loop feeds it
      (``model(D.float(), G.float())``, the "feature由好几个部分组成" data). Here it is a
      vector of ``dcgr_features`` values per sample, ``(B, dcgr_features)``, concatenated to
      the 21 conv features, so ``fc1 = Linear(21 + dcgr_features, 1024)``.
    * The seed reshapes to ``(B, 1, 21)``, which makes the output ``(B, 1, 2)`` and breaks its
      ``CrossEntropyLoss(output, L)``; here the features are flattened to ``(B, 21)`` and the
      output is ``(B, 2)``.
    * The final ``Sigmoid`` is kept (``fc3 = Sequential(Linear(256, 2), Sigmoid())``), as is
      the seed's order max-pool then ReLU after conv2, and ``Dropout(0.2)`` after fc1.

    Output ``(B, 2)`` in (0, 1). Parameters with ``dcgr_features=8``: 293,654
    (conv1 10, conv2 10, fc1 29*1024+1024 = 30,720, fc2 262,400, fc3 514).
    """

    conv_features: int = 21

    def __init__(self, dcgr_features: int = 8) -> None:
        super().__init__()
        self.dcgr_features = dcgr_features
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=1, kernel_size=(3, 3), padding=0)
        self.conv2 = nn.Conv2d(in_channels=1, out_channels=1, kernel_size=(3, 3), padding=0)
        self.fc1 = nn.Linear(self.conv_features + dcgr_features, 1024)
        self.dropout = nn.Dropout(0.2)
        self.fc2 = nn.Linear(1024, 256)
        self.fc3 = nn.Sequential(nn.Linear(256, 2), nn.Sigmoid())

    def forward(self, x: torch.Tensor, dcgr_feature: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, 1, 8, 16)
        out = F.relu(out)
        out = self.conv2(out)  # (B, 1, 6, 14)
        out = F.max_pool2d(out, 2, 2)  # (B, 1, 3, 7)
        out = F.relu(out)
        out = torch.flatten(out, 1)  # (B, 21)
        out = torch.cat((out, dcgr_feature), dim=1)  # (B, 21 + dcgr_features)
        out = F.relu(self.fc1(out))  # (B, 1024)
        out = self.dropout(out)
        out = F.relu(self.fc2(out))  # (B, 256)
        return self.fc3(out)  # (B, 2)


# --------------------------------------------------------------------------------------------
# issue 9: models nobody here wrote, as their authors wrote them
# --------------------------------------------------------------------------------------------


class VAE(nn.Module):
    """The variational autoencoder of pytorch/examples (vae/main.py), unchanged.

    784 -> 400 -> (mu, logvar) of 20 each; ``z = mu + randn_like(std) * std`` with
    ``std = exp(0.5 * logvar)``; 20 -> 400 -> 784 -> sigmoid. Returns ``(recon, mu, logvar)``.
    The noise comes from torch's global RNG, so a seeded run is reproducible.
    652,824 parameters.
    """

    def __init__(self, latent: int = 20) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, latent)
        self.fc22 = nn.Linear(400, latent)
        self.fc3 = nn.Linear(latent, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x))  # (B, 400)
        return self.fc21(h1), self.fc22(h1)  # (B, 20) each

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std  # (B, 20)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h3 = F.relu(self.fc3(z))  # (B, 400)
        return torch.sigmoid(self.fc4(h3))  # (B, 784)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


class TransformerClassifier(nn.Module):
    """A Transformer encoder text classifier with a padding mask (the usual recipe).

    Token ids ``(B, T)``, id 0 is padding. A learned position embedding is added to the token
    embedding, two ``TransformerEncoderLayer`` s (batch_first) read it with
    ``src_key_padding_mask = tokens == 0``, the outputs are averaged over the real tokens only,
    and a Linear gives the class logits. ``pos`` is declared first so that registration order
    matches the spec, whose declared parameters come first in its state_dict.
    ``enable_nested_tensor=False``: with nested tensors torch's encoder would zero the padded
    positions on its inference fast path, a different (equally valid) computation.
    """

    def __init__(
        self,
        vocab: int = 1000,
        max_len: int = 32,
        d_model: int = 64,
        nhead: int = 4,
        dim_feedforward: int = 128,
        num_layers: int = 2,
        n_classes: int = 4,
    ) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        self.embedding = nn.Embedding(vocab, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.fc = nn.Linear(d_model, n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pad = tokens == 0  # (B, T), True where padding
        x = self.embedding(tokens) + self.pos  # (B, T, d)
        x = self.encoder(x, src_key_padding_mask=pad)  # (B, T, d)
        keep = (~pad).to(torch.float32).unsqueeze(-1)  # (B, T, 1)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1)  # (B, d): mean over real tokens
        return self.fc(pooled)  # (B, n_classes)


class MyListDense(nn.Module):
    """Seed 003's custom layer with a ParameterList ("含模型参数的层", ``MyListDense``).

    Three 4x4 weights and one 4x1, each ``torch.randn``, multiplied in turn: ``(B, 4) -> (B, 1)``.
    52 parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.params = nn.ParameterList([nn.Parameter(torch.randn(4, 4)) for i in range(3)])
        self.params.append(nn.Parameter(torch.randn(4, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(len(self.params)):
            x = torch.mm(x, self.params[i])  # (B, 4), then (B, 1)
        return x
