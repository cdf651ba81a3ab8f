"""Losses as a graph (``loss: {nodes, terms}``), each checked against a hand-written reference:
the VAE's reconstruction + KL against pytorch/examples' ``loss_function`` and its training
against a plain loop, NT-Xent against the formula written out pair by pair, a distillation
term against a frozen teacher, an auxiliary head at weight 0.3 and a penalty on an
intermediate node."""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError
from netspec.training.hardware import set_seed
from netspec.training.loop import train
from netspec.training.loss_graph import build_loss, training_module
from netspec.training.losses import NTXentLoss

from reference_models import VAE, copy_weights_in_order
from standins import Loader, Loaders

ROOT = Path(__file__).resolve().parents[2]


def vae_spec(**train: object) -> netspec.Spec:
    overrides = [f"train.{k}={v}" for k, v in {"device": "cpu", "progress": "line", **train}.items()]
    return netspec.load_spec(ROOT / "specs" / "vae.yaml", overrides=overrides)


def seed_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """pytorch/examples vae/main.py ``loss_function``, as written there."""
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def outputs_of(spec: netspec.Spec, model: torch.nn.Module, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    raw = training_module(model)(*inputs)
    return raw if isinstance(raw, dict) else dict(zip(spec.output_names, raw))


def test_vae_loss_is_the_seed_loss_for_the_same_batch_and_weights() -> None:
    spec = vae_spec()
    torch.manual_seed(0)
    reference, model = VAE(), netspec.build_model(spec)
    copy_weights_in_order(reference, model)
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(1)
    recon, mu, logvar = reference(x)
    want = seed_loss(recon, x, mu, logvar)
    crit = build_loss(spec, model)
    torch.manual_seed(1)  # the same noise in the reparameterisation
    got = crit(outputs_of(spec, model, x), {"recon_image": x})
    assert_close(got, want)
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    assert_close(crit.last["kl"], kld.detach())
    assert_close(crit.last["recon"] + crit.last["kl"], got.detach())
    assert "exp(" in crit.graph.code  # the KL is the loss graph's generated forward


def test_vae_training_matches_a_plain_loop_with_the_seed_loss(tmp_path: Path) -> None:
    spec = vae_spec(epochs=2, seed=3)
    torch.manual_seed(0)
    model, reference = netspec.build_model(spec), VAE()
    copy_weights_in_order(model, reference)
    images = torch.rand(20, 1, 28, 28)
    data = Loaders(Loader(images, {"recon_image": images}, 8, name="image"))
    result = train(spec, model=model, loaders=data, out=tmp_path / "runs", stream=io.StringIO())
    # the plain loop: the same seed (the same noise), batches, Adam and loss
    opt = torch.optim.Adam(reference.parameters(), lr=0.001)
    set_seed(3)
    loader = Loader(images, {"recon_image": images}, 8, name="image")
    for epoch in range(2):
        loader.set_epoch(epoch)
        for inputs, target in loader:
            recon, mu, logvar = reference(inputs["image"])
            seed_loss(recon, target["recon_image"], mu, logvar).backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(result.model.state_dict().values(), reference.state_dict().values()):
        assert_close(a, b)
    last = result.history[-1]
    assert {"train_loss_recon", "train_loss_kl"} <= set(last)
    assert last["train_loss"] == pytest.approx(last["train_loss_recon"] + last["train_loss_kl"], rel=1e-5)
    assert "train_loss_kl" in (result.run_dir / "metrics.jsonl").read_text()


def ntxent_by_hand(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR's loss written out: for each of the 2N embeddings, -log of the softmax of its
    positive pair among every other embedding (cosine similarity / tau), averaged."""
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2])]
    n = len(z1)
    total = torch.tensor(0.0)
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = {k: torch.dot(z[i], z[k]) / tau for k in range(2 * n) if k != i}
        total = total - torch.log(torch.exp(sims[positive]) / sum(torch.exp(s) for s in sims.values()))
    return total / (2 * n)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_ntxent_equals_the_formula_pair_by_pair(tau: float) -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert_close(NTXentLoss(temperature=tau)(z1, z2), ntxent_by_hand(z1, z2, tau))


SIMCLR = """
name: simclr
inputs: {view1: [6], view2: [6]}
nodes:
  - enc: {Linear: {out_features: 4}, from: view1}
  - z1: {Linear: {out_features: 3}}
  - enc2: {Linear: {out_features: 4}, from: view2}
  - z2: {Linear: {out_features: 3}}
outputs: [z1, z2]
loss:
  terms:
    contrast: {NTXent: {temperature: 0.2}, from: [z1, z2]}
optimizer: {SGD: {lr: 0.1}}
"""


def test_ntxent_term_over_two_views_reads_both_outputs() -> None:
    spec = netspec.load_spec(text=SIMCLR)
    model = netspec.build_model(spec)
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    values = outputs_of(spec, model, a, b)
    got = build_loss(spec, model)(values, torch.zeros(4))
    assert_close(got, ntxent_by_hand(values["z1"], values["z2"], 0.2))


DISTILL = """
name: distill
params: {T: 2.0}
inputs: {x: [8]}
nodes:
  - teacher_h: {Linear: {out_features: 16}, from: x, freeze: true}
  - teacher_r: {ReLU: {}}
  - teacher: {Linear: {out_features: 3}, freeze: true}
  - student_h: {Linear: {out_features: 6}, from: x}
  - student_r: {ReLU: {}}
  - logits: {Linear: {out_features: 3}}
  - aux: {Linear: {out_features: 3}, from: student_r}     # an auxiliary head, trained by the loss only
outputs: [logits]
loss:
  nodes:
    - s_t: {div: 2.0, from: logits}
    - s_logp: {log_softmax: 1}
    - t_t: {div: 2.0, from: teacher}
    - t_p: {softmax: 1}
  terms:
    ce: {CrossEntropyLoss: {}, from: logits}
    aux: {CrossEntropyLoss: {}, from: aux, weight: 0.3}
    kd: {KLDivLoss: {reduction: batchmean}, from: [s_logp, t_p], weight: 4.0}   # T^2
    act: {from: student_h, reduction: mean, weight: 0.01}                        # a penalty on a hidden node
optimizer: {SGD: {lr: 0.5}}
train: {epochs: 3, device: cpu, progress: line, seed: 0}
"""


def distill_data() -> Loaders:
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(32, 8, generator=g), torch.randn(12, 8, generator=g)
    label = lambda v: (v[:, 0] > 0).long() + (v[:, 1] > 0).long()  # noqa: E731
    return Loaders(Loader(x, label(x), 8), Loader(xv, label(xv), 6, shuffle=False))


def test_distillation_aux_head_and_intermediate_penalty_match_a_hand_written_loss() -> None:
    spec = netspec.load_spec(text=DISTILL)
    model = netspec.build_model(spec)
    x, y = next(iter(distill_data().train))
    got = build_loss(spec, model)(outputs_of(spec, model, x["x"]), y)
    with torch.no_grad():
        teacher = model.teacher(model.teacher_r(model.teacher_h(x["x"])))
    h = model.student_h(x["x"])
    logits = model.logits(h.relu())
    want = (
        F.cross_entropy(logits, y)
        + 0.3 * F.cross_entropy(model.aux(h.relu()), y)
        + 4.0 * F.kl_div(F.log_softmax(logits / 2, 1), F.softmax(teacher / 2, 1), reduction="batchmean")
        + 0.01 * h.mean()
    )
    assert_close(got, want)


def test_distillation_leaves_the_frozen_teacher_unchanged_and_trains_the_rest(tmp_path: Path) -> None:
    spec = netspec.load_spec(text=DISTILL)
    model = netspec.build_model(spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(spec, model=model, loaders=distill_data(), out=tmp_path / "runs", stream=io.StringIO())
    after = result.model.state_dict()
    assert before.keys() == after.keys()  # the teacher and the aux head are the model's weights
    for key in before:
        same = torch.equal(before[key], after[key])
        assert same == key.startswith("teacher"), key
    last = result.history[-1]
    for split in ("train", "val"):  # validation computes the terms too (through the same loss view)
        parts = [last[f"{split}_loss_{t}"] for t in ("ce", "aux", "kd", "act")]
        assert last[f"{split}_loss"] == pytest.approx(sum(parts), rel=1e-5)
    assert last["val_loss_kd"] > 0


def test_the_public_forward_leaves_out_what_only_the_loss_reads() -> None:
    spec = netspec.load_spec(text=DISTILL)
    model = netspec.build_model(spec)
    assert "teacher" not in model.code and "aux" not in model.code  # predict and export: the spec's outputs
    x = torch.randn(2, 8)
    assert model(x).shape == (2, 3)
    view = training_module(model)
    assert sorted(view(x)) == ["aux", "logits", "student_h", "teacher"]
    assert all(p is q for p, q in zip(view.parameters(), model.parameters()))  # the same weights
    assert_close(view(x)["logits"], model(x))


def test_a_loss_without_terms_is_unchanged() -> None:
    text = "name: m\ninputs: {x: [8]}\nnodes: [{logits: {Linear: {out_features: 3}}}]\nloss: CrossEntropyLoss\n"
    spec = netspec.load_spec(text=text)
    model = netspec.build_model(spec)
    assert training_module(model) is model
    crit = build_loss(spec, model)
    x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    assert_close(crit({"logits": model(x)}, y), F.cross_entropy(model(x), y))
    assert crit.last == {}


def test_monitoring_a_term_is_allowed_and_a_missing_one_refused() -> None:
    text = DISTILL.replace("seed: 0}", "seed: 0, early_stopping: {monitor: train_loss_kd, patience: 2}}")
    assert netspec.load_spec(text=text).train.early_stopping.monitor == "train_loss_kd"
    with pytest.raises(SpecError, match="no metric `train_loss_kx`") as err:
        netspec.load_spec(text=text.replace("train_loss_kd", "train_loss_kx"))
    assert "train_loss_kd" in str(err.value)


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ("{terms: {t: {from: [a, b]}}}", "`from:` takes one name (the value to reduce), got 2"),
        ("{terms: {t: {L1Loss: {}, from: [a, b, c]}}}", "`from:` takes one or two names, got 3"),
        ("{terms: {t: {L1Loss: {}, from: logits, reduction: sum}}}", "`reduction:` is for a term without a loss name"),
        ("{nodes: [{e: {exp: {}, from: logits}}], sum: [L1Loss]}", "`nodes:` is the loss graph of `terms:`"),
        ("{sum: [{L1Loss: {}, from: logits}]}", "`from:` is for an entry of `terms:`"),
        ("{terms: {t: {L1Loss: {}}}}", "a term says what it reads"),
        ("{terms: {t: {from: logits}}, outputs: {logits: L1Loss}}", "found outputs and terms"),
        ("{nodes: [{logits: {exp: {}, from: teacher}}], terms: {t: {from: logits}}}", "has the name of a model output"),
        ("{nodes: [{e: exp}], terms: {t: {from: e}}}", "the first loss node reads nothing"),
    ],
)
def test_misused_loss_keys_are_one_line_at_load(loss: str, message: str) -> None:
    text = DISTILL.split("loss:")[0] + f"loss: {loss}\n"
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        netspec.load_spec(text=text)
    assert "\n" not in str(err.value) and ":" in str(err.value)


def test_batchmean_divides_the_sum_by_the_batch() -> None:
    text = "name: m\ninputs: {x: [8]}\nnodes: [{logits: {Linear: {out_features: 3}}}]\n"
    text += "loss: {terms: {l: {from: logits, reduction: batchmean}}}\n"
    spec = netspec.load_spec(text=text)
    model = netspec.build_model(spec)
    out = model(torch.randn(5, 8))
    assert_close(build_loss(spec, model)({"logits": out}, torch.zeros(5)), out.sum() / 5)
    assert math.isfinite(float(out.sum()))


def test_the_loss_graph_adds_no_host_read_per_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Terms, their meters and the loss graph stay on the device: four times the steps, no more
    reads of a tensor's value into Python (each a device sync on a GPU)."""
    from netspec.training.meters import LossMeter

    counts = []
    for batch in (16, 4):
        reads: list[str] = []
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy"):
            real = getattr(torch.Tensor, name)

            def counting(self, *args, _real=real, _name=name, _reads=reads, **kw):
                _reads.append(_name)
                return _real(self, *args, **kw)

            monkeypatch.setattr(torch.Tensor, name, counting)
        # the losses kept as on a GPU: on the CPU, where a read costs no wait, each is read at once
        monkeypatch.setattr(LossMeter.__init__, "__defaults__", (False,))
        spec = netspec.load_spec(text=DISTILL)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(32, 8, generator=g)
        data = Loaders(Loader(x, (x[:, 0] > 0).long(), batch))
        train(spec, model=netspec.build_model(spec), loaders=data, out=tmp_path / str(batch), stream=io.StringIO())
        counts.append(len(reads))
        monkeypatch.undo()
    assert counts[0] == counts[1], counts


def test_resume_keeps_the_terms_and_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    def fit(epochs: int, out: Path | None, **kw: object):
        spec = netspec.load_spec(text=DISTILL, overrides=[f"train.epochs={epochs}"])
        torch.manual_seed(0)
        model = netspec.build_model(spec)
        return train(spec, model=model, loaders=distill_data(), out=out, stream=io.StringIO(), **kw)

    full = fit(3, tmp_path / "a")
    first = fit(1, tmp_path / "b")
    resumed = fit(3, None, resume=first.run_dir / "last.pt")  # continues in its own directory
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    drop = ("t", "time_s", "samples_per_s")
    records = [json.loads(line) for line in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k not in drop} for r in records] == [
        {k: v for k, v in r.items() if k not in drop} for r in full.history
    ]
    assert "val_loss_kd" in records[-1]


def test_a_clash_is_reported_at_the_node_that_has_the_name() -> None:
    loss = "{nodes: [{exp: {}, from: logits}, {logits: {neg: {}}}], terms: {t: {from: logits}}}"
    with pytest.raises(SpecError, match="has the name of a model output") as err:
        netspec.load_spec(text=DISTILL.split("loss:")[0] + f"loss: {loss}\n")
    assert err.value.path == ("loss", "nodes", 1)


def googlenet_aux_spec(**train: object) -> netspec.Spec:
    overrides = [f"train.{k}={v}" for k, v in {"device": "cpu", "progress": "line", **train}.items()]
    return netspec.load_spec(
        ROOT / "specs" / "googlenet_aux.yaml", overrides=["inputs.image.shape=[3,16,16]", *overrides]
    )


def googlenet_loss(outputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor:
    """torchvision's references/classification/train.py for GoogLeNet, written out."""
    logits, aux2, aux1 = outputs
    return F.cross_entropy(logits, y) + 0.3 * F.cross_entropy(aux1, y) + 0.3 * F.cross_entropy(aux2, y)


def test_googlenet_aux_terms_are_the_weighted_sum_in_training_and_left_out_in_eval() -> None:
    spec = googlenet_aux_spec()
    model = netspec.build_model(spec)
    crit = build_loss(spec, model)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 3, 7, 9])
    torch.manual_seed(0)
    raw = model.train()(x)
    assert len(raw) == 3
    got = crit(dict(zip(spec.output_names, raw)), y)
    assert_close(got, googlenet_loss(raw, y))
    assert_close(crit.last["aux1"], 0.3 * F.cross_entropy(raw[2], y).detach())
    assert_close(crit.last["aux2"], 0.3 * F.cross_entropy(raw[1], y).detach())
    logits = model.eval()(x)  # eval mode: the main output alone, and the loss is its term
    assert isinstance(logits, torch.Tensor)
    assert_close(crit({"logits": logits}, y), F.cross_entropy(logits, y))
    assert sorted(crit.last) == ["main"]


def test_googlenet_aux_training_matches_a_plain_loop_and_logs_each_term(tmp_path: Path) -> None:
    spec = googlenet_aux_spec(epochs=1, seed=3)
    torch.manual_seed(0)
    model = netspec.build_model(spec)
    reference = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    images, labels = torch.randn(12, 3, 16, 16, generator=g), torch.randint(0, 10, (12,), generator=g)
    data = Loaders(
        Loader(images, labels, 4, name="image"), Loader(images[:4], labels[:4], 4, shuffle=False, name="image")
    )
    result = train(spec, model=model, loaders=data, out=tmp_path / "runs", stream=io.StringIO())
    # the plain loop: the same seed (the same dropout draws), batches, SGD and loss
    opt = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
    set_seed(3)
    loader = Loader(images, labels, 4, name="image")
    loader.set_epoch(0)
    reference.train()
    for inputs, target in loader:
        googlenet_loss(reference(inputs["image"]), target).backward()
        opt.step()
        opt.zero_grad()
    for a, b in zip(result.model.state_dict().values(), reference.state_dict().values()):
        assert_close(a, b)
    last = result.history[-1]
    parts = [last[f"train_loss_{t}"] for t in ("main", "aux1", "aux2")]
    assert last["train_loss"] == pytest.approx(sum(parts), rel=1e-5)
    assert 0 < last["train_loss_aux1"] < last["train_loss_main"]  # weighted by 0.3
    assert last["val_loss"] == pytest.approx(last["val_loss_main"], rel=1e-6)  # eval mode: no aux heads
    assert "val_loss_aux1" not in last
