"""Contract checks for detector authors: ``check_detector(MyDetector)``.

Like scikit-learn's ``check_estimator``: it runs a detector class through the API contract
on a tiny untrained LeNet and synthetic images (seconds on a CPU) and raises
``AssertionError`` naming the broken rule. oodbench runs it over its whole registry;
plugin authors run it in their own test suites.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.base import clone
from torch import nn

from oodbench.core.errors import describe
from oodbench.data.imageset import ImageSet
from oodbench.models.backbones import Backbone, BackboneFactory
from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import check_params
from oodbench.plugins.detector import Detector, LayerwiseDetector, Supplies, fit_detector, validate_scores


class TinyNetFactory(BackboneFactory):
    """A small LeNet-shaped CNN for contract checks (core code: the checks need no built-in plugin).
    Layers conv1, conv2, fc1, penultimate, logits; the ``dropout`` option adds dropout after each conv block,
    and with ``dropout_at="layer-inputs"`` also on the image and after fc1 and fc2 (as the built-in LeNet)."""

    name = "tiny-testing-net"
    description = "small CNN used by oodbench.plugins.testing"
    options = frozenset({"dropout", "dropout_at"})
    train_defaults = {"optimizer": "adam", "lr": 1e-3, "epochs": 1, "batch_size": 64}

    def build(
        self, input_shape, num_classes, pretrained=False, dropout: float = 0.0, dropout_at: str = "conv-blocks"
    ) -> Backbone:
        c, h, _ = input_shape
        flat = 16 * (((h - 4) // 2 - 4) // 2) ** 2
        every = bool(dropout) and dropout_at == "layer-inputs"

        def drop() -> list[nn.Module]:
            return [nn.Dropout(dropout)] if every else []

        net = nn.Sequential(*drop())
        net.add_module("conv1", nn.Sequential(nn.Conv2d(c, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout)))
        net.add_module("conv2", nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout)))
        net.add_module("fc1", nn.Sequential(nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(), *drop()))
        net.add_module("fc2", nn.Sequential(nn.Linear(120, 84), nn.ReLU(), *drop()))
        net.add_module("fc3", nn.Linear(84, num_classes))
        return Backbone(
            net,
            {"conv1": "conv1", "conv2": "conv2", "fc1": "fc1"},
            "fc3",
            [0.5] * c,
            [0.5] * c,
            input_shape,
            arch="tiny" if not dropout else f"tiny(dropout={dropout}, at={dropout_at})",
        )


def tiny_run(n_train: int = 256, n_test: int = 96, seed: int = 0):
    """((train, id_test, ood_test) views, supplies) over a randomly initialised small CNN on 1×28×28 images.

    ID images are bright blobs on dark backgrounds (10 classes by blob position); OOD images are uniform
    noise; the supplies' training-time outliers are dark images with scattered bright pixels.
    """
    from oodbench.models.checkpoints import ModelSpec
    from oodbench.models.provider import ModelProvider
    from oodbench.models.train import TrainConfig

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    factory = TinyNetFactory()
    model = factory.build((1, 28, 28), 10).eval()

    def blobs(n: int) -> ImageSet:
        labels = torch.randint(0, 10, (n,), generator=g)
        yy, xx = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
        cy = 6 + (labels // 5) * 14
        cx = 3 + (labels % 5) * 5
        d2 = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2
        img = (255 * torch.exp(-d2 / 18.0)).to(torch.uint8)[:, None]
        return ImageSet(img, labels, "blobs", tuple(map(str, range(10))))

    noise = ImageSet(
        torch.randint(0, 256, (n_test, 1, 28, 28), generator=g, dtype=torch.uint8), torch.full((n_test,), -1), "noise"
    )
    train = blobs(n_train)
    spec = ModelSpec(
        factory.name, "blobs", (1, 28, 28), 10, TrainConfig(epochs=1, batch_size=64, seed=seed), train_limit=n_train
    )
    views = tuple(FeatureView(d, model, "cpu", 64) for d in (train, blobs(n_test), noise))
    sparse = (torch.rand(n_train // 2, 1, 28, 28, generator=g) < 0.1).to(torch.uint8) * 255
    outliers = ImageSet(sparse, torch.full((n_train // 2,), -1), "sparse-noise")
    return views, Supplies(ModelProvider(spec, factory, train, None, "cpu"), outliers, seed)


def tiny_views(n_train: int = 256, n_test: int = 96, seed: int = 0) -> tuple[FeatureView, FeatureView, FeatureView]:
    """(train, id_test, ood_test) views of :func:`tiny_run`."""
    return tiny_run(n_train, n_test, seed)[0]


@contextmanager
def rule(cls: type, what: str) -> Iterator[None]:
    """Any exception raised inside (the detector's own code) becomes an ``AssertionError`` naming the rule, so a
    failed check is always an assertion (docs/plugins.md §9)."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as the contract failure it is
        raise AssertionError(f"{getattr(cls, 'name', cls)}: {what}: raised {describe(exc)}") from exc


def check_detector(cls: type[Detector]) -> None:
    """Assert that ``cls`` follows oodbench's detector contract (every failure is an ``AssertionError``)."""
    assert isinstance(cls, type) and issubclass(cls, Detector), f"{cls} must subclass oodbench.Detector"
    assert isinstance(cls.name, str) and cls.name, "detector classes need a non-empty `name`"
    assert cls.description and "\n" not in cls.description, f"{cls.name}: `description` must be one line"
    with rule(cls, "__init__ with defaults and clone"):
        det = cls()
        params = det.get_params()
        twin = clone(det)
    assert twin.get_params() == params, f"{cls.name}: __init__ must only store its parameters (clone differs)"
    assert not [k for k in vars(det) if k.endswith("_") and not k.startswith("_")], (
        f"{cls.name}: __init__ must not set learned (trailing-underscore) attributes"
    )
    bad = check_params(cls, params, params)
    assert not bad, f"{cls.name}: a default breaks its declared parameter_constraints: {bad[0]}"
    (train, id_test, ood_test), supplies = tiny_run()
    with rule(cls, "required_layers"):
        layers = set(det.required_layers(train.model))
    assert layers <= set(train.model.feature_layers), f"{cls.name}: required_layers names layers the backbone lacks"
    with rule(cls, "fit"):
        fitted = fit_detector(det, train, supplies)
    assert fitted is det, f"{cls.name}: fit must return self"
    with rule(cls, "score_samples"):
        _check_scores(cls, det, id_test, ood_test)
    with rule(cls, "search_space (read after fit) and its last values"):
        _check_search_space(cls, det, params, train, supplies, id_test)
    if isinstance(det, LayerwiseDetector):
        with rule(cls, "fit_ensemble"):
            det.fit_ensemble(id_test, ood_test)
            validate_scores(det, det.score_samples(id_test), len(id_test))
        fitted_ensemble = "ensemble" in det.describe_fit()
        assert fitted_ensemble == det.combines_layers(), (
            f"{cls.name}: describe_fit must report the ensemble iff one was fitted"
        )


def check_direction(
    cls: type[Detector],
    train: FeatureView,
    id_test: FeatureView,
    ood_test: FeatureView,
    supplies: Supplies | None = None,
    at_least: float = 60.0,
) -> float:
    """Assert that ``cls`` scores ``id_test`` above ``ood_test`` (higher = more in-distribution, SPEC.md): its
    AUROC on an easy pair you supply (e.g. your ID set against uniform noise, on a trained model) is at least
    ``at_least``. Returns the AUROC. A detector whose sign is flipped scores 100 − AUROC and fails."""
    from oodbench.records.metrics import auroc

    with rule(cls, "fit and score an easy pair"):
        det = fit_detector(cls(), train, supplies)
        s_id = validate_scores(det, det.score_samples(id_test), len(id_test))
        s_ood = validate_scores(det, det.score_samples(ood_test), len(ood_test))
    value = auroc(s_id, s_ood)
    assert value >= at_least, (
        f"{cls.name}: AUROC {value:.1f} < {at_least:g} on an easy pair: higher scores must mean more "
        "in-distribution (is the sign flipped?)"
    )
    return value


def _check_scores(cls: type, det: Detector, id_test: FeatureView, ood_test: FeatureView) -> None:
    s_id = validate_scores(det, det.score_samples(id_test), len(id_test))
    validate_scores(det, det.score_samples(ood_test), len(ood_test))
    again = validate_scores(det, det.score_samples(id_test), len(id_test))
    assert np.allclose(s_id, again), f"{cls.name}: scoring the same samples twice must give the same scores"
    index = torch.arange(0, len(id_test), 3)
    sub = validate_scores(det, det.score_samples(id_test.subset(index)), len(index))
    if not cls.needs.stochastic:
        ref = s_id[index.numpy()]
        gap = np.abs(sub - ref)
        i = int(np.argmax(gap - 1e-4 * np.abs(ref)))
        assert np.allclose(sub, ref, rtol=1e-4, atol=1e-5), (
            f"{cls.name}: a sample's score must not depend on the other samples in the batch: largest "
            f"deviation {gap[i]:.3g} at score {ref[i]:.6g} (allowed: 1e-5 + 1e-4·|score|)"
        )


def _check_search_space(cls: type, det: Detector, params: dict, train, supplies, id_test: FeatureView) -> None:
    """``search_space()`` is read on the fitted detector (it may depend on fitted state, e.g. a feature size)."""
    for name, values in det.search_space().items():
        assert name in params, f"{cls.name}: search_space names {name!r}, which is not an __init__ parameter"
        assert len(values) >= 1, f"{cls.name}: search_space[{name!r}] is empty"
        if name in cls.fit_params:
            tuned = fit_detector(clone(det).set_params(**{name: values[-1]}), train, supplies)
        else:
            tuned = det.tuned_copy(**{name: values[-1]})
        validate_scores(tuned, tuned.score_samples(id_test), len(id_test))


def synthetic_view(
    features: dict[str, torch.Tensor], labels: torch.Tensor | None = None, head: torch.nn.Linear | None = None
) -> FeatureView:
    """A view whose features are given (hand-checkable detector tests). ``head`` is the classifier
    that maps ``features["penultimate"]`` to logits (detectors that re-apply it need one); without
    ``features["logits"]`` the logits are ``head(penultimate)``."""
    from oodbench.models.backbones import Backbone

    n = len(next(iter(features.values())))
    if head is None:
        d = features.get("penultimate", features.get("logits"))
        head = torch.nn.Linear(d.shape[1], d.shape[1])
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Identity(), head)
    model = Backbone(net, {}, "2", [0.0], [1.0], (1, 1, 1), arch="synthetic")
    labels = torch.zeros(n, dtype=torch.long) if labels is None else labels
    view = FeatureView(ImageSet(torch.zeros(n, 1, 1, 1, dtype=torch.uint8), labels, "synthetic"), model)
    feats = dict(features)
    if "logits" not in feats and "penultimate" in feats:
        with torch.no_grad():
            feats["logits"] = head(feats["penultimate"])
    view._features.update({k: v.float() for k, v in feats.items()})
    return view


from oodbench.plugins.dataset_checks import check_dataset  # noqa: E402 - the dataset contract, same public module

__all__ = [
    "TinyNetFactory",
    "check_dataset",
    "check_detector",
    "check_direction",
    "rule",
    "synthetic_view",
    "tiny_run",
    "tiny_views",
]
