"""``oodbench list``, ``oodbench plugins`` and ``oodbench layers BACKBONE``.

``layers``: a backbone's feature layer names and their sizes, for plugin authors.

Builds the backbone untrained (``pretrained=False``, no weights needed) and runs one forward pass on a
dummy batch, so the names are exactly what ``FeatureView.features`` accepts for that backbone.
"""

from __future__ import annotations

import re
from typing import Annotated, Optional

import typer

from oodbench.cli.app import Kind, ModelFile, app
from oodbench.core.errors import UsageError

DEFAULT_SHAPES = ((1, 28, 28), (3, 32, 32))  # tried in order: the first the backbone suits
FALLBACK_SHAPE = (3, 224, 224)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``1x28x28`` / ``3×32×32`` / ``3,32,32`` → (C, H, W)."""
    parts = re.split(r"\s*[x×,]\s*", text.strip().lower())
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"--shape takes C×H×W, e.g. 1x28x28 or 3x32x32; got {text!r}")
    c, h, w = (int(p) for p in parts)
    return c, h, w


def layer_rows(backbone: str, shape: str | None = None, classes: int = 10) -> tuple[str, list[tuple[str, int, str]]]:
    """(heading, [(layer, pooled dimension, per-sample output shape)]) in ``feature_layers`` order."""
    import torch

    from oodbench.models.backbones import pool_feature
    from oodbench.plugins.manager import plugin_code, registries

    if classes < 1:
        raise UsageError(f"--classes must be at least 1, got {classes}")
    regs = registries()
    factory = regs.backbones.get(backbone)
    if shape is not None:
        size = parse_shape(shape)
    elif getattr(factory, "input_shape", None):  # what the backbone declares it takes
        size = tuple(factory.input_shape)
    else:
        size = next((s for s in DEFAULT_SHAPES if factory.suits(s)), FALLBACK_SHAPE)
    with plugin_code("backbone", backbone, regs.backbones.owner(backbone)):
        model = factory.build(size, classes, pretrained=False).eval()
        with torch.inference_mode():
            raw = model.forward_features(torch.rand(2, *size), pool=False)
    rows = []
    for name in model.feature_layers:
        out = raw[name]
        rows.append((name, int(pool_feature(out).shape[1]), "×".join(map(str, out.shape[1:]))))
    heading = (
        f"{backbone} on {'×'.join(map(str, size))} inputs, {classes} classes: "
        f"{len(rows)} feature layers, shallow to deep (dim = what FeatureView.features returns per sample)"
    )
    return heading, rows


def layer_table(backbone: str, shape: str | None = None, classes: int = 10) -> str:
    from tabulate import tabulate

    heading, rows = layer_rows(backbone, shape, classes)
    return heading + "\n" + tabulate(rows, headers=["layer", "dim", "output shape"], tablefmt="simple")


def detector_needs(cls: type, model) -> tuple[str, str]:
    """(kind, needs) of a detector class at a glance: post-hoc or trains, and what it reads from a model —
    logits, pooled features, feature maps (the layers ``required_layers`` declares for ``model``), gradients
    (``Needs.gradients``), auxiliary outliers (``Needs.outliers``)."""
    needs = cls.needs
    kind = "trains" if needs.trains else "post-hoc" + (" (fits on ID val)" if needs.fits_on == "validation" else "")
    try:
        layers = cls().required_layers(model)
    except Exception:  # a third party's detector that cannot say without more: its needs say the rest
        layers = []
    reads = {"logits": "logits", "penultimate": "features"}
    parts = list(dict.fromkeys(reads.get(name, "feature maps") for name in layers))
    parts += ["feature maps"] if needs.feature_maps and "feature maps" not in parts else []
    parts = sorted(parts, key=["logits", "features", "feature maps"].index)
    if needs.trains:
        parts.append("own networks")
    if needs.gradients != "none":
        parts.append({"inputs": "input gradients", "network": "gradients"}[needs.gradients])
    if needs.outliers != "none":
        parts.append(f"outliers ({needs.outliers})")
    return kind, ", ".join(parts)


def probe_model():
    """An untrained LeNet on 1×28×28 (built in a millisecond) to ask detectors which layers they read, or None
    where the built-in backbones are disabled."""
    from oodbench.plugins.manager import registries

    try:
        return registries().backbones.get("lenet").build((1, 28, 28), 10, pretrained=False)
    except Exception:
        return None


@app.command("list")
def list_(kind: Annotated[Kind, typer.Argument(help="detectors | datasets | backbones")]) -> None:
    """List registered detectors, datasets or backbones with the plugin each comes from; detectors also say
    whether they are post-hoc or train, and what they need from a model."""
    from tabulate import tabulate

    from oodbench.plugins.manager import registries

    registry = registries().by_kind(kind.value[:-1])
    owners = registry.conflicts

    def plugin(name: str, owner: str) -> str:
        return "CONFLICT: " + ", ".join(owners[name]) if name in owners else owner

    if kind.value != "detectors":
        rows = [(e.name, e.description, plugin(e.name, e.plugin)) for e in registry]
        typer.echo(tabulate(rows, headers=["name", "description", "plugin"], tablefmt="simple"))
        return
    model = probe_model()
    rows = [(e.name, *detector_needs(e.obj, model), e.description, plugin(e.name, e.plugin)) for e in registry]
    headers = ["name", "kind", "needs", "description", "plugin"]
    typer.echo(tabulate(rows, headers=headers, tablefmt="simple"))


@app.command()
def plugins() -> None:
    """Show every plugin: name, version, status (ok, conflict, failed, disabled) and the hooks it implements."""
    from tabulate import tabulate

    from oodbench.plugins.manager import registries

    rows = [(name, version, status, ", ".join(hooks)) for name, version, status, hooks in registries().status()]
    typer.echo(tabulate(rows, headers=["plugin", "version", "status", "hooks"], tablefmt="simple"))


LayersShape = Annotated[
    Optional[str],
    typer.Option(
        help="Input C×H×W, e.g. 1x28x28 (default: 1x28x28 or 3x32x32 if the backbone suits it, else 3x224x224).",
        show_default=False,
    ),
]


@app.command()
def layers(
    backbone: Annotated[
        Optional[str], typer.Argument(help="Backbone name (see `oodbench list backbones`), e.g. lenet.")
    ] = None,
    shape: LayersShape = None,
    classes: Annotated[int, typer.Option(help="Number of classes (width of the logits).")] = 10,
    model: ModelFile = None,
) -> None:
    """Feature layer names of a backbone (shallow to deep, then penultimate and logits) and their sizes; with
    --model, every module path of your model a layer-wise detector may read."""
    from tabulate import tabulate

    if (backbone is None) == (model is None):
        raise UsageError("name a backbone or give --model FILE (one of them)")
    if model is None:
        typer.echo(layer_table(backbone, shape, classes))
        return
    from oodbench.models.foreign import layer_rows as brought_rows

    heading, rows = brought_rows(model, parse_shape(shape) if shape else None)
    typer.echo(heading + "\n" + tabulate(rows, headers=["module path", "dim", "output shape", ""], tablefmt="simple"))
