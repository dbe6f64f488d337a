"""Gram (Sastry & Oore 2020) as the authors' code computes it: row sums first, then the signed p-th root;
class-wise ranges by predicted class; deviations divided by the confidence and by their validation mean."""

from __future__ import annotations

import math

import numpy as np
import torch
from oodbench_builtins.detectors.gram import gram_row_sums

from oodbench.plugins.manager import registries
from oodbench.plugins.testing import tiny_views


def test_row_sums_come_before_the_root_by_hand():
    # F = [[1, 2], [3, -1]] (C = 2 rows, HW = 2)
    f = torch.tensor([[[1.0, 2.0], [3.0, -1.0]]])
    # p = 1: F Fᵀ = [[5, 1], [1, 10]] → row sums 6, 11
    assert torch.allclose(gram_row_sums(f, 1), torch.tensor([[6.0, 11.0]], dtype=torch.float64))
    # p = 2: F² = [[1, 4], [9, 1]], F² F²ᵀ = [[17, 13], [13, 82]] → sqrt of 30 and 95
    want = torch.tensor([[math.sqrt(30), math.sqrt(95)]], dtype=torch.float64)
    assert torch.allclose(gram_row_sums(f, 2), want)
    # root before the sum (√17 + √13 = 7.73) would be a different feature from √30 = 5.48
    assert not math.isclose(math.sqrt(17) + math.sqrt(13), math.sqrt(30), rel_tol=0.1)
    # a negative row sum keeps its sign: rows (1, 0), (-2, 0), (-2, 0); p = 3 → F³ rows 1, -8, -8
    g = torch.tensor([[[1.0, 0.0], [-2.0, 0.0], [-2.0, 0.0]]])
    assert torch.allclose(gram_row_sums(g, 1)[0, 0], torch.tensor(1.0 - 2 - 2, dtype=torch.float64))
    assert torch.allclose(gram_row_sums(g, 3)[0, 0], torch.tensor(-(15 ** (1 / 3)), dtype=torch.float64))


def _values_by_full_matrix(model, x, layers, powers):
    """Gram values through the full C×C matrices (the code's G_p), layer by layer, power by power."""
    with torch.no_grad():
        out = model.forward_features(x, layers, pool=False)
    cols = []
    for k in layers:
        f = out[k].flatten(2).double()
        for p in powers:
            fp = f**p
            s = (fp @ fp.transpose(1, 2)).sum(dim=2)
            cols.append(s.sign() * s.abs() ** (1 / p))
    return torch.cat(cols, dim=1), out["logits"]


def test_ranges_normaliser_and_score_by_hand():
    train, id_test, ood_test = tiny_views()
    det = registries().detectors.get("gram")(max_power=3, n_val=20, seed=4).fit(train)
    layers, powers = det.layers_, range(1, 4)
    assert layers == ["conv1", "conv2"] and det.n_fit_ == len(train) - 20 and det.n_val_ == 20
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(4))
    val, rest = perm[:20].sort().values, perm[20:].sort().values
    x = torch.cat(list(train.batches())).float()
    v, logits = _values_by_full_matrix(train.model, x[rest], layers, powers)
    pred = logits.argmax(1)
    for c in pred.unique():
        assert torch.allclose(det.mins_[c], v[pred == c].min(0).values)
        assert torch.allclose(det.maxs_[c], v[pred == c].max(0).values)

    def deviations(images):
        v, logits = _values_by_full_matrix(train.model, images, layers, powers)
        lo, hi = det.mins_[logits.argmax(1)], det.maxs_[logits.argmax(1)]
        d = torch.relu(lo - v) / (lo + 1e-6).abs() + torch.relu(v - hi) / (hi + 1e-6).abs()
        d = torch.where(torch.isfinite(lo), d, 0.0)
        per_layer = torch.stack([d[:, :18].sum(1), d[:, 18:].sum(1)], dim=1)  # 6·3 and 16·3 values
        return per_layer / torch.softmax(logits.double(), 1).max(1).values[:, None]

    scale = deviations(x[val]).mean(0) + 1e-7
    assert torch.allclose(det.layer_scale_, scale, rtol=1e-5)
    for view in (id_test, ood_test):
        images = torch.cat(list(view.batches())).float()
        want = -(deviations(images) / scale).sum(1)
        assert np.allclose(det.score_samples(view), want.numpy(), rtol=1e-4, atol=1e-6)
    facts = det.describe_fit()
    assert facts["ranges_from"].startswith(f"{len(train) - 20} ID training images")
    assert set(facts["normaliser"]) == {"conv1", "conv2"}


def test_gram_separates_noise_from_the_training_distribution():
    train, id_test, ood_test = tiny_views()
    det = registries().detectors.get("gram")().fit(train)
    s_id, s_ood = det.score_samples(id_test), det.score_samples(ood_test)
    assert np.median(s_id) > np.median(s_ood)
