"""Training-time augmentation on the model's device (vectorised, seeded by the trainer's generator).

``TrainConfig.augment`` picks one (see :data:`oodbench.models.train_config.AUGMENTS`):

- ``crop-flip``: pad-4 random crop and horizontal flip, per sample (:func:`crop_flip`).
- ``mixup`` / ``cutmix`` / ``regmixup``: whole-batch mixing with soft targets (:func:`mix_batch`), by torchvision's
  ``transforms.v2.MixUp`` / ``CutMix`` (their ``make_params`` and ``transform``). Those draw from torch's global
  RNG and take no generator, so each step's draw runs on a forked CPU RNG seeded from the trainer's generator
  (:func:`seeded_cpu_rng`): seeded, the same on every device, and the global stream (dropout) is left alone.
- ``augmix``: AugMix per sample (:func:`augmix`). torchvision's ``v2.AugMix`` applied to a batch draws one chain
  of operations for the whole batch (only the mixing weights are per image) from the global RNG of the batch's
  device; the paper draws chains per image, so the draws here are per sample from the trainer's generator and
  the operations are vectorised, matching torchvision's (bilinear, zero fill) op by op (tests/test_augmentations.py).
  Without the paper's Jensen-Shannon consistency loss (eq. 2; OpenOOD's train_augmix.yml: jsd True, λ 12): that
  is a loss over three views of each image, not an input transform, so it needs a task of its own; here AugMix
  images are trained on with the task's own loss, which works for every backbone and task (the paper's
  "AugMix without JSD" ablation).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as TF


def crop_flip_draws(n: int, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """``n × 3`` int64 draws for :func:`crop_flip` — row offset, column offset (0 … 2·pad) and flip (0 | 1) —
    from a seeded CPU generator, so that every device augments alike."""
    rows = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    cols = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = (torch.rand(n, generator=generator) < 0.5).long()
    return torch.stack([rows, cols, flip], 1)


def crop_flip(x: torch.Tensor, draws: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Per-sample random crop (zero padding ``pad``) and horizontal flip, as ``draws`` (on ``x``'s device) say."""
    b, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (draws[:, 0, None] + torch.arange(h, device=dev))[:, :, None]
    cols = (draws[:, 1, None] + torch.arange(w, device=dev))[:, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    return torch.where(draws[:, 2, None, None, None].bool(), out.flip(3), out)


def augment_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """:func:`crop_flip` with fresh draws from ``generator``."""
    return crop_flip(x, crop_flip_draws(len(x), generator, pad).to(x.device), pad)


@contextmanager
def seeded_cpu_rng(generator: torch.Generator) -> Iterator[None]:
    """torch's global CPU RNG, seeded from ``generator``, inside; its state before is restored after (the CUDA
    generator is not touched). For torch samplers that take no generator (Beta, Dirichlet, torchvision's draws)."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


# ---------------------------------------------------------------- mixup, cutmix, regmixup (soft targets)

#: Beta(α, α) of each mixing augmentation. mixup: α = 1, the paper's CIFAR-10 value (Zhang et al., ICLR 2018,
#: "mixup: Beyond Empirical Risk Minimization", §3.2; OpenOOD v1.5's train_mixup.yml uses 0.2, the paper's
#: ImageNet value). cutmix: α = 1 (Yun et al., ICCV 2019, "CutMix: Regularization Strategy to Train Strong
#: Classifiers with Localizable Features", §3.1 and §4; OpenOOD's beta 1.0). regmixup: α = 10 (Pinto et al.,
#: NeurIPS 2022, "Using Mixup as a Regularizer Can Surprisingly Improve Accuracy & Out-of-Distribution
#: Robustness", eq. 2; the official code's default and OpenOOD's CIFAR-100 script; its CIFAR-10 script uses 20).
MIX_ALPHA = {"mixup": 1.0, "cutmix": 1.0, "regmixup": 10.0}
#: RegMixup's η (eq. 2): the mixed half of the concatenated batch weighs as much as the clean half.
REGMIXUP_ETA = 1.0


def batch_mixer(augment: str, num_classes: int) -> v2.Transform | None:
    """torchvision's MixUp (mixup, regmixup) or CutMix (cutmix) with the α of :data:`MIX_ALPHA`; else None."""
    if augment not in MIX_ALPHA:
        return None
    kind = v2.CutMix if augment == "cutmix" else v2.MixUp
    return kind(alpha=MIX_ALPHA[augment], num_classes=num_classes)


def mix_params(mixer: v2.Transform, x: torch.Tensor, generator: torch.Generator) -> dict:
    """torchvision's draw for one batch (MixUp: ``lam``; CutMix: ``box`` = (x1, y1, x2, y2) and ``lam_adjusted``
    = 1 − pasted area / image area), seeded from ``generator``. Python numbers: no device sync."""
    make = mixer.make_params if hasattr(mixer, "make_params") else mixer._get_params  # torchvision < 0.21
    with seeded_cpu_rng(generator):
        return make([x])


def mix_batch(mixer: v2.Transform, x: torch.Tensor, y: torch.Tensor, params: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample i mixed with sample i − 1 (torchvision pairs neighbours; the trainer's batches are shuffled) and
    its soft target λ·onehot(y_i) + (1 − λ)·onehot(y_{i−1}) (float, rows sum to 1; what F.cross_entropy takes)."""
    apply = mixer.transform if hasattr(mixer, "make_params") else mixer._transform  # torchvision < 0.21: _transform
    params = {**params, "labels": y, "batch_size": len(y)}
    return apply(x, params), apply(y, params)


def augment_mix(
    augment: str, mixer: v2.Transform, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, soft targets) of one step: the mixed batch (mixup, cutmix), or RegMixup's clean batch and its
    mixup batch concatenated (2·B samples), so the mean cross-entropy is (CE_clean + η·CE_mix) / 2 with η = 1,
    as the official code and OpenOOD's regmixup trainer compute it (the paper's sum, halved)."""
    mixed, soft = mix_batch(mixer, x, y, mix_params(mixer, x, generator))
    if augment != "regmixup":
        return mixed, soft
    return torch.cat([x, mixed]), torch.cat([F.one_hot(y, soft.shape[1]).to(soft.dtype), soft])


# ---------------------------------------------------------------- AugMix (per sample)

#: AugMix (Hendrycks et al., ICLR 2020, "AugMix: A Simple Data Processing Method to Improve Robustness and
#: Uncertainty", Algorithm 1) with the paper's defaults: k = 3 chains of depth 1–3, severity 3, α = 1, and its
#: operations (those that do not overlap the test corruptions: torchvision's ``all_ops=False``; OpenOOD's
#: augmix_preprocessor.yml uses severity 1 and all_ops). Magnitudes are torchvision's 10 bins, bin < severity.
AUGMIX_OPS = ("autocontrast", "equalize", "posterize", "solarize", "rotate", "shear_x", "shear_y", "translate_x",
              "translate_y")  # fmt: skip
AUGMIX_WIDTH, AUGMIX_DEPTH, AUGMIX_SEVERITY, AUGMIX_ALPHA = 3, 3, 3, 1.0
_SLOTS = AUGMIX_WIDTH * AUGMIX_DEPTH


def augmix_draws(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n × (1 + 2k + 3·k·d)`` float draws for :func:`augmix`: m ~ Beta(α, α) (weight of the original), chain
    weights ~ Dirichlet(α), chain depths (1 … d), then per chain slot an operation, a magnitude bin and a sign."""
    with seeded_cpu_rng(generator):
        m = torch.distributions.Beta(AUGMIX_ALPHA, AUGMIX_ALPHA).sample((n, 1))
        w = torch.distributions.Dirichlet(torch.full((AUGMIX_WIDTH,), AUGMIX_ALPHA)).sample((n,))
    depth = torch.randint(1, AUGMIX_DEPTH + 1, (n, AUGMIX_WIDTH), generator=generator)
    op = torch.randint(0, len(AUGMIX_OPS), (n, _SLOTS), generator=generator)
    level = torch.randint(0, AUGMIX_SEVERITY, (n, _SLOTS), generator=generator)
    sign = torch.where(torch.rand(n, _SLOTS, generator=generator) < 0.5, -1, 1)
    return torch.cat([m, w, depth, op, level, sign], 1).float()


def augmix(x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """x_augmix = m·x + (1 − m)·Σ_i w_i·chain_i(x) (Algorithm 1), every sample with its own ``draws`` row."""
    k = AUGMIX_WIDTH
    m, w, depth = draws[:, :1], draws[:, 1 : 1 + k], draws[:, 1 + k : 1 + 2 * k]
    op, level, sign = draws[:, 1 + 2 * k :].long().view(len(x), 3, _SLOTS).unbind(1)
    mix = m[:, :, None, None] * x
    for c in range(k):
        aug = x
        for d in range(AUGMIX_DEPTH):
            s = c * AUGMIX_DEPTH + d
            chosen = torch.where(depth[:, c] > d, op[:, s], -1)  # -1: the chain is shorter (identity)
            aug = augmix_op(aug, chosen, level[:, s], sign[:, s])
        mix = mix + ((1 - m[:, 0]) * w[:, c])[:, None, None, None] * aug
    return mix


def augmix_op(x: torch.Tensor, op: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Operation ``AUGMIX_OPS[op[i]]`` (−1: none) on sample i with magnitude bin ``level[i]`` and ``sign[i]``:
    torchvision's AugMix magnitudes (linspace over 10 bins) and, op for op, its functional results."""
    h, w = x.shape[-2:]
    frac = level.to(x.dtype) / 9  # bin / (bins − 1)
    bits = (4 - frac * 4).round()
    pointwise = {
        "autocontrast": lambda: TF.autocontrast(x),
        "equalize": lambda: TF.equalize(x),
        "posterize": lambda: _posterize(x, bits),
        "solarize": lambda: torch.where(x >= (1 - frac)[:, None, None, None], 1 - x, x),
    }
    signed = frac * sign
    geometric = _affine(x, _augmix_matrices(op, signed, h, w))
    out = torch.where((op >= AUGMIX_OPS.index("rotate"))[:, None, None, None], geometric, x)
    for name, fn in pointwise.items():
        out = torch.where((op == AUGMIX_OPS.index(name))[:, None, None, None], fn(), out)
    return out


def _posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """torchvision's float posterize with per-sample ``bits``."""
    levels = (2**bits)[:, None, None, None]
    return torch.minimum((x * levels).floor(), levels - 1) / levels


def _augmix_matrices(op: torch.Tensor, signed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per sample, the 2 × 3 map from an output pixel (u, v) (top-left origin, centres at +0.5) to where it reads
    the input: rotate ±30°·frac about the centre; shear ±0.3·frac about the top-left corner (PIL's and
    torchvision's convention); translate ±int(size/3·frac) pixels; identity for the other operations."""
    mat = torch.eye(2, 3, device=op.device).repeat(len(op), 1, 1)
    theta = torch.deg2rad(30 * signed) * (op == AUGMIX_OPS.index("rotate"))
    cos, sin, cx, cy = theta.cos(), theta.sin(), w / 2, h / 2
    mat[:, 0] = torch.stack([cos, -sin, cx - cos * cx + sin * cy], 1)
    mat[:, 1] = torch.stack([sin, cos, cy - sin * cx - cos * cy], 1)
    mat[:, 0, 1] += 0.3 * signed * (op == AUGMIX_OPS.index("shear_x"))
    mat[:, 1, 0] += 0.3 * signed * (op == AUGMIX_OPS.index("shear_y"))
    mat[:, 0, 2] -= (w / 3 * signed).trunc() * (op == AUGMIX_OPS.index("translate_x"))
    mat[:, 1, 2] -= (h / 3 * signed).trunc() * (op == AUGMIX_OPS.index("translate_y"))
    return mat


def _affine(x: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of each sample through its ``mat`` (:func:`_augmix_matrices`), zeros outside."""
    b, _, h, w = x.shape
    v, u = torch.meshgrid(torch.arange(h, device=x.device) + 0.5, torch.arange(w, device=x.device) + 0.5, indexing="ij")
    points = torch.stack([u, v, torch.ones_like(u)], -1).view(1, h * w, 3).to(x.dtype)
    q = points @ mat.to(x.dtype).transpose(1, 2)
    grid = torch.stack([q[..., 0] * 2 / w - 1, q[..., 1] * 2 / h - 1], -1).view(b, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


#: the per-sample augmentations: (epoch draws (n, generator) → n rows, application (x, rows) → x)
PER_SAMPLE = {"crop-flip": (crop_flip_draws, crop_flip), "augmix": (augmix_draws, augmix)}
