"""Every built-in detector end to end through `run()` on real FashionMNIST vs MNIST subsets,
with oracle tuning (every grid, every refit), finite scores and complete records."""

from __future__ import annotations

import math

from conftest import builtin_names

from oodbench.pipeline.runner import RunRequest, run
from oodbench.plugins.manager import registries


def test_every_detector_runs_with_oracle_tuning(tmp_path):
    names = builtin_names("detectors")
    records = run(
        RunRequest(
            detectors=names,
            id="fashionmnist",
            oods=["mnist"],
            epochs=1,
            train_limit=2000,
            test_limit=400,
            n_tune=100,
            tune="oracle",
            results=str(tmp_path),
            train_out="notmnist",
            detector_params={
                "deep-ensemble": {"members": 2},
                "mcdropout": {"passes": 4},
                "gram": {"n_fit": 500, "max_power": 3},
                **{
                    n: {"epochs": 1}
                    for n in (
                        "ae",
                        "ae+",
                        "memae",
                        "memae+",
                        "lamae",
                        "lamae+",
                        "metric-learning",
                        "odm",
                        "outlier-exposure",
                        "logitnorm",
                        "conf-branch",
                        "rotpred",
                        "godin",
                    )
                },
                "vos": {"epochs": 1, "start_epoch": 0},
                "abnormality-module": {"decoder_epochs": 1, "epochs": 1},
                **{n: {"pretrain_epochs": 1, "epochs": 1} for n in ("dec-embedding", "dec-embedding+centre")},
            },
        )
    )
    assert sorted(r.detector for r in records) == sorted(names)
    for r in records:
        assert all(math.isfinite(v) for v in r.metrics.values()), r.detector
        assert r.n_eval == {"id": 300, "ood": 300}
        space = registries().detectors.get(r.detector)().search_space()
        if space:
            assert r.tuning["grid_size"] >= 2 and set(space) <= set(r.params), r.detector
            assert all(r.params[k] in v for k, v in space.items()), r.detector
    by_name = {r.detector: r for r in records}
    assert len(by_name["deep-ensemble"].extra_models) == 1  # member 2 (member 1 is the run's backbone)
    assert {m["options"]["dropout"] for m in by_name["mcdropout"].extra_models} == {
        0.01,
        0.02,
        0.05,
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
    }
    assert "ensemble" in by_name["mahalanobis"].fit and "ensemble" in by_name["fssd"].fit
    assert by_name["odm"].config["train_out"]["name"] == "notmnist"  # training outliers reach the detectors
    assert by_name["outlier-exposure"].fit["fine_tuned"]["outliers"]["name"] == "notmnist"
