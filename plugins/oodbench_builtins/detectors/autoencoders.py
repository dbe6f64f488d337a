"""Reconstruction-based detectors of paper 002 (Zhang et al., *Label-Assisted Memory Autoencoder for
Unsupervised OoD Detection*): AE, MemAE, LAMAE, and their complexity-normalised "+" variants.

Network (paper 002 §4.1, after MemAE): encoder Conv(3×3, stride 2) ×3 with 16, 32, 64 channels, decoder
the mirror with transposed convolutions; BN + ReLU after every layer but the last. For 32×32 inputs a
fourth layer (32–256 channels) and, for the memory models, the 16-dim skip connection from z to ẑ.
- ``ae``: S(x) = −‖x − x̂‖².
- ``memae`` (Gong et al. 2019): the latent z is replaced by ẑ = ŵM, w = softmax of cosine similarities
  to N memory items, hard shrinkage ŵ = max(w − λ, 0)·w / (|w − λ| + ε) renormalised, plus the
  addressing-entropy loss weighted by α = 0.0002.
- ``lamae`` (§3.1): a linear classifier on z predicts ŷ; only the ŷ-th memory chunk (N^s items per
  class) addresses z (eq. 1, no shrinkage); loss = R(x, x̂) + β·CE(y, ŷ), β = 1 (eq. 2).
- ``+`` (§3.2.3, eqs. 3–4): Err = ‖x − x̂‖² / (log(H(x) + 1) + γ), H the Shannon entropy (bits) of the
  image's 256 grey levels, γ = 1e-9.
Training goes through the one trainer (a :class:`ReconstructionTask`), holds out 10 % of the ID
training data for early stopping on its loss (the paper's 200-epoch budget is ``epochs`` here, default
20 on CPU) and is cached like a backbone. Paper 002 Tables 1–2 report AE and LAMAE+ columns.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainTask

from ._common import own_net_outputs


def _sizes(h: int, depth: int = 3) -> list[int]:
    sizes = [h]
    for _ in range(depth):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _block(conv: nn.Module, last: bool = False) -> nn.Module:
    return conv if last else nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU())


class ConvAutoencoder(nn.Module):
    """The paper-002 / MemAE convolutional AE, optionally with a memory (``memae``) or a classifier
    and class-conditional memory (``lamae``) on the flattened latent.

    Up to 28×28: three stride-2 3×3 convolutions (16, 32, 64 channels), as MemAE. From 32×32 on (paper
    002's CIFAR-10 setting, "deeper encoder and decoder"): four (32, 64, 128, 256 channels), and for the
    memory models a 16-wide skip path from z to ẑ (ẑ ← ẑ + U·V·z, V: d→16, U: 16→d) "to further assist
    reconstruction"."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        kind: str = "ae",
        memory_size: int = 100,
        num_classes: int = 10,
        slots_per_class: int = 10,
        shrink: float = 0.0025,
    ):
        super().__init__()
        c, h, _ = shape
        deep = h >= 32
        widths = [c, 32, 64, 128, 256] if deep else [c, 16, 32, 64]
        depth = len(widths) - 1
        s = _sizes(h, depth)
        self.kind, self.shrink = kind, shrink
        self.encoder = nn.Sequential(*(_block(nn.Conv2d(widths[i], widths[i + 1], 3, 2, 1)) for i in range(depth)))
        self.decoder = nn.Sequential(
            *(
                _block(
                    nn.ConvTranspose2d(widths[i + 1], widths[i], 3, 2, 1, output_padding=s[i] - (2 * s[i + 1] - 1)),
                    last=i == 0,
                )
                for i in reversed(range(depth))
            )
        )
        self.latent_shape = (widths[-1], s[-1], s[-1])
        d = widths[-1] * s[-1] * s[-1]
        if kind == "memae":
            self.memory = nn.Parameter(torch.randn(memory_size, d) / d**0.5)
        elif kind == "lamae":
            self.classifier = nn.Linear(d, num_classes)
            self.memory = nn.Parameter(torch.randn(num_classes * slots_per_class, d) / d**0.5)
            self.slots = slots_per_class
        self.skip = nn.Sequential(nn.Linear(d, 16), nn.Linear(16, d)) if deep and kind in ("memae", "lamae") else None

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = z_in = self.encoder(x).flatten(1)
        out: dict[str, torch.Tensor] = {}
        if self.kind == "memae":
            w = torch.softmax(F.normalize(z, dim=1) @ F.normalize(self.memory, dim=1).T, dim=1)
            w = F.relu(w - self.shrink) * w / ((w - self.shrink).abs() + 1e-12)  # hard shrinkage
            w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
            out["entropy"] = -(w * torch.log(w + 1e-12)).sum(dim=1)
            z = w @ self.memory
        elif self.kind == "lamae":
            logits = self.classifier(z)
            out["logits"] = logits
            # B × N^s × d; index_select, whose backward adds in a fixed order: indexing with [·] accumulates the
            # memory's gradient in an order that varies between runs on a multi-threaded CPU
            chunk = self.memory.view(-1, self.slots, z.shape[1]).index_select(0, logits.argmax(dim=1))
            sims = torch.einsum("bd,bnd->bn", F.normalize(z, dim=1), F.normalize(chunk, dim=2))
            z = torch.einsum("bn,bnd->bd", torch.softmax(sims, dim=1), chunk)  # eq. 1
        if self.skip is not None:
            z = z + self.skip(z_in)
        out["recon"] = self.decoder(z.view(-1, *self.latent_shape))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x)["recon"]


class ReconstructionTask(TrainTask):
    """Loss = mean squared reconstruction error + β·cross-entropy (LAMAE) + α·addressing entropy (MemAE)."""

    def __init__(self, beta: float = 1.0, entropy_weight: float = 0.0002):
        self.beta, self.entropy_weight = beta, entropy_weight

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = model.forward_train(x)
        loss = F.mse_loss(out["recon"], x)
        if "logits" in out:
            loss = loss + self.beta * F.cross_entropy(out["logits"], y)
        if "entropy" in out:
            loss = loss + self.entropy_weight * out["entropy"].mean()
        return loss


def image_entropy(images: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of each uint8 image's grey-level histogram (paper 002 eq. 3), vectorised."""
    n = images.shape[0]
    flat = images.reshape(n, -1).long()
    counts = torch.zeros(n, 256).scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float32))
    p = counts / flat.shape[1]
    return -(p * torch.log2(p.clamp_min(1e-30))).sum(dim=1)


class _Reconstruction(Detector):
    kind: ClassVar[str] = "ae"
    complexity_normalised: ClassVar[bool] = False
    needs = Needs(trains=True)
    criterion = "auroc"

    def __init__(
        self,
        epochs: int = 20,
        patience: int = 5,
        lr: float = 1e-3,
        batch_size: int = 128,
        memory_size: int = 100,
        slots_per_class: int = 10,
        beta: float = 1.0,
        entropy_weight: float = 0.0002,
        seed: int = 0,
    ):
        self.epochs = epochs
        self.patience = patience
        self.lr = lr
        self.batch_size = batch_size
        self.memory_size = memory_size
        self.slots_per_class = slots_per_class
        self.beta = beta
        self.entropy_weight = entropy_weight
        self.seed = seed

    def required_layers(self, model):
        return []

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> _Reconstruction:
        from oodbench.models.train import TrainConfig

        assert supplies is not None
        data = train.imageset
        num_classes = int(data.labels.max()) + 1
        perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(self.seed))
        n_val = max(1, len(data) // 10)
        fit_set, val_set = data.subset(perm[n_val:].sort().values), data.subset(perm[:n_val].sort().values)
        cfg = TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer="adam",
            lr=self.lr,
            schedule="none",
            seed=self.seed,
        )
        identity = {
            "all_data": data.fingerprint(),
            "classes": num_classes,
            "params": {k: v for k, v in self.get_params().items() if k != "seed"},
        }
        torch.manual_seed(self.seed)
        net = ConvAutoencoder(data.shape, self.kind, self.memory_size, num_classes, self.slots_per_class)
        trained = supplies.models.train(
            self.kind,
            net,
            fit_set,
            cfg,
            identity=identity,
            task=ReconstructionTask(self.beta, self.entropy_weight),
            select_on=val_set,
            patience=self.patience,
        )
        self.net_, self.net_key_ = trained.net, trained.key
        self.train_log_ = {k: trained.facts[k] for k in ("source", "hash", "best_epoch", "epoch_loss")}
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        e = own_net_outputs(
            data, self.net_.eval(), self.net_key_, "recon", lambda net, x: ((net(x) - x) ** 2).flatten(1).sum(dim=1)
        )
        if self.complexity_normalised:
            cn = torch.log(image_entropy(data.imageset.images) + 1).to(e.device)
            e = e / (cn + 1e-9)  # eq. 4
        return -e

    def describe_fit(self):
        return {"autoencoder": self.train_log_}


class AE(_Reconstruction):
    name, kind = "ae", "ae"
    description = "convolutional autoencoder reconstruction error (paper 002 'AE')"
    paper = "Zhang et al., Label-Assisted Memory Autoencoder for Unsupervised OoD Detection (paper 002)"


class MemAE(_Reconstruction):
    name, kind = "memae", "memae"
    description = "memory-augmented autoencoder, hard-shrinkage addressing (Gong et al. 2019; paper 002 'MemAE')"
    paper = "Gong et al. 2019, Memorizing Normality to Detect Anomaly; as in paper 002"


class LAMAE(_Reconstruction):
    name, kind = "lamae", "lamae"
    description = "label-assisted memory autoencoder: classifier + class-conditional memory (paper 002 'LAMAE')"
    paper = "Zhang et al., Label-Assisted Memory Autoencoder for Unsupervised OoD Detection (paper 002)"


class AEPlus(AE):
    name, complexity_normalised = "ae+", True
    description = "AE reconstruction error / log(image entropy + 1) (paper 002 eq. 4)"


class MemAEPlus(MemAE):
    name, complexity_normalised = "memae+", True
    description = "MemAE reconstruction error / log(image entropy + 1) (paper 002 eq. 4)"


class LAMAEPlus(LAMAE):
    name, complexity_normalised = "lamae+", True
    description = "LAMAE reconstruction error / log(image entropy + 1) (paper 002 'LAMAE+', eq. 4)"
