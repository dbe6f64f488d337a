"""Pictures from result records (matplotlib, the optional ``plot`` extra).

- :func:`score_histograms`: ID vs OOD score histograms, one panel per record (paper 003 Fig. 1,
  paper 002 Fig. 4), from the per-sample scores saved beside each record.
- :func:`corruption_curves`: AUROC against severity, one line per corruption type (paper 003 Fig. 4).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from oodbench.core.errors import UsageError
from oodbench.records.store import scores_of


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'oodbench[plot]'") from None
    return plt


def _grid(plt, n: int, size: tuple[float, float], cols: int = 3):
    """A figure with ``n`` panels, at most ``cols`` per row; the unused ones are hidden."""
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, axes


def _save(plt, fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def score_histograms(found: list[tuple[Path, dict[str, Any]]], out: Path, bins: int = 60) -> Path:
    """One histogram panel per (record file, record) whose scores were saved."""
    plt = _pyplot()
    panels = [(r, scores_of(path)) for path, r in found]
    panels = [(r, s) for r, s in panels if s is not None and "ood" in s]
    if not panels:
        raise UsageError("no saved scores for these records (runs from before scores were saved?)")
    fig, axes = _grid(plt, len(panels), (4.2, 3.2))
    for ax, (r, s) in zip(axes.flat, panels):
        lo, hi = float(min(s["id"].min(), s["ood"].min())), float(max(s["id"].max(), s["ood"].max()))
        ax.hist(s["id"], bins=bins, range=(lo, hi), alpha=0.6, density=True, label=f"ID {r.id}")
        ax.hist(s["ood"], bins=bins, range=(lo, hi), alpha=0.6, density=True, label=f"OOD {r.ood}")
        ax.set_title(f"{r.detector} ({r.tune}) AUROC {r.metrics['auroc']:.1f}", fontsize=9)
        ax.set_xlabel("score (higher = more in-distribution)", fontsize=8)
        ax.legend(fontsize=7)
    return _save(plt, fig, out)


def corruption_curves(records: list[dict[str, Any]], out: Path, metric: str = "auroc") -> Path:
    plt = _pyplot()
    series: dict[tuple[str, str], dict[int, float]] = {}
    for r in records:
        if "severity" in r.target:
            series.setdefault((r.detector, r.target["corruption"]), {})[int(r.target["severity"])] = r.metrics[metric]
    if not series:
        raise UsageError("no corruption records (protocol corruption, ID test corrupted as OOD)")
    detectors = sorted({d for d, _ in series})
    fig, axes = plt.subplots(1, len(detectors), figsize=(5 * len(detectors), 3.8), squeeze=False)
    for ax, det in zip(axes.flat, detectors):
        for (d, kind), pts in sorted(series.items()):
            if d == det:
                xs = sorted(pts)
                ax.plot(xs, [pts[x] for x in xs], marker="o", label=kind)
        ax.set_title(det)
        ax.set_xlabel("severity")
        ax.set_ylabel(metric.upper())
        ax.set_xticks([1, 2, 3, 4, 5])
        ax.legend(fontsize=6, ncol=2)
    return _save(plt, fig, out)


def project_2d(points, method: str = "pca", seed: int = 0):
    """N×D → N×2 by PCA (sklearn) or t-SNE; 1-D embeddings get a zero second axis."""
    import numpy as np

    if points.shape[1] <= 2:
        return np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(1.0, (len(points) - 1) / 3))  # t-SNE needs perplexity < n
        return TSNE(n_components=2, random_state=seed, init="pca", perplexity=perplexity).fit_transform(points)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(points)


def embedding_panels(found: list[tuple[Path, dict[str, Any]]], out: Path, method: str = "pca") -> Path:
    """2-D PCA / t-SNE of detectors' embeddings: ID test points coloured by class, each OOD set in
    its own colour (papers 000 Fig. 4 and 001 Fig. 1). One panel per (detector, ID, seed); the points
    are those saved beside the records by detectors that have ``embed``."""
    import numpy as np

    plt = _pyplot()
    groups: dict[tuple, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for path, r in found:
        s = scores_of(path)
        if s is not None and "emb_id" in s:
            groups.setdefault((r.detector, r.id, r.tune, r.seed), []).append((r, s))
    if not groups:
        raise UsageError(
            "no saved embeddings for these records (detectors with an embedding: msp, metric-learning, "
            "odm, dec-embedding)"
        )
    fig, axes = _grid(plt, len(groups), (4.8, 4.2))
    id_colours = [
        "tab:blue",
        "tab:green",
        "tab:red",
        "tab:purple",
        "tab:cyan",
        "tab:pink",
        "tab:olive",
        "navy",
        "darkgreen",
        "maroon",
    ]
    ood_colours = ["0.55", "gold", "tab:brown", "black", "tab:orange", "lightcoral", "khaki"]
    for ax, ((det, _id, _tune, seed), items) in zip(axes.flat, sorted(groups.items())):
        base = items[0][1]
        parts = [base["emb_id"]] + [s["emb_ood"] for _, s in items]
        flat = project_2d(np.concatenate(parts), method, seed)
        n_id = len(base["emb_id"])
        start = n_id
        for i, (r, s) in enumerate(items):  # OOD first, so the ID clusters stay visible on top
            end = start + len(s["emb_ood"])
            ax.scatter(
                flat[start:end, 0],
                flat[start:end, 1],
                s=3,
                alpha=0.45,
                color=ood_colours[i % len(ood_colours)],
                label=f"OOD {r.ood} (AUROC {r.metrics['auroc']:.1f})",
            )
            start = end
        labels = base["emb_id_labels"].astype(int)
        for k in np.unique(labels):
            pts = flat[:n_id][labels == k]
            ax.scatter(
                pts[:, 0], pts[:, 1], s=3, alpha=0.7, color=id_colours[k % len(id_colours)], label=f"ID class {k}"
            )
        ax.set_title(f"{det} — {method.upper()} of the embedding", fontsize=9)
        ax.legend(fontsize=6, markerscale=3)
    return _save(plt, fig, out)
