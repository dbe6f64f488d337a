"""Every value is checked before any work (issue 27): a bad detector parameter, training setting or formatted
option is one line naming the value and what is allowed, exit 2, within a second — and no data is read (the
data root is an empty folder, so reading anything would fail with a different message)."""

from __future__ import annotations

import pytest

from oodbench.cli.main import main
from oodbench.plugins.constraints import Interval, Options, Strings, check_params
from oodbench.plugins.manager import registries

RUN = ["run", "--in", "fashionmnist", "--out", "mnist"]

#: (arguments after `oodbench run --in fashionmnist --out mnist`, a piece of the one line)
BAD = {
    "k negative": (["-d", "knn", "--param", "knn.k=-3"], "knn.k=-3: k takes a whole number ≥ 1"),
    "k zero": (["-d", "knn", "--param", "knn.k=0"], "k takes a whole number ≥ 1"),
    "k fractional": (["-d", "knn", "--param", "knn.k=2.5"], "k takes a whole number ≥ 1"),
    "epsilon negative": (["-d", "odin", "--param", "odin.epsilon=-1"], "epsilon takes a number ≥ 0"),
    "percentile > 100": (["-d", "react", "--param", "react.percentile=150"], "a number in [0, 100]"),
    "ash variant": (["-d", "ash", "--param", "ash.variant=q"], "variant takes one of 's', 'p', 'b'"),
    "gen gamma": (["-d", "gen", "--param", "gen.gamma=0"], "gamma takes a number > 0"),
    "fssd noise": (["-d", "fssd", "--param", "fssd.noise=salt"], "noise takes one of"),
    "openmax alpha": (["-d", "openmax", "--param", "openmax.alpha=2.5"], "alpha takes a whole number ≥ 1"),
    "layers type": (["-d", "mahalanobis", "--param", "mahalanobis.layers=3"], "a non-empty list of names"),
    "unknown parameter": (["-d", "knn", "--param", "knn.kk=3"], "has no parameter(s) ['kk']"),
    "train lr": (["-d", "msp", "--train", "lr=-1"], "--train lr takes a number ≥ 0"),
    "train batch": (["-d", "msp", "--train", "batch_size=0"], "--train batch_size takes a number ≥ 1"),
    "train schedule": (["-d", "msp", "--train", "schedule=zigzag"], "--train schedule is one of"),
    "corrupt-both elsewhere": (["-d", "msp", "--corrupt-both", "gaussian_noise"], "--corrupt-both applies to"),
    "corrupt-both format": (
        ["-d", "msp", "--protocol", "corruption", "--corrupt-both", "gaussian_noise"],
        "--corrupt-both takes TYPE:SEVERITY",
    ),
    "severity range": (["-d", "msp", "--protocol", "corruption", "--severity", "7"], "--severity takes 1..5"),
    "severity elsewhere": (["-d", "msp", "--severity", "3"], "--severity applies to --protocol corruption"),
    "holdout elsewhere": (["-d", "msp", "--holdout", "0,1"], "--holdout applies to --protocol novelty"),
    "holdout classes": (["-d", "msp", "--protocol", "novelty", "--holdout", "0,x"], "is not a comma-separated list"),
    "holdout groups": (["-d", "msp", "--protocol", "novelty", "--holdout", "in:1/bad:2"], "partitions look like"),
    "metric": (["-d", "msp", "--metrics", "auroc,bogus"], "unknown metric 'bogus'"),
    "contaminate alone": (["-d", "msp", "--contaminate", "0.1"], "--contaminate RATE and --contaminate-with NAME"),
    "n-tune": (["-d", "msp", "--n-tune", "-1"], "--n-tune takes a whole number ≥ 0"),
    "tune-out alone": (["-d", "msp", "--tune-out", "uniform"], "--tune-out only applies to --tune heldout"),
}


@pytest.fixture()
def empty_data(tmp_path, monkeypatch):
    """An empty data root, and any read of a split fails the test: the value must be refused before it."""
    import oodbench.pipeline.planning as planning

    def no_reading(*args, **kwargs):
        raise AssertionError("a dataset split was read before the bad value was refused")

    monkeypatch.setenv("OODBENCH_DATA", str(tmp_path / "no-data"))
    (tmp_path / "no-data").mkdir()
    monkeypatch.setattr(planning, "load_split", no_reading)
    registries()


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_value_is_one_line_exit_2_before_any_data_is_read(case, empty_data, capsys, tmp_path):
    """No clock (a first command in a process pays its imports, so a time bound depends on test order): reading
    a split raises instead, so exit 2 with the one line proves the value was refused before any data was read."""
    args, says = BAD[case]
    code = main([*RUN, *args, "--results", str(tmp_path / "results")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and says in err, err
    assert "not found under" not in err  # no dataset was looked for
    assert not (tmp_path / "results").exists()


def test_every_builtin_default_and_grid_point_satisfies_its_declared_constraints():
    regs = registries().detectors
    for name in regs.names():
        cls = regs.get(name)
        defaults = cls().get_params()
        assert not check_params(cls, defaults, defaults), name
        for grid in [None, *cls.grids]:  # the default search space and every named grid (issue 28)
            for key, values in cls().named_search_space(grid).items():
                assert not check_params(cls, {key: values[-1]}, defaults), (name, grid, key)
                assert not check_params(cls, {key: values[0]}, defaults), (name, grid, key)


def test_the_constraint_kinds_say_what_they_allow():
    assert Interval(int, 1).allows(3) and not Interval(int, 1).allows(0) and not Interval(int, 1).allows(True)
    assert Interval(float, 0, 1, closed="left").allows(0) and not Interval(float, 0, 1, closed="left").allows(1)
    assert not Interval(float, 0).allows(float("nan"))
    assert str(Interval(float, 0, 100)) == "a number in [0, 100]" and str(Interval(int, 1)) == "a whole number ≥ 1"
    assert Options("s", "b").allows("s") and not Options(1).allows(True) and str(Options("s")) == "one of 's'"
    assert Strings().allows(["conv1"]) and not Strings().allows([]) and not Strings().allows("conv1")


def test_the_guard_catches_a_read(empty_data, tmp_path):
    """The guard of the test above is live: a valid request reaches ``load_split`` and fails there."""
    with pytest.raises(AssertionError, match="a dataset split was read"):
        main([*RUN, "-d", "msp", "--results", str(tmp_path / "results")])
