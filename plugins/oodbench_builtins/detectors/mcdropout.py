"""Monte-Carlo Dropout (Gal & Ghahramani, ICML 2016) as paper 003 evaluates it ("MCD").

The backbone is trained *with* dropout of rate p — one trained model per rate, through the one trainer
and the checkpoint cache — and at test time dropout stays on for T = 32 stochastic passes (one batched
forward pass of the repeated batch). Placement (``dropout_at``, a build option of the backbone, so it is
part of the model's cache key and of the record): ``"layer-inputs"`` (default) puts dropout on the input
of every weight layer, as paper 003's official dropout LeNet does (``lib/model/dropout_lenet.py``:
before conv1, conv2, fc1 and the last layer); ``"conv-blocks"`` only after the conv blocks (Ovadia et al.
2019, oodbench's earlier placement). With z_t the logits of pass t and softmax p_t = softmax(z_t):

- ``"mean"``: max_k (1/T) Σ_t p_t,k — the mean prediction's confidence (paper 003 code, ``mean``);
- ``"logit-variance"``: −Var_t[z_t,ŷ] with ŷ = argmax_k (1/T) Σ_t z_t,k, the variance over passes of the
  predicted class's logit, the predicted class taken from the mean *logits* (paper 003 code, ``var``;
  population variance, as its ``np.var``);
- ``"softmax-variance"``: −(1/K) Σ_k Var_t[p_t,k], the mean over classes of the softmax variance. A named
  variant, *not* paper 003's statistic and not on the tuning grid (``--param mcdropout.statistic=…``).

Paper 003 reports the better of mean and variance and tunes p ∈ {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4,
0.5} (SPEC.md): the grid is those rates × {mean, logit-variance}, selected by TNR@95. Reproduces paper 003
Table 2, column MCD. Scores are stochastic; the generator is re-seeded on every call so a call is repeatable.
"""

from __future__ import annotations

from typing import Any

import torch

from oodbench import Detector, Needs, Supplies
from oodbench.core.errors import UsageError
from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import Options

from ..backbones.lenet import DROPOUT_AT

DROPOUT_GRID = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5]
PAPER_STATISTICS = ["mean", "logit-variance"]  # paper 003's two, the tuning grid
STATISTICS = [*PAPER_STATISTICS, "softmax-variance"]


def mc_statistics(logits: torch.Tensor) -> torch.Tensor:
    """T×N×K logits of T dropout passes → N×3 scores (higher = more ID): mean, logit-variance and
    softmax-variance, in :data:`STATISTICS` order (see the module docstring for the formulas)."""
    probs = torch.softmax(logits, dim=2)
    predicted = logits.mean(0).argmax(1)  # ŷ from the mean logits, as paper 003's code
    z_hat = logits.gather(2, predicted.view(1, -1, 1).expand(len(logits), -1, 1)).squeeze(2)  # T×N
    return torch.stack(
        [
            probs.mean(0).max(1).values,
            -z_hat.var(0, correction=0),
            -probs.var(0, correction=0).mean(1),
        ],
        dim=1,
    )


def check_statistic(statistic: str) -> None:
    """Raise a one-line :class:`UsageError` for an unknown statistic (or the retired ``"variance"``)."""
    if statistic == "variance":
        raise UsageError(
            "mcdropout.statistic 'variance' was ambiguous and is retired: use 'logit-variance' (paper 003's, "
            "variance of the predicted class's logit) or 'softmax-variance' (mean softmax variance, not the paper's)"
        )
    if statistic not in STATISTICS:
        raise UsageError(f"mcdropout.statistic must be one of {STATISTICS}, got {statistic!r}")


class MCDropout(Detector):
    name = "mcdropout"
    parameter_constraints = {"statistic": [Options(*STATISTICS)], "dropout_at": [Options(*DROPOUT_AT)]}
    description = (
        "mean softmax / predicted-logit variance over 32 dropout passes of a dropout-trained backbone (paper 003 'MCD')"
    )
    paper = "Gal & Ghahramani 2016, Dropout as a Bayesian Approximation; evaluated as in paper 003"
    criterion = "tnr95"
    fit_params = frozenset({"dropout"})
    needs = Needs(trains=True, stochastic=True)

    def __init__(
        self,
        dropout: float = 0.1,
        passes: int = 32,
        statistic: str = "mean",
        dropout_at: str = "layer-inputs",
        seed: int = 0,
    ):
        self.dropout = dropout
        self.passes = passes
        self.statistic = statistic
        self.dropout_at = dropout_at
        self.seed = seed

    def search_space(self) -> dict[str, list[Any]]:
        return {"dropout": DROPOUT_GRID, "statistic": PAPER_STATISTICS}

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> MCDropout:
        assert supplies is not None
        check_statistic(self.statistic)
        if self.dropout_at not in DROPOUT_AT:
            raise UsageError(f"mcdropout.dropout_at must be one of {list(DROPOUT_AT)}, got {self.dropout_at!r}")
        trained = supplies.models.backbone(dropout=self.dropout, dropout_at=self.dropout_at)
        self.model_, self.model_key_ = trained.net, trained.key
        if not self.model_.dropout_modules():
            raise UsageError(f"backbone {self.model_.arch!r} has no dropout layers for mcdropout")
        return self

    def describe_fit(self) -> dict[str, Any]:
        return {"dropout_model": {"arch": self.model_.arch, "hash": self.model_key_}} if hasattr(self, "model_") else {}

    def _statistics(self, data: FeatureView) -> torch.Tensor:
        model, t = self.model_, self.passes

        def batch(x: torch.Tensor) -> torch.Tensor:
            model.eval()
            for m in model.dropout_modules():
                m.train()
            try:
                with torch.inference_mode():
                    logits = model(x.repeat(t, 1, 1, 1)).float().view(t, len(x), -1)
            finally:
                model.eval()
            return mc_statistics(logits)

        def compute() -> torch.Tensor:
            torch.manual_seed(self.seed)
            return data.map_inputs(batch)

        return data.memo(("mcd-statistics", self.model_key_, t, self.seed), compute)

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        check_statistic(self.statistic)
        return self._statistics(data)[:, STATISTICS.index(self.statistic)]
