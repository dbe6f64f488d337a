"""Issue 5's trained detectors (papers 000, 001, 004): losses by hand, the trainer's hooks, training on
small real subsets lowers the loss and gives finite scores, and the protocol plumbing for
training-time outliers and contamination."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oodbench_builtins.detectors.dec_embedding import DECNet, JointTask, target_distribution
from oodbench_builtins.detectors.metric_learning import ContrastiveTask
from oodbench_builtins.detectors.outlier_exposure import OutlierExposureTask
from torch import nn

from oodbench.cli.main import main
from oodbench.data.imageset import ImageSet, LoadContext
from oodbench.models.checkpoints import ModelSpec
from oodbench.models.features import FeatureView
from oodbench.models.provider import ModelProvider
from oodbench.models.train import TrainConfig, TrainTask, fit_model
from oodbench.plugins.detector import Supplies
from oodbench.plugins.manager import registries


def test_contrastive_loss_by_hand_and_no_outlier_pairs():
    """Paper 001 eq. 1/2: same-class ½D², different ½max(0, m−D)², outlier–outlier pairs not formed."""
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]]).view(2, 1, 1, 2)  # ID, class 0 and class 0: D = 5
    aux = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(2, 1, 1, 2)  # two identical outliers
    y = torch.tensor([0, 0])
    task = ContrastiveTask(margin=2.0)
    flat = nn.Flatten()
    assert task.loss(flat, x, y).item() == pytest.approx(0.5 * 25)
    # pairs: (a,b) same 12.5; (a,o) D=1 → ½·1²; (b,o) D=√18 > m → 0; twice each; (o,o) excluded → 5 pairs
    assert task.loss(flat, x, y, aux=aux).item() == pytest.approx((12.5 + 0.5 + 0.5 + 0 + 0) / 5)
    # different classes closer than the margin are pushed apart
    assert task.loss(flat, x[:1].repeat(2, 1, 1, 1), torch.tensor([0, 1])).item() == pytest.approx(0.5 * 4)


def test_outlier_exposure_loss_is_ce_plus_uniform_cross_entropy():
    model = nn.Flatten()
    x = torch.tensor([[2.0, 0.0]]).view(1, 1, 1, 2)
    aux = torch.tensor([[1.0, 1.0]]).view(1, 1, 1, 2)  # uniform posterior: −mean log p = log 2
    task = OutlierExposureTask(None, 1, weight=0.5)
    ce = -torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]
    assert task.loss(model, x, torch.tensor([0]), aux=aux).item() == pytest.approx(
        ce.item() + 0.5 * np.log(2), rel=1e-5
    )


def test_dec_target_distribution_by_hand():
    q = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
    f = q.sum(0)  # 1.5, 0.5
    w = q**2 / f
    assert torch.allclose(target_distribution(q), w / w.sum(1, keepdim=True))
    assert torch.allclose(target_distribution(q).sum(1), torch.ones(2))


class _Recorder(TrainTask):
    """A task that records what the trainer hands it."""

    uses_index = True
    refresh_every = 3

    def __init__(self, aux: ImageSet):
        self.aux, self.aux_batch_size = aux, 5
        self.refreshes, self.indices, self.aux_shapes = 0, [], []

    def refresh(self, model, images, labels):
        self.refreshes += 1

    def loss(self, model, x, y, index, aux):
        self.indices.append(index.clone())
        self.aux_shapes.append(tuple(aux.shape))
        return model(x).pow(2).mean()


def test_trainer_hooks_index_aux_and_refresh():
    data = ImageSet(torch.randint(0, 255, (40, 1, 4, 4), dtype=torch.uint8), torch.zeros(40, dtype=torch.long), "toy")
    aux = ImageSet(torch.zeros(7, 1, 4, 4, dtype=torch.uint8), torch.full((7,), -1), "aux")
    task = _Recorder(aux)
    fit_model(
        nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), data, TrainConfig(epochs=2, batch_size=8), "cpu", task=task
    )
    steps = 2 * 5
    assert task.refreshes == len(range(0, steps, 3))  # before steps 0, 3, 6, 9
    assert sorted(torch.cat(task.indices[:5]).tolist()) == list(range(40))  # each epoch visits every index once
    assert task.aux_shapes == [(5, 1, 4, 4)] * steps


@pytest.fixture(scope="module")
def mnist_views(data_root):
    """Real MNIST: 1,500 training images of classes 2, 6, 7; test sets; seen outliers from 0, 3, 4, 8."""
    reg = registries()
    ctx = LoadContext(data_root)
    full = reg.datasets.get("mnist").load("train", ctx).head(5000)
    train = full.with_classes([2, 6, 7])
    test = reg.datasets.get("mnist").load("test", ctx).head(2000)
    factory = reg.backbones.get("lenet")
    spec = ModelSpec("lenet", "mnist", train.shape, 3, TrainConfig(epochs=1), classes=(2, 6, 7), train_limit=5000)
    torch.manual_seed(0)
    model = factory.build(train.shape, 3)
    fit_model(model, train, TrainConfig(epochs=2), "cpu")
    supplies = Supplies(ModelProvider(spec, factory, train, None, "cpu"), full.with_classes([0, 3, 4, 8]))
    views = [
        FeatureView(d, model.eval(), "cpu", 256)
        for d in (train, test.with_classes([2, 6, 7]), test.with_classes([5, 9, 1]))
    ]
    return views, supplies


@pytest.mark.parametrize(
    "name, params",
    [
        ("metric-learning", {"epochs": 3}),
        ("odm", {"epochs": 3}),
        ("outlier-exposure", {"epochs": 2}),
        ("abnormality-module", {"decoder_epochs": 3, "epochs": 3}),
        ("dec-embedding", {"pretrain_epochs": 2, "epochs": 3, "update_interval": 5}),
    ],
)
def test_training_lowers_the_loss_and_scores_are_finite(mnist_views, name, params, tmp_path, monkeypatch):
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path))
    (train, id_test, novel), supplies = mnist_views
    det = registries().detectors.get(name)(**params).fit(train, supplies)
    fit = det.describe_fit()
    logs = [v for v in _walk(fit) if isinstance(v, dict) and v.get("epoch_loss")]
    assert logs, fit
    for log in logs:
        assert log["epoch_loss"][-1] < log["epoch_loss"][0], (name, log["epoch_loss"])
    s_id, s_new = det.score_samples(id_test), det.score_samples(novel)
    assert np.isfinite(s_id).all() and np.isfinite(s_new).all()
    assert s_id.shape == (len(id_test),)
    if det.needs.embedding:
        assert det.embed(id_test).shape[0] == len(id_test)


def _walk(obj):
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _walk(v)


def test_odm_detects_novelty_better_than_plain_metric_learning(mnist_views, tmp_path, monkeypatch):
    """Pushing seen outliers (0, 3, 4, 8) away moves unseen novel digits (5, 9, 1) away too: paper 001
    Table 3's ODM > ML on novelty, here with the same 5-epoch budget on 1,100 training images."""
    from oodbench.records.metrics import auroc

    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path))
    (train, id_test, novel), supplies = mnist_views
    result = {}
    for name in ("metric-learning", "odm"):
        det = registries().detectors.get(name)(epochs=5, batch_size=32).fit(train, supplies)
        result[name] = auroc(det.score_samples(id_test), det.score_samples(novel))
    assert result["odm"] > result["metric-learning"] + 3, result


def test_dec_update_drops_the_largest_reconstruction_errors(mnist_views):
    train = mnist_views[0][0].imageset.head(200)
    net = DECNet(train.shape, 3)
    task = JointTask(0.1, 0.1, update_interval=10, drop=10.0, num_classes=3)
    task.refresh(net, train.images, train.labels)
    _, err = net.embed_all(train.images)
    assert int(task.keep.sum()) == 180
    assert err[~task.keep].min() >= err[task.keep].max()
    assert torch.allclose(task.p[task.keep].sum(1), torch.ones(180)) and (task.p[~task.keep] == 0).all()


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


NOVELTY = [
    "--in",
    "mnist",
    "--protocol",
    "novelty",
    "--epochs",
    "1",
    "--train-limit",
    "3000",
    "--test-limit",
    "600",
    "--n-tune",
    "50",
]


def test_odm_takes_the_seen_partition_and_plots_its_embedding(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    res = tmp_path / "res"
    code, out, err = run_cli(
        capsys,
        "run",
        "-d",
        "odm",
        "-d",
        "msp",
        *NOVELTY,
        "--holdout",
        "in:2,6,7/seen:0,3,4,8/unseen:5,9,1",
        "--out",
        "gaussian",
        "--param",
        "odm.epochs=1",
        "--metrics",
        "fpr95,det_err95,auroc",
        "--results",
        str(res),
    )
    assert code == 0, err
    assert "DetErr95" in out and "mnist{5,9,1}" in out
    import json

    rec = json.loads(next(p for p in res.rglob("odm__*.json")).read_text())
    assert rec["config"]["train_out"]["name"] == "mnist{0,3,4,8}" and rec["config"]["train_out"]["n"] > 0
    assert rec["fit"]["model"]["epochs"] == 1
    code, out, err = run_cli(capsys, "plot", "embedding", "--results", str(res), "-o", str(tmp_path / "e.png"))
    assert code == 0, err
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-d", "odm", "--holdout", "0,1", "--out", "gaussian"], "'odm' trains with outliers"),
        (["-d", "outlier-exposure", "--holdout", "0,1"], "kmnist"),
        (["-d", "msp", "--holdout", "0,1", "--contaminate", "0.1"], "--contaminate-with"),
        (
            [
                "-d",
                "msp",
                "--holdout",
                "0,1",
                "--out",
                "notmnist",
                "--contaminate",
                "0.1",
                "--contaminate-with",
                "notmnist",
            ],
            "no train split and is also an --out set",
        ),
        (["-d", "msp", "--holdout", "0,1", "--contaminate", "1.5", "--contaminate-with", "gaussian"], "rate in [0, 1)"),
        (["-d", "msp", "--holdout", "in:2,6,7/seen:0,3/unseen:5", "--train-out", "gaussian"], "use one"),
    ],
)
def test_training_outlier_errors_are_one_line(capsys, args, message):
    code, out, err = run_cli(capsys, "run", *NOVELTY, *args)
    assert code == 2, (out, err)
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_contamination_reaches_training_and_is_recorded(capsys, tmp_path):
    res = tmp_path / "res"
    code, out, err = run_cli(
        capsys,
        "run",
        "-d",
        "msp",
        *NOVELTY,
        "--holdout",
        "0,1",
        "--contaminate",
        "0.2",
        "--contaminate-with",
        "notmnist",
        "--results",
        str(res),
    )
    assert code == 0, err
    import json

    rec = json.loads(next(res.rglob("*.json")).read_text())
    assert rec["config"]["contaminate"] == {"rate": 0.2, "with": "notmnist"}
    note = next(n for n in rec["data"]["id_train"] if n.startswith("contaminated"))
    assert "notmnist" in note and "20%" in note
    added = int(note.split()[1])  # ≈ 0.25 × the ~2,370 images of classes 2–9 among 3,000
    assert 500 < added < 700, note
    assert rec["model"]["source"] == "trained"  # not the clean run's cached checkpoint


def test_runs_differing_in_training_outliers_are_never_averaged():
    from oodbench.records.record import Record
    from oodbench.report.tables import over_seeds, seed_table

    def rec(seed, out, auroc):
        return Record(
            detector="odm",
            backbone="lenet",
            checkpoint="c",
            id="mnist",
            ood="gaussian",
            protocol="anomaly",
            tune="none",
            seed=seed,
            metrics={"auroc": auroc},
            config={"detector_params": {}, **({"train_out": {"name": out, "n": 10}} if out else {})},
        )

    records = [rec(0, "notmnist", 90.0), rec(1, "notmnist", 92.0), rec(0, "omniglot", 70.0)]
    groups = {key["variant"]: mean["auroc"] for key, _, mean, _ in over_seeds(records, ["auroc"])}
    assert groups == {" [train-out notmnist]": 91.0, " [train-out omniglot]": 70.0}
    table = seed_table(records, columns=["auroc"])
    assert "odm [train-out notmnist]" in table and "91.0 ± 1.0" in table and "70.0 ± 0.0" in table


def test_embedding_projection_pca_and_tsne():
    from oodbench.report.plots import project_2d

    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(0, 1, (30, 5)), rng.normal(8, 1, (30, 5))]).astype(np.float32)
    for method in ("pca", "tsne"):
        flat = project_2d(pts, method)
        assert flat.shape == (60, 2) and np.isfinite(flat).all()
        # the two blobs stay apart in 2-D: every point is nearer its own blob's centre
        a, b = flat[:30].mean(0), flat[30:].mean(0)
        near_a = np.linalg.norm(flat - a, axis=1) < np.linalg.norm(flat - b, axis=1)
        assert near_a[:30].all() and not near_a[30:].any(), method
    assert project_2d(pts[:, :1]).shape == (60, 2)  # 1-D embeddings get a zero second axis
    assert project_2d(pts[:10], "tsne").shape == (10, 2)  # few points: perplexity shrinks below n
