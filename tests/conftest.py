"""Shared test setup: real data from ../shared/datasets, caches and results in temp folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / os.environ.get("OODBENCH_DATA", "../shared/datasets")).resolve()


def builtin_names(kind: str) -> list[str]:
    """The ``kind`` ("detectors", "datasets", "backbones") names oodbench's own plugins register. Tests that walk
    a registry by the built-ins' rules (tensors on the features' device, bf16, every grid end to end) use this:
    a third-party plugin installed beside oodbench (e.g. ``pip install ./plugins/oodbench-example``) is held
    only to the public contract (``test_detectors.py::test_detector_contract``), which allows NumPy scores."""
    from oodbench.plugins.manager import registries

    return [entry.name for entry in getattr(registries(), kind) if entry.plugin.startswith("oodbench:")]


def pip_install_target(target: Path, *packages: Path | str) -> Path:
    """``pip install --no-deps --no-build-isolation --target TARGET PACKAGE…``: real distributions with
    real entry points, installed where only a subprocess with :func:`site_env` sees them. A source folder is
    built from a copy, so its build files (``*.egg-info``, ``build/``) never land in the repository."""
    copies = target.parent / f"{target.name}-sources"
    packages = tuple(
        shutil.copytree(p, copies / Path(p).name, dirs_exist_ok=True) if Path(p).is_dir() else p for p in packages
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            *map(str, packages),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def site_env(site: Path, **extra: str) -> dict[str, str]:
    """This process's environment with ``site`` first on PYTHONPATH and no plugin disabled, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "OODBENCH_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


@pytest.fixture(scope="session", autouse=True)
def _environment(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("OODBENCH_DATA", str(DATA))
    mp.setenv("OODBENCH_CACHE", str(cache))
    mp.setenv("OODBENCH_QUIET", "1")
    mp.setenv("OODBENCH_RESULTS", str(tmp_path_factory.mktemp("results")))
    mp.setenv("OODBENCH_CONFIG", "none")  # never a ./oodbench.yaml of the working directory (issue 29)
    mp.setenv("CUDA_VISIBLE_DEVICES", "")  # tests pin the CPU (device tests simulate the accelerator's paths)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n N`: N workers share the cores, one thread each
        import torch

        mp.setenv("OMP_NUM_THREADS", "1")  # and so do the CLI subprocesses the tests start
        torch.set_num_threads(1)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "MNIST").is_dir():
        pytest.fail(f"test data not found at {DATA}; set OODBENCH_DATA to the shared datasets folder")
    return DATA


@pytest.fixture(scope="session")
def lenet_fmnist(data_root):
    """A LeNet trained for one epoch on 6,000 FashionMNIST images (real data, a few seconds)."""
    from oodbench.data.imageset import LoadContext
    from oodbench.models.checkpoints import ModelSpec, load_or_train
    from oodbench.models.train import TrainConfig
    from oodbench.plugins.manager import registries

    regs = registries()
    ctx = LoadContext(data_root)
    train = regs.datasets.get("fashionmnist").load("train", ctx).head(6000)
    factory = regs.backbones.get("lenet")
    spec = ModelSpec("lenet", "fashionmnist", train.shape, 10, TrainConfig(epochs=1), train_limit=6000)
    model, _ = load_or_train(spec, factory, train, None, "cpu")
    return model, train


def pytest_addoption(parser):
    parser.addoption(
        "--reverse-order",
        action="store_true",
        help="run the collected tests last to first (issue 29: no test may depend on another having run before it)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse-order"):
        items.reverse()
