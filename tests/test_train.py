"""The one trainer on real data: loss falls, accuracy rises; augmentation is per-sample and shape-preserving."""

import torch

from oodbench.train import TrainConfig, augment_crop_flip, evaluate_accuracy, fit_model


def test_trainer_learns_fashionmnist_subset(lenet_fmnist, data_root):
    from oodbench.data import LoadContext
    from oodbench.plugins import registries

    factory = registries().backbones.get("lenet")
    model = factory.build((1, 28, 28), 10)
    _, train = lenet_fmnist
    test = registries().datasets.get("fashionmnist").load("test", LoadContext(data_root)).head(1000)
    log = fit_model(model, train.head(3000), TrainConfig(epochs=3, seed=0), "cpu", val=test)
    assert log["epoch_loss"][-1] < log["epoch_loss"][0]
    assert log["val_acc"] > 60.0  # 3 epochs on 3k images; chance is 10%
    assert evaluate_accuracy(model, test, torch.device("cpu")) == log["val_acc"]


def test_crop_flip_augmentation():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    y = augment_crop_flip(x, g, pad=2)
    assert y.shape == x.shape
    # every output row is a (possibly flipped, shifted, zero-padded) piece of the input
    assert set(y.unique().tolist()) <= set(x.unique().tolist()) | {0.0}
    assert not torch.equal(y, x)
