"""The ``oodbench`` command line: thin Typer commands over pure functions, one error boundary.

Known errors print one line to stderr (exit 2 for bad input, 1 for run-time failures);
set ``OODBENCH_DEBUG=1`` for the traceback. torch loads only when a command needs it.
"""

from __future__ import annotations

import os
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__

app = typer.Typer(
    name="oodbench", no_args_is_help=True, rich_markup_mode="rich", add_completion=False,
    help="Out-of-distribution detection benchmarks: train or load a backbone, fit detectors, score, tabulate.",
)


class Tune(str, Enum):
    none = "none"
    oracle = "oracle"
    heldout = "heldout"


class Fmt(str, Enum):
    github = "github"
    markdown = "markdown"
    latex = "latex"
    json = "json"


class Kind(str, Enum):
    detectors = "detectors"
    datasets = "datasets"
    backbones = "backbones"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oodbench {__version__}")
        raise typer.Exit()


DISABLE_ENV = "OODBENCH_DISABLE_PLUGINS"  # = oodbench.plugins.DISABLE_ENV (not imported: keeps --help light)


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = None,
    disable_plugin: Annotated[Optional[list[str]], typer.Option("--disable-plugin", metavar="NAME", help=f"Skip a plugin: its distribution name or DIST:ENTRYPOINT (repeatable; also ${DISABLE_ENV}=A,B).", show_default=False)] = None,
) -> None:
    """oodbench: out-of-distribution detection benchmarks."""
    if disable_plugin:  # registries are built on first use, from the environment
        from .plugins import reset

        before = [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        os.environ[DISABLE_ENV] = ",".join(before + list(disable_plugin))
        reset()


DataRoot = Annotated[Optional[str], typer.Option("--data-root", help="Dataset folder (else $OODBENCH_DATA, else the user cache).", show_default=False)]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda")]
Seed = Annotated[int, typer.Option(help="Seed for training, splits and synthetic data.")]


def _params(values: list[str] | None) -> dict[str, dict]:
    """``--param fssd.epsilon=0.01`` → {"fssd": {"epsilon": 0.01}} (values parsed as YAML scalars)."""
    import yaml

    from .errors import UsageError

    out: dict[str, dict] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        det, dot, name = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--param takes DETECTOR.NAME=VALUE, got {item!r}")
        out.setdefault(det, {})[name] = yaml.safe_load(raw)
    return out


class Protocol(str, Enum):
    anomaly = "anomaly"
    novelty = "novelty"
    corruption = "corruption"
    misclassification = "misclassification"


@app.command(context_settings={"allow_extra_args": True})
def run(
    ctx: typer.Context,
    detector: Annotated[list[str], typer.Option("--detector", "-d", help="Detector name (repeatable).")],
    in_: Annotated[str, typer.Option("--in", help="In-distribution dataset (e.g. fashionmnist, folder:PATH).")],
    out: Annotated[Optional[list[str]], typer.Option("--out", help="OOD test dataset (repeatable).")] = None,
    protocol: Annotated[Protocol, typer.Option(help="anomaly | novelty | corruption | misclassification (SPEC.md).")] = Protocol.anomaly,
    holdout: Annotated[Optional[str], typer.Option(help="novelty: held-out classes — each | 0,1 | in:2,6,7/seen:0,3,4,8/unseen:5,9,1.")] = None,
    corruption: Annotated[Optional[list[str]], typer.Option(help="corruption: types to apply (repeatable; default: all).")] = None,
    severity: Annotated[Optional[list[int]], typer.Option(help="corruption: severities 1–5 (repeatable; default: all).")] = None,
    corrupt_both: Annotated[Optional[str], typer.Option(help="corruption: TYPE:SEV applied to ID and OOD test data (tuning stays clean).")] = None,
    train_out: Annotated[Optional[str], typer.Option(help="Training-time outliers for detectors that use them (odm, outlier-exposure); its train split.")] = None,
    contaminate: Annotated[float, typer.Option(help="Mix this fraction of --contaminate-with images (random labels) into the ID training data.")] = 0.0,
    contaminate_with: Annotated[Optional[str], typer.Option(help="Dataset that contaminates the ID training data.")] = None,
    seeds: Annotated[Optional[list[int]], typer.Option(help="Repeat the whole pipeline per seed, report mean ± std: --seeds 0 1 2.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="Backbone (default: by input shape: lenet for 28×28, resnet18 for 32×32).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Load these weights instead of training.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the backbone's).")] = None,
    tune: Annotated[Tune, typer.Option(help="none: defaults; oracle: tune on the test OOD set's held-out samples; heldout: tune on --tune-out.")] = Tune.none,
    tune_out: Annotated[Optional[str], typer.Option(help="OOD source for --tune heldout (default: uniform).")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_root: DataRoot = None,
    download: Annotated[bool, typer.Option(help="Download missing datasets through torchvision.")] = False,
    train_limit: Annotated[Optional[int], typer.Option(help="Use a seeded random subset of the ID training set.")] = None,
    test_limit: Annotated[Optional[int], typer.Option(help="Use seeded random subsets of the test sets.")] = None,
    n_tune: Annotated[int, typer.Option(help="Tuning samples per side, removed from evaluation.")] = 1000,
    pretrained: Annotated[bool, typer.Option(help="Start timm:/torchvision: backbones from hub weights.")] = False,
    param: Annotated[Optional[list[str]], typer.Option(help="Detector parameter, DETECTOR.NAME=VALUE (repeatable).")] = None,
    layers: Annotated[Optional[str], typer.Option(help="Feature layers for layer-wise detectors, comma-separated (e.g. conv2,penultimate).")] = None,
    results: Annotated[Optional[str], typer.Option(help="Results folder (default: $OODBENCH_RESULTS or ./results).")] = None,
    feature_cache: Annotated[bool, typer.Option(help="Keep extracted features on disk (keyed by checkpoint + data hash) for later runs.")] = True,
    fmt: Annotated[Fmt, typer.Option("--format", help="Table format.")] = Fmt.github,
    metrics: Annotated[Optional[str], typer.Option(help="Table columns, comma-separated metric keys (e.g. fpr95,det_err95,auroc,aupr_in,aupr_out).")] = None,
) -> None:
    """Fit detectors on ID training data and score ID vs OOD test sets under a protocol."""
    from .errors import UsageError
    from .report import render
    from .runner import RunRequest, run_many

    seed_list = list(seeds or [])
    for extra in ctx.args:  # `--seeds 0 1 2`: the values after the first arrive as extra arguments
        if not seed_list or not extra.lstrip("-").isdigit():
            raise UsageError(f"unexpected argument {extra!r}")
        seed_list.append(int(extra))
    params = _params(param)
    if layers:
        from .plugins import registries

        chosen = [x.strip() for x in layers.split(",") if x.strip()]
        for name in detector:
            if "layers" in registries().detectors.get(name)().get_params():
                params.setdefault(name, {}).setdefault("layers", chosen)
    base = RunRequest(
        detectors=detector, id=in_, oods=list(out or []), backbone=backbone, checkpoint=checkpoint, epochs=epochs,
        tune=tune.value, tune_out=tune_out, seed=seed, device=device, data_root=data_root, download=download,
        train_limit=train_limit, test_limit=test_limit, n_tune=n_tune, pretrained=pretrained,
        results=results, detector_params=params, feature_cache=feature_cache, protocol=protocol.value,
        holdout=holdout, corruptions=corruption, severities=severity, corrupt_both=corrupt_both,
        train_out=train_out, contaminate=contaminate, contaminate_with=contaminate_with,
    )
    columns = None
    if metrics:
        from .metrics import METRIC_LABELS

        columns = [m.strip() for m in metrics.split(",") if m.strip()]
        bad = [m for m in columns if m not in METRIC_LABELS]
        if bad:
            from .errors import UnknownNameError

            raise UnknownNameError("metric", bad[0], METRIC_LABELS)
    outcome = run_many(base, seed_list or [seed])
    if outcome.records:
        typer.echo(render(outcome.records, fmt.value, columns))
    if outcome.failures:
        from .errors import RunFailed
        from .evaluate import failure_lines

        lines = failure_lines(outcome.failures)
        for line in lines[:-1]:
            typer.echo(f"oodbench: error: {line}", err=True)
        raise RunFailed(lines[-1])


@app.command()
def train(
    backbone: Annotated[Optional[str], typer.Option(help="Backbone (default: by input shape).")] = None,
    dataset: Annotated[str, typer.Option(help="ID dataset to train on.")] = "fashionmnist",
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the backbone's).")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_root: DataRoot = None,
    download: Annotated[bool, typer.Option(help="Download missing datasets through torchvision.")] = False,
    train_limit: Annotated[Optional[int], typer.Option(help="Use a seeded random subset of the training set.")] = None,
    pretrained: Annotated[bool, typer.Option(help="Start from hub weights (timm:/torchvision:).")] = False,
) -> None:
    """Train a backbone and cache its checkpoint (``run`` reuses it when the configuration matches)."""
    from .checkpoints import ModelSpec, load_or_train
    from .data import LoadContext, resolve_data_root
    from .plugins import registries
    from .request import resolve_device
    from .supply import default_backbone
    from .train import default_config

    regs = registries()
    ds = regs.datasets.get(dataset)
    if backbone:
        regs.backbones.get(backbone)
    dev = resolve_device(device)
    ctx = LoadContext(resolve_data_root(data_root), download, seed)
    tr = ds.load("train", ctx).head(train_limit, seed)
    te = ds.load("test", ctx) if "test" in ds.splits else None
    name = backbone or default_backbone(tr.shape)
    factory = regs.backbones.get(name)
    spec = ModelSpec(name, dataset, tr.shape, tr.num_classes,
                     default_config(factory.train_defaults, epochs=epochs, seed=seed),
                     train_limit=train_limit, pretrained=pretrained)
    _, info = load_or_train(spec, factory, tr, te, dev)
    typer.echo(f"checkpoint: {info['path']} ({info['source']})")


class BoardFmt(str, Enum):
    github = "github"
    markdown = "markdown"
    latex = "latex"
    html = "html"


SuiteFile = Annotated[str, typer.Option("--file", help="Suite definitions.")]


@app.command("bench")
def bench_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name in benchmarks.yaml (smoke, cpu, gpu, …).")],
    file: SuiteFile = "benchmarks.yaml",
    results: Annotated[Optional[str], typer.Option(help="Results folder (default: $OODBENCH_RESULTS or ./results); records go to RESULTS/SUITE.")] = None,
) -> None:
    """Run a suite; finished runs and records are skipped, so an interrupted suite resumes."""
    from .suites import bench

    counts = bench(suite, file, results)
    typer.echo(f"{suite}: {counts['done']} run(s) done, {counts['skipped']} already done, {counts['failed']} failed, "
               f"{counts['total']} in the suite")
    if counts["failed"]:
        from .errors import RunFailed

        raise RunFailed(f"{counts['failed']} run(s) of suite {suite!r} failed (see above); rerun to retry them")


@app.command("leaderboard")
def leaderboard_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name.")],
    file: SuiteFile = "benchmarks.yaml",
    results: Annotated[Optional[str], typer.Option(help="Results folder the suite was run into.")] = None,
    fmt: Annotated[BoardFmt, typer.Option("--format", help="Table format.")] = BoardFmt.github,
    write: Annotated[Optional[Path], typer.Option(help="Replace this suite's marked section of a Markdown file (e.g. LEADERBOARD.md).")] = None,
) -> None:
    """Ranked tables from a suite's records (one per protocol), paper numbers beside reproduced rows."""
    from .suites import leaderboard, write_section

    text = leaderboard(suite, file, results, fmt.value)
    if write:
        write_section(write, suite, text)
        typer.echo(f"wrote the {suite} leaderboard into {write}")
    else:
        typer.echo(text)


class PlotKind(str, Enum):
    scores = "scores"
    corruption = "corruption"
    embedding = "embedding"


@app.command("plot")
def plot_cmd(
    kind: Annotated[PlotKind, typer.Argument(help="scores: ID vs OOD histograms; corruption: AUROC against severity; embedding: 2-D PCA/t-SNE of a detector's embedding.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
    results: Annotated[Optional[str], typer.Option(help="Results folder (or a suite's folder, results/SUITE).")] = None,
    detector: Annotated[Optional[list[str]], typer.Option("--detector", "-d", help="Only these detectors.")] = None,
    ood: Annotated[Optional[list[str]], typer.Option(help="Only these OOD sets.")] = None,
    id_: Annotated[Optional[str], typer.Option("--in", help="Only this ID dataset.")] = None,
    method: Annotated[str, typer.Option(help="embedding: pca | tsne.")] = "pca",
) -> None:
    """Draw pictures from result records (needs matplotlib: pip install 'oodbench[plot]')."""
    from .errors import UsageError
    from .plots import corruption_curves, embedding_panels, score_histograms
    from .store import record_files, results_dir

    root = results_dir(results)
    found = [(p, r) for p, r in record_files(root)
             if (not detector or r.detector in detector) and (not ood or r.ood in ood) and (not id_ or r.id == id_)]
    if not found:
        raise UsageError(f"no records match under {root}")
    if kind is PlotKind.scores:
        path = score_histograms([(p, r) for p, r in found if r.protocol != "misclassification"][:12], out)
    elif kind is PlotKind.embedding:
        if method not in ("pca", "tsne"):
            raise UsageError(f"--method {method!r}: choose pca or tsne")
        path = embedding_panels(found, out, method)
    else:
        path = corruption_curves([r for _, r in found], out)
    typer.echo(f"wrote {path}")


@app.command("list")
def list_(kind: Annotated[Kind, typer.Argument(help="detectors | datasets | backbones")]) -> None:
    """List registered detectors, datasets or backbones with the plugin each comes from."""
    from tabulate import tabulate

    from .plugins import registries

    registry = registries().by_kind(kind.value[:-1])
    owners = registry.conflicts
    rows = [(e.name, e.description, "CONFLICT: " + ", ".join(owners[e.name]) if e.name in owners else e.plugin)
            for e in registry]
    typer.echo(tabulate(rows, headers=["name", "description", "plugin"], tablefmt="simple"))


@app.command()
def plugins() -> None:
    """Show every plugin: name, version, status (ok, conflict, failed, disabled) and the hooks it implements."""
    from tabulate import tabulate

    from .plugins import registries

    rows = [(name, version, status, ", ".join(hooks)) for name, version, status, hooks in registries().status()]
    typer.echo(tabulate(rows, headers=["plugin", "version", "status", "hooks"], tablefmt="simple"))


LayersShape = Annotated[Optional[str], typer.Option(
    help="Input C×H×W, e.g. 1x28x28 (default: 1x28x28 or 3x32x32 if the backbone suits it, else 3x224x224).",
    show_default=False)]


@app.command()
def layers(
    backbone: Annotated[str, typer.Argument(help="Backbone name (see `oodbench list backbones`), e.g. lenet.")],
    shape: LayersShape = None,
    classes: Annotated[int, typer.Option(help="Number of classes (width of the logits).")] = 10,
) -> None:
    """Feature layer names of a backbone (shallow to deep, then penultimate and logits) and their sizes."""
    from .cli_info import layer_table

    typer.echo(layer_table(backbone, shape, classes))


def _one_line_plugin_warnings(show):
    """A ``showwarning`` that prints a PluginLoadWarning as one line (``oodbench: warning: …``)."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        from .plugins import PluginLoadWarning

        if issubclass(category, PluginLoadWarning):
            print(f"oodbench: warning: {message}", file=file or sys.stderr, flush=True)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point with the one error boundary: known errors → one line on stderr + exit code."""
    from .errors import OodbenchError

    debug = bool(os.environ.get("OODBENCH_DEBUG"))
    if not debug:
        warnings.filterwarnings("default", category=UserWarning, module="oodbench")
    show, disabled = warnings.showwarning, os.environ.get(DISABLE_ENV)
    warnings.showwarning = _one_line_plugin_warnings(show)
    try:
        app(args=argv, standalone_mode=False)
    except OodbenchError as exc:
        if debug:
            raise
        hint = " (set OODBENCH_DEBUG=1 for the traceback)" if exc.exit_code == 1 else ""
        typer.echo(f"oodbench: error: {exc}{hint}", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted (finished records are kept)", err=True)
        return 130
    except typer.TyperException as exc:  # usage errors from option parsing (exit 2)
        exc.show()  # type: ignore[attr-defined]
        return exc.exit_code
    finally:
        warnings.showwarning = show
        if os.environ.get(DISABLE_ENV) != disabled:  # --disable-plugin: undo for in-process callers (tests)
            from .plugins import reset

            if disabled is None:
                os.environ.pop(DISABLE_ENV, None)
            else:
                os.environ[DISABLE_ENV] = disabled
            reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
