"""The abnormality module (paper 004: Hendrycks & Gimpel, ICLR 2017, §4 "Abnormality module";
the slides' Table 11, MNIST vs Omniglot / notMNIST / CIFAR-10bw / Gaussian / Uniform).

1. The run's classifier is frozen. An auxiliary decoder reconstructs the input from its
   penultimate features, trained on ID training data (squared error).
2. The abnormality classifier reads the softmax posterior, the penultimate features and the
   per-pixel squared reconstruction error, and is trained (binary cross-entropy) to tell clean ID
   training images (label 1) from noised ones (label 0). The paper says only "noised"; here each
   noised image gets additive Gaussian noise with σ ~ U(0.1, 1), clipped to [0, 1].
Score: the abnormality classifier's logit — its sigmoid output is the paper's score, and the
logit ranks identically without float32 saturating at 1.0.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.models.checkpoints import state_hash
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainTask

from ._common import own_net_outputs


class AbnormalityNet(nn.Module):
    """Frozen classifier + auxiliary decoder + abnormality classifier."""

    def __init__(self, backbone: nn.Module, shape: tuple[int, int, int], hidden: int = 256):
        super().__init__()
        self.backbone = copy.deepcopy(backbone).cpu()  # frozen copy: the run's model stays untouched
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            probe = backbone.eval().forward_features(torch.zeros(1, *shape), ["penultimate"])
        d, k = probe["penultimate"].shape[1], probe["logits"].shape[1]
        self.shape = tuple(shape)
        pixels = int(np.prod(shape))
        self.decoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, pixels), nn.Sigmoid())
        self.abnormality = nn.Sequential(nn.Linear(k + d + pixels, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics and dropout stay as trained
        return self

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            f = self.backbone.forward_features(x, ["penultimate"])
        recon = self.decoder(f["penultimate"].float()).view(-1, *self.shape)
        return f["logits"].float(), f["penultimate"].float(), recon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, pen, recon = self.parts(x)
        err = ((recon - x) ** 2).flatten(1).detach()
        return self.abnormality(torch.cat([logits.softmax(dim=1), pen, err], dim=1)).squeeze(1)


class DecoderTask(TrainTask):
    def loss(self, model: AbnormalityNet, x, y):
        return F.mse_loss(model.parts(x)[2], x)


class NoisedTask(TrainTask):
    """Clean ID (1) vs Gaussian-noised ID (0), binary cross-entropy on the abnormality logit."""

    def __init__(self, low: float = 0.1, high: float = 1.0):
        self.low, self.high = low, high

    def loss(self, model: AbnormalityNet, x, y):
        sigma = torch.empty(len(x), 1, 1, 1, device=x.device).uniform_(self.low, self.high)
        noised = (x + sigma * torch.randn_like(x)).clamp(0, 1)
        out = model(torch.cat([x, noised]))
        target = torch.cat([torch.ones(len(x), device=x.device), torch.zeros(len(x), device=x.device)])
        return F.binary_cross_entropy_with_logits(out, target)


class AbnormalityModule(Detector):
    name = "abnormality-module"
    description = "frozen classifier + auxiliary decoder + clean-vs-noised abnormality classifier (paper 004 §4)"
    paper = "Hendrycks & Gimpel 2017, A Baseline for Detecting Misclassified and OOD Examples (paper 004)"
    criterion = "auroc"
    needs = Needs(trains=True)

    def __init__(
        self,
        decoder_epochs: int = 5,
        epochs: int = 5,
        lr: float = 1e-3,
        batch_size: int = 128,
        hidden: int = 256,
        seed: int = 0,
    ):
        self.decoder_epochs = decoder_epochs
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.hidden = hidden
        self.seed = seed

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> AbnormalityModule:
        from oodbench.models.train import TrainConfig

        assert supplies is not None
        data = train.imageset
        torch.manual_seed(self.seed)
        net = AbnormalityNet(train.model, data.shape, self.hidden)
        base = {"classifier": state_hash(train.model), "hidden": self.hidden}
        logs = {}
        for stage, epochs, task, trainable in (
            ("decoder", self.decoder_epochs, DecoderTask(), net.decoder),
            ("abnormality", self.epochs, NoisedTask(), net.abnormality),
        ):
            for p in net.parameters():
                p.requires_grad_(False)
            for p in trainable.parameters():
                p.requires_grad_(True)
            cfg = TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr, schedule="none", seed=self.seed)
            trained = supplies.models.train(f"abnormality-{stage}", net, data, cfg, identity=base, task=task)
            base = {**base, stage: trained.key}  # the next stage starts from these weights
            net = trained.net
            logs[stage] = {k: trained.facts[k] for k in ("source", "hash", "epoch_loss")}
        self.net_, self.net_key_, self.train_log_ = net.eval(), base[stage], logs
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        return own_net_outputs(data, self.net_, self.net_key_, "abnormality", lambda net, x: net(x))

    def describe_fit(self):
        return {"stages": self.train_log_}
