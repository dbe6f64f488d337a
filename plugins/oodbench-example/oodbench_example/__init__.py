"""A complete third-party oodbench plugin: the *logit margin* detector and the *stripes* dataset.

score(x) = z_(1) − z_(2), the gap between the largest and second-largest logit: a confident
prediction has a wide margin. ``example-stripes`` (:mod:`oodbench_example.stripes`) is a dataset
generated in code. Copy this package to start your own plugin: change the detector and the
dataset, keep the ``oodbench`` entry point in ``pyproject.toml``. docs/plugins.md is the guide.
"""

from __future__ import annotations

import numpy as np

from oodbench import Detector, FeatureView, hookimpl

from .stripes import Stripes


class LogitMargin(Detector):
    name = "example-margin"
    description = "top-1 minus top-2 logit (example third-party plugin)"

    def score_samples(self, data: FeatureView) -> np.ndarray:
        top2 = data.logits().topk(2, dim=1).values
        return (top2[:, 0] - top2[:, 1]).numpy()


@hookimpl
def oodbench_register_detectors():
    return [LogitMargin]  # detectors: classes


@hookimpl
def oodbench_register_datasets():
    return [Stripes()]  # datasets (and backbones): instances
