"""``oodbench layers BACKBONE``: a backbone's feature layer names and their sizes, for plugin authors.

Builds the backbone untrained (``pretrained=False``, no weights needed) and runs one forward pass on a
dummy batch, so the names are exactly what ``FeatureView.features`` accepts for that backbone.
"""

from __future__ import annotations

import re

from .errors import UsageError

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

    from .backbones import pool_feature
    from .plugins import plugin_code, registries

    if classes < 1:
        raise UsageError(f"--classes must be at least 1, got {classes}")
    regs = registries()
    factory = regs.backbones.get(backbone)
    if shape is not None:
        size = parse_shape(shape)
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
    heading = (f"{backbone} on {'×'.join(map(str, size))} inputs, {classes} classes: "
               f"{len(rows)} feature layers, shallow to deep (dim = what FeatureView.features returns per sample)")
    return heading, rows


def layer_table(backbone: str, shape: str | None = None, classes: int = 10) -> str:
    from tabulate import tabulate

    heading, rows = layer_rows(backbone, shape, classes)
    return heading + "\n" + tabulate(rows, headers=["layer", "dim", "output shape"], tablefmt="simple")
