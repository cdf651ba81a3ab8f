"""The specs of issue 20's constructs compute what the hand-written modules they describe compute:
buffers (a positional table cut to the length, normalisation constants), a module called twice
(``same_as``), tied embeddings (``tie``), indexing with sizes read at run time.

As in ``test_equivalence.py``, the reference gets random weights, they are copied into the
compiled module in registration order, and both get the same input.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

import netspec

SPECS = Path(__file__).resolve().parent.parent / "specs"


class PositionalEncoding(nn.Module):
    """pytorch/examples word_language_model's PositionalEncoding, batch first."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))  # (1, max_len, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[:, : x.size(1)])


class WordLanguageModel(nn.Module):
    """pytorch/examples' TransformerModel, batch first, with the decoder tied to the embedding."""

    def __init__(
        self, ntoken: int = 1000, ninp: int = 64, nhead: int = 2, nhid: int = 128, nlayers: int = 2, max_len: int = 512
    ) -> None:
        super().__init__()
        self.ninp = ninp
        self.input_emb = nn.Embedding(ntoken, ninp)
        self.pos_encoder = PositionalEncoding(ninp, 0.2, max_len)
        layer = nn.TransformerEncoderLayer(ninp, nhead, nhid, 0.2, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.input_emb.weight

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(src.size(1))  # (T, T), -inf above the diagonal
        x = self.pos_encoder(self.input_emb(src) * math.sqrt(self.ninp))
        out = self.encoder(x, mask=mask)
        return F.log_softmax(self.decoder(out), dim=-1).permute(0, 2, 1)  # (B, ntoken, T)


def test_word_language_model_matches_pytorch_examples_at_any_length() -> None:
    torch.manual_seed(0)
    reference = WordLanguageModel()
    model = netspec.build_model(SPECS / "word_language_model.yaml")
    assert_close(model.pe, reference.pos_encoder.pe, rtol=0, atol=0)  # sinusoidal_ is the example's table
    with torch.no_grad():  # the buffer is the root's, so first in its state_dict: pair the parameters alone
        for a, b in zip(reference.parameters(), model.parameters(), strict=True):
            b.copy_(a)
    assert model.decoder.weight is model.input_emb.weight
    reference.eval(), model.eval()
    for length in (32, 20, 45):  # compiled at 32; the table is cut and the mask made when the forward runs
        tokens = torch.randint(0, 1000, (3, length))
        with torch.no_grad():
            assert_close(model(tokens), reference(tokens))


class Siamese(nn.Module):
    """Normalise both images with constant buffers, one tower for both, a head on |a - b|."""

    def __init__(self, embedding: int = 64) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.1307]).view(1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.3081]).view(1, 1, 1), persistent=False)
        self.tower = nn.Sequential(
            nn.Conv2d(1, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(512, embedding),
        )
        self.head = nn.Linear(embedding, 2)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        a = self.tower((left - self.mean) / self.std)
        b = self.tower((right - self.mean) / self.std)
        return self.head(torch.abs(a - b))


def test_siamese_net_matches_the_hand_written_one() -> None:
    torch.manual_seed(1)
    reference = Siamese()
    model = netspec.build_model(SPECS / "siamese.yaml")
    assert [k.split(".")[0] for k in model.state_dict()] == [k.split(".")[0] for k in reference.state_dict()]
    model.load_state_dict(dict(zip(model.state_dict(), reference.state_dict().values())))
    left, right = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert_close(model(left, right), reference(left, right))
