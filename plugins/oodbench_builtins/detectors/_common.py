"""Small tensor helpers shared by the built-in detectors.

Every helper computes on its inputs' device (the features' device, which is the model's): allocations name
that device, labels are moved beside the features, and nothing is copied to the host.
"""

from __future__ import annotations

import torch

T_GRID = [1, 10, 100, 1000]  # SPEC.md's ODIN temperature grid
EPSILONS = [round(0.01 * i, 2) for i in range(21)]  # SPEC.md's input pre-processing grid {0, 0.01, …, 0.2}
# Named grids of the input-perturbation methods (issue 28; `--grid NAME`, recorded as tuning.grid):
# - "paper003": SPEC.md's (the default): ε ∈ {0, 0.01, …, 0.2}, ODIN's T ∈ {1, 10, 100, 1000};
# - "odin": the ODIN paper's (Liang et al. 2018, §4.2): 21 ε from 0 to 0.004, T ∈ {1, 2, 5, …, 1000};
# - "lee2018": Lee et al. 2018's code (pokaxpoka/deep_Mahalanobis_detector): Mahalanobis ε ∈ {0, 0.0005, 0.001,
#   0.0014, 0.002, 0.005, 0.01}; its ODIN baseline ε ∈ {0, 0.0005, …, 0.2} (11 values) × T ∈ {1, 10, 100, 1000};
# - "openood": OpenOOD v1.5's configs/postprocessors (odin.yml: T = 1000, noise 0.0014; mds.yml: noise 0.0014):
#   one point, no sweep.
ODIN_PAPER_EPSILONS = [round(0.0002 * i, 4) for i in range(21)]
ODIN_PAPER_T = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
LEE2018_MAHALANOBIS_EPSILONS = [0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01]
LEE2018_ODIN_EPSILONS = [0.0, 0.0005, 0.001, 0.0014, 0.002, 0.0024, 0.005, 0.01, 0.05, 0.1, 0.2]
PERCENTILES = [65, 70, 75, 80, 85, 90, 95, 99]  # activation-shaping percentiles (OpenOOD's sweep + 99)


def energy(logits: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    """Negative free energy T·logsumexp(z/T) (Liu et al. 2020, eq. 5): higher = more ID."""
    return t * torch.logsumexp(logits / t, dim=1)


def head_weights(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier head's weight and bias (zeros if it has none), float32 on the model's device."""
    head = model.head
    w = head.weight.detach().float()
    bias = getattr(head, "bias", None)
    b = bias.detach().float() if bias is not None else torch.zeros(w.shape[0], device=w.device)
    return w, b


def head_logits(model, features: torch.Tensor) -> torch.Tensor:
    """Apply the backbone's classifier head to (modified) penultimate features, on their device."""
    w, b = head_weights(model)
    return features @ w.T.to(features.device) + b.to(features.device)


def class_means(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, chunk: int = 8192):
    """(class means K×D float32, sample counts K) by chunked float64 index_add, on ``feats``' device;
    a class without samples gets a zero mean and count 0."""
    labels = labels.to(feats.device)
    sums = torch.zeros(num_classes, feats.shape[1], dtype=torch.float64, device=feats.device)
    counts = torch.zeros(num_classes, dtype=torch.float64, device=feats.device)
    for f, y in zip(feats.split(chunk), labels.split(chunk)):
        sums.index_add_(0, y, f.double())
        counts.index_add_(0, y, torch.ones(len(y), dtype=torch.float64, device=feats.device))
    return (sums / counts.clamp_min(1)[:, None]).float(), counts


def own_net_outputs(data, net, key: str, tag: str, fn) -> torch.Tensor:
    """``fn(net, x)`` on every input batch of ``data`` (inference mode, the view's device), computed once
    per (view, network) — how detectors that train their own non-backbone network score. ``key`` names the
    network's weights (its checkpoint hash from the model provider)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return fn(net, x)

    return data.memo((tag, key), lambda: data.map_inputs(run))


def own_backbone_logits(data, net, key: str) -> torch.Tensor:
    """Logits (or embeddings) of a detector's own :class:`~oodbench.models.backbones.Backbone` on ``data``,
    extracted once per (view, network weights ``key``) through :meth:`FeatureView.with_model`."""
    return data.memo(("own-logits", key), lambda: data.with_model(net).logits())


def class_gaussians(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, chunk: int = 8192):
    """Means of the classes present in ``labels`` and the tied (shared) covariance, accumulated in chunks (float64).

    Σ = 1/N Σ_c Σ_{i∈c} (f_i − μ_c)(f_i − μ_c)ᵀ (Lee et al. 2018, eq. 1). A class with no training sample (a
    ``--train-limit`` subset, a novelty split) has no Gaussian: it is left out, not given a zero mean that would
    enter every minimum over classes (issue 28).
    """
    d, labels = feats.shape[1], labels.to(feats.device)
    means, counts = class_means(feats, labels, num_classes, chunk)
    means = means.double()
    cov = torch.zeros(d, d, dtype=torch.float64, device=feats.device)
    for f, y in zip(feats.split(chunk), labels.split(chunk)):
        c = f.double() - means[y]
        cov += c.T @ c
    cov /= max(1, len(feats))
    return means[counts > 0].float(), cov


def global_gaussian(feats: torch.Tensor, chunk: int = 8192):
    """Mean and covariance of all samples (the background Gaussian of RMD), chunked."""
    mean = feats.double().mean(0)
    cov = torch.zeros(feats.shape[1], feats.shape[1], dtype=torch.float64, device=feats.device)
    for f in feats.split(chunk):
        c = f.double() - mean
        cov += c.T @ c
    return mean.float(), cov / max(1, len(feats) - 1)


def mahalanobis_sq(feats: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """N×C squared Mahalanobis distances (f − μ_c)ᵀ P (f − μ_c), without forming N×C×D, computed stably: both
    sides are centred on the mean of the class means (the distance does not change) and the expanded form
    fᵀPf − 2fᵀPμ + μᵀPμ is summed in float64. In float32 its terms are ≈‖f‖²‖P‖ while the result can be ≈1e-4
    of that (non-negative activations share a large offset): the cancellation :func:`euclidean` avoids."""
    centre = means.double().mean(0, keepdim=True)
    f, m, p = feats.double() - centre, means.double() - centre, precision.double()
    fp = f @ p
    quad_f = (fp * f).sum(1, keepdim=True)
    quad_m = ((m @ p) * m).sum(1)[None, :]
    return (quad_f - 2 * fp @ m.T + quad_m).float()


def euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact N×K Euclidean distances, from differences (``torch.cdist`` without its matrix-product path).

    ``torch.cdist`` switches to ‖a‖² − 2a·b + ‖b‖² above 25 rows; for a point near a centre that
    cancels to float32 noise (≈1e-8 in d², ≈1e-4 after the square root), and the noise follows the
    GEMM kernel's blocking — the batch size and the CPU's instruction set (oneDNN's AVX2 kernels
    differ from its AVX-512 ones) — so a sample's score would depend on the batch it was scored in.
    """
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def percentile(x: torch.Tensor, q: float) -> float:
    """q-th percentile (0–100) of all entries with numpy's linear interpolation, on ``x``'s device
    (``torch.quantile`` refuses inputs above 2**24 entries; two ``kthvalue`` calls do not)."""
    flat = x.reshape(-1)
    pos = (flat.numel() - 1) * q / 100.0
    lo, frac = int(pos), pos - int(pos)
    low = flat.kthvalue(lo + 1).values.double()
    if frac == 0:
        return float(low)
    high = flat.kthvalue(lo + 2).values.double()
    return float(low + frac * (high - low))


class OwnNetwork:
    """Mixin of the detectors that train one network of the run's architecture with a loss of their own through
    ``supplies.models.train_with`` (LogitNorm, ConfBranch, RotPred): the call with the recipe parameters each
    exposes (``epochs``, ``lr``, ``batch_size``, ``seed``) and the record's facts of the training."""

    def train_own(self, supplies, task, data, identity: dict, outputs: int | None = None):
        """Train (or load from the cache) the network; sets ``net_``, ``net_key_``, ``train_log_``."""
        trained = supplies.models.train_with(
            self.name,
            task,
            data,
            identity=identity,
            outputs=outputs,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
        )
        self.net_, self.net_key_, self.train_log_ = trained.net, trained.key, dict(trained.facts)
        return trained

    def describe_fit(self) -> dict:
        return {"trained": self.train_log_} if hasattr(self, "train_log_") else {}
