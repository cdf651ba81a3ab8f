"""Small models that exercise what the importer reads, and what it must refuse (with the reason)."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class Down(nn.Module):
    """ResNet's pattern: a projection only where the shape changes (an optional node)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.proj = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return self.relu(self.bn(self.conv(x)) + shortcut)


class Scale(nn.Module):
    """Stateless, one op: written inline."""

    def forward(self, x):
        return x * 0.5


class Dense(nn.Module):
    """DenseNet's pattern: called with a list of tensors it only concatenates."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 4, 1)

    def forward(self, features):
        return self.conv(torch.cat(features, 1))


class DenseStack(nn.Module):
    """DenseNet's block: each layer gets the list of all features before it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1, self.layer2 = Dense(16), Dense(20)

    def forward(self, x):
        features = [x]
        for layer in (self.layer1, self.layer2):
            features.append(layer(features))
        return torch.cat(features, dim=1)


class Toy(nn.Module):
    """Most of what the importer reads, in one forward."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(OrderedDict([("conv", nn.Conv2d(3, 8, 3, padding=1)), ("act", nn.ReLU())]))
        self.stages = nn.Sequential(Down(8, 8), Down(8, 16, 2), Down(16, 16))
        self.dense = DenseStack()
        self.scale = Scale()
        self.token = nn.Parameter(torch.randn(1, 26) * 0.02)
        self.head = nn.Linear(26, 5)

    def forward(self, x):
        x = self.dense(self.stages(self.stem(x)))
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, 2 * b, 1 - x[:, 2:4]], 1)
        x = F.adaptive_avg_pool2d(F.relu(x), 1)
        x = self.scale(x.view(x.size(0), -1)) + self.token
        return self.head(x).softmax(-1), x[:, 0]


class Chain(nn.Module):
    """Items of an nn.ModuleList called in a chain, and a layer given a keyword input."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(6, 6) for _ in range(3)])
        self.attn = nn.MultiheadAttention(6, 2, batch_first=True)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        x = torch.tanh(x)
        out, _ = self.attn(x, x, x, need_weights=False)
        return out.mean(dim=1)


# ---- what a spec cannot express ------------------------------------------------------------


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.fc(x))


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, k: int):
        return self.fc(x) * k


class CalledOtherwise(nn.Module):
    """A module with weights called again with another value besides its tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.s = Scaled()

    def forward(self, x):
        return self.s(self.s(x, 2), 3)


class WithBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offset", torch.zeros(4))
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) + self.offset


class Unused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.aux = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return x


class BatchAsValue(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) * x.size(0)


class Rolled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.roll(self.fc(x), 1, dims=0)  # along the batch: it would mix the samples


class Interleaved(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])

    def forward(self, x):
        for block in self.blocks:
            x = torch.tanh(block(x))
        return x


class InPlace(nn.Module):
    """In-place methods change the value later reads see."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        y.relu_()
        y.mul_(2.0)
        return y.float() + x


class TwoInputs(nn.Module):
    """Two named inputs, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4 + 3, 5)

    def forward(self, image, extra):
        features = torch.flatten(self.conv(image), 1)
        logits = self.fc(torch.cat([features, extra], dim=1))
        return logits, features


class WithFlag(nn.Module):
    """A forward argument with a default is fixed at it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, features_only: bool = False):
        x = self.fc(x)
        return x if features_only else torch.sigmoid(x)


class UnreadBuffer(nn.Module):
    """A buffer in the state_dict that forward never reads: still a key the spec cannot hold."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps", torch.zeros(()))
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)


class Tokens(nn.Module):
    """Token ids (int64) and a padding mask (bool): the mask goes to attention by name."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, tokens, mask):
        x = self.emb(tokens)
        y, _ = self.attn(x, x, x, key_padding_mask=mask, need_weights=False)
        return self.fc(y.mean(1))


class Encoder(nn.Module):
    """nn.TransformerEncoder (fx cannot trace its forward) with a norm and a padding mask made from the ids."""

    def __init__(self, nested: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16), enable_nested_tensor=nested)
        self.head = nn.Linear(16, 5)

    def forward(self, tokens):
        return self.head(self.enc(self.emb(tokens), src_key_padding_mask=tokens.eq(0)).mean(1))


class Mix(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, cond):
        return self.fc(x) + cond


class Conditioned(nn.Module):
    """Blocks of a ModuleList given a second input: a repeat passes that only to a layer, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Mix(), Mix()])

    def forward(self, x):
        for block in self.blocks:
            x = block(x, x)
        return x


class MaskOnce(nn.Module):
    """A padding mask for the first item of a ModuleList only."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(4, 2, 8, batch_first=True) for _ in range(2))

    def forward(self, x):
        x = self.layers[0](x, src_key_padding_mask=x[:, :, 0] > 1)
        return self.layers[1](x)


class DictOut(nn.Module):
    """A dict of outputs (the spec's output_type: dict); a GRU, which takes no proj_size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.gru = nn.GRU(8, 6, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        out, _ = self.gru(self.conv(x).permute(0, 2, 1))
        return {"logits": self.fc(out[:, -1]), "sequence": out}


class _OneInput(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x0):
        return self.layer(x0)


class _TwoInputs(_OneInput):
    def forward(self, x0, x1):
        return self.layer(x0, x1)


class _ThreeInputs(_OneInput):
    def forward(self, x0, x1, x2):
        return self.layer(x0, x1, x2)


def one_module(layer: nn.Module, inputs: int) -> nn.Module:
    """A model whose forward calls ``layer`` on its ``inputs`` (1 to 3) inputs."""
    return (_OneInput, _TwoInputs, _ThreeInputs)[inputs - 1](layer)


class Positions(nn.Module):
    """GPT's position ids: torch.arange of a size (folded at the declared input size)."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Embedding(8, 4)

    def forward(self, x):
        return x + self.pos(torch.arange(x.size(1)))


class VAE(nn.Module):
    """A VAE's reparameterisation draws noise: the round trip must seed both forwards alike."""

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.mu, self.logvar, self.dec = nn.Linear(8, 6), nn.Linear(6, 2), nn.Linear(6, 2), nn.Linear(2, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = torch.relu(self.enc(x))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # (B, 2)
        return self.dec(z), mu, logvar


class OddInputNames(nn.Module):
    """Inputs named like attributes of a GraphModule: `type`, `meta`, `code`, `graph`."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(2, 3)

    def forward(self, type: torch.Tensor, meta: torch.Tensor, code: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        return self.a(type) + self.b(meta) + code * graph


class DictInputs(nn.Module):
    """Two inputs that arrive as one dict."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(2, 3)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.a(batch["image"]) + self.b(batch["meta"])


class TupleHidden(nn.Module):
    """An LSTM given its (h0, c0) as one forward argument."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm, self.fc = nn.LSTM(4, 3, batch_first=True), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        out, _ = self.lstm(x, hidden)
        return self.fc(out[:, -1])


class ParamList(nn.Module):
    """Parameters in an nn.ParameterList."""

    def __init__(self) -> None:
        super().__init__()
        self.scales = nn.ParameterList([nn.Parameter(torch.ones(4)) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scales[0] + self.scales[1]


class Unbound(nn.Module):
    """Attention's `q, k, v = qkv.unbind(0)`, a `split` and a layer scale reshaped from a parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(4, 12)
        self.gamma = nn.Parameter(torch.rand(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x).reshape(x.shape[0], 5, 3, 4).permute(2, 0, 1, 3)  # (3, B, 5, 4)
        q, k, v = qkv.unbind(0)
        a, b = torch.split(q @ k.transpose(-2, -1) @ v, [1, 3], dim=-1)  # (B, 5, 1), (B, 5, 3)
        return a * b * self.gamma.reshape(1, 1, -1)


class LayerNorm(nn.Module):
    """A class used inside a block and again after it, at the top; named like a torch.nn layer
    (timm's is), so its block is `LayerNormBlock`."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.norm = nn.Linear(4, 4), LayerNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(x))


class NormAfterBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer, self.norm = Layer(), LayerNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layer(x))


class Attending(nn.Module):
    """timm's fused attention: F.scaled_dot_product_attention on q, k, v."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).reshape(x.shape[0], 5, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)  # (B, 2, 5, 4) each
        return F.scaled_dot_product_attention(q, k, v, scale=0.3)


class NamedLikeKeys(nn.Module):
    """Children named like a spec node's keys (timm's inception_resnet_v2 has `self.repeat`)."""

    def __init__(self) -> None:
        super().__init__()
        self.repeat = nn.Sequential(nn.Linear(4, 4), nn.ReLU())  # a group, not copies
        self.when = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.when(self.repeat(x))


# ---- loops over an nn.ModuleList that are not a plain chain --------------------------------


class Step(nn.Module):
    """A residual step's branch: a block (its keys: blocks.0.fc.weight, blocks.0.norm.weight)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        return self.norm(F.gelu(self.fc(x)))


class ResidualStack(nn.Module):
    """``x = x + b(x)`` over a ModuleList of blocks, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Step(6) for _ in range(3))
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


class ReluBetween(nn.Module):
    """An MLP whose layers are a ModuleList with F.relu between them (not after the last)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(5, 8), nn.Linear(8, 8), nn.Linear(8, 3)])

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class PreActivation(nn.Module):
    """``x = x + b(relu(x))``: the step's op comes before the item."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1) for _ in range(2))

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(F.relu(x))
        return x.mean(dim=(2, 3))


class Zipped(nn.Module):
    """Two ModuleLists stepped together: the loop over one calls the other's items."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        self.mlp = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))

    def forward(self, x):
        for a, m in zip(self.attn, self.mlp):
            x = x + a(x)
            x = x + m(x)
        return x


class GatedStack(nn.Module):
    """A step that reads a parameter of the model (not of an item)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        self.gamma = nn.Parameter(torch.ones(4))

    def forward(self, x):
        for block in self.blocks:
            x = x + self.gamma * block(x)
        return x


class AuxHead(nn.Module):
    """torchvision's InceptionAux in small: a Linear, dropout as a function call, a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 5), nn.Linear(5, 3)

    def forward(self, x):
        x = F.dropout(self.fc1(x).relu(), 0.7, training=self.training)
        return self.fc2(x)


class AuxHeads(nn.Module):
    """Heads called only in training, as GoogLeNet's aux1 (a block with dropout) and a plain Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.aux = AuxHead()
        self.aux_fc = nn.Linear(8, 2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.body(x).relu()
        aux = aux_fc = None
        if self.training:
            aux = self.aux(x)
            aux_fc = self.aux_fc(x)
        x = self.fc(self.drop(x))
        if self.training:
            return x, aux_fc, aux
        return x


class Windows(nn.Module):
    """Swin's window attention as timm writes it: the batch read from the shape, windows folded
    into it (`window_partition`), attention and a projection per window, then unfolded back."""

    def __init__(self, dim: int = 16, window: int = 4) -> None:
        super().__init__()
        self.window = window
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.proj = nn.Linear(dim, dim)
        self.rows = nn.BatchNorm1d(dim)  # Hiera's and LeViT's: a norm over every row of the folded batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        ws = self.window
        y = self.norm(x)
        y = y.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)
        y = self.proj(self.attn(y, y, y, need_weights=False)[0])  # (64B, ws * ws, C)
        y = y.view(-1, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
        z = self.rows(y.flatten(0, 2)).reshape_as(y)  # (B*H*W, C) rows, back to (B, H, W, C)
        return x + z
