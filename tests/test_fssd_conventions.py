"""FSSD's conventions from the authors' code (megvii-research/FSSD_OoD_Detection) as options: flattened
feature maps, the FSS from noise in the normalised input space, and a standardised gradient step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodbench.plugins.manager import registries
from oodbench.plugins.testing import tiny_views


def fssd(**params):
    return registries().detectors.get("fssd")(**params)


def _maps(model, x, layer):
    with torch.no_grad():
        return model.forward_features(x, [layer], pool=False)[layer]


def test_flatten_pooling_uses_every_value_of_the_map():
    train, id_test, _ = tiny_views()
    det = fssd(pooling="flatten", n_noise=50, seed=2).fit(train)
    # the tiny CNN's maps: conv1 6×12×12, conv2 16×4×4; dense layers are unchanged
    assert det.fss_["conv1"].shape == (6 * 12 * 12,) and det.fss_["conv2"].shape == (16 * 4 * 4,)
    assert det.fss_["fc1"].shape == (120,) and det.fss_["logits"].shape == (10,)
    noise = torch.randint(0, 256, (50, 1, 28, 28), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    ref = _maps(train.model, noise.float() / 255, "conv2").flatten(1).mean(0)
    assert torch.allclose(det.fss_["conv2"], ref, atol=1e-5)
    x = torch.cat(list(id_test.batches()))
    want = (_maps(train.model, x, "conv2").flatten(1) - ref).norm(dim=1)
    k = det.layers_.index("conv2")
    assert np.allclose(det.layer_scores(id_test)[:, k], want.numpy(), rtol=1e-4)
    # the default keeps channel means
    assert fssd(n_noise=50).fit(train).fss_["conv2"].shape == (16,)


def test_normalized_noise_is_uniform_in_the_networks_input_space():
    train, _, _ = tiny_views()
    det = fssd(noise="normalized", n_noise=40, seed=5).fit(train)
    u = torch.randint(0, 255, (40, 1, 28, 28), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    z = (u.float() - 127.5) / 255  # what the code feeds the network, bypassing its normalisation
    seen = {}
    hook = train.model.net.conv2.register_forward_hook(lambda m, i, o: seen.setdefault("conv2", o))
    with torch.no_grad():
        train.model.net(z)
    hook.remove()
    assert torch.allclose(det.fss_["conv2"], seen["conv2"].mean(dim=(2, 3)).mean(0), atol=1e-5)


def test_standardized_step_by_hand_and_batch_independent():
    train, id_test, _ = tiny_views()
    det = fssd(step="standardized", layers=["conv2", "logits"], n_noise=50).fit(train)
    eps, model = 0.05, train.model
    x = torch.cat(list(id_test.batches())).requires_grad_(True)
    ref = det.fss_["conv2"]
    dist = (model.forward_features(x, ["conv2"])["conv2"] - ref).norm(dim=1)
    (grad,) = torch.autograd.grad(dist.sum(), x)
    g = (grad * model.std).flatten(1)  # the gradient w.r.t. the normalised input
    g = ((g - g.mean(1, keepdim=True)) / g.std(1, keepdim=True)).view_as(x)
    with torch.no_grad():
        want = (model.forward_features(x - eps * g, ["conv2"])["conv2"] - ref).norm(dim=1)
    tuned = det.tuned_copy(epsilon=eps)
    got = tuned.layer_scores(id_test)[:, 0].numpy()
    assert np.allclose(got, want.numpy(), rtol=1e-4)
    assert (got < dist.detach().numpy()).mean() > 0.9  # the code's step descends FSSD
    index = torch.arange(1, len(id_test), 4)
    assert np.allclose(tuned.layer_scores(id_test.subset(index))[:, 0], got[index.numpy()], rtol=1e-5)


def test_conventions_are_recorded_and_unknown_ones_refused():
    train, _, _ = tiny_views()
    facts = fssd(pooling="flatten", noise="normalized", step="standardized", n_noise=20).fit(train).describe_fit()
    conv = facts["conventions"]
    assert conv["pooling"].startswith("flatten:") and conv["noise"].startswith("normalized:")
    assert conv["step"].startswith("standardized:") and conv["n_noise"] == 20
    default = fssd(n_noise=20).fit(train).describe_fit()["conventions"]
    assert default["pooling"].startswith("mean:") and default["step"].startswith("sign:")
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        fssd(pooling="max").fit(train)
