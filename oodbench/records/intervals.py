"""Bootstrap intervals of table rows and rank ties from a paired bootstrap (issue 11).

- A row of one record shows that record's ``ci`` (:mod:`oodbench.records.bootstrap`).
- A row that averages several records (seeds, held-out sets) shows a **within-record bootstrap of the mean**:
  each record's test samples are resampled as for its own interval, the metric is averaged over the records
  per resample, and the percentile interval is taken. The records (seeds) themselves are not resampled, so
  this interval covers test-sample variance only, **not seed variance** (the ± std beside it shows that).
- Two rows are compared only on the same samples: the same seeds and, per seed, the same scored samples
  (``ci.samples``). The difference of their ranked metric is bootstrapped with the same resample indices
  applied to both rows' scores (paired); the rows tie when its 95 % interval contains 0.

Both need the per-sample scores saved beside the records. What was computed is kept in
``comparisons.json`` in the results folder (keyed by record id and creation time, so a re-run record is
never matched with an old result): tables render the same when the scores are gone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.core.atomic import atomic_path
from oodbench.records.bootstrap import ERROR_METRICS, LEVEL, RESAMPLES, intervals, percentile_interval, resampled
from oodbench.records.record import Record
from oodbench.records.store import COMPARISONS, record_path, scores_of

#: what a multi-record row's interval covers, for table legends
MEAN_COVERS = (
    "rows over several seeds or sets: bootstrap of the mean, resampling test samples within each record "
    "(seeds are not resampled: covers test-sample variance, not seed variance — the ± std shows that)"
)
GroupCI = Callable[[Sequence[Record]], "dict[str, list[float]] | None"]


def record_intervals(group: Sequence[Record]) -> dict[str, list[float]] | None:
    """The stored intervals of a one-record row (None for several records or a record without ``ci``)."""
    return group[0].ci.get("intervals") if len(group) == 1 else None


def _key(group: Sequence[Record]) -> str:
    return "+".join(sorted(f"{r.record_id}@{r.created}" for r in group))


def _ordered(group: Sequence[Record]) -> list[Record]:
    return sorted(group, key=lambda r: (r.seed, r.ci.get("samples", ""), r.record_id))


def same_samples(a: Sequence[Record], b: Sequence[Record]) -> bool:
    """Whether two rows were scored on the same samples: same seeds, same ``ci.samples`` per seed."""
    sig = [(r.seed, r.ci.get("samples")) for r in _ordered(a)]
    return all(s for _, s in sig) and sig == [(r.seed, r.ci.get("samples")) for r in _ordered(b)]


class Intervals:
    """Row intervals and paired ties for tables: computed from scores when present, else read from
    ``root/comparisons.json``; :meth:`save` writes what this rendering used."""

    def __init__(self, root: str | Path | None = None, files: dict[str, Path] | None = None):
        self.root = Path(root) if root is not None else None
        self.files = dict(files or {})  # record_id → record file (default: the store's path under root)
        path = self.root / COMPARISONS if self.root is not None else None
        saved = json.loads(path.read_text()) if path is not None and path.is_file() else {}
        self.saved: dict[str, dict] = {k: saved.get(k, {}) for k in ("rows", "pairs")}
        self.used: dict[str, dict] = {"rows": {}, "pairs": {}}
        self._memo: dict[tuple, dict[str, np.ndarray] | None] = {}

    def _values(self, r: Record, seed: list[int], only_auroc: bool, n: int) -> dict[str, np.ndarray] | None:
        """``n`` resampled values of each metric of record ``r`` (under its own keys), or None without scores
        (memoised: a row is compared with the row above and the row below)."""
        key = (r.record_id, r.created, tuple(seed), only_auroc, n)
        if key not in self._memo:
            self._memo[key] = self._resample(r, seed, only_auroc, n)
        return self._memo[key]

    def _resample(self, r: Record, seed: list[int], only_auroc: bool, n: int) -> dict[str, np.ndarray] | None:
        path = self.files.get(r.record_id) or (record_path(self.root, r) if self.root is not None else None)
        s = scores_of(path) if path is not None and r.ci else None
        if s is None:
            return None
        if "correct" in s:  # misclassification: correct vs wrong predictions
            ok = s["correct"].astype(bool)
            v = resampled(s["id"][ok], s["id"][~ok], n, seed, only_auroc)
            return {k: v[m] for k, m in ERROR_METRICS.items() if m in v}
        return resampled(s["id"], s["ood"], n, seed, only_auroc)

    def _cached(self, kind: str, key: str, compute: Callable[[], Any]) -> Any:
        """A stored result, else a computed one (kept unless None: scores missing)."""
        found = self.saved[kind].get(key)
        if found is None:
            found = compute()
        if found is not None:
            self.saved[kind][key] = self.used[kind][key] = found
        return found

    def __call__(self, group: Sequence[Record]) -> dict[str, list[float]] | None:
        """The interval of each metric of a row (see the module docstring), or None where unknown."""
        if len(group) == 1:
            return record_intervals(group)
        return self._cached("rows", _key(group), lambda: self._mean_interval(group))

    def _mean_interval(self, group: Sequence[Record]) -> dict[str, list[float]] | None:
        n = max(r.ci.get("resamples", RESAMPLES) for r in group)
        runs = [self._values(r, [r.ci.get("seed", r.seed), j], False, n) for j, r in enumerate(_ordered(group))]
        if any(v is None for v in runs):
            return None
        common = set.intersection(*(set(v) for v in runs))
        return intervals({m: np.mean([v[m] for v in runs], axis=0) for m in sorted(common)})

    def difference(self, a: Sequence[Record], b: Sequence[Record], metric: str) -> list[float] | None:
        """95 % paired-bootstrap interval of row ``a`` − row ``b`` in ``metric`` (None: not comparable)."""
        if not same_samples(a, b):
            return None
        ka, kb = _key(a), _key(b)
        first, second = (a, b) if ka <= kb else (b, a)
        key = f"{min(ka, kb)} vs {max(ka, kb)} {metric}"
        found = self._cached("pairs", key, lambda: self._paired(first, second, metric))
        if found is None or ka <= kb:
            return found
        return [-found[1], -found[0]]

    def _paired(self, a: Sequence[Record], b: Sequence[Record], metric: str) -> list[float] | None:
        only_auroc = ERROR_METRICS.get(metric, metric) == "auroc"
        n = max(r.ci.get("resamples", RESAMPLES) for r in [*a, *b])
        diffs = []
        for j, (ra, rb) in enumerate(zip(_ordered(a), _ordered(b))):
            seed = [ra.ci.get("seed", ra.seed), j]  # the same resample indices for both rows
            va, vb = self._values(ra, seed, only_auroc, n), self._values(rb, seed, only_auroc, n)
            if va is None or vb is None or metric not in va or metric not in vb:
                return None
            diffs.append(va[metric] - vb[metric])
        return percentile_interval(np.mean(diffs, axis=0), LEVEL)

    def tie(self, a: Sequence[Record], b: Sequence[Record], metric: str) -> bool | None:
        """Whether rows ``a`` and ``b`` tie in ``metric`` (paired interval contains 0); None: not compared."""
        found = self.difference(a, b, metric)
        return None if found is None else bool(found[0] <= 0.0 <= found[1])

    def save(self) -> Path | None:
        """Write what was used into ``root/comparisons.json`` (stale entries dropped); None without a root."""
        if self.root is None:
            return None
        path = self.root / COMPARISONS
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            json.dump({"about": __doc__.split("\n\n")[0], "level": LEVEL, **self.used}, f, indent=1, sort_keys=True)
        return path


#: how the leaderboard marks ranks, for its legend
RANK_LEGEND = (
    "`=k`: rows sharing rank k — the paired bootstrap of the ranked metric's difference (AUROC; AUROC-Err for "
    "misclassification) between the row and the first row of rank k, with the same resamples of the same test "
    "samples applied to both, has a 95 % interval containing 0; `k†`: not compared with the rows above "
    "(different test samples, or neither scores nor a stored comparison)"
)


def rank_labels(groups: Sequence[Sequence[Record]], metric: str, ci: Intervals | None) -> list[str]:
    """Rank labels for rows already sorted best first (one section): a row that ties (:meth:`Intervals.tie`)
    with the first row of the current rank shares it (``=k``); otherwise it starts rank k = its position
    (``k``, or ``k†`` when it could not be compared). Comparing with the rank's first row, not only the row
    above, keeps a run of small steps from tying rows that differ."""
    labels: list[str] = []
    lead, lead_at, tied = None, 0, False
    for i, grp in enumerate(groups, 1):
        tie = ci.tie(lead, grp, metric) if ci is not None and lead is not None else None
        if tie:
            if not tied:
                labels[lead_at - 1] = f"={labels[lead_at - 1]}"
            labels.append(f"={lead_at}")
            tied = True
            continue
        mark = "†" if lead is not None and tie is None else ""
        lead, lead_at, tied = grp, i, False
        labels.append(f"{i}{mark}")
    return labels
