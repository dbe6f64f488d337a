"""``oodbench train``: train a backbone and cache its checkpoint."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Optional

import typer

from oodbench.cli.app import DataRoot, Device, PretrainedFile, Seed, TrainOptions, app, key_values


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
    pretrained_file: PretrainedFile = None,
    train: TrainOptions = None,
) -> None:
    """Train a backbone and cache its checkpoint (``run`` reuses it when the configuration matches)."""
    started = time.perf_counter()
    from oodbench.pipeline.request import check_int, checked_train_options, resolve_device

    check_int("epochs", epochs, 1, optional=True)
    check_int("train_limit", train_limit, 1, optional=True)
    options = checked_train_options(key_values(train, "--train"))
    from oodbench.core.userconfig import weights_file
    from oodbench.data.imageset import LoadContext, resolve_data_root
    from oodbench.models.checkpoints import ModelSpec, file_hash, load_or_train, training_summary
    from oodbench.models.pretrained import pretrained_backbone
    from oodbench.models.train import default_config
    from oodbench.pipeline.planning import dataset as lookup_dataset
    from oodbench.pipeline.supply import default_backbone
    from oodbench.plugins.manager import registries

    regs = registries()
    ds = lookup_dataset(regs, dataset)  # an unknown name is one line, a template's set named
    if backbone:
        regs.backbones.get(backbone)
    dev = resolve_device(device)
    ctx = LoadContext(resolve_data_root(data_root), download, seed, device=str(dev))
    tr = ds.load("train", ctx).head(train_limit, seed)
    te = ds.load("test", ctx) if "test" in ds.splits else None
    name = backbone or default_backbone(tr.shape)
    factory = regs.backbones.get(name)
    spec = ModelSpec(
        name,
        dataset,
        tr.shape,
        tr.num_classes,
        default_config(factory.train_defaults, epochs=epochs, seed=seed, **options),
        train_limit=train_limit,
        pretrained=pretrained or pretrained_file is not None,
    )
    owner = regs.backbones.owner(name)
    weights = weights_file(name, pretrained, str(pretrained_file) if pretrained_file else None)
    if spec.pretrained:  # fine-tune from the weights (the head replaced when its class count differs)
        spec = dataclasses.replace(spec, weights=file_hash(weights) if weights is not None else "")
        _, info = pretrained_backbone(spec, factory, weights, (tr, te), dev, owner, lambda m: None, fine_tune=True)
    else:
        _, info = load_or_train(spec, factory, tr, te, dev, owner=owner)
    typer.echo(f"checkpoint: {info['path']} ({info['source']})")
    typer.echo(training_summary(info, time.perf_counter() - started))
