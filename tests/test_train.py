"""The one trainer on real data: loss falls, accuracy rises; augmentation is per-sample and shape-preserving."""

import pytest
import torch
from conftest import builtin_names

from oodbench.models.train import TrainConfig, TrainTask, augment_crop_flip, evaluate_accuracy, fit_model


def test_trainer_learns_fashionmnist_subset(lenet_fmnist, data_root):
    from oodbench.data.imageset import LoadContext
    from oodbench.plugins.manager import registries

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


def test_crop_flip_draws_are_seeded_and_say_what_each_sample_gets():
    """The trainer draws an epoch's augmentation at once (one copy to the device); the draws follow the seed and
    a sample with offsets (pad, pad) and no flip comes back unchanged."""
    from oodbench.models.augment import crop_flip, crop_flip_draws

    x = torch.arange(4 * 3 * 8 * 8, dtype=torch.float32).view(4, 3, 8, 8)
    a, b = (crop_flip_draws(4, torch.Generator().manual_seed(7), pad=2) for _ in range(2))
    assert torch.equal(a, b) and a.shape == (4, 3)
    assert ((a[:, :2] >= 0) & (a[:, :2] <= 4)).all() and set(a[:, 2].tolist()) <= {0, 1}
    same = crop_flip(x, torch.tensor([[2, 2, 0]] * 4), pad=2)
    assert torch.equal(same, x)
    flipped = crop_flip(x, torch.tensor([[2, 2, 1]] * 4), pad=2)
    assert torch.equal(flipped, x.flip(3))
    shifted = crop_flip(x, torch.tensor([[0, 2, 0]] * 4), pad=2)  # two rows of zero padding on top
    assert torch.equal(shifted[:, :, 2:], x[:, :, :6]) and not shifted[:, :, :2].any()


def test_same_spec_trains_the_same_weights(data_root, tmp_path, monkeypatch):
    """Initial weights and batch order follow the seed, whatever ran before in the process."""
    from oodbench.data.imageset import LoadContext
    from oodbench.models.checkpoints import ModelSpec, load_or_train
    from oodbench.plugins.manager import registries

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


def _lrs(cfg, total_steps):
    """The learning rate before each of ``total_steps`` steps, and after the last one."""
    from oodbench.models.train import make_optimizer, make_scheduler

    opt = make_optimizer(torch.nn.Linear(2, 1).parameters(), cfg)
    sched = make_scheduler(opt, cfg, total_steps)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(total_steps):
        opt.step()
        if sched is not None:
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_cosine_schedule_is_the_closed_form_curve():
    import math

    total = 500
    lrs = _lrs(TrainConfig(lr=0.1, schedule="cosine"), total)
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * k / total)) for k in range(total + 1)]
    assert torch.allclose(
        torch.tensor(lrs, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-12
    )
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_onecycle_peaks_at_lr_and_ends_near_zero():
    total = 200
    lrs = _lrs(TrainConfig(lr=0.1, optimizer="sgd", schedule="onecycle"), total)
    assert max(lrs) == pytest.approx(0.1, rel=1e-9)
    assert lrs[0] == pytest.approx(0.1 / 25)  # OneCycleLR's default div_factor
    assert 0 < lrs.index(max(lrs)) < total // 2  # warm-up over the first 30 %
    assert lrs[total - 1] < 1e-5


def test_constant_schedule_and_unknown_schedule():
    assert set(_lrs(TrainConfig(lr=0.01, schedule="none"), 20)) == {0.01}
    with pytest.raises(ValueError, match="cosine.*onecycle.*none"):
        _lrs(TrainConfig(schedule="linear"), 5)


def test_default_config_layers_factory_defaults_and_overrides():
    from oodbench.models.train import default_config

    cfg = default_config({"optimizer": "sgd", "lr": 0.1, "epochs": 10}, epochs=3, seed=None, lr=None)
    assert cfg == TrainConfig(optimizer="sgd", lr=0.1, epochs=3)
    assert default_config({}) == TrainConfig()
    with pytest.raises(ValueError, match="lr_max"):
        default_config({"lr_max": 1.0})
    with pytest.raises(ValueError, match="epoch\\b"):
        default_config({}, epoch=3)


def test_train_options_override_the_backbones_defaults_and_key_the_checkpoint(capsys):
    """`--train KEY=VALUE` (RunRequest.train_options, a suite's `train_options:`) reaches the trainer's config, is
    checked against TrainConfig's fields and choices, and changes the checkpoint's cache key."""
    from oodbench.cli.main import main
    from oodbench.models.train_config import train_overrides

    assert train_overrides({"lr": 1, "schedule": "onecycle", "batch_size": 64}) == {
        "lr": 1.0,  # an int where the default is a float
        "schedule": "onecycle",
        "batch_size": 64,
    }
    for bad, needle in (({"lr": "fast"}, "lr takes a number"), ({"augment": "foo"}, "none, crop-flip")):
        with pytest.raises(ValueError, match=needle):
            train_overrides(bad)
    base = ("train", "--dataset", "fashionmnist", "--train-limit", "300", "--epochs", "1", "--seed", "5")
    paths = []
    for extra in ((), ("--train", "batch_size=64", "--train", "schedule=onecycle")):
        assert main([*base, *extra]) == 0
        paths.append(capsys.readouterr().out.split("checkpoint: ")[1].split()[0])
    assert paths[0] != paths[1]
    spec = torch.load(paths[1], map_location="cpu", weights_only=False)["spec"]
    assert spec["train"]["batch_size"] == 64 and spec["train"]["schedule"] == "onecycle"


def test_builtin_backbones_declare_valid_train_defaults():
    from oodbench.models.backbones import BackboneFactory
    from oodbench.models.train import default_config
    from oodbench.plugins.manager import registries

    assert BackboneFactory.train_defaults == {}
    for name in builtin_names("backbones"):
        default_config(registries().backbones.entry(name).obj.train_defaults)  # every key is a TrainConfig field


def _toy_data(n=24):
    from oodbench.data.imageset import ImageSet

    g = torch.Generator().manual_seed(0)
    return ImageSet(
        torch.randint(0, 255, (n, 1, 4, 4), dtype=torch.uint8, generator=g),
        torch.randint(0, 2, (n,), generator=g),
        "toy",
    )


class _Squares(TrainTask):
    uses_index = True

    def __init__(self):
        self.indices = []

    def loss(self, model, x, y, index):
        self.indices.append(index)
        return model(x).pow(2).mean()

    def eval_loss(self, model, x, y):
        return model(x).pow(2).mean() * 0


def test_subclassed_task_gets_its_declared_extras_without_warnings():
    import warnings

    task = _Squares()
    assert (TrainTask.aux, TrainTask.aux_batch_size, TrainTask.refresh_every) == (None, None, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        log = fit_model(
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)),
            _toy_data(),
            TrainConfig(epochs=2, batch_size=8),
            task=task,
            select_on=_toy_data(8),
        )
    assert len(task.indices) == 6
    assert log["select_loss"] == [0.0, 0.0] and log["best_epoch"] == 1
    assert log["seconds"] > 0 and log["images_per_second"] == pytest.approx(48 / log["seconds"])


def test_duck_typed_task_is_adapted_once_with_a_deprecation_warning():
    class Legacy:  # no TrainTask base, no optional attributes
        def loss(self, model, x, y):
            return torch.nn.functional.cross_entropy(model(x), y)

    with pytest.warns(DeprecationWarning, match="subclass oodbench.models.train.TrainTask"):
        adapted = TrainTask.adapt(Legacy())
    assert isinstance(adapted, TrainTask)
    assert (adapted.aux, adapted.aux_batch_size, adapted.uses_index, adapted.refresh_every) == (None, None, False, 0)
    assert TrainTask.adapt(adapted) is adapted
    with pytest.warns(DeprecationWarning):
        log = fit_model(
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)),
            _toy_data(),
            TrainConfig(epochs=1, batch_size=8),
            task=Legacy(),
        )
    assert len(log["epoch_loss"]) == 1


def test_base_task_without_loss_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="must define loss"):
        fit_model(
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)),
            _toy_data(),
            TrainConfig(epochs=1),
            task=TrainTask(),
        )
