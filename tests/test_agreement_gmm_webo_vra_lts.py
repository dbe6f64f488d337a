"""GMM, WeightedEBO, VRA and LTS (issue 26): (a) agreement with pytorch-ood 0.4.0 on the same LeNet features (the
setup of ``test_pytorch_ood_agreement.py``: FashionMNIST ID vs MNIST OOD, pytorch-ood's outlier scores negated),
and where pytorch-ood differs from the paper on purpose, what must still hold; (b) one value per detector worked
out by hand from the paper's equation on ``synthetic_view`` features.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_pytorch_ood_agreement import agree, encoder, ours, setup  # noqa: F401

from oodbench.plugins.manager import registries
from oodbench.plugins.testing import synthetic_view

pood = pytest.importorskip("pytorch_ood.detector")


def det(name, **params):
    return registries().detectors.get(name)(**params)


# (a) agreement with pytorch-ood


def test_gmm_agrees_with_pytorch_ood(setup):  # noqa: F811 (the imported fixture)
    """Same density: per-class means and maximum-likelihood covariances + 1e-6·I, priors N_y/N, log-sum-exp."""
    model, tr, te, x, _ = setup
    theirs = pood.GMM(encoder(model), reg=1e-6)
    with torch.no_grad():
        theirs.fit_features(tr.features(["penultimate"])["penultimate"], tr.labels)
        t = theirs.predict(x)
    s = ours("gmm", tr, te, reg=1e-6)
    print("gmm Spearman", agree(s, t))
    assert np.allclose(s.numpy(), -t.numpy(), rtol=1e-6, atol=1e-6)  # the same log-likelihood, not just its ranks


def test_webo_agrees_with_pytorch_ood_and_defaults_to_energy(setup):  # noqa: F811 (the imported fixture)
    """Per-class weights (one negative: clipped to 0, as both clip it) give pytorch-ood's weighted energy; the
    default (w = 1) is the energy score."""
    model, tr, te, x, _ = setup
    w = torch.linspace(-0.5, 2.0, 10)
    s = ours("webo", tr, te, weights=w.tolist())
    print("webo Spearman", agree(s, pood.WeightedEBO.score(te.logits(), w)))
    assert np.allclose(s.numpy(), -pood.WeightedEBO.score(te.logits(), w).numpy(), atol=1e-5)
    assert np.allclose(ours("webo", tr, te).numpy(), ours("energy", tr, te).numpy(), atol=1e-5)


def _maps(model):
    return lambda x: encoder(model)(x)[:, :, None, None]


def _head(model):
    return lambda m: model.head(m.flatten(1))


def test_vra_agrees_with_pytorch_ood_where_the_paper_lets_it(setup):  # noqa: F811 (the imported fixture)
    """pytorch-ood's VRA differs from the paper on purpose: it is a two-sided ReAct, clip(z, α, β), where VRA's
    piecewise g sets activations below α to 0 (Xu et al. 2023; the official code's ``clip2``), and it has no
    amplification γ. What must still hold at γ = 0: the same per-unit percentile thresholds α, β; at pytorch-ood's
    default percentiles (1, 99) the same ranking, and the same scores on every sample with no activation below its
    α; and at oodbench's defaults (60, 90), where most samples have some unit below α (Spearman ≈ 0.79 there),
    exactly the energy of pytorch-ood's clipped features with the entries below α set to 0."""
    model, tr, te, x, _ = setup
    h = te.features(["penultimate"])["penultimate"]
    for lo, hi in ((1, 99), (60, 90)):
        mine = det("vra", lower_percentile=lo, upper_percentile=hi, gamma=0.0).fit(tr)
        theirs = pood.VRA(_maps(model), _head(model), lower_percentile=lo / 100, upper_percentile=hi / 100)
        theirs.fit_feature_maps(tr.features(["penultimate"])["penultimate"][:, :, None, None], tr.labels)
        alpha = mine.threshold(lo).float()
        assert torch.allclose(alpha, theirs._lower_threshold.flatten(), atol=1e-5)
        assert torch.allclose(mine.threshold(hi).float(), theirs._upper_threshold.flatten(), atol=1e-5)
        s = mine.score_samples(te)
        with torch.no_grad():
            t = theirs.predict(x)
            clipped = theirs._clip(h[:, :, None, None]).flatten(1)
            zeroed = torch.where(h < alpha, torch.zeros_like(h), clipped)
            assert np.allclose(s.numpy(), torch.logsumexp(model.head(zeroed), 1).numpy(), atol=1e-5)
        if (lo, hi) == (1, 99):
            print("vra Spearman (1, 99)", agree(s, t))
            none_below = (h >= alpha).all(dim=1)
            assert none_below.sum() > 100
            assert np.allclose(s[none_below].numpy(), -t[none_below].numpy(), atol=1e-5)


def test_lts_agrees_with_pytorch_ood(setup):  # noqa: F811 (the imported fixture)
    """Same scale (ReLU'd activations, top k = D − round(D·p/100), squared ratio) and energy: our percentile 65 is
    pytorch-ood's fraction p = 0.35 of top activations."""
    model, tr, te, x, _ = setup
    with torch.no_grad():
        t = pood.LTS(encoder(model), model.head, p=0.35).predict(x)
    s = ours("lts", tr, te, percentile=65)
    print("lts Spearman", agree(s, t))
    assert np.allclose(s.numpy(), -t.numpy(), rtol=1e-5, atol=1e-4)


# (b) hand-worked values


def test_gmm_by_hand():
    """DDU's density q(z) = Σ_y q(y) N(z | μ_y, Σ_y) (Mukhoti et al. 2023). Class 0: (±1, 0), (0, ±1) → μ_0 = 0,
    Σ_0 = ¼·diag(2, 2) = ½I; class 1: (4 ± 2, 0), (4, ±2), each twice → μ_1 = (4, 0), Σ_1 = ⅛·diag(16, 16) = 2I;
    q(0) = 4/12 = ⅓, q(1) = ⅔. In 2-D, log N(z | μ, σ²I) = −‖z − μ‖²/(2σ²) − log(2πσ²), so
    at z = (0, 0): log q = logaddexp(log ⅓ − log π, log ⅔ − 16/4 − log 4π);
    at z = (4, 1): log q = logaddexp(log ⅓ − 17 − log π, log ⅔ − 1/4 − log 4π)."""
    c0 = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    c1 = torch.tensor([[6.0, 0.0], [2.0, 0.0], [4.0, 2.0], [4.0, -2.0]]).repeat(2, 1)
    labels = torch.tensor([0] * 4 + [1] * 8)
    gmm = det("gmm", reg=1e-12).fit(synthetic_view({"penultimate": torch.cat([c0, c1])}, labels))
    got = gmm.score_samples(synthetic_view({"penultimate": torch.tensor([[0.0, 0.0], [4.0, 1.0]])}))
    third, two_thirds, pi = math.log(1 / 3), math.log(2 / 3), math.pi
    want = [
        np.logaddexp(third - math.log(pi), two_thirds - 4 - math.log(4 * pi)),
        np.logaddexp(third - 17 - math.log(pi), two_thirds - 0.25 - math.log(4 * pi)),
    ]
    assert np.allclose(got.numpy(), want, rtol=1e-9)


def test_webo_by_hand():
    """VOS's weighted energy (Du et al. 2022): −E(x) = log Σ_k max(0, w_k) e^{f_k}. Logits (2, 0) and (0, 0):
    w = (3, 1) → log(3e² + 1), log 4; w = (1, −1) → the second class drops out → 2, 0; no weights → log(e² + 1),
    log 2 (the energy score)."""
    v = synthetic_view({"logits": torch.tensor([[2.0, 0.0], [0.0, 0.0]])})
    e2 = math.exp(2)
    assert np.allclose(det("webo", weights=[3.0, 1.0]).fit(v).score_samples(v), [math.log(3 * e2 + 1), math.log(4)])
    assert np.allclose(det("webo", weights=[1.0, -1.0]).fit(v).score_samples(v), [2.0, 0.0])
    assert np.allclose(det("webo").fit(v).score_samples(v), [math.log(e2 + 1), math.log(2)])
    with pytest.raises(ValueError, match="3 class weights for a model with 2 classes"):
        det("webo", weights=[1.0, 1.0, 1.0]).fit(v).score_samples(v)


def test_vra_by_hand():
    """VRA's piecewise g (Xu et al. 2023): 0 below α, z + γ on [α, β], β above. Training units: unit 0 takes
    0, 1, 2, 3, 4 and unit 1 takes 0, 2, 4, 6, 8 → 25th percentiles α = (1, 2), 75th β = (3, 6) (linear
    interpolation at position 4·q: exact here; the 60th is at 2.4 → (2.4, 4.8)). γ = 0.5, identity head:
    h = (0.5, 5) → g = (0, 5.5); h = (3.5, 1) → (3, 0); h = (2, 7) → (2.5, 6); the score is logsumexp g."""
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    train = torch.stack([torch.arange(5.0), 2 * torch.arange(5.0)], dim=1)
    vra = det("vra", lower_percentile=25, upper_percentile=75, gamma=0.5).fit(synthetic_view({"penultimate": train}))
    assert vra.threshold(25).tolist() == [1.0, 2.0] and vra.threshold(75).tolist() == [3.0, 6.0]
    assert torch.allclose(vra.threshold(60), torch.tensor([2.4, 4.8], dtype=torch.float64))
    h = torch.tensor([[0.5, 5.0], [3.5, 1.0], [2.0, 7.0]])
    got = vra.score_samples(synthetic_view({"penultimate": h}, head=head))
    lse = lambda z: float(torch.logsumexp(torch.tensor(z, dtype=torch.float64), 0))  # noqa: E731
    assert np.allclose(got.numpy(), [lse([0.0, 5.5]), lse([3.0, 0.0]), lse([2.5, 6.0])], rtol=1e-6)


def test_lts_by_hand():
    """LTS (Djurisic et al. 2025): S = (Σ a / Σ_top a)², a = ReLU(h) (the official code), score
    logsumexp(S·f). Head rows (1, 0, 0, 0), (0, 1, 1, 1), no bias. h = (4, −1, 2, 3): a = (4, 0, 2, 3), s1 = 9;
    p = 50 keeps 4 − round(2) = 2 activations (4, 3), s2 = 7, S = (9/7)²; logits of the raw h: (4, 4) → 4S + log 2.
    h = 0: S = 1 (oodbench's 0/0 guard), logits (0, 0) → log 2. p = 0 keeps all: S = 1, the plain energy log 2e⁴."""
    head = torch.nn.Linear(4, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
        head.bias.zero_()
    v = synthetic_view({"penultimate": torch.tensor([[4.0, -1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]])}, head=head)
    s = (9 / 7) ** 2
    got = det("lts", percentile=50).fit(v).score_samples(v)
    assert np.allclose(got.numpy(), [4 * s + math.log(2), math.log(2)], rtol=1e-6)
    assert det("lts", percentile=0).fit(v).score_samples(v)[0] == pytest.approx(4 + math.log(2), rel=1e-6)
