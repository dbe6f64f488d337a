"""Backbones expose logits and named feature layers from one forward pass; checkpoints load."""

from __future__ import annotations

import pytest
import torch

from oodbench.core.errors import UnknownNameError, UsageError
from oodbench.models.checkpoints import ModelSpec, load_or_train
from oodbench.models.train import TrainConfig
from oodbench.plugins.manager import registries


def build(name, shape=(1, 28, 28), classes=10):
    return registries().backbones.get(name).build(shape, classes)


@pytest.mark.parametrize(
    "name, shape, layers",
    [
        ("lenet", (1, 28, 28), ["conv1", "conv2", "fc1", "penultimate", "logits"]),
        ("resnet18", (3, 32, 32), ["stem", "layer1", "layer2", "layer3", "layer4", "penultimate", "logits"]),
        ("timm:test_resnet", (3, 32, 32), None),
        (
            "torchvision:resnet18",
            (3, 32, 32),
            ["conv1", "layer1", "layer2", "layer3", "layer4", "penultimate", "logits"],
        ),
    ],
)
def test_named_layers_in_one_pass(name, shape, layers):
    model = build(name, shape).eval()
    if layers is not None:
        assert model.feature_layers == layers
    assert model.feature_layers[-2:] == ["penultimate", "logits"] and len(model.feature_layers) >= 4
    x = torch.rand(3, *shape)
    calls = []
    handle = model.net.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        feats = model.forward_features(x)
    handle.remove()
    assert len(calls) == 1  # one forward pass for every layer
    assert list(feats) == model.feature_layers
    assert all(f.shape[0] == 3 and f.ndim == 2 for f in feats.values())
    assert torch.allclose(feats["logits"], model(x), atol=1e-5)
    head = model.net.get_submodule(model.head_path)
    assert torch.allclose(head(feats["penultimate"]), feats["logits"], atol=1e-4)


def test_features_are_differentiable_for_input_gradients():
    model = build("lenet").eval()
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    model.forward_features(x, ["conv2"])["conv2"].norm().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_prefixed_names():
    with pytest.raises(UnknownNameError, match="timm:resnet18"):
        registries().backbones.get("timm:resnet18x")
    with pytest.raises(UnknownNameError):
        registries().backbones.get("torchvision:nonet")


def test_timm_pretrained_false_and_local_checkpoint(tmp_path):
    """Hub weights cannot be fetched here: wrap timm with pretrained=False and load a saved checkpoint."""
    factory = registries().backbones.get("timm:test_resnet")
    a = factory.build((3, 32, 32), 5)
    path = tmp_path / "w.pt"
    torch.save(a.state_dict(), path)
    spec = ModelSpec("timm:test_resnet", "x", (3, 32, 32), 5, TrainConfig())
    b, info = load_or_train(spec, factory, None, None, "cpu", checkpoint=path)
    assert info["source"] == "file" and len(info["hash"]) == 16
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(a.eval()(x), b(x))
    wrong = tmp_path / "lenet.pt"
    torch.save(build("lenet").state_dict(), wrong)
    with pytest.raises(UsageError, match="does not fit backbone"):
        load_or_train(spec, factory, None, None, "cpu", checkpoint=wrong)


def test_checkpoint_cache_key_tracks_configuration():
    base = ModelSpec("lenet", "fashionmnist", (1, 28, 28), 10, TrainConfig(epochs=5, seed=0))
    assert base.key() == ModelSpec("lenet", "fashionmnist", (1, 28, 28), 10, TrainConfig(epochs=5, seed=0)).key()
    changed = [
        ModelSpec("lenet", "fashionmnist", (1, 28, 28), 10, TrainConfig(epochs=6, seed=0)),
        ModelSpec("lenet", "fashionmnist", (1, 28, 28), 10, TrainConfig(epochs=5, seed=1)),
        ModelSpec("lenet", "mnist", (1, 28, 28), 10, TrainConfig(epochs=5, seed=0)),
        ModelSpec("lenet", "fashionmnist", (1, 28, 28), 8, TrainConfig(epochs=5), classes=(0, 1, 2, 3, 4, 5, 6, 7)),
        ModelSpec("lenet", "fashionmnist", (1, 28, 28), 10, TrainConfig(epochs=5, lr=0.01)),
    ]
    assert len({base.key(), *(c.key() for c in changed)}) == 6
