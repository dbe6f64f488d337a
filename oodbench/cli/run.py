"""``oodbench run`` (``oodbench train`` is in :mod:`oodbench.cli.train`)."""

from __future__ import annotations

from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from oodbench.cli.app import (
    DataRoot,
    Device,
    Fmt,
    InputMean,
    InputStd,
    ModelFiles,
    ModelHead,
    ModelLayers,
    ModelName,
    PretrainedFile,
    Seed,
    TrainOptions,
    Tune,
    Yes,
    app,
    floats,
    key_values,
)


class Protocol(str, Enum):
    anomaly = "anomaly"
    novelty = "novelty"
    corruption = "corruption"
    full_spectrum = "full-spectrum"
    misclassification = "misclassification"


@app.command(context_settings={"allow_extra_args": True})
def run(
    ctx: typer.Context,
    detector: Annotated[list[str], typer.Option("--detector", "-d", help="Detector name (repeatable).")],
    in_: Annotated[str, typer.Option("--in", help="In-distribution dataset (e.g. fashionmnist, folder:PATH).")],
    out: Annotated[Optional[list[str]], typer.Option("--out", help="OOD test dataset (repeatable).")] = None,
    near: Annotated[
        Optional[list[str]], typer.Option("--near", help="Near-OOD test set (repeatable): tables add its group mean.")
    ] = None,
    far: Annotated[
        Optional[list[str]], typer.Option("--far", help="Far-OOD test set (repeatable): tables add its group mean.")
    ] = None,
    protocol: Annotated[
        Protocol, typer.Option(help="anomaly | novelty | corruption | misclassification (SPEC.md).")
    ] = Protocol.anomaly,
    holdout: Annotated[
        Optional[str], typer.Option(help="novelty: held-out classes — each | 0,1 | in:2,6,7/seen:0,3,4,8/unseen:5,9,1.")
    ] = None,
    corruption: Annotated[
        Optional[list[str]], typer.Option(help="corruption: types to apply (repeatable; default: all).")
    ] = None,
    severity: Annotated[
        Optional[list[int]], typer.Option(help="corruption: severities 1–5 (repeatable; default: all).")
    ] = None,
    corrupt_both: Annotated[
        Optional[str], typer.Option(help="corruption: TYPE:SEV applied to ID and OOD test data (tuning stays clean).")
    ] = None,
    train_out: Annotated[
        Optional[str],
        typer.Option(
            help="Training-time outliers for detectors that use them (odm, outlier-exposure); its train split."
        ),
    ] = None,
    contaminate: Annotated[
        float,
        typer.Option(help="Mix this fraction of --contaminate-with images (random labels) into the ID training data."),
    ] = 0.0,
    contaminate_with: Annotated[
        Optional[str], typer.Option(help="Dataset that contaminates the ID training data.")
    ] = None,
    seeds: Annotated[
        Optional[list[int]], typer.Option(help="Repeat the whole pipeline per seed, report mean ± std: --seeds 0 1 2.")
    ] = None,
    backbone: Annotated[
        Optional[str], typer.Option(help="Backbone (default: by input shape: lenet for 28×28, resnet18 for 32×32).")
    ] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Load these weights instead of training.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the backbone's).")] = None,
    tune: Annotated[
        Tune,
        typer.Option(
            help="none: defaults; oracle: tune on the test OOD set's held-out samples; heldout: tune on --tune-out."
        ),
    ] = Tune.none,
    tune_out: Annotated[Optional[str], typer.Option(help="OOD source for --tune heldout (default: uniform).")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_root: DataRoot = None,
    download: Annotated[bool, typer.Option(help="Download missing datasets through torchvision.")] = False,
    train_limit: Annotated[
        Optional[int], typer.Option(help="Use a seeded random subset of the ID training set.")
    ] = None,
    test_limit: Annotated[Optional[int], typer.Option(help="Use seeded random subsets of the test sets.")] = None,
    n_tune: Annotated[int, typer.Option(help="Tuning samples per side, removed from evaluation.")] = 1000,
    pretrained: Annotated[
        bool, typer.Option(help="timm:/torchvision: weights from the hub (or oodbench.yaml's pretrained_file).")
    ] = False,
    pretrained_file: PretrainedFile = None,
    param: Annotated[
        Optional[list[str]], typer.Option(help="Detector parameter, DETECTOR.NAME=VALUE (repeatable).")
    ] = None,
    train: TrainOptions = None,
    layers: Annotated[
        Optional[str],
        typer.Option(help="Feature layers for layer-wise detectors, comma-separated (e.g. conv2,penultimate)."),
    ] = None,
    results: Annotated[
        Optional[str], typer.Option(help="Results folder (default: $OODBENCH_RESULTS or ./results).")
    ] = None,
    feature_cache: Annotated[
        bool, typer.Option(help="Keep extracted features on disk (keyed by weights + data content) for later runs.")
    ] = True,
    max_memory: Annotated[
        Optional[float],
        typer.Option(
            help="GB of resident memory a run may hold: a stage over it stops with one line naming the stage "
            "(default: $OODBENCH_MAX_MEMORY, else no budget). Each record keeps its stages' peak RSS (memory)."
        ),
    ] = None,
    grid: Annotated[
        Optional[str],
        typer.Option(
            help="A named tuning grid: paper003 (default) | odin | lee2018 | openood for ODIN and Mahalanobis "
            "(the papers' and OpenOOD's; recorded as tuning.grid)."
        ),
    ] = None,
    precision: Annotated[
        Optional[str],
        typer.Option(
            help="fp32 | bf16: one precision for feature extraction and input-perturbation passes "
            "(default: bf16 autocast on CUDA, fp32 on the CPU); recorded in every record's identity."
        ),
    ] = None,
    fmt: Annotated[Fmt, typer.Option("--format", help="Table format.")] = Fmt.github,
    metrics: Annotated[
        Optional[str],
        typer.Option(help="Table columns, comma-separated metric keys (e.g. fpr95,det_err95,auroc,aupr_in,aupr_out)."),
    ] = None,
    ci: Annotated[
        bool,
        typer.Option(
            "--ci", help="Show each number's 95 % bootstrap interval: value \\[lo, hi], explained under the table."
        ),
    ] = False,
    model: ModelFiles = None,
    model_name: ModelName = None,
    model_layer: ModelLayers = None,
    model_head: ModelHead = None,
    input_mean: InputMean = None,
    input_std: InputStd = None,
    yes: Yes = False,
) -> None:
    """Fit detectors on ID training data and score ID vs OOD test sets under a protocol."""
    from oodbench.pipeline.request import RunRequest  # checked on construction, before torch loads

    params = _with_layers(key_values(param, "--param", dotted=True), layers, detector)
    base = RunRequest(
        detectors=detector,
        id=in_,
        oods=[*(out or []), *(near or []), *(far or [])],
        ood_groups={g: list(m) for g, m in (("near", near), ("far", far)) if m},
        backbone=backbone,
        checkpoint=checkpoint,
        epochs=epochs,
        tune=tune.value,
        tune_out=tune_out,
        seed=seed,
        device=device,
        data_root=data_root,
        download=download,
        train_limit=train_limit,
        test_limit=test_limit,
        n_tune=n_tune,
        pretrained=pretrained,
        pretrained_file=str(pretrained_file) if pretrained_file else None,
        results=results,
        detector_params=params,
        train_options=key_values(train, "--train"),
        feature_cache=feature_cache,
        max_memory=max_memory,
        precision=precision,
        grid=grid,
        protocol=protocol.value,
        holdout=holdout,
        corruptions=corruption,
        severities=severity,
        corrupt_both=corrupt_both,
        train_out=train_out,
        contaminate=contaminate,
        contaminate_with=contaminate_with,
        model=model[0] if model and len(model) == 1 else None,
        models=model if model and len(model) > 1 else None,
        model_name=model_name,
        model_layers=model_layer,
        model_head=model_head,
        input_mean=floats(input_mean, "--input-mean"),
        input_std=floats(input_std, "--input-std"),
    )
    seed_list = _seed_list(seeds, ctx.args) or [seed]
    columns = _columns(metrics)
    from oodbench.models.estimate import allow_long_training
    from oodbench.pipeline.runner import run_many

    with allow_long_training() if yes else nullcontext():  # --yes: long CPU training goes ahead without asking
        outcome = run_many(base, seed_list)
    _report(outcome, fmt.value, columns, _intervals(results) if ci else None)


def _seed_list(seeds: list[int] | None, extras: list[str]) -> list[int]:
    """``--seeds 0 1 2``: the values after the first arrive as extra arguments."""
    from oodbench.core.errors import UsageError

    seed_list = list(seeds or [])
    for extra in extras:
        if not seed_list or not extra.lstrip("-").isdigit():
            hint = "; --seeds takes whole numbers, e.g. --seeds 0 1 2" if seed_list else ""
            raise UsageError(f"unexpected argument {extra!r}{hint}")
        seed_list.append(int(extra))
    return seed_list


def _with_layers(params: dict[str, dict], layers: str | None, detectors: list[str]) -> dict[str, dict]:
    """``--layers conv2,penultimate``: the ``layers`` parameter of every layer-wise detector in the run."""
    if layers is not None:
        from oodbench.core.errors import UsageError
        from oodbench.plugins.manager import registries

        chosen = [x.strip() for x in layers.split(",") if x.strip()]
        if not chosen:
            raise UsageError(f"--layers takes comma-separated layer names, got {layers!r}")
        takers = [n for n in detectors if "layers" in registries().detectors.get(n)().get_params()]
        if not takers:
            raise UsageError(
                f"--layers applies to layer-wise detectors (e.g. mahalanobis, fssd, gram); "
                f"none of {', '.join(detectors)} takes layers"
            )
        for name in takers:
            params.setdefault(name, {}).setdefault("layers", chosen)
    return params


def _columns(metrics: str | None) -> list[str] | None:
    if not metrics:
        return None
    from oodbench.core.errors import UnknownNameError
    from oodbench.records.metrics import METRIC_LABELS

    columns = [m.strip() for m in metrics.split(",") if m.strip()]
    bad = [m for m in columns if m not in METRIC_LABELS]
    if bad:
        raise UnknownNameError("metric", bad[0], METRIC_LABELS)
    return columns


def _intervals(results: str | None):
    """``--ci``: row intervals from the records and the scores saved beside them (:mod:`oodbench.records.intervals`)."""
    from oodbench.records.intervals import Intervals
    from oodbench.records.store import results_dir

    return Intervals(results_dir(results))


def _report(outcome, fmt: str, columns: list[str] | None, ci=None) -> None:
    """The table of the finished records (with ``ci``: an interval beside each number), then one line per
    failed detector (exit 1)."""
    from oodbench.core.errors import RunFailed
    from oodbench.pipeline.evaluate import failure_lines
    from oodbench.report.render import render

    if outcome.records:
        typer.echo(render(outcome.records, fmt, columns, ci))
    if outcome.failures:
        lines = failure_lines(outcome.failures)
        for line in lines[:-1]:
            typer.echo(f"oodbench: error: {line}", err=True)
        raise RunFailed(lines[-1])
