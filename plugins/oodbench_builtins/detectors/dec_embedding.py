"""The embedding-space model of paper 000 (Chen & Zhao, *Skip The Question You Don't Know: An
Embedding Space Approach*): an autoencoder whose embedding is also classified and clustered.
Reproduces paper 000 Table II (MNIST'/MNIST-{x}: novelty with two held-out digits).

Loss (§III-B): J = Jr + λ1·Je + λ2·Jc with
- Jr = ‖x − f_DE(f_EN(x))‖² (here the per-pixel mean, as IDEC/DCEC's "mse"),
- Je = KL(P‖Q), q_ij ∝ (1 + ‖z_i − ((1−α)μ_j + αμ'_j)‖²)⁻¹ — Student's t (DEC, degrees of freedom 1)
  to centres interpolated between the trainable cluster centres μ_j and the label centres μ'_j
  (mean embedding of class j); target p_ij = (q_ij²/f_j) / Σ_j' (q_ij'²/f_j'), f_j = Σ_i q_ij (eq. II-B),
- Jc = cross-entropy of a linear classifier on the embedding.
λ1 = λ2 = 0.1 (the paper asks only that the terms be "balanced"; IDEC/DCEC weight their clustering
term by 0.1, which keeps the three terms within an order of magnitude here), α = 0.5.

Training (Algorithm 1), all through the one trainer:
1. pretrain the autoencoder on reconstruction (step 3);
2. initialise μ by k-means on the embeddings, started at the label centres so cluster j is class j
   (step 1; without that start the interpolation (1−α)μ_j + αμ'_j would mix unrelated centres);
3. every T steps (update interval): embed the training set, drop the top ``drop`` % reconstruction
   errors (steps 6–9; 0 for clean data, set it when training data are contaminated — see
   ``--contaminate``), recompute μ' and P from the rest (step 10); then T SGD steps (lr 0.01, §III-C)
   on the kept samples (steps 11–12).

Scores: ``dec-embedding`` — minus the reconstruction error ‖x − x̂‖² (the paper's criterion);
``dec-embedding+centre`` — minus Jr(x) + λ·‖z − c_assigned‖² (§V's proposed J(x), λ tunable).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.models.features import FeatureView, to_float
from oodbench.models.train import TrainTask

from ._common import class_means, euclidean, own_net_outputs
from .autoencoders import _sizes


class DECNet(nn.Module):
    """Convolutional autoencoder with a ``dim``-wide embedding (DEC's 10), a linear classifier on it
    and trainable cluster centres μ (one per class). Paper 000's Fig. 3 does not survive in the text;
    the convolutions are paper 002's (3×3, stride 2, 16/32/64 channels) with a linear bottleneck."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int, dim: int = 10):
        super().__init__()
        c, h, _ = shape
        s = _sizes(h)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 16, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * s[3] * s[3], dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(dim, 64 * s[3] * s[3]),
            nn.ReLU(),
            nn.Unflatten(1, (64, s[3], s[3])),
            nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=s[2] - (2 * s[3] - 1)),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=s[1] - (2 * s[2] - 1)),
            nn.ReLU(),
            nn.ConvTranspose2d(16, c, 3, 2, 1, output_padding=s[0] - (2 * s[1] - 1)),
        )
        self.classifier = nn.Linear(dim, num_classes)
        self.centres = nn.Parameter(torch.zeros(num_classes, dim))  # μ_j, set by k-means
        self.register_buffer("label_centres", torch.zeros(num_classes, dim))  # μ'_j
        self.alpha = 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def interpolated_centres(self) -> torch.Tensor:
        return (1 - self.alpha) * self.centres + self.alpha * self.label_centres

    def soft_assign(self, z: torch.Tensor) -> torch.Tensor:
        """q_ij (paper 000 §III-B), Student's t with one degree of freedom."""
        kernel = 1.0 / (1.0 + euclidean(z, self.interpolated_centres()).pow(2))
        return kernel / kernel.sum(dim=1, keepdim=True)

    @torch.no_grad()
    def embed_all(self, images: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings, per-sample squared reconstruction error) of uint8 images, in eval mode."""
        zs, errs = [], []
        for chunk in images.split(batch_size):
            x = to_float(chunk, self.centres.device)
            z = self.encoder(x)
            zs.append(z)
            errs.append((self.decoder(z) - x).pow(2).flatten(1).sum(1))
        return torch.cat(zs), torch.cat(errs)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), f_j = Σ_i q_ij (DEC, paper 000 eq. II-B)."""
    w = q.pow(2) / q.sum(dim=0)
    return w / w.sum(dim=1, keepdim=True)


class Reconstruction(TrainTask):
    def loss(self, model: DECNet, x, y):
        return F.mse_loss(model(x), x)


class JointTask(TrainTask):
    """J = Jr + λ1·Je + λ2·Jc on the kept samples; P, μ' and the kept set refresh every T steps."""

    uses_index = True

    def __init__(self, lambda1: float, lambda2: float, update_interval: int, drop: float, num_classes: int):
        self.lambda1, self.lambda2, self.drop, self.k = lambda1, lambda2, drop, num_classes
        self.refresh_every = update_interval
        self.history: list[dict] = []

    @torch.no_grad()
    def refresh(self, model: DECNet, images: torch.Tensor, labels: torch.Tensor) -> None:
        model.eval()
        z, err = model.embed_all(images)
        keep = torch.ones(len(z), dtype=torch.bool, device=z.device)
        if self.drop > 0:  # Algorithm 1 steps 6–9: drop the top ε % reconstruction errors
            n_drop = int(len(z) * self.drop / 100)
            keep[err.topk(n_drop).indices] = False
        means, counts = class_means(z[keep], labels[keep], self.k)
        present = counts > 0  # a class with every sample dropped keeps its previous centre
        model.label_centres[present] = means[present]
        q = model.soft_assign(z)
        p = torch.zeros_like(q)
        p[keep] = target_distribution(q[keep])  # step 10, from z' only
        self.p, self.keep = p, keep
        self.history.append({"kept": int(keep.sum()), "mean_error": float(err.mean())})

    def terms(self, model: DECNet, x, y, index) -> dict[str, torch.Tensor]:
        keep = self.keep[index].float()
        denom = keep.sum().clamp_min(1.0)
        z = model.encoder(x)
        jr = (model.decoder(z) - x).pow(2).flatten(1).mean(1)
        q = model.soft_assign(z.float())
        p = self.p[index]
        je = (p * (torch.log(p.clamp_min(1e-12)) - torch.log(q.clamp_min(1e-12)))).sum(1)
        jc = F.cross_entropy(model.classifier(z), y, reduction="none")
        return {k: (v * keep).sum() / denom for k, v in (("jr", jr), ("je", je), ("jc", jc))}

    def loss(self, model: DECNet, x, y, index):
        t = self.terms(model, x, y, index)
        return t["jr"] + self.lambda1 * t["je"] + self.lambda2 * t["jc"]

    def eval_loss(self, model: DECNet, x, y):
        return F.mse_loss(model(x), x)


class DECEmbedding(Detector):
    name = "dec-embedding"
    description = (
        "autoencoder + classifier + DEC clustering of the embedding, reconstruction-error score (paper 000, Table II)"
    )
    paper = "Chen & Zhao, Skip The Question You Don't Know: An Embedding Space Approach (paper 000)"
    criterion = "auroc"
    score_kind: ClassVar[str] = "recon"
    needs = Needs(trains=True, embedding=True)

    def __init__(
        self,
        dim: int = 10,
        pretrain_epochs: int = 5,
        epochs: int = 10,
        lambda1: float = 0.1,
        lambda2: float = 0.1,
        alpha: float = 0.5,
        update_interval: int = 140,
        drop: float = 0.0,
        batch_size: int = 256,
        lr: float = 0.01,
        distance_weight: float = 1.0,
        seed: int = 0,
    ):
        self.dim = dim
        self.pretrain_epochs = pretrain_epochs
        self.epochs = epochs
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.alpha = alpha
        self.update_interval = update_interval
        self.drop = drop
        self.batch_size = batch_size
        self.lr = lr
        self.distance_weight = distance_weight
        self.seed = seed

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> DECEmbedding:
        from oodbench.models.train import TrainConfig

        assert supplies is not None
        data, models = train.imageset, supplies.models
        k = data.num_classes
        torch.manual_seed(self.seed)
        net = DECNet(data.shape, k, self.dim)
        net.alpha = self.alpha
        pre_cfg = TrainConfig(
            epochs=self.pretrain_epochs,
            batch_size=self.batch_size,
            optimizer="adam",
            lr=1e-3,
            schedule="none",
            seed=self.seed,
        )
        ident = {"classes": k, "dim": self.dim}
        pre = models.train("dec-pretrain", net, data, pre_cfg, identity=ident, task=Reconstruction())
        cfg = TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer="sgd",
            lr=self.lr,
            momentum=0.9,
            schedule="none",
            seed=self.seed,
        )
        joint = {
            **ident,
            "pretrained": pre.key,
            "lambda1": self.lambda1,
            "lambda2": self.lambda2,
            "alpha": self.alpha,
            "T": self.update_interval,
            "drop": self.drop,
        }
        task = JointTask(self.lambda1, self.lambda2, self.update_interval, self.drop, k)
        trained = models.train(
            "dec-embedding",
            pre.net,
            data,
            cfg,
            identity=joint,
            task=task,
            before_training=lambda n: self._init_centres(n, data, models.device),
        )
        self.net_, self.net_key_ = trained.net.eval(), trained.key
        self.train_log_ = {
            "pretrain": {k: pre.facts[k] for k in ("source", "hash")},
            "joint": {k: trained.facts[k] for k in ("source", "hash", "epoch_loss")},
            "updates": task.history[-1:] if task.history else None,
        }
        z, _ = self.net_.embed_all(data.images.to(models.device))
        pred = self.net_.classifier(z).argmax(1)
        self.train_log_["train_accuracy"] = 100.0 * float((pred == data.labels.to(pred.device)).float().mean())
        return self

    def _init_centres(self, net: DECNet, data, device) -> None:
        """Algorithm 1 step 1 (only when the joint model is trained): k-means on the pretrained embedding,
        started at the label centres."""
        from sklearn.cluster import KMeans

        k = data.num_classes
        z = net.eval().embed_all(data.images.to(device))[0].cpu()
        start = class_means(z, data.labels, k)[0]
        km = KMeans(n_clusters=k, init=start.numpy(), n_init=1, random_state=self.seed).fit(z.numpy())
        with torch.no_grad():
            net.centres.copy_(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
            net.label_centres.copy_(start)

    def _outputs(self, data: FeatureView) -> tuple[torch.Tensor, torch.Tensor]:
        def run(net: DECNet, x: torch.Tensor) -> torch.Tensor:
            z = net.encoder(x)
            return torch.cat([(net.decoder(z) - x).pow(2).flatten(1).sum(1, keepdim=True), z], dim=1)

        out = own_net_outputs(data, self.net_, self.net_key_, "dec", run)
        return out[:, 0], out[:, 1:]

    def embed(self, data: FeatureView) -> np.ndarray:
        """The learned embedding z (paper 000 Fig. 4), for ``oodbench plot embedding``."""
        self.check_fitted()
        return self._outputs(data)[1].cpu().numpy()

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        err, z = self._outputs(data)
        if self.score_kind == "recon":
            return -err
        centres = self.net_.interpolated_centres().detach().float().to(z.device)
        dist = torch.cdist(z, centres).min(dim=1).values.pow(2)  # the assigned (nearest) centre
        return -(err + self.distance_weight * dist)

    def describe_fit(self):
        return {"model": self.train_log_}


class DECEmbeddingCentre(DECEmbedding):
    name = "dec-embedding+centre"
    description = "paper 000's embedding model scored by Jr + λ·squared distance to the assigned cluster centre (§V)"
    score_kind = "recon+centre"

    def search_space(self):
        return {"distance_weight": [0.0, 0.1, 1.0, 10.0, 100.0]}
