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


def test_same_spec_trains_the_same_weights(data_root, tmp_path, monkeypatch):
    """Initial weights and batch order follow the seed, whatever ran before in the process."""
    from oodbench.checkpoints import ModelSpec, load_or_train
    from oodbench.data import LoadContext
    from oodbench.plugins import registries

    train = registries().datasets.get("mnist").load("train", LoadContext(data_root)).head(1000)
    factory = registries().backbones.get("lenet")
    spec = ModelSpec("lenet", "mnist", (1, 28, 28), 10, TrainConfig(epochs=1, seed=5), train_limit=1000)
    weights = []
    for run in range(2):
        monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / str(run)))
        torch.rand(run + 1)  # disturb the global RNG differently each time
        model, info = load_or_train(spec, factory, train, None, "cpu")
        assert info["source"] == "trained"
        weights.append(model.net.fc3.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])
