"""``oodbench.evaluate``: every detector on a model you already have, from Python (docs/api.md).

What OpenOOD's ``Evaluator(net, id_name=…, postprocessor_name=…)`` does, through oodbench's one pipeline: the
model is a :class:`~oodbench.models.foreign.BroughtModel` (an ``nn.Module`` you built, a ``.pt2`` or
TorchScript file, or ``"module:callable"``), features are extracted once per split for every detector, and the
result is the typed records ``oodbench run`` writes. Errors are oodbench's own exceptions
(:class:`~oodbench.core.errors.UsageError` for bad input), never ``sys.exit``; progress is rich's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from oodbench.core.errors import OodbenchError
from oodbench.pipeline.request import RunRequest
from oodbench.pipeline.runner import RunOutcome, run
from oodbench.records.metrics import METRIC_LABELS
from oodbench.records.record import Record
from oodbench.report.render import render

#: the columns of :meth:`Evaluation.rows` besides the metrics
ROW_KEYS = ("detector", "backbone", "id", "ood", "protocol", "tune", "seed")


@dataclass
class Evaluation:
    """The records of one :func:`evaluate` call, as rows, a table or a DataFrame."""

    records: list[Record]
    failures: list[Any] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per record: :data:`ROW_KEYS` and every metric (percent, SPEC.md)."""
        return [{**{k: getattr(r, k) for k in ROW_KEYS}, **r.metrics} for r in self.records]

    def table(self, fmt: str = "github") -> str:
        """The table ``oodbench run`` prints (``github``, ``markdown``, ``latex``, ``html`` or ``json``)."""
        return render(self.records, fmt)

    def to_pandas(self):
        """:meth:`rows` as a ``pandas.DataFrame`` (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise OodbenchError(
                "Evaluation.to_pandas needs pandas: pip install pandas (rows() needs nothing)"
            ) from None
        return pd.DataFrame(self.rows()).rename(columns=METRIC_LABELS)

    def _repr_markdown_(self) -> str:  # a notebook shows the table
        return self.table("github")

    def __repr__(self) -> str:
        return f"Evaluation({len(self.records)} records, {len(self.failures)} failed)\n{self.table()}"


def evaluate(
    model: Any,
    id: str,
    ood: Sequence[str] = (),
    detectors: Sequence[str] = ("msp",),
    *,
    protocol: str = "anomaly",
    tune: str = "none",
    layers: Sequence[str] | None = None,
    head: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    store: bool = True,
    **options: Any,
) -> Evaluation:
    """Evaluate ``detectors`` on ``model`` with ``id`` as in-distribution and each ``ood`` set as OOD.

    Args:
        model: an ``nn.Module`` (``forward(x) -> logits`` on ``[0, 1]`` images), a ``.pt2``/TorchScript path,
            or ``"module:callable"``.
        id, ood: registered dataset names (``oodbench list datasets``), e.g. ``"cifar10-jpeg"``, ``["svhn"]``.
        detectors: post-hoc detector names (``oodbench list detectors``).
        protocol, tune: as ``oodbench run --protocol/--tune`` (``none | oracle | heldout``).
        layers: module paths a layer-wise detector reads (default: the children that output feature maps).
        head: the classifier head's module path (default: the last module whose output is the logits).
        mean, std: per-channel normalisation of ``[0, 1]`` input (default: none, for models that normalise inside).
        store: write records under the results folder, as the CLI does (``False``: keep them in memory only).
        options: any other :class:`~oodbench.pipeline.request.RunRequest` field (``train_limit``, ``test_limit``,
            ``n_tune``, ``seed``, ``device``, ``detector_params``, ``results`` …).
    """
    req = RunRequest(
        detectors=list(detectors),
        id=id,
        oods=list(ood),
        protocol=protocol,
        tune=tune,
        model=model,
        model_layers=list(layers) if layers is not None else None,
        model_head=head,
        input_mean=list(mean) if mean is not None else None,
        input_std=list(std) if std is not None else None,
        **options,
    )
    outcome: RunOutcome = run(req, store=store)
    return Evaluation(outcome.records, outcome.failures)
