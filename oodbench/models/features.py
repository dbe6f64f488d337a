"""Samples as seen through one model: images plus model outputs extracted once and reused.

A :class:`FeatureView` is what every detector's ``fit`` and ``score_samples`` receive. It
extracts the requested feature layers in one batched forward pass per image, keeps them on the
model's device (float32) and hands the same tensors to every detector and every tuning grid point:
detectors compute where the features are, and only their final scores move to the CPU (for metrics).
``subset`` slices a view without recomputing anything; ``memo`` lets a detector keep its own
derived per-sample tensors (e.g. input-gradient signs) for the same samples.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from oodbench.core import precision
from oodbench.core.atomic import atomic_torch_save, load_checked
from oodbench.core.progress import pause_point, track, warn
from oodbench.data.imageset import ImageSet, to_float
from oodbench.data.streams import is_streamed
from oodbench.models.backbones import Backbone

__all__ = ["FeatureView", "to_float"]


class FeatureView:
    """Images of one split plus lazily extracted, cached features for one backbone. ``amp``: extract on the
    device's fast path where it has one (bf16 autocast, channels_last: :mod:`oodbench.core.precision`); the features
    are float32 either way."""

    def __init__(
        self,
        images: ImageSet,
        model: Backbone,
        device: torch.device | str = "cpu",
        batch_size: int = 512,
        amp: bool = False,
        cache_dir: Path | None = None,
    ):
        self.imageset = images
        self.model = model
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.amp = amp
        self.cache_dir = cache_dir  # on-disk feature cache for this (model, images); None = memory only
        self._features: dict[str, torch.Tensor] = {}
        self._memo: dict[Hashable, Any] = {}
        self._parent: FeatureView | None = None
        self._index: torch.Tensor | None = None
        self._device_labels: torch.Tensor | None = None
        self._grad_batch: int | None = None  # map_inputs' batch once a pass ran out of memory
        self.prefetch: frozenset[str] = frozenset()  # layers the first extraction takes along (see features())

    # -- basic facts ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.imageset)

    @property
    def name(self) -> str:
        return self.imageset.name

    @property
    def labels(self) -> torch.Tensor:
        return self.imageset.labels

    @property
    def device_labels(self) -> torch.Tensor:
        """The labels on the view's device (beside its features), copied there once."""
        if self._device_labels is None:
            self._device_labels = self.imageset.labels.to(self.device)
        return self._device_labels

    def subset(self, index: torch.Tensor) -> FeatureView:
        """A view of some samples that shares (slices) this view's cached features."""
        index = torch.as_tensor(index, dtype=torch.long, device="cpu")  # indexes the images, held on the CPU
        child = FeatureView(self.imageset.subset(index), self.model, self.device, self.batch_size, self.amp)
        child._parent, child._index, child._grad_batch = self, index, self._grad_batch
        return child

    # -- model outputs --------------------------------------------------------------------
    def autocast(self):
        """bf16 autocast where ``amp`` allows it and the device has the fast path (:mod:`oodbench.core.precision`)."""
        return precision.autocast(self.device, self.amp)

    def batches(self, desc: str | None = None, batch_size: int | None = None) -> Iterator[torch.Tensor]:
        """Float ``[0, 1]`` input batches on the model's device. On the fast path a set held in memory goes to the
        device in one copy, kept for later passes (not one blocking copy per batch), and batches are channels_last; a
        streamed set of JPEGs is decoded there (:func:`oodbench.data.streams.decodes_on`)."""
        images = self.imageset.images
        if self.amp and precision.accelerated(self.device) and isinstance(images, torch.Tensor):
            images = self.memo(("images on the device",), lambda: images.to(self.device))  # one copy per view
        size = batch_size or self.batch_size
        chunks = images.split(size, self.device) if is_streamed(images) else images.split(size)
        for chunk in track(chunks, desc, total=len(chunks)) if desc else chunks:
            x = to_float(chunk, self.device)
            yield precision.prepare_input(x, self.device) if self.amp else x

    def features(self, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """``{layer: N×D float32 tensor on the view's device}``, extracting whatever is not cached yet in one pass.

        A subset view slices its parent's features when the parent already has them, and
        otherwise extracts only its own samples. The first extraction also takes the layers in ``prefetch`` (the
        run's union, set by the supply stage on the train and held-out views, which only some detectors read):
        the first detector whose ``fit`` reads the training split pays the one pass every later one reuses.
        """
        parent = self._parent
        if parent is not None:
            for k in layers:  # slice the parent's cache once, not on every call
                if k not in self._features and k in parent._features:
                    self._features[k] = parent._features[k][self._index.to(self.device)]
        todo = [name for name in layers if name not in self._features]
        if todo:  # the pass a detector's fit triggers also takes every declared layer it would miss (issue 28)
            todo += sorted(n for n in self.prefetch if n not in self._features and n not in todo)
        if todo and self.cache_dir is not None:
            for name in list(todo):
                cached = load_checked(self.cache_dir / f"{name}.pt", "feature")
                if cached is not None:
                    self._features[name] = cached.to(self.device)
                    todo.remove(name)
        if todo:
            pause_point("extract")
            parts: dict[str, list[torch.Tensor]] = {name: [] for name in todo}
            self.model.eval()
            if self.amp:
                precision.prepare_model(self.model, self.device)
            with torch.inference_mode(), self.autocast():
                for x in self.batches(f"features {self.name}" if len(self) > 4 * self.batch_size else None):
                    out = self.model.forward_features(x, todo)
                    for name in todo:
                        parts[name].append(out[name].float())
            for name in todo:
                self._features[name] = torch.cat(parts[name])
                if self.cache_dir is not None:
                    atomic_torch_save(self._features[name].cpu(), self.cache_dir / f"{name}.pt")
        return {name: self._features[name] for name in layers}

    def logits(self) -> torch.Tensor:
        return self.features(["logits"])["logits"]

    def with_model(self, model: Backbone) -> FeatureView:
        """The same samples seen through another model (its own, empty feature cache)."""
        return FeatureView(self.imageset, model, self.device, self.batch_size, self.amp)

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """Cache a detector-derived value for these samples. ``key`` must identify its inputs by content or
        by an explicit name (a checkpoint hash, a fitted state's :func:`~oodbench.plugins.detector.state_key`), never
        by ``id()`` of an object: ids are reused once an object is freed."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def map_inputs(
        self, fn: Callable[..., torch.Tensor], *aligned: torch.Tensor, desc: str | None = None
    ) -> torch.Tensor:
        """Apply ``fn(x, *aligned_batches)`` to each input batch on the device (gradients
        allowed) and concatenate the results. ``aligned`` tensors (one row per
        sample, e.g. cached gradient signs) are split into the same batches and moved to the device; the result
        stays on the device.

        A pass that runs out of device memory starts again with half the batch (said in one line), and the view
        keeps that batch for its later passes: a gradient pass holds every activation of the batch, which at
        ImageNet size (a ResNet-50 or ViT at 224²) can take tens of GB where extraction took a few."""
        while True:
            batch = self._grad_batch or self.batch_size
            try:
                return self._map_batches(fn, aligned, desc, batch)
            except torch.cuda.OutOfMemoryError:  # newer torch also names it torch.OutOfMemoryError
                if batch == 1:
                    raise
            # here, out of the handler, its traceback no longer holds the failed pass's tensors
            self._grad_batch = batch // 2
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            what = f"{desc or 'a gradient pass'} on {self.name}"
            warn(f"out of memory on {self.device} at batch {batch} ({what}); batch {self._grad_batch} from now on")

    def _map_batches(self, fn: Callable[..., torch.Tensor], aligned, desc: str | None, batch: int) -> torch.Tensor:
        self.model.eval()
        pieces = [t.split(batch) for t in aligned]
        outs = []
        for i, x in enumerate(self.batches(desc, batch)):
            extra = [p[i].to(self.device) for p in pieces]
            with self.autocast():  # the extraction's precision: one grid never mixes bf16 and fp32 points (issue 28)
                outs.append(fn(x, *extra).detach().float())
        return torch.cat(outs) if outs else torch.empty(0, device=self.device)
