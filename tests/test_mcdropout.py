"""MC Dropout as paper 003 defines it: the statistics by hand, the grid of the paper's two statistics,
the official code's dropout placement as a recorded LeNet variant, and the softmax variance as a named
variant selected through ``--param``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from oodbench_builtins.backbones.lenet import LeNetFactory
from oodbench_builtins.detectors.mcdropout import DROPOUT_GRID, STATISTICS, MCDropout, check_statistic, mc_statistics
from torch import nn

from oodbench.cli.main import main
from oodbench.core.errors import UsageError
from oodbench.plugins.testing import tiny_run


def reference(logits: np.ndarray) -> np.ndarray:
    """The three statistics one sample at a time, written out plainly (T×N×K logits → N×3)."""
    t, n, k = logits.shape
    out = np.zeros((n, 3))
    for i in range(n):
        z = logits[:, i, :]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        y_hat = int(np.argmax(z.mean(0)))  # the predicted class: argmax of the mean logits
        out[i, 0] = p.mean(0).max()
        out[i, 1] = -np.mean((z[:, y_hat] - z[:, y_hat].mean()) ** 2)
        out[i, 2] = -np.mean(((p - p.mean(0)) ** 2).mean(0))
    return out


def test_statistics_by_hand():
    # one sample, two passes: the mean logits (0, 0.5, 0) predict class 1, the mean softmax predicts class 0
    z = torch.tensor([[[10.0, 0.0, 0.0]], [[-10.0, 1.0, 0.0]]])
    s = mc_statistics(z)
    p1, p2 = torch.softmax(z[0, 0], 0), torch.softmax(z[1, 0], 0)
    assert s[0, 0].item() == pytest.approx(((p1 + p2) / 2).max().item())
    assert s[0, 1].item() == pytest.approx(-0.25)  # class 1's logits 0 and 1: population variance ¼ (class 0's: 100)
    assert s[0, 2].item() == pytest.approx(-((p1 - p2) ** 2 / 4).mean().item())
    g = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(7, 5, 4, generator=g)
    assert np.allclose(mc_statistics(z).numpy(), reference(z.numpy()), atol=1e-6)


def test_grid_is_the_papers_two_statistics_and_softmax_variance_is_named():
    space = MCDropout().search_space()
    assert set(space) == {"dropout", "statistic"}
    assert space["dropout"] == DROPOUT_GRID == [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5]  # SPEC.md's rates
    assert sorted(space["statistic"]) == ["logit-variance", "mean"]
    assert "softmax-variance" in STATISTICS and "softmax-variance" not in space["statistic"]
    for name in STATISTICS:
        check_statistic(name)
    with pytest.raises(UsageError, match="'logit-variance'.*'softmax-variance'"):
        check_statistic("variance")  # the retired, ambiguous name
    with pytest.raises(UsageError, match="must be one of"):
        check_statistic("std")


def dropout_fed_weight_layers(backbone) -> int:
    """How many conv/linear layers take a dropout output (or a flattened view of one) as their input
    (tensors are kept alive so that no freed storage is reused and mistaken for a dropout output)."""
    dropped, fed = [], []
    mods = list(backbone.net.modules())
    hooks = [m.register_forward_hook(lambda m, a, o: dropped.append(o)) for m in backbone.dropout_modules()]
    hooks += [
        m.register_forward_pre_hook(lambda m, a: fed.append(a[0]))
        for m in mods
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    backbone.eval()
    for d in backbone.dropout_modules():
        d.train()
    with torch.no_grad():
        backbone(torch.rand(2, 1, 28, 28))
    backbone.eval()
    for h in hooks:
        h.remove()
    ptrs = {t.data_ptr() for t in dropped}
    return sum(t.data_ptr() in ptrs for t in fed)


def test_official_placement_is_a_recorded_lenet_variant():
    """Dropout on the input of every weight layer (paper 003's dropout LeNet) versus after the conv blocks."""
    factory = LeNetFactory()
    old = factory.build((1, 28, 28), 10, dropout=0.3)
    new = factory.build((1, 28, 28), 10, dropout=0.3, dropout_at="layer-inputs")
    assert old.arch == "lenet(dropout=0.3)" and new.arch == "lenet(dropout=0.3, at=layer-inputs)"
    assert dropout_fed_weight_layers(new) == 5  # conv1, conv2, fc1, fc2, fc3: every weight layer
    assert dropout_fed_weight_layers(old) == 2  # conv2 and fc1 (after the two conv blocks) only
    assert old.state_dict().keys() == new.state_dict().keys()  # dropout holds no weights
    plain = factory.build((1, 28, 28), 10)
    assert plain.arch == "lenet" and all(m.p == 0 for m in plain.dropout_modules())
    with pytest.raises(ValueError, match="dropout_at"):
        factory.build((1, 28, 28), 10, dropout=0.3, dropout_at="everywhere")


def test_scores_match_passes_run_by_hand_and_the_model_is_the_variant():
    """Each statistic's scores equal the reference computed from T passes run here with the same seed."""
    (train, id_test, _), supplies = tiny_run(n_train=128, n_test=40)
    det = MCDropout(dropout=0.3, passes=6, statistic="softmax-variance").fit(train, supplies)
    assert supplies.models.records[-1]["options"] == {"dropout": 0.3, "dropout_at": "layer-inputs"}
    assert det.describe_fit()["dropout_model"]["arch"] == "tiny(dropout=0.3, at=layer-inputs)"
    model = det.model_
    torch.manual_seed(det.seed)
    logits = []
    for x in id_test.batches():
        model.eval()
        for d in model.dropout_modules():
            d.train()
        with torch.no_grad():
            logits.append(model(x.repeat(6, 1, 1, 1)).view(6, len(x), -1))
    model.eval()
    ref = reference(torch.cat(logits, dim=1).numpy())
    for j, name in enumerate(STATISTICS):
        got = det.tuned_copy(statistic=name).score_samples(id_test)
        assert np.allclose(got, ref[:, j], rtol=1e-4, atol=1e-6), name
    assert not np.allclose(ref[:, 1], ref[:, 2])  # the two variances are different statistics
    old = MCDropout(dropout=0.3, passes=6, dropout_at="conv-blocks").fit(train, supplies)
    assert old.model_key_ != det.model_key_  # the old placement's checkpoint is never reused for the new


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


SMALL = ["--in", "fashionmnist", "--out", "mnist", "--epochs", "1", "--train-limit", "600", "--test-limit", "200"]


def test_softmax_variance_through_param_and_variance_is_a_one_line_error(capsys, tmp_path):
    args = ["run", "-d", "mcdropout", *SMALL, "--tune", "none", "--results", str(tmp_path), "--format", "json"]
    params = ["--param", "mcdropout.dropout=0.3", "--param", "mcdropout.passes=4"]
    code, out, err = run_cli(capsys, *args, *params, "--param", "mcdropout.statistic=softmax-variance")
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["params"]["statistic"] == "softmax-variance" and record["params"]["dropout_at"] == "layer-inputs"
    assert record["fit"]["dropout_model"]["arch"] == "lenet(dropout=0.3, at=layer-inputs)"
    assert [m["options"] for m in record["extra_models"]] == [{"dropout": 0.3, "dropout_at": "layer-inputs"}]
    assert math.isfinite(record["metrics"]["auroc"])
    code, _, err = run_cli(capsys, *args, *params, "--param", "mcdropout.statistic=variance")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'logit-variance'" in err and "'softmax-variance'" in err and "Traceback" not in err
