"""OpenMax (Bendale & Boult, CVPR 2016, Algorithms 1–2).

Fit: per class k, the mean activation vector μ_k (logits) of correctly classified ID training
samples; a Weibull model fitted to the ``tailsize`` largest Euclidean distances of those samples to
μ_k. Score: for the top-α classes of x (rank i = 1..α), weight w_k = 1 − (α − i + 1)/α · WeibullCDF_k(‖z − μ_k‖);
revised logits ẑ_k = z_k w_k, unknown logit ẑ_0 = Σ_k z_k (1 − w_k); S(x) = −P(unknown) under the
softmax of [ẑ_0, ẑ]. libMR's FitHigh is replaced by ``scipy.stats.weibull_min`` on the same tail, so OpenMax
computes on the CPU (its logits are copied there; K×K state).

Defaults: tail size 20 (the paper's and OpenOOD's) and α = 10, the paper's (§4, on ImageNet's 1,000 classes); with
10 classes α = 10 revises every class. OpenOOD v1.5's postprocessor fixes α = 3 (``weibull_alpha``,
``openood/postprocessors/openmax_postprocessor.py``): ``--param openmax.alpha=3`` for its setting; the tuning grid
holds both. Score values are checked by hand in ``tests/test_trained_scores_by_hand.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from oodbench import Detector
from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import POSITIVE_INT


class OpenMax(Detector):
    name = "openmax"
    parameter_constraints = {"alpha": [POSITIVE_INT]}  # the number of top classes revised
    description = "Weibull-recalibrated logits with an 'unknown' class (Bendale & Boult 2016)"
    paper = "Bendale & Boult 2016, Towards Open Set Deep Networks"
    criterion = "auroc"
    fit_params = frozenset({"tailsize"})

    def __init__(self, tailsize: int = 20, alpha: int = 10):
        self.tailsize = tailsize
        self.alpha = alpha

    def search_space(self):
        return {"tailsize": [10, 20, 50, 100], "alpha": [1, 2, 5, 10]}

    def fit(self, train: FeatureView) -> OpenMax:
        from scipy.stats import weibull_min

        z = train.logits().cpu()
        pred = z.argmax(dim=1)
        k = z.shape[1]
        self.means_ = torch.zeros(k, k)
        self.weibull_ = np.zeros((k, 3))  # shape, loc, scale
        for c in range(k):
            zc = z[(pred == c) & (train.labels == c)]
            if len(zc) == 0:
                self.weibull_[c] = (1.0, 0.0, 1e6)  # class never correct: CDF ≈ 0
                continue
            self.means_[c] = zc.mean(dim=0)
            dist = (zc - self.means_[c]).norm(dim=1).double().numpy()
            tail = np.sort(dist)[-min(self.tailsize, len(dist)) :]
            if len(tail) < 2 or tail.std() == 0:
                self.weibull_[c] = (1.0, 0.0, max(float(tail.mean()), 1e-6))
            else:
                shape, loc, scale = weibull_min.fit(tail, floc=0)
                self.weibull_[c] = (shape, loc, scale)
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        from scipy.stats import weibull_min

        self.check_fitted()
        z = data.logits().cpu()
        k = z.shape[1]
        alpha = min(self.alpha, k)
        dist = torch.cdist(z.double(), self.means_.double())  # N×K
        shape, loc, scale = (torch.from_numpy(self.weibull_[:, i]) for i in range(3))
        cdf = torch.from_numpy(weibull_min.cdf(dist.numpy(), shape.numpy(), loc.numpy(), scale.numpy()))
        ranks = z.argsort(dim=1, descending=True)[:, :alpha]
        rank_weight = torch.zeros(z.shape, dtype=torch.float64)
        rank_weight.scatter_(
            1, ranks, ((alpha - torch.arange(alpha, dtype=torch.float64)) / alpha).expand(len(z), -1).contiguous()
        )
        w = 1 - rank_weight * cdf
        zd = z.double()
        revised = zd * w
        unknown = (zd * (1 - w)).sum(dim=1, keepdim=True)
        probs = torch.softmax(torch.cat([unknown, revised], dim=1), dim=1)
        return -probs[:, 0]
