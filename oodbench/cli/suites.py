"""``oodbench bench``, ``oodbench leaderboard`` and ``oodbench plot``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from oodbench.cli.app import app
from oodbench.core.errors import UsageError


class BoardFmt(str, Enum):
    github = "github"
    markdown = "markdown"
    latex = "latex"
    html = "html"


class Executor(str, Enum):
    local = "local"
    ray = "ray"


SuiteFile = Annotated[str, typer.Option("--file", help="Suite definitions.")]


@app.command("bench")
def bench_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name in benchmarks.yaml (smoke, cpu, gpu, …).")],
    file: SuiteFile = "benchmarks.yaml",
    results: Annotated[
        Optional[str],
        typer.Option(help="Results folder (default: $OODBENCH_RESULTS or ./results); records go to RESULTS/SUITE."),
    ] = None,
    executor: Annotated[
        Executor, typer.Option(help="local: one run after another here; ray: each run a Ray task (docs/ray.md).")
    ] = Executor.local,
    address: Annotated[
        Optional[str],
        typer.Option(help="ray: join this cluster (auto | ray://HOST:PORT); default: start a local Ray."),
    ] = None,
    max_parallel: Annotated[Optional[int], typer.Option(help="ray: at most N tasks at once.")] = None,
    cpus_per_run: Annotated[int, typer.Option(help="ray: CPUs each task reserves (and its torch threads).")] = 1,
    download: Annotated[bool, typer.Option(help="Let each run download the datasets that can be fetched.")] = False,
) -> None:
    """Run a suite; finished runs and records are skipped, so an interrupted suite resumes."""
    from oodbench.suites.bench import bench
    from oodbench.suites.executors import make_executor

    counts = bench(suite, file, results, make_executor(executor.value, address, max_parallel, cpus_per_run), download)
    typer.echo(
        f"{suite}: {counts['done']} run(s) done, {counts['skipped']} already done, {counts['failed']} failed, "
        f"{counts['total']} in the suite"
    )
    if counts["failed"]:
        from oodbench.core.errors import RunFailed

        raise RunFailed(f"{counts['failed']} run(s) of suite {suite!r} failed (see above); rerun to retry them")


@app.command("leaderboard")
def leaderboard_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name.")],
    file: SuiteFile = "benchmarks.yaml",
    results: Annotated[
        Optional[str],
        typer.Option(help="Records folder the suite was run into (default: ./results; with --check: leaderboards/)."),
    ] = None,
    fmt: Annotated[BoardFmt, typer.Option("--format", help="Table format.")] = BoardFmt.github,
    write: Annotated[
        Optional[Path],
        typer.Option(help="Replace this suite's marked section of a Markdown file (e.g. LEADERBOARD.md)."),
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish", help="With --write: copy the records (JSON, no scores) to leaderboards/SUITE.")
    ] = False,
    check: Annotated[
        Optional[Path],
        typer.Option(help="Exit 1 if this file's section differs from the one rendered from the committed records."),
    ] = None,
) -> None:
    """Ranked tables from a suite's records (one per protocol), paper numbers beside reproduced rows."""
    from oodbench.records import publish as pub
    from oodbench.suites.leaderboard import leaderboard, write_section

    if check and (write or publish):
        raise UsageError("--check only reads: use it without --write/--publish")
    text = leaderboard(suite, file, results or (str(pub.BOARDS) if check else None), fmt.value)
    if check:
        problem = pub.stale(check, suite, text)
        if problem:
            typer.echo(f"oodbench: {problem}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{check}: section `{suite}` matches its records")
    elif write:
        write_section(write, suite, text)
        typer.echo(f"wrote the {suite} leaderboard into {write}")
        if publish:
            from oodbench.records.store import results_dir

            typer.echo(f"copied the {suite} records to {pub.publish(results_dir(results), suite)}")
    elif publish:
        raise UsageError("--publish goes with --write FILE (the records and the file are committed together)")
    else:
        typer.echo(text)


class PlotKind(str, Enum):
    scores = "scores"
    corruption = "corruption"
    embedding = "embedding"


@app.command("plot")
def plot_cmd(
    kind: Annotated[
        PlotKind,
        typer.Argument(
            help="scores: ID vs OOD histograms; corruption: AUROC against severity; "
            "embedding: 2-D PCA/t-SNE of a detector's embedding."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
    results: Annotated[Optional[str], typer.Option(help="Results folder (or a suite's folder, results/SUITE).")] = None,
    detector: Annotated[Optional[list[str]], typer.Option("--detector", "-d", help="Only these detectors.")] = None,
    ood: Annotated[Optional[list[str]], typer.Option(help="Only these OOD sets.")] = None,
    id_: Annotated[Optional[str], typer.Option("--in", help="Only this ID dataset.")] = None,
    method: Annotated[str, typer.Option(help="embedding: pca | tsne.")] = "pca",
) -> None:
    """Draw pictures from result records (needs matplotlib: pip install 'oodbench\\[plot]')."""
    from oodbench.pipeline import protocols
    from oodbench.records.store import record_files, results_dir
    from oodbench.report.plots import corruption_curves, embedding_panels, score_histograms

    root = results_dir(results)
    found = [
        (p, r)
        for p, r in record_files(root)
        if (not detector or r.detector in detector) and (not ood or r.ood in ood) and (not id_ or r.id == id_)
    ]
    if not found:
        raise UsageError(f"no records match under {root}")
    if kind is PlotKind.scores:
        path = score_histograms([(p, r) for p, r in found if protocols.get(r.protocol).scores_ood][:12], out)
    elif kind is PlotKind.embedding:
        if method not in ("pca", "tsne"):
            raise UsageError(f"--method {method!r}: choose pca or tsne")
        path = embedding_panels(found, out, method)
    else:
        path = corruption_curves([r for _, r in found], out)
    typer.echo(f"wrote {path}")


@app.command("report")
def report_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")],
    file: SuiteFile = "benchmarks.yaml",
    results: Annotated[Optional[str], typer.Option(help="Results folder the suite was run into.")] = None,
) -> None:
    """One self-contained HTML page: sortable leaderboard, ROC curves and score histograms per (ID, OOD),
    corruption curves, each run's config and timing (needs matplotlib: pip install 'oodbench\\[plot]')."""
    from oodbench.records.store import results_dir
    from oodbench.report.html import write_report
    from oodbench.suites.leaderboard import suite_records

    definition, found = suite_records(suite, file, results)
    typer.echo(f"wrote {write_report(suite, definition, found, results_dir(results) / suite, out)}")


@app.command("compare")
def compare_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name.")],
    against: Annotated[Path, typer.Option(help="The committed records, e.g. leaderboards/smoke.")],
    results: Annotated[
        Optional[str], typer.Option(help="Results folder the suite was regenerated into (default: ./results).")
    ] = None,
    tolerance: Annotated[float, typer.Option(help="Largest change of any metric, in percentage points.")] = 0.1,
    metric: Annotated[
        Optional[list[str]], typer.Option("--metric", help="Compare only these metrics (repeatable; default all).")
    ] = None,
) -> None:
    """Hold a regenerated suite's records against committed ones: exit 1, one line per moved number."""
    from oodbench.records.store import results_dir
    from oodbench.suites.compare import compare

    fresh = results_dir(results) / suite
    if not against.is_dir() or not fresh.is_dir():
        raise UsageError(f"compare needs both record folders: {str(against)!r} and {str(fresh)!r}")
    problems = compare(against, fresh, tolerance, metric or None)
    for line in problems:
        typer.echo(f"oodbench: {line}", err=True)
    if problems:
        raise typer.Exit(1)
    what = ", ".join(metric) if metric else "metric"
    typer.echo(f"{suite}: the regenerated records match {against} (every {what} within ±{tolerance})")
