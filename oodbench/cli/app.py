"""The Typer application and the option types its commands share (commands live in ``cli_*`` modules)."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from oodbench import __version__

app = typer.Typer(
    name="oodbench",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    help="Out-of-distribution detection benchmarks: train or load a backbone, fit detectors, score, tabulate.",
)

DISABLE_ENV = "OODBENCH_DISABLE_PLUGINS"  # = oodbench.plugins.DISABLE_ENV (not imported: keeps --help light)


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
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
    disable_plugin: Annotated[
        Optional[list[str]],
        typer.Option(
            "--disable-plugin",
            metavar="NAME",
            help=f"Skip a plugin: its distribution name or DIST:ENTRYPOINT (repeatable; also ${DISABLE_ENV}=A,B).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """oodbench: out-of-distribution detection benchmarks."""
    if disable_plugin:  # registries are built on first use, from the environment
        from oodbench.plugins.manager import reset

        before = [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        os.environ[DISABLE_ENV] = ",".join(before + list(disable_plugin))
        reset()


DataRoot = Annotated[
    Optional[str],
    typer.Option("--data-root", help="Dataset folder (else $OODBENCH_DATA, else the user cache).", show_default=False),
]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda")]
PretrainedFile = Annotated[
    Optional[Path],
    typer.Option(help="Local timm:/torchvision: weights file (implies --pretrained; no download).", show_default=False),
]
Seed = Annotated[int, typer.Option(help="Seed for training, splits and synthetic data.")]
TrainOptions = Annotated[
    Optional[list[str]],
    typer.Option(
        "--train",
        help="Training setting KEY=VALUE (repeatable), e.g. batch_size=512, lr=0.4, schedule=onecycle, "
        "weight_decay=5e-4, optimizer=sgd, augment=crop-flip, mixup, cutmix, regmixup or augmix (mixup α=1, "
        "cutmix α=1, regmixup α=10 η=1, augmix without JSD); part of the checkpoint's key.",
        show_default=False,
    ),
]


def key_values(values: list[str] | None, option: str, dotted: bool = False) -> dict:
    """``KEY=VALUE`` items → {KEY: VALUE}; ``dotted``: ``DETECTOR.NAME=VALUE`` → {DETECTOR: {NAME: VALUE}}.
    Values are YAML scalars (``1e3``, which YAML 1.1 reads as text, is a number)."""
    import re

    import yaml

    from oodbench.core.errors import UsageError

    shape = "DETECTOR.NAME=VALUE" if dotted else "KEY=VALUE"
    out: dict = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        head, dot, name = key.partition(".")
        if not sep or not key or (dotted and (not dot or not head or not name)) or (not dotted and dot):
            raise UsageError(f"{option} takes {shape}, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UsageError(f"{option} {key}: cannot read the value {raw!r} (quote text, e.g. {key}='a b')") from None
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
            value = float(value)
        if dotted:
            out.setdefault(head, {})[name] = value
        else:
            out[key] = value
    return out


ModelFile = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        help="A trained model to evaluate as it is: a torch.export .pt2, a TorchScript file, or module:callable.",
    ),
]
ModelFiles = Annotated[
    Optional[list[str]],
    typer.Option(
        "--model",
        help="A trained model to evaluate as it is: a torch.export .pt2, a TorchScript file, or module:callable. "
        "Repeat it for several checkpoints of one recipe: one record each, tables give mean ± std over them.",
    ),
]
ModelName = Annotated[
    Optional[str],
    typer.Option("--model-name", help="--model: the name its records carry (default: the file's common name)."),
]
ModelLayers = Annotated[
    Optional[list[str]],
    typer.Option("--model-layer", help="--model: a module path a layer-wise detector reads (repeatable)."),
]
ModelHead = Annotated[
    Optional[str], typer.Option(help="--model: the classifier head's module path (default: found by a probe).")
]
InputMean = Annotated[
    Optional[str], typer.Option(help="--model: per-channel mean to normalise [0, 1] input, e.g. 0.49,0.48,0.45.")
]
InputStd = Annotated[Optional[str], typer.Option(help="--model: per-channel std, as --input-mean.")]
Yes = Annotated[
    bool, typer.Option("--yes", "-y", help="Train on a CPU even when the estimate is over an hour (OODBENCH_YES=1).")
]


def floats(text: str | None, option: str) -> list[float] | None:
    """``0.49,0.48,0.45`` → ``[0.49, 0.48, 0.45]``; anything else is one line (exit 2)."""
    if text is None:
        return None
    from oodbench.core.errors import UsageError

    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{option} takes comma-separated numbers, got {text!r}") from None
