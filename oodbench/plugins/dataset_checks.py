"""``check_dataset``: the dataset half of the plugin contract checks (docs/plugins.md §9), re-exported by
:mod:`oodbench.plugins.testing`. Every failure is an ``AssertionError`` naming the rule."""

from __future__ import annotations

import torch

from oodbench.data.imageset import ImageSet

SPLITS = ("train", "test")  # the splits oodbench ever loads


def _check_imageset(ds, split: str, data) -> None:
    """The ImageSet contract for one loaded split (uint8 N×C×H×W, int64 labels, -1 or a class index)."""
    where = f"{ds.name}: load({split!r})"
    assert isinstance(data, ImageSet), f"{where} must return an oodbench.ImageSet, got {type(data).__name__}"
    images, labels = data.images, data.labels
    assert images.dtype == torch.uint8 and images.ndim == 4, (
        f"{where}: images must be uint8 N×C×H×W, got {images.dtype} {tuple(images.shape)}"
    )
    assert len(images) > 0, f"{where} returned no images"
    assert labels.dtype == torch.int64 and labels.shape == (len(images),), (
        f"{where}: labels must be int64 of shape ({len(images)},), got {labels.dtype} {tuple(labels.shape)}"
    )
    assert isinstance(data.name, str) and data.name, f"{where}: the ImageSet needs a name"
    assert all(isinstance(c, str) for c in data.classes), f"{where}: classes must be a tuple of str"
    assert all(isinstance(n, str) for n in data.notes), f"{where}: notes must be a tuple of str"
    bad = labels[(labels != -1) & ((labels < 0) | (labels >= data.num_classes))]
    assert not len(bad), (
        f"{where}: labels must be -1 (unlabelled) or in [0, {data.num_classes}) "
        f"(len(classes)); found {sorted(set(bad.tolist()))[:5]}"
    )


def check_dataset(dataset, root=None) -> None:
    """Assert that ``dataset`` (a registered :class:`~oodbench.data.Dataset` *instance*) follows the contract.

    Each of its ``train``/``test`` splits is loaded from ``root`` (default: ``--data-root`` resolution:
    ``$OODBENCH_DATA`` or the user cache) and must be an :class:`ImageSet` (uint8 N×C×H×W, int64 labels,
    -1 or a class index); loading twice with one seed gives the same images; a ``synthetic`` set honours
    ``ctx.shape`` and ``ctx.size``; a set that reads files raises ``DataNotFoundError`` (not something
    else) when the data root is empty.
    """
    import tempfile
    from pathlib import Path

    from oodbench.core.errors import DataNotFoundError
    from oodbench.data.imageset import Dataset, LoadContext, resolve_data_root

    if isinstance(dataset, type):
        raise AssertionError(
            f"{dataset.__name__} is a class: check_dataset takes a Dataset instance, and "
            f"oodbench_register_datasets must return instances, e.g. [{dataset.__name__}()]"
        )
    assert isinstance(dataset, Dataset), f"{dataset!r} must be an instance of oodbench.Dataset"
    name = dataset.name
    assert isinstance(name, str) and name, "datasets need a non-empty `name`"
    assert isinstance(dataset.description, str) and dataset.description and "\n" not in dataset.description, (
        f"{name}: `description` must be one non-empty line"
    )
    splits = tuple(dataset.splits)
    wanted = [s for s in SPLITS if s in splits]
    assert wanted, f"{name}: `splits` must include 'train' and/or 'test' (the splits oodbench loads), got {splits}"
    root = Path(root) if root is not None else resolve_data_root(None)
    sizes = [((1, 28, 28), 12), ((3, 32, 32), 5)] if dataset.synthetic else [(None, 10_000)]
    for split in wanted:
        for shape, size in sizes:
            ctx = LoadContext(root, seed=3, shape=shape, size=size)
            first = dataset.load(split, ctx)
            _check_imageset(dataset, split, first)
            if shape is not None:
                assert first.shape == shape and len(first) == size, (
                    f"{name}: a synthetic set must honour ctx.shape and ctx.size: asked for {size} of "
                    f"{shape}, got {len(first)} of {first.shape}"
                )
            again = dataset.load(split, ctx)
            assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels), (
                f"{name}: loading {split!r} twice with the same seed must give the same images and labels"
            )
    if dataset.synthetic:
        return
    with tempfile.TemporaryDirectory() as empty:
        for split in wanted:
            try:
                data = dataset.load(split, LoadContext(Path(empty)))
            except DataNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - the assertion names what was raised instead
                raise AssertionError(
                    f"{name}: with an empty data root, load({split!r}) raised {type(exc).__name__}: {exc}; missing "
                    "files must raise oodbench.data.missing(name, where) (a DataNotFoundError)"
                ) from exc
            _check_imageset(dataset, split, data)  # it needs no files: what it returns must still be valid
