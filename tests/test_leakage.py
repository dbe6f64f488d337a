"""Tuning and evaluation never share a sample, whatever the names (issue 11): per-sample provenance through
subsets, class splits, conversions, corruptions and derived sets; heldout sources drawn only from samples no
row evaluates; a one-line refusal when that cannot be done; content duplicates reported, not refused."""

from __future__ import annotations

import hashlib

import pytest
import torch

from oodbench.core.errors import UsageError
from oodbench.data.provenance import Provenance, content_keys, shared
from oodbench.pipeline.planning import make_plan, resolve
from oodbench.pipeline.request import RunRequest


def _plan(**kw):
    req = RunRequest(detectors=["msp"], **kw)
    return make_plan(req, resolve(req))


def _keys(data) -> set[tuple[str, int]]:
    p = data.provenance
    return {(p.sources[s], i) for s, i in zip(p.source.tolist(), p.index.tolist())}


def _bytes(data) -> set[bytes]:
    return {hashlib.sha256(im.numpy().tobytes()).digest() for im in data.images}


def _rows(plan, tune):
    """(tuning sets, evaluated sets) per row, assembled here independently of oodbench.pipeline.leakage."""
    id_tune, id_eval = plan.id_test.subset(plan.id_split.tune), plan.id_test.subset(plan.id_split.eval)
    for t, split in zip(plan.targets, plan.target_splits):
        ood = t.clean.subset(split.tune) if tune == "oracle" else plan.tune_out
        yield t, [id_tune, ood], [id_eval, t.evaluated.subset(split.eval)]


CASES = {
    "novelty, ID dataset as --tune-out": dict(
        protocol="novelty", id="mnist", holdout="0,1", tune="heldout", tune_out="mnist"
    ),
    "novelty, oracle": dict(protocol="novelty", id="mnist", holdout="in:2,6,7/seen:0,3,4/unseen:5,9,1", tune="oracle"),
    "anomaly, ID dataset as --tune-out": dict(
        id="fashionmnist", oods=["mnist"], tune="heldout", tune_out="fashionmnist", test_limit=4000
    ),
    "derived set (grey of an --out set)": dict(
        id="mnist", oods=["cifar10-jpeg"], tune="heldout", tune_out="cifar10-jpeg-bw", test_limit=3000
    ),
    "same folder under two names": dict(
        id="mnist", oods=["dtd-subset32"], tune="heldout", tune_out="folder:{data}/dtd-subset32", n_tune=300
    ),
    "corruption, oracle": dict(
        protocol="corruption",
        id="mnist",
        corruptions=["gaussian_noise"],
        severities=[3],
        tune="oracle",
        test_limit=3000,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_tuning_sample_is_evaluated(case, data_root):
    kw = {k: (v.format(data=data_root) if isinstance(v, str) else v) for k, v in CASES[case].items()}
    plan = _plan(**kw)
    for target, tuning, evaluated in _rows(plan, kw["tune"]):
        tuned = set().union(*map(_keys, tuning))
        seen = set().union(*map(_keys, evaluated))
        assert tuned and seen and not tuned & seen, f"{case}: {len(tuned & seen)} shared samples in {target.name}"
        if "derived" not in case and "corruption" not in case:  # a conversion changes the bytes
            assert not _bytes(tuning[1]) & _bytes(evaluated[1]), f"{case}: a tuning image equals an evaluated one"
        check = target.tuning_check
        assert check["shared_samples"] == 0 and check["tuning_samples"] == sum(map(len, tuning))


@pytest.mark.parametrize(
    "case, expect_excluded",
    [
        # every in-class test image is ID tuning or evaluated (9,000 = 10,000 - the 1,000 unseen tuning samples)
        ("novelty, ID dataset as --tune-out", 9000),
        # the 2,000 evaluated of the 3,000 cifar10-jpeg test images (1,000 are its oracle tuning split)
        ("derived set (grey of an --out set)", 2000),
    ],
)
def test_overlapping_heldout_sources_are_redrawn(case, expect_excluded, data_root):
    """The first draw of these sources shares samples with evaluated data (the leak the issue measured:
    702 + 108 of 1,000); the plan excludes them and records how many."""
    kw = CASES[case]
    plan = _plan(**kw)
    assert plan.targets[0].tuning_check["excluded_from_tune_out"] == expect_excluded
    assert any("removed" in note for note in plan.tune_out.notes)


def test_refuses_when_every_sample_is_evaluated(data_root):
    with pytest.raises(UsageError, match=r"--tune-out 'fashionmnist': only 0 of its 10000 samples"):
        _plan(id="fashionmnist", oods=["mnist"], tune="heldout", tune_out="fashionmnist")


def test_content_duplicates_are_reported_not_refused(data_root):
    """``constant`` holds at most 256 distinct images: its tuning and evaluation splits share content, not samples."""
    plan = _plan(id="mnist", oods=["constant"], tune="oracle", test_limit=2000)
    check = plan.targets[0].tuning_check
    assert check["shared_samples"] == 0 and check["content_duplicates"] > 0


def test_provenance_survives_every_derivation(data_root):
    from oodbench.data import corruptions
    from oodbench.data.imageset import LoadContext
    from oodbench.pipeline.planning import load_split
    from oodbench.plugins.manager import registries

    regs = registries()
    ctx = LoadContext(data_root)
    test = load_split(regs.datasets.get("mnist"), "test", ctx)
    derived = test.head(500, 1).with_classes([3, 4]).to_format((3, 32, 32))
    derived = corruptions.corrupt(derived, "gaussian_noise", 2, 0)
    assert derived.provenance.sources == ("mnist/test",)
    assert torch.equal(test.labels[derived.provenance.index], torch.where(derived.labels == 0, 3, 4))


def test_provenance_cat_and_shared():
    a = Provenance.origin("a/test", 5)
    b = Provenance.origin("b/test", 3).subset(torch.tensor([2, 0]))
    ab = a.cat(b)
    assert ab.describe() == "a/test: 5, b/test: 2"
    mask = shared(Provenance.origin("b/test", 3), ab)
    assert mask.tolist() == [True, False, True]


def test_content_keys_equal_iff_bytes_equal():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (50, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[7] = x[3]
    x[9] = x[3].clone()
    x[9, 0, 0, 0] ^= 1  # one bit different
    k = content_keys(x)
    assert k[7] == k[3] and k[9] != k[3]
    assert len(set(k.tolist())) == 49
