"""Stratified percentile bootstrap of the SPEC.md metrics, vectorised over resamples (issue 11).

Each resample draws ``n_id`` of the ID scores and ``n_ood`` of the OOD scores with replacement (stratified:
both sizes kept), from :func:`resample_indices` — seeded, so an interval is reproducible from the record's
``ci.seed`` and ``ci.resamples``. The metrics are those of :mod:`oodbench.records.metrics` (same definitions, ties
accepted or rejected together), computed for a block of resamples at once: the pooled scores are sorted once
into groups of equal value; a resample is a (resamples × groups) count matrix (``bincount``) and every metric
follows from cumulative sums over the groups in descending score order:

- AUROC (Mann–Whitney with midranks): Σ_g c1_g · (N0 − ½(FP_g + FP_{g−1})) / (N1·N0);
- AUPR-In (average precision, ID positive): Σ_g c1_g/N1 · TP_g / (TP_g + FP_g) over groups holding ID;
- AUPR-Out: the same with OOD positive, in ascending score order;
- FPR@TPR (ID positive): FP/N0 at the first group where TP/N1 reaches the rate; FPR95 (OOD+) mirrored;
- detection error: min over ROC points of ½(1 − TPR) + ½·FPR (attained where a run of ID groups ends).

Intervals are percentile intervals (2.5 %, 97.5 % for a 95 % level) over :data:`RESAMPLES` resamples.
Efron & Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13 (percentile interval).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np

RESAMPLES = 1000
LEVEL = 95
CHUNK = 100  # resamples per block at most …
BLOCK_ELEMENTS = 1_000_000  # … and at most this many (resample, sample) pairs per side: a few MB per array
TPR_RATES = {"fpr95": 0.95, "fpr80": 0.80}
#: misclassification metric → (ID-vs-OOD metric computed with ID = correct, OOD = wrong predictions)
ERROR_METRICS = {"auroc_err": "auroc", "aupr_succ": "aupr_in", "aupr_err": "aupr_out"}


def resample_indices(
    n_id: int, n_ood: int, resamples: int = RESAMPLES, seed: int | Sequence[int] = 0, chunk: int = CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (ID indices, OOD indices), each (≤ chunk × n_id) and (≤ chunk × n_ood): stratified resamples
    with replacement. ID and OOD draw from separate seeded streams, so block size does not change them."""
    g_id, g_ood = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        yield g_id.integers(0, n_id, (b, n_id)), g_ood.integers(0, n_ood, (b, n_ood))


def _first_reaching(rate: float, n: int) -> int:
    """The smallest count m with m / n ≥ rate − 1e-12, as :func:`oodbench.records.metrics.fpr_at_tpr` compares."""
    return int(np.searchsorted(np.arange(n + 1) / n, rate - 1e-12, side="left"))


class _Groups:
    """ID and OOD scores as groups of equal value in descending order (computed once per score pair)."""

    def __init__(self, id_scores: np.ndarray, ood_scores: np.ndarray):
        s1 = np.asarray(id_scores, dtype=np.float64).ravel()
        s0 = np.asarray(ood_scores, dtype=np.float64).ravel()
        if s1.size == 0 or s0.size == 0:
            raise ValueError("a bootstrap needs at least one ID and one OOD score")
        self.n1, self.n0 = s1.size, s0.size
        uniq, inv = np.unique(np.r_[s1, s0], return_inverse=True)
        gid = len(uniq) - 1 - inv  # 0 = highest score
        self.u1, self.col1 = np.unique(gid[: self.n1], return_inverse=True)  # groups holding ID, their columns
        self.u0, self.col0 = np.unique(gid[self.n1 :], return_inverse=True)
        # OOD columns at or above (incl) / strictly above (excl) each ID group, +1 for a leading zero column
        self.ood_incl = np.searchsorted(self.u0, self.u1, side="right")
        self.ood_excl = np.searchsorted(self.u0, self.u1, side="left")
        self.ties = bool((self.ood_incl != self.ood_excl).any())
        self.id_above_ood = np.searchsorted(self.u1, self.u0, side="left")  # ID columns strictly above an OOD group


class _Work:
    """Arrays reused by every block of resamples (fresh large temporaries cost page faults: issue 11 timing)."""

    def __init__(self, g: _Groups, b: int):
        w1, w0 = len(g.u1), len(g.u0)
        self.idx1, self.idx0 = np.empty((b, g.n1), np.int64), np.empty((b, g.n0), np.int64)
        self.off1, self.off0 = (np.arange(b) * w1)[:, None], (np.arange(b) * w0)[:, None]
        self.tp_cum, self.fp_cum = np.zeros((b, w1 + 1)), np.zeros((b, w0 + 1))  # column 0 stays 0
        self.c1, self.fp, self.t1, self.s1 = (np.empty((b, w1)) for _ in range(4))
        self.c0, self.t0, self.s0 = (np.empty((b, w0)) for _ in range(3))

    def rows(self, b: int) -> _Work:
        """A view of the first ``b`` rows (the last block may be shorter)."""
        view = object.__new__(_Work)
        view.__dict__.update({k: v[:b] for k, v in self.__dict__.items()})
        return view


def _counts(columns: np.ndarray, idx: np.ndarray, buf: np.ndarray, off: np.ndarray, out: np.ndarray) -> None:
    """``out`` (b × width): how often each column was drawn in each resample row of ``idx``."""
    np.take(columns, idx, out=buf)
    buf += off
    out[...] = np.bincount(buf.ravel(), minlength=out.size).reshape(out.shape)


def _first_at_least(rising: np.ndarray, value: float, scratch: np.ndarray, side: str = "left") -> np.ndarray:
    """Per row of a row-wise non-decreasing, non-negative ``rising``, how many entries are below ``value``
    (``side="right"``: at most ``value``) — one ``searchsorted`` over the rows laid end to end."""
    span = rising[:, -1].max() + value + 1
    offset = np.arange(len(rising)) * span
    flat = np.add(rising, offset[:, None], out=scratch).ravel()
    return np.searchsorted(flat, value + offset, side=side) - np.arange(len(rising)) * rising.shape[1]


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _block(g: _Groups, w: _Work, idx1: np.ndarray, idx0: np.ndarray, only_auroc: bool) -> dict[str, np.ndarray]:
    """Every metric (percent) for one block of resamples."""
    n1, n0 = g.n1, g.n0
    w = w.rows(len(idx1))
    _counts(g.col1, idx1, w.idx1, w.off1, w.c1)
    _counts(g.col0, idx0, w.idx0, w.off0, w.c0)
    fp_cum, fp, t1 = w.fp_cum, w.fp, w.t1
    np.cumsum(w.c0, axis=1, out=fp_cum[:, 1:])  # OOD weight above each OOD column (column 0: none), then all
    np.take(fp_cum, g.ood_incl, axis=1, out=fp)  # OOD weight with score ≥ each ID group's score
    if g.ties:  # tied ID/OOD pairs count one half
        np.take(fp_cum, g.ood_excl, axis=1, out=t1)
        t1 += fp
        t1 *= 0.5
    out = {"auroc": 100.0 * (n0 * n1 - _rowdot(w.c1, t1 if g.ties else fp)) / (n1 * n0)}
    if only_auroc:
        return out
    np.cumsum(w.c1, axis=1, out=w.tp_cum[:, 1:])
    tp = w.tp_cum[:, 1:]  # ID weight with score ≥ each ID group's score
    np.add(tp, fp, out=t1)
    out["aupr_in"] = 100.0 * _rowdot(w.c1, np.divide(tp, t1, out=t1, where=t1 > 0)) / n1
    rows = np.arange(len(tp))
    for name, rate in TPR_RATES.items():
        k = _first_at_least(tp, _first_reaching(rate, n1), w.s1)  # first ID column reaching the rate
        out[name] = 100.0 * fp[rows, k] / n0
        if name == "fpr95":
            out["det_err95"] = 100.0 * (0.5 * (1 - tp[rows, k] / n1) + 0.5 * (fp[rows, k] / n0))
    np.multiply(fp, n1, out=t1)
    np.multiply(tp, n0, out=w.s1)
    t1 -= w.s1
    out["det_err"] = 50.0 + 50.0 * np.minimum(0.0, t1.min(1) / (n0 * n1))
    # OOD positive, ascending scores: OOD weight at or below each OOD group, ID weight at or below it
    h = _first_at_least(fp_cum[:, :-1], n0 - _first_reaching(0.95, n0), w.s0, "right") - 1  # last column ≥ 95 %
    ood_low = np.subtract(n0, fp_cum[:, :-1], out=w.t0)
    id_low = np.take(w.tp_cum, g.id_above_ood, axis=1, out=w.s0)
    np.subtract(n1, id_low, out=id_low)
    out["fpr95_oodpos"] = 100.0 * id_low[rows, h] / n1
    id_low += ood_low
    out["aupr_out"] = 100.0 * _rowdot(w.c0, np.divide(ood_low, id_low, out=id_low, where=id_low > 0)) / n0
    out["tnr95"], out["det_acc"] = 100.0 - out["fpr95"], 100.0 - out["det_err"]
    return out


def resampled(
    id_scores, ood_scores, resamples: int = RESAMPLES, seed: int | Sequence[int] = 0, only_auroc: bool = False
) -> dict[str, np.ndarray]:
    """{metric: (resamples,) values} of every ID-vs-OOD metric (or AUROC only) over stratified resamples.
    ``seed``: an int or a sequence of ints (``numpy.random.SeedSequence`` entropy)."""
    g = _Groups(id_scores, ood_scores)
    chunk = max(1, min(CHUNK, resamples, BLOCK_ELEMENTS // max(g.n1, g.n0)))
    w = _Work(g, chunk)
    indices = resample_indices(g.n1, g.n0, resamples, seed, chunk)
    blocks = [_block(g, w, i1, i0, only_auroc) for i1, i0 in indices]
    return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    """[lo, hi]: the (100 − level)/2 and (100 + level)/2 percentiles (linear interpolation)."""
    lo, hi = np.percentile(values, [(100.0 - level) / 2, (100.0 + level) / 2])
    return [float(lo), float(hi)]


def intervals(values: dict[str, np.ndarray], level: float = LEVEL) -> dict[str, list[float]]:
    return {k: percentile_interval(v, level) for k, v in values.items()}


def describe(seed: int, resamples: int = RESAMPLES, level: float = LEVEL, strata: str = "id/ood") -> dict:
    """What a record's ``ci`` says besides the intervals: enough to recompute them."""
    return {
        "method": "percentile bootstrap",
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "stratified": strata,
    }


def ood_ci(id_scores, ood_scores, seed: int, samples: str = "") -> dict:
    """A record's ``ci`` for an ID-vs-OOD row: every :func:`oodbench.records.metrics.ood_metrics` key."""
    t0 = time.perf_counter()
    found = intervals(resampled(id_scores, ood_scores, RESAMPLES, seed))
    return {**describe(seed), "samples": samples, "intervals": found, "seconds": time.perf_counter() - t0}


def error_ci(scores, correct, seed: int, samples: str = "") -> dict:
    """A record's ``ci`` for a misclassification row (paper 004): correct and wrong predictions resampled
    separately (the number of errors is kept), metrics as :func:`oodbench.records.metrics.misclassification_metrics`."""
    t0 = time.perf_counter()
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    values = resampled(scores[correct], scores[~correct], RESAMPLES, seed)
    found = {k: percentile_interval(values[v]) for k, v in ERROR_METRICS.items()}
    seconds = time.perf_counter() - t0
    return {**describe(seed, strata="correct/wrong"), "samples": samples, "intervals": found, "seconds": seconds}


def fingerprint(*parts) -> str:
    """A short content hash of the scored samples (image sets by their own fingerprint, arrays by bytes):
    two records are paired only when these agree."""
    import hashlib

    h = hashlib.sha256()
    for p in parts:
        h.update(p.fingerprint().encode() if hasattr(p, "fingerprint") else np.ascontiguousarray(p).tobytes())
    return h.hexdigest()[:16]
