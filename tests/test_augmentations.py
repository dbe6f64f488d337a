"""Training augmentations of OpenOOD v1.5 as ``TrainConfig.augment`` values (issue 26 item 3): mixup, cutmix,
regmixup, augmix. Each trains a LeNet on real FashionMNIST, follows the trainer's seed, and mixes as its paper says
(hand-worked on two-image batches); AugMix's operations agree with torchvision's, op by op."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from oodbench.core import precision
from oodbench.data.imageset import LoadContext
from oodbench.models import augment as A
from oodbench.models.checkpoints import ModelSpec
from oodbench.models.train import Classification, TrainConfig, TrainTask, fit_model, task_loss
from oodbench.models.train_config import AUGMENTS, train_overrides
from oodbench.plugins.manager import registries

NEW = ("mixup", "cutmix", "regmixup", "augmix")


@pytest.fixture(scope="module")
def fmnist(data_root):
    return registries().datasets.get("fashionmnist").load("train", LoadContext(data_root)).head(1536)


def lenet(seed: int = 0):
    torch.manual_seed(seed)
    return registries().backbones.get("lenet").build((1, 28, 28), 10)


@pytest.mark.parametrize("aug", NEW)
def test_each_augmentation_lowers_the_training_loss(aug, fmnist):
    """Three epochs on 1,536 real images: the augmented training loss falls epoch on epoch's first to last, and the
    clean cross-entropy on those images falls from the untrained network's."""
    model = lenet()
    before = task_loss(model, fmnist, Classification(), torch.device("cpu"))
    log = fit_model(model, fmnist, TrainConfig(epochs=3, batch_size=64, augment=aug), "cpu")
    after = task_loss(model, fmnist, Classification(), torch.device("cpu"))
    assert all(math.isfinite(v) for v in log["epoch_loss"])
    assert log["epoch_loss"][-1] < log["epoch_loss"][0], log["epoch_loss"]
    assert after < 0.7 * before, (before, after)


class _Recorder(TrainTask):
    """Cross-entropy that keeps every batch it is given."""

    soft_targets = True

    def __init__(self):
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def loss(self, model, x, y):
        self.batches.append((x.detach().clone(), y.clone()))
        return F.cross_entropy(model(x), y)


def _batches(data, aug: str, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    task = _Recorder()
    fit_model(lenet(), data, TrainConfig(epochs=1, batch_size=64, augment=aug, seed=seed), "cpu", task)
    return task.batches


@pytest.mark.parametrize("aug", NEW)
def test_same_seed_gives_identical_batches(aug, fmnist):
    """The batches (inputs and targets) follow TrainConfig.seed through the trainer's generator only: the same
    seed gives the same batches whatever the global RNG did before, another seed other batches."""
    data = fmnist.head(256)
    torch.manual_seed(123)
    a = _batches(data, aug, 0)
    torch.manual_seed(456)
    b = _batches(data, aug, 0)
    c = _batches(data, aug, 1)
    assert len(a) == len(b) == 4
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    plain = _batches(data, "none", 0)
    assert all(not torch.equal(xa, xp) for (xa, _), (xp, _) in zip(a, plain))  # it did augment


def test_drawing_leaves_the_global_rng_alone():
    """torchvision's samplers run on a forked CPU RNG seeded from the trainer's generator (dropout's stream and
    the CUDA generator are not moved)."""
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    state = torch.get_rng_state()
    params = [A.mix_params(A.batch_mixer("cutmix", 4), x, torch.Generator().manual_seed(5)) for _ in range(2)]
    A.augmix_draws(8, torch.Generator().manual_seed(5))
    A.augment_mix("mixup", A.batch_mixer("mixup", 4), x, y, torch.Generator().manual_seed(5))
    assert torch.equal(state, torch.get_rng_state())
    assert params[0] == params[1]


def test_mixup_targets_hand_worked():
    """Two images, x0 = 0 and x1 = 1, labels 0 and 2, λ = 0.3: sample i is mixed with sample i − 1 (torchvision
    pairs neighbours), so x̃0 = 0.3·x0 + 0.7·x1 = 0.7, x̃1 = 0.3·x1 + 0.7·x0 = 0.3, targets 0.3/0.7 rows summing to 1."""
    x = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    y = torch.tensor([0, 2])
    mixed, soft = A.mix_batch(A.batch_mixer("mixup", 3), x, y, {"lam": 0.3})
    assert torch.allclose(mixed[0], torch.full((1, 2, 2), 0.7)) and torch.allclose(mixed[1], torch.full((1, 2, 2), 0.3))
    assert torch.allclose(soft, torch.tensor([[0.3, 0.0, 0.7], [0.7, 0.0, 0.3]]))
    # a drawn λ: the image weight and the target weight are the same convex combination
    for seed in range(5):
        lam = A.mix_params(A.batch_mixer("mixup", 3), x, torch.Generator().manual_seed(seed))["lam"]
        mixed, soft = A.mix_batch(A.batch_mixer("mixup", 3), x, y, {"lam": lam})
        assert 0 < lam < 1 and torch.allclose(soft.sum(1), torch.ones(2)) and (soft >= 0).all()
        assert torch.allclose(mixed[0], torch.full((1, 2, 2), 1 - lam)) and math.isclose(soft[0, 0], lam, abs_tol=1e-6)


def test_cutmix_lambda_is_the_pasted_area_fraction():
    """Hand-worked: a 2 × 2 box of a 4 × 4 image pasted from the other image, λ = 1 − 4/16 = 0.75. Drawn boxes:
    torchvision's λ (lam_adjusted) is 1 − box area / image area, and the pixels pasted are that fraction."""
    x = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    y = torch.tensor([1, 0])
    mixer = A.batch_mixer("cutmix", 2)
    mixed, soft = A.mix_batch(mixer, x, y, {"box": (1, 0, 3, 2), "lam_adjusted": 0.75})
    want = torch.zeros(1, 4, 4)
    want[:, 0:2, 1:3] = 1
    assert torch.equal(mixed[0], want) and torch.equal(mixed[1], 1 - want)
    assert torch.allclose(soft, torch.tensor([[0.25, 0.75], [0.75, 0.25]]))
    x = torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28)])
    lams = []
    for seed in range(40):
        params = A.mix_params(mixer, x, torch.Generator().manual_seed(seed))
        x1, y1, x2, y2 = params["box"]
        lam = params["lam_adjusted"]
        assert math.isclose(lam, 1 - (x2 - x1) * (y2 - y1) / (28 * 28))
        mixed, soft = A.mix_batch(mixer, x, y, params)
        assert math.isclose(float(mixed[0].mean()), 1 - lam, abs_tol=1e-6)  # the pasted fraction
        assert torch.allclose(soft[0], torch.tensor([1 - lam, lam])) and torch.allclose(soft.sum(1), torch.ones(2))
        lams.append(lam)
    assert min(lams) < 0.6 and max(lams) > 0.9  # Beta(1, 1): λ spread over (0, 1)


def test_regmixup_concatenates_the_clean_and_the_mixup_batch():
    """RegMixup: 2·B samples, the clean half with one-hot targets, the mixed half mixup with α = 10 (λ near 1/2);
    the trainer's mean cross-entropy over them is (CE_clean + η·CE_mix) / 2 with η = 1."""
    assert A.batch_mixer("regmixup", 3).alpha == 10.0 and A.REGMIXUP_ETA == 1.0
    assert A.batch_mixer("mixup", 3).alpha == 1.0 and A.batch_mixer("cutmix", 3).alpha == 1.0
    x = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    y = torch.tensor([0, 2])
    mixer = A.batch_mixer("regmixup", 3)
    lams = []
    for seed in range(200):
        out, soft = A.augment_mix("regmixup", mixer, x, y, torch.Generator().manual_seed(seed))
        assert out.shape == (4, 1, 2, 2) and torch.equal(out[:2], x)
        assert torch.equal(soft[:2], F.one_hot(y, 3).float()) and torch.allclose(soft.sum(1), torch.ones(4))
        lams.append(float(soft[2, 0]))
    lam = torch.tensor(lams)
    assert abs(lam.mean() - 0.5) < 0.03 and abs(lam.std() - (1 / 84) ** 0.5) < 0.03  # Beta(10, 10): sd √(1/84)
    logits = torch.randn(4, 3)
    halves = (F.cross_entropy(logits[:2], y) + F.cross_entropy(logits[2:], soft[2:])) / 2
    assert torch.allclose(F.cross_entropy(logits, soft), halves)


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("name", A.AUGMIX_OPS)
def test_augmix_operations_agree_with_torchvision(name, level):
    """Each AugMix operation, vectorised with per-sample magnitudes, equals torchvision's functional operation at
    the magnitude torchvision's AugMix gives bin ``level`` (bilinear, zero fill; sign −1 for the signed ones)."""
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(level))
    n, bil = len(x), TF.InterpolationMode.BILINEAR
    ours = A.augmix_op(x, torch.full((n,), A.AUGMIX_OPS.index(name)), torch.full((n,), level), torch.full((n,), -1))
    frac = level / 9
    shear = math.degrees(math.atan(0.3 * frac))
    theirs = {
        "autocontrast": lambda: TF.autocontrast(x),
        "equalize": lambda: TF.equalize(x),
        "posterize": lambda: TF.posterize(x, bits=round(4 - 4 * frac)),
        "solarize": lambda: TF.solarize(x, threshold=1 - frac),
        "rotate": lambda: TF.rotate(x, angle=-30 * frac, interpolation=bil),
        "shear_x": lambda: TF.affine(x, 0.0, [0, 0], 1.0, [-shear, 0.0], bil, center=[0, 0]),
        "shear_y": lambda: TF.affine(x, 0.0, [0, 0], 1.0, [0.0, -shear], bil, center=[0, 0]),
        "translate_x": lambda: TF.affine(x, 0.0, [int(-28 / 3 * frac), 0], 1.0, [0.0, 0.0], bil),
        "translate_y": lambda: TF.affine(x, 0.0, [0, int(-28 / 3 * frac)], 1.0, [0.0, 0.0], bil),
    }[name]()
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_augmix_mixes_per_sample_chains():
    """x_augmix = m·x + (1 − m)·Σ w_i chain_i(x): m = 1 gives x back, no operation (−1) is exact identity, two copies
    of one image get different chains (torchvision's batched AugMix would give them one chain), values stay in
    [0, 1], and the draws are the generator's (Beta/Dirichlet weights summing to 1, depths 1–3)."""
    x = torch.rand(1, 1, 28, 28).expand(16, -1, -1, -1).contiguous()
    draws = A.augmix_draws(16, torch.Generator().manual_seed(0))
    assert torch.equal(draws, A.augmix_draws(16, torch.Generator().manual_seed(0)))
    k = A.AUGMIX_WIDTH
    m, w, depth = draws[:, 0], draws[:, 1 : 1 + k], draws[:, 1 + k : 1 + 2 * k]
    assert torch.allclose(w.sum(1), torch.ones(16)) and ((m > 0) & (m < 1)).all()
    assert set(depth.unique().tolist()) <= {1.0, 2.0, 3.0}
    out = A.augmix(x, draws)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert len({tuple(o.flatten()[:50].tolist()) for o in out}) == 16
    ones = draws.clone()
    ones[:, 0] = 1.0
    assert torch.allclose(A.augmix(x, ones), x)
    none = A.augmix_op(x, torch.full((16,), -1), torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.long))
    assert torch.equal(none, x)


def test_every_listed_augment_is_implemented_and_a_bad_one_is_one_line():
    assert set(AUGMENTS) == {"none"} | set(A.PER_SAMPLE) | set(A.MIX_ALPHA)
    assert train_overrides({"augment": "regmixup"}) == {"augment": "regmixup"}
    with pytest.raises(ValueError) as err:
        train_overrides({"augment": "foo"})
    assert str(err.value) == "augment is one of none, crop-flip, mixup, cutmix, regmixup, augmix, got 'foo'"


def test_each_augment_is_its_own_checkpoint():
    """The cache key hashes the whole TrainConfig: another augment is another checkpoint."""
    keys = {ModelSpec("lenet", "fashionmnist", (1, 28, 28), 10, TrainConfig(augment=a)).key() for a in AUGMENTS}
    assert len(keys) == len(AUGMENTS)


def test_a_task_without_soft_targets_is_refused_label_mixing(fmnist):
    """A task whose loss takes only labels gets a one-line refusal for mixup/cutmix/regmixup; AugMix (inputs
    only) trains it, its outliers augmented too (mixed images leave the 8-bit grid k/255)."""

    class LabelsOnly(TrainTask):
        def __init__(self):
            self.aux, self.aux_batch_size, self.seen = fmnist.head(64), 16, []

        def loss(self, model, x, y, aux=None):
            self.seen.append(aux)
            return F.nll_loss(model(x).log_softmax(1), y)

    for aug in ("mixup", "cutmix", "regmixup"):
        with pytest.raises(ValueError, match=f"augment={aug} gives soft targets, which LabelsOnly does not take"):
            fit_model(lenet(), fmnist.head(128), TrainConfig(epochs=1, augment=aug), "cpu", LabelsOnly())
    task = LabelsOnly()
    log = fit_model(lenet(), fmnist.head(128), TrainConfig(epochs=1, augment="augmix"), "cpu", task)
    assert math.isfinite(log["epoch_loss"][0])
    aux = torch.cat(task.seen)
    assert aux.shape[0] == 16 and not torch.allclose(aux * 255, (aux * 255).round(), atol=1e-3)  # off the 8-bit grid


def test_label_mixing_on_the_fast_path(fmnist, monkeypatch):
    """bf16 autocast and channels_last (the CUDA path, run on the CPU): soft targets against bf16 logits."""
    monkeypatch.setattr(precision, "accelerated", lambda device: True)
    for aug in ("regmixup", "augmix"):
        log = fit_model(lenet(), fmnist.head(256), TrainConfig(epochs=1, batch_size=64, augment=aug), "cpu")
        assert math.isfinite(log["epoch_loss"][0])
