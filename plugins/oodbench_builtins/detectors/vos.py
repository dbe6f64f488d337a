"""VOS (Du, Wang, Cai & Li, ICLR 2022, "VOS: Learning What You Don't Know by Virtual Outlier Synthesis"):
class-conditional Gaussians of the penultimate features, virtual outliers sampled from their low-likelihood
region, and an uncertainty loss that separates the energies of real and virtual samples; scored by energy.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainTask
from oodbench.plugins.constraints import POSITIVE_INT, Interval, Options

from ._common import energy, own_backbone_logits

SCORES = ("energy", "weighted-energy", "uncertainty")
JITTER = 1e-4  # added to the covariance's diagonal, as the official code


class VOSNet(nn.Module):
    """The run's backbone plus VOS's two small learned pieces: the per-class energy weights (the official code's
    ``weight_energy``, initialised U(0, 1), used through a ReLU) and φ, a ``Linear(1, 2)`` logistic regression on
    the (negative) weighted energy. ``forward`` is the backbone's."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.energy_weight = nn.Parameter(torch.rand(num_classes))
        self.phi = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


def weighted_energy(logits: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """−E_w(x) = log Σ_k max(0, w_k)·exp f_k(x), in float32 (a class whose weight is clipped to 0 drops out)."""
    log_w = torch.log(F.relu(weight.float()).clamp_min(1e-30))
    return torch.logsumexp(logits.float() + log_w, dim=1)


def uncertainty_loss(net: VOSNet, real_logits: torch.Tensor, virtual_logits: torch.Tensor) -> torch.Tensor:
    """The uncertainty loss (eq. 5–6): φ's two-class cross-entropy on the weighted energies, real samples labelled
    1 (in-distribution) and virtual outliers 0, averaged over all of them (as the official code)."""
    e = torch.cat([weighted_energy(real_logits, net.energy_weight), weighted_energy(virtual_logits, net.energy_weight)])
    target = torch.cat(
        [
            torch.ones(len(real_logits), dtype=torch.long, device=e.device),
            torch.zeros(len(virtual_logits), dtype=torch.long, device=e.device),
        ]
    )
    return F.cross_entropy(net.phi(e[:, None]).float(), target)


def tied_gaussian(queue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C×D class means, D×D shared covariance + 1e-4·I) of a C×L×D queue, in float64 (eq. 2)."""
    q = queue.double()
    means = q.mean(dim=1)
    centred = (q - means[:, None]).reshape(-1, q.shape[2])
    cov = centred.T @ centred / len(centred)
    return means, cov + JITTER * torch.eye(q.shape[2], dtype=cov.dtype, device=cov.device)


def lowest_likelihood(means: torch.Tensor, cov: torch.Tensor, z: torch.Tensor, select: int) -> torch.Tensor:
    """From the draws v = μ_c + L z (L Lᵀ = Σ, z: C×S×D standard normal) keep the ``select`` of lowest likelihood
    per class (eq. 3 with the threshold set by ranking, as the official code). With one shared Σ,
    log N(v; μ_c, Σ) = const − ½‖z‖², so they are the draws of largest ‖z‖; only those are transformed."""
    pick = z.pow(2).sum(dim=2).topk(select, dim=1).indices
    chosen = z.gather(1, pick[..., None].expand(-1, -1, z.shape[2])).double()
    chol = torch.linalg.cholesky(cov)
    return (means[:, None] + chosen @ chol.T).reshape(-1, z.shape[2])


class VOSTask(TrainTask):
    """Cross-entropy, plus ``weight`` × the uncertainty loss once ``start_epoch`` epochs are done and every class's
    queue is full. Keeps per class the penultimate features of its last ``length`` training samples (a ring
    buffer, filled from the first batch on) and counts its steps to know the epoch."""

    def __init__(
        self,
        counts: torch.Tensor,
        steps_per_epoch: int,
        queue: int,
        sample_from: int,
        select: int,
        weight: float,
        start: int,
    ):
        self.present = (counts > 0).nonzero().squeeze(1)
        self.length = max(1, min(queue, int(counts[counts > 0].min())))  # a class this small never fills more
        self.steps_per_epoch, self.start = steps_per_epoch, start
        self.sample_from, self.select, self.weight = sample_from, select, weight
        self.num_classes = len(counts)
        self.queue: torch.Tensor | None = None  # K×length×D, on the training device from the first batch
        self.filled = self.ptr = None
        self.ready = False  # every present class's queue full (it then stays full)
        self.step = 0
        self.reg: dict[int, list[torch.Tensor]] = {}  # per epoch, the uncertainty losses of its steps

    def enqueue(self, feats: torch.Tensor, y: torch.Tensor) -> None:
        """Write the batch's features into their classes' ring buffers (the last ``length`` of a class if the
        batch holds more), vectorised: a sample's slot is its class pointer plus its rank within the class."""
        if self.queue is None:
            k, dev = self.num_classes, feats.device
            self.queue = torch.zeros(k, self.length, feats.shape[1], device=dev)
            self.filled = torch.zeros(k, dtype=torch.long, device=dev)
            self.ptr = torch.zeros(k, dtype=torch.long, device=dev)
        onehot = F.one_hot(y, self.num_classes)
        rank = (onehot.cumsum(0) - 1).gather(1, y[:, None]).squeeze(1)
        count = onehot.sum(0)
        keep = rank >= count[y] - self.length
        slot = (self.ptr[y] + rank) % self.length
        self.queue[y[keep], slot[keep]] = feats[keep].float()
        self.ptr = (self.ptr + count) % self.length
        self.filled = (self.filled + count).clamp(max=self.length)
        if not self.ready:
            self.ready = bool((self.filled[self.present] >= self.length).all())

    def synthesize(self, like: torch.Tensor) -> torch.Tensor:
        """``select`` virtual outliers per present class, from ``sample_from`` draws of its Gaussian (float32)."""
        assert self.queue is not None
        with torch.autocast(like.device.type, enabled=False):
            means, cov = tied_gaussian(self.queue[self.present])
            z = torch.randn(len(self.present), self.sample_from, means.shape[1], device=like.device)
            return lowest_likelihood(means, cov, z, min(self.select, self.sample_from)).float()

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        epoch, self.step = self.step // self.steps_per_epoch, self.step + 1
        out = model.backbone.forward_features(x, ["penultimate"])
        logits = out["logits"].float()
        ce = F.cross_entropy(logits, y)
        was_ready = self.ready  # as the official code: outliers only from queues that were full before this batch
        self.enqueue(out["penultimate"].detach(), y)
        if not was_ready or epoch < self.start:
            return ce
        virtual = self.synthesize(logits)
        reg = uncertainty_loss(model, logits, model.backbone.head(virtual))  # through the network's head
        self.reg.setdefault(epoch, []).append(reg.detach())
        return ce + self.weight * reg

    def eval_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x).float(), y)

    def summary(self) -> dict[str, Any]:
        """Per epoch: the mean uncertainty loss and the virtual outliers synthesised (epochs with none left out)."""
        per_class = min(self.select, self.sample_from) * len(self.present)
        return {
            "queue_length": self.length,
            "uncertainty_loss": {e + 1: float(torch.stack(r).mean()) for e, r in sorted(self.reg.items())},
            "virtual_outliers": {e + 1: len(r) * per_class for e, r in sorted(self.reg.items())},
        }


class VOS(Detector):
    """VOS (Du, Wang, Cai & Li, ICLR 2022, "VOS: Learning What You Don't Know by Virtual Outlier Synthesis").

    Training (§3.1–3.2): the run's backbone architecture, trained from scratch with cross-entropy plus
    ``weight`` (β = 0.1) × the uncertainty loss of eq. 5–6. Per class a queue keeps the penultimate features of the
    class's latest ``queue`` training samples; from them, class-conditional Gaussians with one shared covariance
    (eq. 1–2, + 1e-4·I as the official code) are estimated at every step, ``sample_from`` points are drawn from each
    and the ``select`` of lowest likelihood are the virtual outliers (eq. 3, the ε-likelihood set by ranking). The
    uncertainty loss is a logistic regression φ on the weighted energy −E_w(x) = log Σ_k ReLU(w_k) exp f_k(x) (w
    learned, initialised U(0, 1)), labelling the batch's real samples 1 and the virtual outliers, through the
    network's head, 0. It starts after ``start_epoch`` epochs, once every class's queue is full.
    Score: the negative energy log Σ_k exp f_k(x) of the trained network, as the official classification code tests
    it and OpenOOD v1.5 evaluates its VOS networks (energy postprocessor). ``score="weighted-energy"``: −E_w(x),
    with the learned class weights (pytorch-ood's ``WeightedEBO``); ``score="uncertainty"``: the uncertainty
    branch's log-odds of in-distribution, φ(−E_w)_1 − φ(−E_w)_0 (ranks as its probability, the paper's test-time
    rule for object detection, without saturating).

    Where the paper is silent, the official code (deeplearning-wisc/vos, classification/CIFAR/train_virtual.py) is
    followed: φ is ``Linear(1, 2)`` with cross-entropy, the energy weights a ReLU-ed ``weight_energy``, the loss
    averaged over real and virtual samples. Shrunk for CPU runs (paper/official → default here): 100 → 5 epochs
    (LeNet's Adam 1e-3 cosine recipe instead of SGD 0.1), start epoch 40 → 2 (the same 40 % of training), queue
    1000 → 200 per class, 10000 → 1000 draws per class; a queue is never longer than the smallest class's
    training samples (else it would never fill). The queue is a ring buffer updated from the first batch (the
    official code keeps a class's first samples until every queue is full). The lowest-likelihood draws are picked
    by ‖z‖ (exactly the log-density ranking under the shared covariance) and only they are transformed.
    """

    name = "vos"
    description = "energy of a network trained against virtual outliers from class-conditional Gaussians (VOS)"
    paper = "Du et al. 2022, VOS: Learning What You Don't Know by Virtual Outlier Synthesis (ICLR)"
    criterion = "auroc"
    needs = Needs(trains=True)
    parameter_constraints = {
        "score": [Options(*SCORES)],
        "queue": [POSITIVE_INT],
        "sample_from": [POSITIVE_INT],
        "select": [POSITIVE_INT],
        "start_epoch": [Interval(int, 0)],
    }

    def __init__(
        self,
        score: str = "energy",
        weight: float = 0.1,
        start_epoch: int = 2,
        queue: int = 200,
        sample_from: int = 1000,
        select: int = 1,
        epochs: int = 5,
        lr: float | None = None,
        batch_size: int = 128,
        seed: int = 0,
    ):
        self.score = score
        self.weight = weight
        self.start_epoch = start_epoch
        self.queue = queue
        self.sample_from = sample_from
        self.select = select
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def search_space(self) -> dict[str, list[Any]]:
        return {"score": list(SCORES)}

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> VOS:
        assert supplies is not None
        data, provider = train.imageset, supplies.models
        cfg = provider.config(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed)
        net = VOSNet(supplies.models.fresh(data, seed=cfg.seed), data.num_classes)
        counts = torch.bincount(data.labels, minlength=data.num_classes)
        args = (self.queue, self.sample_from, self.select, self.weight, self.start_epoch)
        task = VOSTask(counts, math.ceil(len(data) / cfg.batch_size), *args)
        keys = ("queue", "sample_from", "select", "weight", "start_epoch")
        trained = provider.train(
            f"vos-{provider.spec.backbone}",
            net,
            data,
            cfg,
            identity={
                "backbone": provider.spec.backbone,
                "pretrained": provider.spec.pretrained,
                **dict(zip(keys, args)),
            },
            task=task,
        )
        self.net_, self.net_key_ = trained.net.to(train.device).eval(), trained.key
        self.train_log_ = {**trained.facts, **(task.summary() if trained.facts["source"] == "trained" else {})}
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        logits = own_backbone_logits(data, self.net_.backbone, self.net_key_)
        if self.score == "energy":
            return energy(logits)
        if self.score in ("weighted-energy", "uncertainty"):
            e = weighted_energy(logits, self.net_.energy_weight.detach().to(logits.device))
            if self.score == "weighted-energy":
                return e
            w, b = self.net_.phi.weight.detach().to(e.device), self.net_.phi.bias.detach().to(e.device)
            return (w[1, 0] - w[0, 0]) * e + (b[1] - b[0])
        raise ValueError(f"vos.score must be one of {list(SCORES)}, got {self.score!r}")

    def describe_fit(self) -> dict[str, Any]:
        return {"network": self.train_log_} if hasattr(self, "train_log_") else {}
