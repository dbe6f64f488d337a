"""Plugins that fail alone: real pip-installed throw-away distributions, asserted through the real CLI.

Broken registry (one target dir): ``dup-plugin`` (a second ``msp``), ``importfail-plugin`` (raises at
import), ``hookfail-plugin`` (its detector hook raises ``KeyError``) and a good plugin. Broken detectors
(another target dir): ``raise-plugin`` and ``nan-plugin``, whose isolation lands with the pipeline work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import pip_install_target, site_env

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.0.1"

[project.entry-points.oodbench]
{ep} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""

DETECTOR = """
import numpy as np
from oodbench import Detector, hookimpl

class Plugged(Detector):
    name = {name!r}
    description = {description!r}
    def score_samples(self, data):
        {body}

@hookimpl
def oodbench_register_detectors():
    return [Plugged]
"""

REGISTRY_PLUGINS = {  # dist: (entry point, module, source)
    "dup-plugin": (
        "dup",
        "dup_mod",
        DETECTOR.format(name="msp", description="a second msp", body="return data.logits().max(1).values.numpy()"),
    ),
    "importfail-plugin": ("importfail", "importfail_mod", "raise RuntimeError('boom at import')\n"),
    "hookfail-plugin": (
        "hookfail",
        "hookfail_mod",
        """
        from oodbench import hookimpl

        @hookimpl
        def oodbench_register_datasets():
            return []

        @hookimpl
        def oodbench_register_detectors():
            return {}["no-such-key"]
    """,
    ),
    "good-plugin": (
        "good",
        "good_mod",
        DETECTOR.format(
            name="good-negmax", description="negative max logit", body="return -data.logits().max(1).values.numpy()"
        ),
    ),
}
DETECTOR_PLUGINS = {
    "raise-plugin": (
        "raise",
        "raise_mod",
        DETECTOR.format(name="raises-keyerror", description="raises KeyError", body="raise KeyError('boom')"),
    ),
    "nan-plugin": (
        "nan",
        "nan_mod",
        DETECTOR.format(name="returns-nan", description="all NaN", body="return np.full(len(data), np.nan)"),
    ),
}
SMALL = ["--epochs", "1", "--train-limit", "2000", "--test-limit", "600", "--n-tune", "100"]


def _install(root: Path, plugins: dict[str, tuple[str, str, str]], target: Path) -> None:
    dirs = []
    for dist, (ep, module, source) in plugins.items():
        pkg = root / dist
        pkg.mkdir()
        (pkg / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, ep=ep, module=module))
        (pkg / f"{module}.py").write_text(textwrap.dedent(source))
        dirs.append(str(pkg))
    pip_install_target(target, *dirs)


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    """Two target folders: 'registry' (dup, importfail, hookfail, good) and 'detectors' (raise, nan)."""
    src, registry, detectors = (tmp_path_factory.mktemp(n) for n in ("src", "site-registry", "site-detectors"))
    _install(src, REGISTRY_PLUGINS, registry)
    (src / "d").mkdir()
    _install(src / "d", DETECTOR_PLUGINS, detectors)
    return {"registry": registry, "detectors": detectors}


def oodbench(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oodbench.cli", *args],
        env=site_env(site, OODBENCH_QUIET="1", **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def plugin_warnings(stderr: str) -> list[str]:
    """The two expected one-line warnings (import failure, hook failure) — and nothing else."""
    found = lines(stderr)
    assert "Traceback" not in stderr and "warnings.warn" not in stderr, stderr
    assert len([l for l in found if "importfail-plugin:importfail" in l]) == 1, stderr
    assert len([l for l in found if "hookfail-plugin:hookfail" in l]) == 1, stderr
    return found


def test_plugins_lists_ok_conflict_and_failed(sites):
    done = oodbench(sites["registry"], "plugins")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in lines(done.stdout)[2:]}
    assert "failed: RuntimeError: boom at import" in rows["importfail-plugin:importfail"]
    assert "failed: KeyError: 'no-such-key'" in rows["hookfail-plugin:hookfail"]
    assert "conflict: detector 'msp' (also in oodbench:builtin-detectors)" in rows["dup-plugin:dup"]
    assert "conflict: detector 'msp' (also in dup-plugin:dup)" in rows["oodbench:builtin-detectors"]
    assert " ok " in rows["good-plugin:good"] and " ok " in rows["oodbench:builtin-datasets"]
    warned = plugin_warnings(done.stderr)
    assert warned == [
        (
            "oodbench: warning: plugin 'importfail-plugin:importfail' (importfail_mod) failed to load and was skipped: "
            "RuntimeError: boom at import"
        ),
        (
            "oodbench: warning: plugin 'hookfail-plugin:hookfail' failed in oodbench_register_detectors "
            "and was skipped: "
            "KeyError: 'no-such-key'"
        ),
    ]


def test_list_marks_the_conflict_and_skips_the_failed_plugin(sites):
    done = oodbench(sites["registry"], "list", "detectors")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in lines(done.stdout)[2:]}
    assert rows["msp"].endswith("CONFLICT: oodbench:builtin-detectors, dup-plugin:dup")
    assert rows["good-negmax"].endswith("good-plugin:good") and rows["energy"].endswith("oodbench:builtin-detectors")
    datasets = oodbench(sites["registry"], "list", "datasets")  # hookfail's datasets hook is skipped too
    assert datasets.returncode == 0 and "mnist" in datasets.stdout
    assert len(lines(datasets.stderr)) == 2, datasets.stderr


def test_conflicted_name_is_one_line_usage_error(sites, tmp_path):
    done = oodbench(
        sites["registry"],
        "run",
        "-d",
        "msp",
        "--in",
        "fashionmnist",
        "--out",
        "mnist",
        *SMALL,
        "--results",
        str(tmp_path),
    )
    assert done.returncode == 2, done.stderr
    errors = [l for l in lines(done.stderr) if l.startswith("oodbench: error:")]
    assert errors == [
        (
            "oodbench: error: detector 'msp' is registered by two plugins: 'oodbench:builtin-detectors' "
            "and 'dup-plugin:dup'; disable one with --disable-plugin NAME"
        )
    ]
    assert len(plugin_warnings(done.stderr)) == 3


def test_other_names_work_despite_broken_plugins(sites, tmp_path):
    done = oodbench(
        sites["registry"],
        "run",
        "-d",
        "energy",
        "-d",
        "good-negmax",
        "--in",
        "fashionmnist",
        "--out",
        "mnist",
        *SMALL,
        "--results",
        str(tmp_path),
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    assert [r["detector"] for r in json.loads(done.stdout)] == ["energy", "good-negmax"]
    assert len(plugin_warnings(done.stderr)) == 2


@pytest.mark.parametrize("how", ["option", "env"])
def test_disable_plugin_resolves_the_conflict(sites, tmp_path, how):
    if how == "option":
        done = oodbench(
            sites["registry"], "--disable-plugin", "dup-plugin", "--disable-plugin", "importfail-plugin", "plugins"
        )
    else:
        done = oodbench(
            sites["registry"], "plugins", OODBENCH_DISABLE_PLUGINS="dup_plugin,importfail-plugin:importfail"
        )
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in lines(done.stdout)[2:]}
    assert "disabled" in rows["dup-plugin:dup"] and "disabled" in rows["importfail-plugin:importfail"]
    assert " ok " in rows["oodbench:builtin-detectors"]
    assert [l for l in lines(done.stderr) if "hookfail-plugin" in l] == lines(done.stderr)  # no import warning
    if how == "option":
        ran = oodbench(
            sites["registry"],
            "--disable-plugin",
            "dup-plugin",
            "run",
            "-d",
            "msp",
            "--in",
            "fashionmnist",
            "--out",
            "mnist",
            *SMALL,
            "--results",
            str(tmp_path),
            "--format",
            "json",
        )
        assert ran.returncode == 0, ran.stderr
        assert [r["detector"] for r in json.loads(ran.stdout)] == ["msp"]


def _broken_detector_run(sites, tmp_path, name: str) -> subprocess.CompletedProcess:
    return oodbench(
        sites["detectors"],
        "run",
        "-d",
        "msp",
        "-d",
        name,
        "-d",
        "energy",
        "--in",
        "fashionmnist",
        "--out",
        "mnist",
        "--out",
        "gaussian",
        *SMALL,
        "--results",
        str(tmp_path),
    )


@pytest.mark.parametrize("name, dist", [("raises-keyerror", "raise-plugin"), ("returns-nan", "nan-plugin")])
def test_broken_detector_fails_alone(sites, tmp_path, name, dist):
    done = _broken_detector_run(sites, tmp_path, name)
    assert done.returncode == 1, done.stderr
    errors = lines(done.stderr)
    assert len(errors) == 1 and name in errors[0] and dist in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    table = done.stdout.splitlines()
    assert any(l.startswith("| msp") for l in table) and any(l.startswith("| energy") for l in table), done.stdout
    assert not any(name in l for l in table)
    records = sorted(p.name for p in (tmp_path / "anomaly").glob("*.json"))
    assert len(records) == 4 and all(r.startswith(("msp", "energy")) for r in records), records
