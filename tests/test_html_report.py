"""``oodbench report SUITE -o report.html`` (issue 13): the smoke suite's report, checked in headless Chromium.

The browser test needs Debian's ``chromium`` (or ``$OODBENCH_CHROMIUM``) and Playwright from PyPI (the ``test``
extra; its own browser download is not used). Without them it is skipped with the reason, or fails when
``OODBENCH_REQUIRE_BROWSER`` is set (``.ci/run`` sets it). It keeps its screenshot and the page in
``tests/artifacts/`` (git-ignored): ``report-smoke.png``, ``report-smoke.html``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from oodbench.cli.main import main
from oodbench.core.errors import UsageError
from oodbench.pipeline import protocols
from oodbench.records.store import record_files, scores_of
from oodbench.report.figures import Curve, curve_of, pair_figure
from oodbench.report.html import write_report
from oodbench.report.protocol_tables import is_sweep
from oodbench.suites.bench import bench
from oodbench.suites.leaderboard import suite_records

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[str, list]:
    """The ``smoke`` suite of benchmarks.yaml run into a temp results folder (~1–2 min on 2 CPU cores)."""
    results = str(tmp_path_factory.mktemp("results"))
    counts = bench("smoke", REPO / "benchmarks.yaml", results)
    assert counts["failed"] == 0 and counts["done"] == counts["total"] > 0
    return results, record_files(Path(results) / "smoke")


def render(smoke) -> tuple[Path, str]:
    results, _ = smoke
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    suite, found = suite_records("smoke", REPO / "benchmarks.yaml", results)
    out = write_report("smoke", suite, found, Path(results) / "smoke", ARTIFACTS / "report-smoke.html")
    return out, out.read_text(encoding="utf-8")


def test_report_is_self_contained_with_a_table_per_protocol_a_figure_per_pair_and_a_run_per_record(smoke):
    _, found = smoke
    records = [r for _, r in found]
    _, html = render(smoke)
    links = re.findall(r"""(?:src|href)=['"]([^'"]*)""", html)
    assert links and all(u.startswith(("data:", "#")) for u in links), [u[:40] for u in links]
    assert html.count("<table class='sortable'>") == len({r.protocol for r in records})
    pairs = {(r.protocol, r.id, r.ood) for r in records}
    sweeps = {(r.id, r.seed) for r in records if is_sweep(r)}
    assert sweeps and html.count("<img ") == len(pairs) + len(sweeps)
    assert html.count("src='data:image/png;base64,") == len(pairs) + len(sweeps)
    for r in records:
        assert html.count(f"<details id='run-{r.record_id}'>") == 1
        assert html.count(f"href='#run-{r.record_id}'") == (r.seed == min(x.seed for x in records))


def test_curves_agree_with_the_recorded_metrics(smoke):
    """The report's ROC curves are drawn from the same samples the record's AUROC was computed on."""
    _, found = smoke
    checked = set()
    for path, r in found:
        curve = curve_of(r, scores_of(path))
        assert curve is not None, f"no scores beside {path.name}"
        if protocols.get(r.protocol).scores_ood:
            y = np.r_[np.ones(curve.pos.size), np.zeros(curve.neg.size)]
            assert 100 * roc_auc_score(y, np.r_[curve.pos, curve.neg]) == pytest.approx(r.metrics["auroc"], abs=1e-6)
            checked.add("ood")
        else:  # misclassification: wrong predictions are the record's errors
            assert curve.neg.size == r.n_eval["errors"] and curve.pos.size + curve.neg.size == r.n_eval["id"]
            checked.add("errors")
    assert checked == {"ood", "errors"}


def test_missing_matplotlib_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    curve = Curve("msp", np.arange(5.0), np.arange(5.0) - 2, "ID", "OOD")
    with pytest.raises(UsageError, match="pip install 'oodbench\\[plot\\]'"):
        pair_figure([curve], "a → b")


def test_cli_report_errors_are_one_line(capsys, tmp_path):
    suites = tmp_path / "suites.yaml"
    suites.write_text("suites:\n  tiny:\n    runs: []\n")
    out = str(tmp_path / "r.html")
    code = main(["report", "smokee", "-o", out, "--file", str(suites), "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown suite 'smokee'" in err and len(err.strip().splitlines()) == 1
    code = main(["report", "tiny", "-o", out, "--file", str(suites), "--results", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and "no records for suite 'tiny'" in err and len(err.strip().splitlines()) == 1
    assert not Path(out).exists()


def browser_or_skip() -> str:
    """Chromium's path; skipped (or failed under ``OODBENCH_REQUIRE_BROWSER``) when it or Playwright is missing."""
    exe = os.environ.get("OODBENCH_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    missing = [] if exe else ["a chromium binary (apt-get install chromium, or set OODBENCH_CHROMIUM)"]
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install 'oodbench[test]')")
    if missing:
        message = "the HTML report browser test needs " + " and ".join(missing)
        (pytest.fail if os.environ.get("OODBENCH_REQUIRE_BROWSER") else pytest.skip)(message)
    return exe


def column(page, table, name: str) -> list[tuple[str, str]]:
    """(row's whole text, the cell's sort value) of every row, in the order shown, for the column ``name``."""
    return table.evaluate(
        """(t, name) => {
            const col = Array.from(t.tHead.rows[0].cells).findIndex(th => th.textContent.trim() === name);
            const value = td => td.dataset.v ?? td.innerText;
            return Array.from(t.tBodies[0].rows).map(r => [r.innerText, value(r.cells[col])]);
        }""",
        name,
    )


def test_report_in_headless_chromium_loads_clean_sorts_on_click_and_keeps_a_screenshot(smoke):
    exe = browser_or_skip()
    from playwright.sync_api import sync_playwright

    path, html = render(smoke)
    n_records = len(smoke[1])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        console, errors, requests = [], [], []
        page.on("console", lambda m: console.append((m.type, m.text)))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.resolve().as_uri(), wait_until="load")
        assert not errors and not [m for m in console if m[0] == "error"], (errors, console)
        assert all(u.startswith(("file:", "data:")) for u in requests), requests
        assert page.locator("table.sortable").count() == html.count("<table class='sortable'>") >= 4
        decoded = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
        assert decoded and all(decoded)

        table = page.locator("h3:text-is('anomaly') + table")
        before = column(page, table, "AUROC")
        header = table.locator("th", has_text=re.compile(r"^AUROC$"))
        header.click()
        up = column(page, table, "AUROC")
        assert header.get_attribute("aria-sort") == "ascending"
        assert [float(v) for _, v in up] == sorted(float(v) for _, v in before)
        assert sorted(up) == sorted(before) and up != before  # whole rows moved, and the order changed
        header.click()
        down = column(page, table, "AUROC")
        assert header.get_attribute("aria-sort") == "descending"
        assert [float(v) for _, v in down] == sorted((float(v) for _, v in up), reverse=True)
        table.locator("th", has_text=re.compile(r"^Detector$")).click()
        names = [v for _, v in column(page, table, "Detector")]
        assert names == sorted(names)

        link = table.locator("tbody a").first
        href = link.get_attribute("href")
        target = page.locator(href)
        assert target.get_attribute("open") is None
        link.click()  # the page opens the run's <details> on hashchange: wait for it (a busy CPU can be slow)
        page.wait_for_function("sel => document.querySelector(sel).open === true", arg=href, timeout=10_000)
        assert target.get_attribute("open") is not None and "Configuration" in target.inner_text()
        assert page.locator("details").count() == n_records

        shot = ARTIFACTS / "report-smoke.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert not [m for m in console if m[0] == "error"], console
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot kept at {shot}")
