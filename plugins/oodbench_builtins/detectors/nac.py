"""NAC-UE, neuron activation coverage as an OOD score (Liu et al., ICLR 2024): see :class:`NACUE`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch

from oodbench import Detector, Needs
from oodbench.models.backbones import PENULTIMATE
from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import POSITIVE_INT, Strings

from ._common import head_weights

RESNET_LAYERS = ("layer1", "layer2", "layer3")
# (α, M, O) per layer, and the per-layer sweeps: the authors' nac_cifar10.yml (layer_kwargs, postprocessor_sweep)
PAPER_DEFAULTS = {
    PENULTIMATE: (100.0, 50, 50),
    "layer3": (1000.0, 500, 100),
    "layer2": (0.001, 50, 5),
    "layer1": (0.001, 500, 100),
}
PAPER_SWEEP = {
    PENULTIMATE: ([100.0], [50], [10, 50]),
    "layer3": ([1000.0, 5000.0], [50, 500], [100]),
    "layer2": ([0.001], [50], [5, 10]),
    "layer1": ([0.001, 0.005], [50, 500], [5, 10, 50, 100]),
}
# one layer alone (penultimate, or a layer the authors give no values for): their penultimate values for CIFAR-10
# (α=100, M=50, O ∈ {10, 50}) and ImageNet (nac_imagenet.yml: α=3000, M ∈ {50, 500}, O ∈ {10, 50, 500}), with α
# also 1, 10, 1000 (not theirs): the scale of z·∂KL/∂z, hence the useful α, depends on the backbone
ONE_LAYER_SWEEP = ([1.0, 10.0, 100.0, 1000.0, 3000.0], [50, 500], [10, 50, 500])


@dataclass(frozen=True)
class PerLayer:
    """A number (every layer) or a non-empty list of numbers (one per layer), each of ``kind`` and > ``low``."""

    kind: type
    low: float

    def _one(self, v: Any) -> bool:
        ok = isinstance(v, int if self.kind is int else Real) and not isinstance(v, bool)
        return ok and math.isfinite(v) and v > self.low

    def allows(self, value: Any) -> bool:
        if isinstance(value, (list, tuple)):
            return bool(value) and all(self._one(v) for v in value)
        return self._one(value)

    def __str__(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        return f"{what} > {self.low:g}, or a list of them (one per layer)"


def bin_edges(m: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The M interval edges of the authors' ``logspace(1e3, M)``: log_1000 of an even grid on [1, √1000] gives
    [0, ½], mirrored to [½, 1]; the edge at 1 becomes 1.01 and 1.2 is appended (float64, on ``device``)."""
    half = m // 2
    grid = torch.linspace(1.0, math.sqrt(1000.0), half, dtype=torch.float64, device=device)
    lower = grid.log() / math.log(1000.0)
    edges = torch.cat([lower[:-1], (1.0 - lower).flip(0)])
    edges[-1] += 0.01
    return torch.cat([edges, torch.full((1,), 1.2, dtype=torch.float64, device=device)])


def interval_index(raw: torch.Tensor, alpha: float, m: int) -> torch.Tensor:
    """N×D interval indices k (edge_k ≤ σ(α·raw) < edge_k+1), in [0, M − 2]."""
    state = torch.sigmoid(alpha * raw)
    edges = bin_edges(m, raw.device).to(dtype=raw.dtype)
    return (torch.bucketize(state, edges, right=True) - 1).clamp(0, len(edges) - 2)


def n_intervals(m: int) -> int:
    """Intervals between the edges of :func:`bin_edges` (M − 1 for even M; the code's int(M/2) drops one if odd)."""
    return 2 * (m // 2) - 1


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded class-balanced subset: min(n // classes, smallest class) samples per class."""
    classes, counts = labels.unique(return_counts=True)
    per = max(1, min(n // len(classes), int(counts.min())))
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    order = torch.sort(labels[perm], stable=True).indices
    grouped = labels[perm][order]
    rank = torch.arange(len(grouped)) - torch.searchsorted(grouped, grouped)
    return perm[order[rank < per]].sort().values


def _spatial_sum(t: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → N×C and N×L×D → N×D by summing (the authors' pooling of states and gradients); N×D unchanged."""
    if t.ndim == 4:
        return t.sum(dim=(2, 3))
    if t.ndim == 3:
        return t.sum(dim=1)
    return t.flatten(1)


class NACUE(Detector):
    """NAC-UE (Liu, Tian, Li, Ma & Wang, ICLR 2024, "Neuron Activation Coverage: Rethinking Out-of-distribution
    Detection and Generalization", §3–§4.1; equation numbers as in arXiv 2306.02879v3).

    Neuron activation state (§3, eq. 1–2): with u the uniform distribution over the C classes and p = softmax(f(x)),
        ẑ = σ_α(z ⊙ ∂KL(u ‖ p)/∂z),   σ_α(v) = 1 / (1 + exp(−α v)),
    for every neuron z of a layer. NAC function (eq. 3): the PDF κ of ẑ over ID training data, approximated per
    neuron by a histogram of M intervals, gives the coverage Φ(ẑ) = min(κ(ẑ) / r, 1), r the lower bound of a
    "covered" interval. NAC-UE (eq. 4): S(x) = the mean of Φ over a layer's neurons; with several layers, the mean
    over layers. Higher = more ID.

    Where the paper is silent this follows the authors' code (github.com/BierOne/ood_coverage, an OpenOOD v1.5 fork:
    ``openood/postprocessors/nac_postprocessor.py``, ``nac/coverage.py``, ``nac/utils.py``, ``nac/instr_state.py``,
    ``configs/postprocessors/nac/resnet/nac_cifar10.yml``):

    - Φ = min(count / O, 1): κ / r is counted, not normalised; O (``min_count``) is the number of training states
      that fills an interval. KL(u ‖ p) is the code's cross-entropy with u, −(1/C) Σ_c log p_c: they differ by the
      constant log C, so the gradient is the same.
    - Intervals: M edges log-spaced towards ½ — t = log_1000(linspace(1, √1000, M/2)) on [0, ½], mirrored as 1 − t
      on [½, 1], the edge at 1 moved to 1.01 and 1.2 appended — so M − 1 intervals [t_k, t_k+1), the last never hit.
    - Convolutional maps: channel c's state is (Σ_hw o_c) · (Σ_hw ∂KL/∂o_c), activations and gradients *summed* over
      space separately, then multiplied (the code's ``avg_pooling`` sums); token maps sum over the tokens.
    - Fit set: ``n_fit`` = 1,000 class-balanced, seeded ID training images (the code's ``valid_num``,
      ``TrainSubset``); all of them count, correctly classified or not (its ``sigmoid(o*g_kl)`` state ignores that).
    - Layers: for ResNets the authors use ``avgpool layer3 layer2 layer1`` (their README's OpenOOD v1.5 runs). By
      default oodbench takes the backbone's ``layer1``–``layer3`` where it has them plus ``penultimate`` (the pooled
      features, = ``avgpool``); other backbones (LeNet) get ``penultimate`` alone. ``layers`` overrides this.
      ``required_layers`` declares only ``penultimate`` and ``logits`` (the shared extraction): the other layers
      need full maps and their gradients, which the gradient pass below reads itself.
    - α, M and O are per layer: ``alpha``, ``bins`` and ``min_count`` take one number for all layers or a list with
      one per layer; None = the authors' CIFAR-10 ResNet-18 values (:data:`PAPER_DEFAULTS`, also on other data:
      their ImageNet ones differ). :meth:`search_space` crosses their per-layer sweeps; one layer alone sweeps
      :data:`ONE_LAYER_SWEEP`: their CIFAR-10 and ImageNet penultimate values plus α = 1, 10, 1000, which are not
      theirs: the scale of z ⊙ ∂KL/∂z, hence the useful α, depends on the backbone and its training.

    pytorch-ood's ``NACUE`` differs on purpose: geometric bins dense near 0 and 1 (M usable), the spatial mean of
    o ⊙ g for maps, layers summed; with the same bins and dense layers its scores equal these (tests).

    Gradients: for ``penultimate`` in closed form from the linear head (h ↦ W h + b ⇒ ∂KL/∂h = Wᵀ(p − u)), from the
    cached features; for other layers one batched backward pass per input batch (``FeatureView.map_inputs``,
    ``model.forward_features(pool=False)``; the loss is summed over the batch, so samples stay independent), memoised
    per view. ``fit`` keeps the fit set's raw states z ⊙ ∂KL/∂z, so α, M and O act at score time: the histogram of
    each (layer, α, M) is counted once (``torch.bincount``, on the features' device) and shared by all grid points.
    """

    name = "nac-ue"
    description = "mean ID-training coverage of neuron states σ(z·∂KL/∂z) over layers (Liu et al. 2024)"
    paper = "Liu et al. 2024, Neuron Activation Coverage: Rethinking Out-of-distribution Detection and Generalization"
    criterion = "auroc"
    needs = Needs(gradients="network")  # ∂KL(u‖p)/∂z per layer (closed form on the penultimate features)
    parameter_constraints = {
        "layers": [Strings(), None],
        "alpha": [PerLayer(float, 0.0), None],
        "bins": [PerLayer(int, 3), None],
        "min_count": [PerLayer(float, 0.0), None],
        "n_fit": [POSITIVE_INT, None],
    }

    def __init__(
        self,
        layers: Sequence[str] | None = None,
        alpha: float | Sequence[float] | None = None,
        bins: int | Sequence[int] | None = None,
        min_count: float | Sequence[float] | None = None,
        n_fit: int | None = 1000,
        seed: int = 0,
    ):
        self.layers = layers
        self.alpha = alpha
        self.bins = bins
        self.min_count = min_count
        self.n_fit = n_fit
        self.seed = seed

    def _layers(self, model) -> list[str]:
        if self.layers is not None:
            return list(self.layers)
        return [name for name in RESNET_LAYERS if name in model.feature_layers] + [PENULTIMATE]

    def required_layers(self, model) -> list[str]:
        return ["penultimate", "logits"]

    def _per_layer(self, value, which: int) -> list:
        """One value per fitted layer: the parameter's own, or the authors' default for the layer (else the
        penultimate one's)."""
        if value is None:
            return [PAPER_DEFAULTS.get(layer, PAPER_DEFAULTS[PENULTIMATE])[which] for layer in self.layers_]
        if isinstance(value, (list, tuple)):
            if len(value) != len(self.layers_):
                raise ValueError(f"nac-ue: {len(value)} values for {len(self.layers_)} layers {self.layers_}")
            return list(value)
        return [value] * len(self.layers_)

    def fit(self, train: FeatureView) -> NACUE:
        self.layers_ = self._layers(train.model)
        unknown = [name for name in self.layers_ if name not in train.model.feature_layers or name == "logits"]
        if unknown:
            raise ValueError(f"nac-ue: no feature layer(s) {unknown}; available: {train.model.feature_layers[:-1]}")
        view, self.balanced_ = train, self.n_fit is not None and self.n_fit < len(train)
        if self.balanced_:
            view = train.subset(balanced_subset(train.labels, self.n_fit, self.seed))
        self.n_fit_ = len(view)
        self.states_ = self._states(view)
        self.counts_: dict[tuple[str, float, int], torch.Tensor] = {}  # (layer, α, M) → D × intervals, shared by copies
        return self

    def _states(self, data: FeatureView) -> dict[str, torch.Tensor]:
        """{layer: N×D raw states z ⊙ ∂KL(u‖p)/∂z} (before σ_α), memoised per view."""
        out = {}
        if PENULTIMATE in self.layers_:
            out[PENULTIMATE] = data.memo(("nac-ue state", PENULTIMATE), lambda: self._penultimate_state(data))
        inner = tuple(name for name in self.layers_ if name != PENULTIMATE)
        if inner:
            out.update(data.memo(("nac-ue states", inner), lambda: self._inner_states(data, inner)))
        return out

    @staticmethod
    def _penultimate_state(data: FeatureView) -> torch.Tensor:
        """h ⊙ Wᵀ(p − u): the gradient of −(1/C) Σ_c log p_c through the linear head, in closed form."""
        feats = data.features(["penultimate", "logits"])
        h, logits = feats["penultimate"], feats["logits"]
        w, _ = head_weights(data.model)
        p = torch.softmax(logits.double(), dim=1)
        grad = (p - 1.0 / p.shape[1]) @ w.double().to(h.device)
        return (h.double() * grad).float()

    @staticmethod
    def _inner_states(data: FeatureView, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """One batched forward/backward pass per input batch for the layers before the head."""
        model, widths = data.model, []

        def batch(x: torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)  # a graph even where the weights are frozen
                out = model.forward_features(x, list(layers), pool=False)
                loss = -torch.log_softmax(out["logits"].float(), dim=1).mean(dim=1).sum()
                grads = torch.autograd.grad(loss, [out[name] for name in layers])
            states = [_spatial_sum(out[n].detach()).float() * _spatial_sum(g).float() for n, g in zip(layers, grads)]
            widths[:] = [s.shape[1] for s in states]
            return torch.cat(states, dim=1)

        flat = data.map_inputs(batch)
        if not widths:  # no samples
            return {name: torch.empty(0, 0, device=data.device) for name in layers}
        return dict(zip(layers, flat.split(widths, dim=1)))

    def _coverage(self, layer: str, alpha: float, m: int, min_count: float) -> torch.Tensor:
        """D × intervals coverage Φ = min(count / O, 1) of each neuron's intervals over the fit set's states."""
        key = (layer, float(alpha), int(m))
        if key not in self.counts_:
            raw = self.states_[layer]
            d, k = raw.shape[1], n_intervals(int(m))
            flat = interval_index(raw, float(alpha), int(m)) + torch.arange(d, device=raw.device) * k
            self.counts_[key] = torch.bincount(flat.reshape(-1), minlength=d * k).view(d, k)
        return (self.counts_[key].double() / float(min_count)).clamp(max=1.0)

    def layer_scores(self, data: FeatureView) -> torch.Tensor:
        """N × layers: the mean coverage of each layer's neuron states (eq. 4)."""
        self.check_fitted()
        states = self._states(data)
        alphas, ms, os = (self._per_layer(v, i) for i, v in enumerate((self.alpha, self.bins, self.min_count)))
        columns = []
        for layer, alpha, m, o in zip(self.layers_, alphas, ms, os):
            table = self._coverage(layer, alpha, m, o)
            raw = states[layer].to(table.device)
            offsets = torch.arange(raw.shape[1], device=raw.device) * n_intervals(int(m))
            idx = interval_index(raw, float(alpha), int(m)) + offsets
            columns.append(table.reshape(-1)[idx].mean(dim=1))
        return torch.stack(columns, dim=1)

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        return self.layer_scores(data).mean(dim=1)

    def search_space(self) -> dict[str, list[Any]]:
        """Several layers: the authors' per-layer sweeps (nac_cifar10.yml; a layer they give none for takes the
        penultimate one's), crossed over the layers as tuples — 256 points for the ResNet default. One layer:
        :data:`ONE_LAYER_SWEEP` (30 points), or the authors' sweep for ``layer1``–``layer3``."""
        layers = getattr(self, "layers_", None) or [PENULTIMATE]
        if len(layers) == 1:
            sweep = PAPER_SWEEP[layers[0]] if layers[0] in RESNET_LAYERS else ONE_LAYER_SWEEP
            return {"alpha": list(sweep[0]), "bins": list(sweep[1]), "min_count": list(sweep[2])}
        space = {}
        for i, name in enumerate(("alpha", "bins", "min_count")):
            space[name] = list(
                itertools.product(*[PAPER_SWEEP.get(layer, PAPER_SWEEP[PENULTIMATE])[i] for layer in layers])
            )
        return space

    def describe_fit(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers_),
            "fit_set": f"{self.n_fit_} ID training images" + (" (class-balanced)" if self.balanced_ else ""),
            "alpha": self._per_layer(self.alpha, 0),
            "bins": self._per_layer(self.bins, 1),
            "min_count": self._per_layer(self.min_count, 2),
        }
