"""Provenance follows the pixels (issue 27): a plugin dataset that is a transformed copy of another registered
dataset — the guide's ``Inverted`` — keeps the source's per-sample provenance through ``ImageSet.derive``, so
tuning on it never sees a copy of an evaluated image, and the record says how many copies were excluded. A set
built as a fresh ``ImageSet`` from another dataset's images is warned about."""

from __future__ import annotations

import warnings

import pytest

from oodbench import Dataset, ImageSet, LoadContext, require_split
from oodbench.data.imageset import DerivedWithoutProvenance
from oodbench.pipeline.runner import RunRequest, run
from oodbench.plugins import manager
from oodbench.plugins.testing import check_dataset


class Inverted(Dataset):
    """The guide's example: another registered dataset's test split, pixels inverted."""

    splits = ("test",)

    def __init__(self, source: str, fresh: bool = False):
        self.source, self.fresh = source, fresh
        self.name = f"{source}-inverted" + ("-fresh" if fresh else "")
        self.description = "inverted copies"

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        require_split(self, split)
        src = manager.registries().datasets.get(self.source).load(split, ctx)
        if self.fresh:  # the old guide: a new ImageSet, a provenance of its own
            return ImageSet(255 - src.images, src.labels, self.name, src.classes, src.notes)
        return src.derive(255 - src.images, name=self.name, note="pixels inverted")


@pytest.fixture()
def inverted(monkeypatch):
    regs = manager.registries().datasets
    for ds in (Inverted("fashionmnist"), Inverted("fashionmnist", fresh=True)):
        monkeypatch.setitem(regs.entries, ds.name, manager.Entry(ds.name, ds, "test"))


def _request(tmp_path, tune_out: str) -> RunRequest:
    return RunRequest(
        detectors=["msp"], id="fashionmnist", oods=["mnist"], epochs=1, train_limit=500, test_limit=300,
        n_tune=100, tune="heldout", tune_out=tune_out, results=str(tmp_path),
    )  # fmt: skip


def test_tuning_on_inverted_copies_of_the_evaluated_set_excludes_every_copy(inverted, tmp_path, data_root):
    (record,) = run(_request(tmp_path / "derived", "fashionmnist-inverted")).records
    check = record.tuning["disjoint"]
    # the ID test subset (300: 100 tune + 200 evaluated) is copied in the inverted set: every copy excluded
    assert check["excluded_from_tune_out"] == 300
    assert check["shared_samples"] == 0 and "fashionmnist/test" in check["tuning_sources"]
    inverted_set = manager.registries().datasets.get("fashionmnist-inverted").load("test", LoadContext(data_root))
    assert inverted_set.provenance.sources == ("fashionmnist/test",) and inverted_set.notes[-1] == "pixels inverted"


def test_a_fresh_imageset_of_copies_is_warned_about_and_leaks_as_before(inverted, tmp_path, data_root):
    with pytest.warns(DerivedWithoutProvenance, match="'fashionmnist-inverted-fresh' loads fashionmnist/test"):
        check_dataset(manager.registries().datasets.get("fashionmnist-inverted-fresh"), data_root)
    with pytest.warns(DerivedWithoutProvenance):
        (record,) = run(_request(tmp_path / "fresh", "fashionmnist-inverted-fresh")).records
    assert record.tuning["disjoint"]["excluded_from_tune_out"] == 0  # what derive() prevents
    with warnings.catch_warnings():
        warnings.simplefilter("error", DerivedWithoutProvenance)
        check_dataset(manager.registries().datasets.get("fashionmnist-inverted"), data_root)  # no warning
