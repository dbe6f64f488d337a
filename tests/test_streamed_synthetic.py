"""Synthetic OOD sets for a streamed ID (issue 31 item 2): drawn per sample in batches, never whole, and the same
pixels and scores whatever the batch size."""

from __future__ import annotations

import pytest
import torch
from test_streaming import declared, imagenet_like  # noqa: F401 - fixtures: a streamed ImageNet-style ID

from oodbench.data.generated import GeneratedImages
from oodbench.data.imageset import LoadContext
from oodbench.data.streams import is_streamed


def counted_gaussian(calls: list):
    def draw(shape, g):
        calls.append(tuple(shape))
        return torch.randn(shape, generator=g).add_(0.5)

    return draw


def test_generated_images_are_drawn_per_sample_in_batches_whatever_the_batch_size():
    calls: list = []
    images = GeneratedImages.of(counted_gaussian(calls), "gaussian", 7, 23, (3, 16, 16))
    by_7 = torch.cat(list(images.split(7)))
    assert calls and all(shape == (1, 3, 16, 16) for shape in calls)  # never the whole set, never a whole batch
    assert len(calls) == 23 and len(images.split(7)) == 4
    assert torch.equal(by_7, torch.cat(list(images.split(5))))
    picked = images[torch.tensor([3, 11, 20])]  # a subset draws its samples from their own seeds
    assert torch.equal(torch.cat(list(picked.split(2))), by_7[[3, 11, 20]])
    assert by_7.dtype == torch.uint8 and 100 < by_7.float().mean() < 155  # N(0.5, 1) clipped: mean 127.5
    keys = images.content_keys()
    assert len(set(keys.tolist())) == 23 and torch.equal(picked.content_keys(), keys[[3, 11, 20]])


def test_gaussian_streams_for_a_streamed_id_and_stays_one_call_otherwise(tmp_path, monkeypatch):
    from oodbench.plugins.manager import registries

    gaussian = registries().datasets.get("gaussian")
    small = gaussian.load("test", LoadContext(tmp_path, shape=(1, 28, 28), size=50, seed=3))
    g = torch.Generator().manual_seed(3 + 7919)  # the values of the published records: one seeded call
    legacy = ((0.5 + torch.randn((50, 1, 28, 28), generator=g)).clamp(0, 1) * 255).round().to(torch.uint8)
    assert not is_streamed(small.images) and torch.equal(small.images, legacy)
    streamed = gaussian.load("test", LoadContext(tmp_path, shape=(3, 224, 224), size=10_000, stream=True))
    assert is_streamed(streamed.images) and streamed.images.shape == (10_000, 3, 224, 224)
    monkeypatch.setenv("OODBENCH_STREAM_ABOVE", str(50 * 28 * 28 - 1))  # over the threshold: streams by size
    assert is_streamed(gaussian.load("test", LoadContext(tmp_path, shape=(1, 28, 28), size=50)).images)


@pytest.mark.parametrize("ood", ["gaussian", "constant"])
def test_a_streamed_id_run_scores_synthetic_ood_the_same_for_two_batch_sizes(declared, tmp_path, ood):  # noqa: F811
    from oodbench.pipeline.runner import RunRequest, run
    from oodbench.plugins.manager import registries

    torch.manual_seed(0)
    net = registries().backbones.get("timm:test_resnet").build((3, 32, 32), 2)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    scores = []
    for batch in (16, 5):
        req = RunRequest(
            detectors=["msp"],
            id="imnet",
            oods=[ood],
            backbone="timm:test_resnet",
            checkpoint=tmp_path / "w.pth",
            results=str(tmp_path / f"r{batch}"),
            batch_size=batch,
            test_limit=20,
            feature_cache=False,
        )
        outcome = run(req, store=False)
        ((record, saved),) = outcome.unsaved
        assert "generated per sample" in " ".join(map(str, record.data.values()))
        scores.append(saved)
    for key in scores[0]:
        assert torch.allclose(torch.as_tensor(scores[0][key]), torch.as_tensor(scores[1][key]), atol=1e-5), key


def batches_equal(images, sizes=(5, 7)) -> torch.Tensor:
    first, *rest = (torch.cat(list(images.split(n))) for n in sizes)
    assert all(torch.equal(first, other) for other in rest)
    return first


def test_corrupted_copies_of_a_streamed_set_are_changed_batch_by_batch(declared):  # noqa: F811
    from oodbench.data import corruptions
    from oodbench.data.generated import TransformedImages

    test = declared("imnet")
    noisy = corruptions.corrupt(test, "gaussian_noise", 5, seed=1)
    assert isinstance(noisy.images, TransformedImages) and noisy.provenance == test.provenance  # copies of test
    clean, changed = batches_equal(test.images), batches_equal(noisy.images)
    assert changed.shape == clean.shape and 0 < (changed.float() - clean.float()).abs().mean() < 40
    picked = noisy.subset(torch.tensor([2, 9]))  # a subset keeps each sample's own seed
    assert torch.equal(torch.cat(list(picked.images.split(1))), changed[[2, 9]])
    assert not set(noisy.images.content_keys().tolist()) & set(test.images.content_keys().tolist())


def test_perturbed_id_of_a_streamed_id_is_streamed_and_batch_independent(declared, imagenet_like):  # noqa: F811
    from oodbench.plugins.manager import registries

    ctx = LoadContext(imagenet_like, id_name="imnet", size=10, seed=0)
    perturbed = registries().datasets.get("perturbed-id").load("test", ctx)
    assert is_streamed(perturbed.images) and len(perturbed) == 10 and perturbed.shape == (3, 32, 32)
    pixels = batches_equal(perturbed.images, (3, 10))
    train = torch.cat(list(declared("imnet", "train").head(10, 17).images.split(10)))
    assert not torch.equal(pixels, train) and pixels.float().mean().sub(train.float().mean()).abs() < 10
