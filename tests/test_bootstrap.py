"""Bootstrap intervals (issue 11): agreement with a slow reference built on oodbench.records.metrics, known answers,
stratification, determinism, paired rank ties, persistence without scores, and ``oodbench run --ci``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from oodbench.cli.main import main
from oodbench.records import bootstrap as B
from oodbench.records import metrics as M
from oodbench.records.intervals import Intervals, rank_labels, same_samples
from oodbench.records.record import Record
from oodbench.records.store import COMPARISONS, record_files, write_record


def scores_with_ties(n_id: int, n_ood: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)  # rounded to 0.1: many ID/OOD ties and ties within each side
    return np.round(g.normal(1.0, 1.0, n_id), 1), np.round(g.normal(0.0, 1.0, n_ood), 1)


@pytest.mark.parametrize("tied", [True, False])
def test_every_metric_matches_a_slow_loop_over_metrics_py(tied):
    id_s, ood_s = scores_with_ties(300, 200, 1)
    if not tied:
        id_s, ood_s = id_s + np.linspace(0, 1e-3, 300), ood_s - np.linspace(0, 1e-3, 200)
    fast = B.resampled(id_s, ood_s, 150, seed=7)
    ref: dict[str, list[float]] = {k: [] for k in fast}
    for i1, i0 in B.resample_indices(300, 200, 150, seed=7):  # the same indices, one sklearn call at a time
        for r1, r0 in zip(i1, i0):
            for k, v in M.ood_metrics(id_s[r1], ood_s[r0]).items():
                ref[k].append(v)
    assert set(fast) == set(M.ood_metrics(id_s, ood_s))
    for k in fast:
        assert len(fast[k]) == 150
        np.testing.assert_allclose(fast[k], ref[k], rtol=0, atol=1e-9, err_msg=k)
    np.testing.assert_array_equal(B.resampled(id_s, ood_s, 150, seed=7, only_auroc=True)["auroc"], fast["auroc"])


def test_misclassification_metrics_match_the_slow_loop():
    g = np.random.default_rng(2)
    scores = np.round(g.normal(0, 1, 250), 1)
    correct = scores + g.normal(0, 1, 250) > -0.8
    right, wrong = scores[correct], scores[~correct]
    fast = B.resampled(right, wrong, 80, seed=3)
    blocks = B.resample_indices(len(right), len(wrong), 80, 3)
    pairs = [(r1, r0) for i1, i0 in blocks for r1, r0 in zip(i1, i0)]
    for b, (r1, r0) in enumerate(pairs):
        ref = M.misclassification_metrics(np.r_[right[r1], wrong[r0]], np.r_[np.ones(len(r1)), np.zeros(len(r0))])
        for name, ours in B.ERROR_METRICS.items():
            assert fast[ours][b] == pytest.approx(ref[name], abs=1e-9), name
    ci = B.error_ci(scores, correct, seed=3)
    assert set(ci["intervals"]) == set(B.ERROR_METRICS) and ci["stratified"] == "correct/wrong"


def test_perfectly_separated_scores_have_degenerate_intervals():
    ci = B.ood_ci(np.linspace(5, 6, 400), np.linspace(0, 1, 300), seed=0)["intervals"]
    assert ci["auroc"] == ci["aupr_in"] == ci["aupr_out"] == ci["tnr95"] == ci["det_acc"] == [100.0, 100.0]
    assert ci["fpr95"] == ci["fpr80"] == ci["fpr95_oodpos"] == ci["det_err"] == [0.0, 0.0]


def test_null_case_matches_the_exact_mann_whitney_variance():
    """Identical distributions: Var(AUROC) = (n1 + n0 + 1) / (12·n1·n0) (Mann–Whitney U under H0)."""
    n1, n0 = 1500, 1200
    g = np.random.default_rng(5)
    values = B.resampled(g.normal(size=n1), g.normal(size=n0), 1000, seed=0, only_auroc=True)["auroc"]
    exact_sd = 100 * np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
    assert np.std(values) == pytest.approx(exact_sd, rel=0.1)
    lo, hi = B.percentile_interval(values)
    assert lo < 50.0 < hi and (hi - lo) == pytest.approx(2 * 1.96 * exact_sd, rel=0.12)


def test_intervals_cover_a_known_auroc_about_95_percent_of_the_time():
    """N(1, 1) vs N(0, 1): AUROC = Φ(1/√2). 200 independent data sets, each with its own interval."""
    truth = 100 * norm.cdf(1 / np.sqrt(2))
    g = np.random.default_rng(11)
    hits = 0
    for i in range(200):
        values = B.resampled(g.normal(1, 1, 120), g.normal(0, 1, 100), 400, seed=i, only_auroc=True)["auroc"]
        lo, hi = B.percentile_interval(values)
        hits += lo <= truth <= hi
    assert 0.88 <= hits / 200 <= 0.99, hits


def test_resampling_is_stratified_seeded_and_independent_of_block_size():
    blocks = list(B.resample_indices(30, 7, 250, seed=4))
    assert [b[0].shape for b in blocks] == [(100, 30), (100, 30), (50, 30)]
    assert all(b[1].shape[1] == 7 and b[1].max() < 7 and b[0].max() < 30 and b[0].min() >= 0 for b in blocks)
    small = list(B.resample_indices(30, 7, 250, seed=4, chunk=7))
    for side in (0, 1):
        np.testing.assert_array_equal(
            np.concatenate([b[side] for b in blocks]), np.concatenate([b[side] for b in small])
        )
    # stratified: 2 ID among 500 scores — a pooled resample would often draw none; every resample keeps both
    values = B.resampled([9.0, 8.0], np.zeros(498), 300, seed=1)
    assert np.all(values["auroc"] == 100.0)


def test_intervals_are_deterministic_and_depend_on_the_seed():
    id_s, ood_s = scores_with_ties(400, 300, 3)
    a, b, c = B.ood_ci(id_s, ood_s, seed=0), B.ood_ci(id_s, ood_s, seed=0), B.ood_ci(id_s, ood_s, seed=1)
    assert a["intervals"] == b["intervals"] and a["intervals"] != c["intervals"]
    assert (a["resamples"], a["level"], a["seed"], a["stratified"]) == (1000, 95, 0, "id/ood")


# -- rows, paired ties, persistence -------------------------------------------------------------------------


def stored(root: Path, detector: str, id_s: np.ndarray, ood_s: np.ndarray, seed: int = 0, samples: str = "S") -> Record:
    """A record with its scores written under ``root`` as the evaluate stage writes them."""
    id_s, ood_s = id_s.astype(np.float32), ood_s.astype(np.float32)
    record = Record(
        detector=detector,
        backbone="lenet",
        checkpoint="c",
        id="fashionmnist",
        ood="mnist",
        protocol="anomaly",
        tune="none",
        seed=seed,
        config={},
        metrics={**M.ood_metrics(id_s, ood_s), "id_acc": 90.0},
        ci=B.ood_ci(id_s, ood_s, seed, samples=f"{samples}{seed}"),
        created="2026-11-23T00:00:00",
    )
    write_record(root, record, id=id_s, ood=ood_s)
    return record


def detectors(tmp_path: Path, seed: int = 0) -> dict[str, Record]:
    g = np.random.default_rng(seed)
    id_s, ood_s = g.normal(1.2, 1, 2000), g.normal(0, 1, 2000)
    shifted = ood_s.copy()
    shifted[np.argsort(ood_s)[-20:]] = -10.0  # the 1 % most ID-like OOD samples pushed out: ~+0.5 AUROC, always
    return {
        "base": stored(tmp_path, "base", id_s, ood_s, seed),
        "tiny": stored(tmp_path, "tiny", id_s + g.normal(0, 0.01, 2000), ood_s + g.normal(0, 0.01, 2000), seed),
        "large": stored(tmp_path, "large", id_s + 1.0, ood_s, seed),
        "shifted": stored(tmp_path, "shifted", id_s, shifted, seed),
        "elsewhere": stored(tmp_path, "elsewhere", id_s - 1.0, ood_s, seed, samples="T"),  # other samples
    }


def test_paired_ties_tiny_vs_large_differences_not_overlapping_intervals(tmp_path):
    r = detectors(tmp_path)
    ci = Intervals(tmp_path)
    assert ci.tie([r["base"]], [r["tiny"]], "auroc") is True
    assert ci.tie([r["base"]], [r["large"]], "auroc") is False
    # overlapping marginal intervals, yet the paired difference excludes 0: not a tie
    (lo_a, hi_a), (lo_b, hi_b) = r["base"].ci["intervals"]["auroc"], r["shifted"].ci["intervals"]["auroc"]
    assert lo_b < hi_a and lo_a < hi_b
    diff = ci.difference([r["shifted"]], [r["base"]], "auroc")
    assert 0 < diff[0] <= diff[1] and ci.tie([r["base"]], [r["shifted"]], "auroc") is False
    assert ci.difference([r["base"]], [r["shifted"]], "auroc") == [-diff[1], -diff[0]]  # antisymmetric
    assert not same_samples([r["base"]], [r["elsewhere"]]) and ci.tie([r["base"]], [r["elsewhere"]], "auroc") is None
    rows = [[r[k]] for k in ("large", "base", "tiny", "shifted", "elsewhere")]
    assert rank_labels(rows, "auroc", ci) == ["1", "=2", "=2", "4", "5†"]


def test_rank_ties_are_kept_for_rendering_without_scores(tmp_path):
    r = detectors(tmp_path)
    ci = Intervals(tmp_path)
    first = ci.difference([r["base"]], [r["tiny"]], "auroc")
    ci.save()
    for npz in tmp_path.rglob("*.npz"):
        npz.unlink()
    again = Intervals(tmp_path)
    assert again.difference([r["base"]], [r["tiny"]], "auroc") == first  # from comparisons.json
    assert again.difference([r["base"]], [r["large"]], "auroc") is None  # never computed, no scores
    assert len(record_files(tmp_path)) == 5  # comparisons.json is not read as a record
    (tmp_path / COMPARISONS).unlink()
    assert Intervals(tmp_path).tie([r["base"]], [r["tiny"]], "auroc") is None


def test_row_of_several_seeds_is_the_bootstrap_of_their_mean(tmp_path):
    rows = [detectors(tmp_path / "s", seed)["base"] for seed in (0, 1)]
    found = Intervals(tmp_path / "s")(rows)
    by_hand = []
    for j, rec in enumerate(sorted(rows, key=lambda x: x.seed)):
        g = np.random.default_rng(rec.seed)
        id_s, ood_s = g.normal(1.2, 1, 2000).astype(np.float32), g.normal(0, 1, 2000).astype(np.float32)
        by_hand.append(B.resampled(id_s, ood_s, 1000, [rec.seed, j])["auroc"])
    assert found["auroc"] == B.percentile_interval(np.mean(by_hand, axis=0))
    assert Intervals(tmp_path / "s")([rows[0]]) == rows[0].ci["intervals"]  # one record: its own interval


def test_records_without_intervals_still_read_and_render(tmp_path):
    from oodbench.report.render import render

    old = {k: v for k, v in detectors(tmp_path)["base"].to_dict().items() if k != "ci"}
    record = Record.from_dict(old)
    assert record.ci == {}
    assert render([record]) == render([record], ci=Intervals(tmp_path)).split("\n\n")[0]


def test_leaderboard_shows_intervals_and_paired_ranks_with_and_without_scores(tmp_path):
    from oodbench.suites.leaderboard import leaderboard

    detectors(tmp_path / "res" / "board")
    suites = tmp_path / "suites.yaml"
    suites.write_text("suites:\n  board:\n    runs: []\n")
    board = leaderboard("board", suites, str(tmp_path / "res"))
    ranks = {line.split("|")[4].strip(): line.split("|")[1].strip() for line in board.splitlines() if "| fash" in line}
    assert ranks == {"large": "1", "shifted": "2", "base": "=3", "tiny": "=3", "elsewhere": "5†"}
    assert re.search(r"\| \d+\.\d \[\d+\.\d, \d+\.\d\] +\|", board) and "not seed variance" in board
    for npz in (tmp_path / "res").rglob("*.npz"):
        npz.unlink()
    assert leaderboard("board", suites, str(tmp_path / "res")) == board


# -- the command line ---------------------------------------------------------------------------------------


def test_run_ci_shows_intervals_and_the_plain_table_is_unchanged(capsys, tmp_path):
    args = ["run", "-d", "msp", "-d", "energy", "--in", "fashionmnist", "--out", "mnist", "--epochs", "1"]
    args += ["--train-limit", "1000", "--test-limit", "300", "--n-tune", "50", "--results", str(tmp_path)]
    assert main([*args, "--ci"]) == 0
    with_ci = capsys.readouterr().out
    assert main(args) == 0
    plain = capsys.readouterr().out
    rows = [line for line in with_ci.splitlines() if line.startswith("| msp") or line.startswith("| energy")]
    assert len(rows) == 2
    for row in rows:  # five metric columns with intervals, ID accuracy without
        assert len(re.findall(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", row)) == 5
    assert "95 % percentile bootstrap interval" in with_ci and "[" not in plain
    assert main([*args, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    for rec in records:
        assert set(rec["ci"]["intervals"]) == set(rec["metrics"]) - {"id_acc"}
        assert rec["ci"]["resamples"] == 1000 and rec["ci"]["samples"]
        lo, hi = rec["ci"]["intervals"]["auroc"]
        assert f"{rec['metrics']['auroc']:.1f} [{lo:.1f}, {hi:.1f}]" in with_ci
    assert records[0]["ci"]["samples"] == records[1]["ci"]["samples"]  # both detectors scored the same samples
