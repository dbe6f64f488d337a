"""``full-spectrum``: OpenOOD v1.5's full-spectrum OOD detection (Zhang et al. 2023, "OpenOOD v1.5", §3; Yang et
al. 2022, "Full-Spectrum Out-of-Distribution Detection"): covariate-shifted ID images count as in-distribution.

The ID side that is scored is the clean ID test set plus covariate-shifted copies of it (csID), built as
CIFAR-10-C is: the ID test set under each chosen corruption type (``--corruption``, default every implemented type)
at each severity (``--severity``, default 3). Each copy is sample-for-sample a corrupted copy of the clean test set,
so the evaluated ID samples are the clean evaluation split and, in every copy, the same positions
(:meth:`Plan.id_scored_eval`); the copies of ID tuning samples are never evaluated, and the leakage check sees the
copies through their provenance (each copy keeps its source image's). Tuning stays on clean ID and clean OOD data.
Each record reports the ID accuracy on clean (``id_acc``) and on shifted ID (``id_acc_shifted``, every csID copy).
csID from images the user has (ImageNet-V2/-R folders) is not implemented yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from oodbench.core.errors import UnknownNameError, UsageError
from oodbench.data import corruptions
from oodbench.data.streams import refuse_streamed
from oodbench.pipeline.protocols.base import LoadOOD, Plan, Protocol, no_outs

DEFAULT_SEVERITIES = (3,)


class FullSpectrum(Protocol):
    name = "full-spectrum"

    def check(self, req) -> None:
        no_outs(req, "full-spectrum scores ID ∪ csID against OOD sets")
        for kind in req.corruptions or []:
            if kind not in corruptions.CORRUPTIONS:
                raise UnknownNameError("corruption", kind, corruptions.names())
        bad = [s for s in req.severities or [] if s not in range(1, 6)]
        if bad:
            raise UsageError(f"--severity takes 1..5, got {bad[0]}")

    def design(self, req, train, test, load_ood: LoadOOD, oods: Sequence) -> Plan:
        refuse_streamed(test.images, f"full-spectrum csID copies of {test.name}")
        kinds = list(req.corruptions or corruptions.names())
        sevs = list(req.severities or DEFAULT_SEVERITIES)
        shifted = [corruptions.corrupt(test, k, s, req.seed) for k in kinds for s in sevs]
        scored = test.concat(shifted, name=f"{test.name}+csID", note=f"ID ∪ csID: {len(shifted)} corrupted copies")
        return Plan(
            self.name,
            req.id,
            train,
            test,
            self.ood_targets(req, oods, train.shape, load_ood),
            id_scored=scored,
            config={"csid": {"corruptions": kinds, "severities": sevs}, "tuning": "clean data"},
        )
