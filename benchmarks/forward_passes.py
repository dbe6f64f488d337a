"""Forward passes per split for one run of msp, knn, mahalanobis and vim (issue 28, item 3: "one pass really once").

Runs the pipeline in this process (FashionMNIST vs MNIST, a 2-epoch LeNet; ``--tune none`` by default; no on-disk
feature cache) with ``FeatureView.batches`` and ``map_inputs`` wrapped: every full pass of the backbone over a
split's images — feature extraction or an input-gradient pass — opens it once. It prints, per split, the
feature-extraction passes and (apart) the passes that perturb inputs (ODIN/Mahalanobis ε > 0: one per grid point by
their method), and the wall time. With the union extraction every split is extracted once: the test splits in the
supply stage, the train split at the first detector whose ``fit`` reads it (the others reuse those features), the
tuning subsets slice their parents'.

Printed on this 2-core CPU (``--tune none``; 20,000 train, 4,000 + 4,000 test images): before the train split joined
the union (921e74e) ``fashionmnist (20000 images)`` took 3 feature passes (knn, mahalanobis and vim each extracted
what it missed), after it 1; every test split 1; no input-gradient pass; the four AUROCs identical.

    OODBENCH_DATA=../shared/datasets python benchmarks/forward_passes.py [--tune none|oracle] [--train-limit N]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time

from oodbench.models.features import FeatureView

DETECTORS = ["msp", "knn", "mahalanobis", "vim"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", default="none", choices=["none", "oracle"])
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--test-limit", type=int, default=4000)
    args = parser.parse_args()

    extraction: collections.Counter[str] = collections.Counter()
    perturbation: collections.Counter[str] = collections.Counter()
    real_batches, real_map = FeatureView.batches, FeatureView.map_inputs
    inside_map = []

    def batches(self, desc=None, batch_size=None):
        (perturbation if inside_map else extraction)[f"{self.name} ({len(self)} images)"] += 1
        return real_batches(self, desc, batch_size)

    def map_inputs(self, fn, *aligned, desc=None):
        inside_map.append(1)
        try:
            return real_map(self, fn, *aligned, desc=desc)
        finally:
            inside_map.pop()

    FeatureView.batches, FeatureView.map_inputs = batches, map_inputs  # type: ignore[method-assign]
    from oodbench.pipeline.runner import RunRequest, run
    from oodbench.report.render import render

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as results:
        records = run(
            RunRequest(
                DETECTORS,
                "fashionmnist",
                oods=["mnist"],
                tune=args.tune,
                epochs=2,
                train_limit=args.train_limit,
                test_limit=args.test_limit,
                results=results,
                feature_cache=False,
            )
        )
    wall = time.perf_counter() - start
    print(f"{len(DETECTORS)} detectors ({', '.join(DETECTORS)}), tune {args.tune}: {wall:.1f} s wall")
    print(f"{'split':<32} {'feature passes':>14} {'input-gradient passes':>22}")
    for split in sorted(extraction.keys() | perturbation.keys()):
        print(f"{split:<32} {extraction[split]:>14} {perturbation[split]:>22}")
    print(render(records))


if __name__ == "__main__":
    main()
