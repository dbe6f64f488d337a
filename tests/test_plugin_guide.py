"""The plugin author's guide runs as written; ``check_dataset``; ``oodbench layers``.

docs/plugins.md marks each code block that is a file of its example package with a first line
``# file: PATH``. Here those blocks are written out exactly, pip-installed (the real entry-point
machinery) and driven through the real command line in subprocesses; the package's own test file runs
under pytest. Unmarked python blocks (fragments) must run on their own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import pip_install_target, site_env

from oodbench import Dataset, ImageSet, hookimpl
from oodbench.plugins.manager import PluginLoadWarning, collect, make_plugin_manager, registries
from oodbench.plugins.testing import check_dataset

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\s*$", re.S | re.M)
MARK = "# file: "
DETECTORS, DATASETS, BACKBONES = ["centroid-cosine", "one-vs-rest"], ["my-npz", "mnist-inverted"], ["small-cnn"]


def guide_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the guide, in order."""
    return FENCE.findall(GUIDE.read_text(encoding="utf-8"))


def guide_files() -> dict[str, str]:
    """Package path → text, from the blocks whose first line is ``# file: PATH`` (joined in order)."""
    files: dict[str, str] = {}
    for _, code in guide_blocks():
        first = code.split("\n", 1)[0]
        if first.startswith(MARK):
            path = first[len(MARK) :].strip()
            files[path] = files.get(path, "") + code
    return files


def cli(site: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """``python -m oodbench.cli ARGS`` (or ``python -c CODE``) with the guide's package installed in ``site``."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "oodbench.cli", *args]
    return subprocess.run(cmd, env=site_env(site), capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def guide_package(tmp_path_factory) -> tuple[Path, Path]:
    """(source folder, pip --target site) of the guide's package, written from its ``# file:`` blocks."""
    src = tmp_path_factory.mktemp("guide-src") / "my-ood-plugin"
    for rel, text in guide_files().items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    site = tmp_path_factory.mktemp("guide-site")
    pip_install_target(site, src)
    return src, site


def test_guide_blocks_form_a_package_and_fragments_run():
    files = guide_files()
    assert {
        "pyproject.toml",
        "my_ood_plugin/__init__.py",
        "my_ood_plugin/detectors.py",
        "my_ood_plugin/trained.py",
        "my_ood_plugin/datasets.py",
        "my_ood_plugin/backbones.py",
        "tests/test_my_ood_plugin.py",
    } <= set(files)
    assert '[project.entry-points.oodbench]\nmy = "my_ood_plugin"' in files["pyproject.toml"]
    fragments = [code for lang, code in guide_blocks() if lang == "python" and not code.startswith(MARK)]
    assert len(fragments) >= 4
    for code in fragments:  # each fragment on its own: its imports resolve and its classes define
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(compile(code, str(GUIDE), "exec"), {"__name__": "guide_fragment"})


def test_cli_lists_the_guide_plugins(guide_package):
    _, site = guide_package
    calls = [
        ["plugins"],
        ["list", "detectors"],
        ["list", "datasets"],
        ["list", "backbones"],
        ["layers", "small-cnn", "--shape", "1x28x28"],
    ]
    code = "from oodbench.cli import main\n" + "".join(f"print('@@', main({c!r}), flush=True)\n" for c in calls)
    done = cli(site, code=code)  # one interpreter for the five commands: the real CLI entry point, main()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    parts = re.split(r"^@@ (-?\d+)\n", done.stdout, flags=re.M)
    assert parts[1::2] == ["0"] * len(calls), done.stdout + done.stderr
    outputs = dict(zip(map(str, calls), parts[0::2]))
    assert re.search(r"^my-ood-plugin:my\s+0\.1\.0\s+ok\s", outputs[str(calls[0])], re.M), outputs[str(calls[0])]
    for call, names in zip(calls[1:4], (DETECTORS, DATASETS, BACKBONES)):
        rows = {line.split()[0]: line for line in outputs[str(call)].splitlines()[2:] if line.strip()}
        for name in names:
            assert rows[name].endswith("my-ood-plugin:my"), outputs[str(call)]
    layers = outputs[str(calls[4])]
    assert [line.split()[:2] for line in layers.splitlines()[3:]] == [
        ["block1", "16"],
        ["block2", "32"],
        ["penultimate", "32"],
        ["logits", "10"],
    ], layers


def test_cli_runs_the_guide_plugins(guide_package, tmp_path):
    _, site = guide_package
    done = cli(
        site,
        "run",
        "--detector",
        "centroid-cosine",
        "--detector",
        "one-vs-rest",
        "--in",
        "fashionmnist",
        "--out",
        "mnist-inverted",
        "--backbone",
        "small-cnn",
        "--epochs",
        "1",
        "--train-limit",
        "1000",
        "--test-limit",
        "400",
        "--n-tune",
        "100",
        "--tune",
        "oracle",
        "--param",
        "one-vs-rest.epochs=1",
        "--results",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout.splitlines()
    assert table[0].startswith("|") and "AUROC" in table[0], done.stdout
    for name in DETECTORS:
        assert any(line.startswith(f"| {name}") and "mnist-inverted" in line for line in table), done.stdout
    records = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert sorted(r["detector"] for r in records) == sorted(DETECTORS)
    assert {r["plugin"] for r in records} == {"my-ood-plugin:my"} and {r["backbone"] for r in records} == {"small-cnn"}


def test_the_guide_package_tests_pass(guide_package, tmp_path):
    src, site = guide_package
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error::UserWarning",
            str(src / "tests" / "test_my_ood_plugin.py"),
        ],
        cwd=tmp_path,
        env=site_env(site),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout, done.stdout


# -- check_dataset -----------------------------------------------------------------------------------------


def test_check_dataset_passes_builtins(data_root, tmp_path):
    from PIL import Image

    regs = registries()
    check_dataset(regs.datasets.get("mnist"), data_root)
    check_dataset(regs.datasets.get("gaussian"))
    for split, n in (("train", 4), ("test", 3)):
        for k, cls in enumerate(("cat", "dog")):
            folder = tmp_path / "tree" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (12, 12), (40 * i, 100 * k, 7)).save(folder / f"{i}.png")
    check_dataset(regs.datasets.get(f"folder:{tmp_path / 'tree'}"))


def test_example_stripes_dataset_passes(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "plugins" / "oodbench-example"))
    from oodbench_example import Stripes, oodbench_register_datasets

    check_dataset(Stripes())
    assert [d.name for d in oodbench_register_datasets()] == ["example-stripes"]


class _Toy(Dataset):
    name = "toy-set"
    description = "four black images"
    splits = ("test",)

    def load(self, split, ctx):
        return ImageSet(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.full((4,), -1), self.name)


def test_check_dataset_reports_broken_contracts(tmp_path):
    with pytest.raises(AssertionError, match=r"_Toy is a class: check_dataset takes a Dataset instance.*\[_Toy\(\)\]"):
        check_dataset(_Toy)
    check_dataset(_Toy(), tmp_path)  # needs no files: loading from an empty root may succeed

    class Wrong(_Toy):  # reads <root>/toy but lets a missing folder raise FileNotFoundError
        def load(self, split, ctx):
            if not (ctx.root / "toy").is_dir():
                raise FileNotFoundError(ctx.root / "toy")
            return super().load(split, ctx)

    (tmp_path / "toy").mkdir()
    with pytest.raises(AssertionError, match="raised FileNotFoundError.*must raise oodbench.data.missing"):
        check_dataset(Wrong(), tmp_path)

    class Floats(_Toy):
        def load(self, split, ctx):
            data = super().load(split, ctx)
            return ImageSet(data.images, torch.zeros(4, dtype=torch.int32), self.name)

    with pytest.raises(AssertionError, match="labels must be int64"):
        check_dataset(Floats(), tmp_path)


def test_registering_a_dataset_class_fails_that_plugin_in_one_line():
    import types

    mod = types.ModuleType("class_plugin")

    @hookimpl
    def oodbench_register_datasets():
        return [_Toy]  # the class, not _Toy()

    mod.oodbench_register_datasets = oodbench_register_datasets
    pm = make_plugin_manager(autoload=False)
    pm.register(mod, name="class-plugin:x")
    message = (
        r"plugin 'class-plugin:x' failed in oodbench_register_datasets and was skipped: PluginError: .*"
        r"datasets are registered as instances, e\.g\. _Toy\(\)"
    )
    with pytest.warns(PluginLoadWarning, match=message):
        regs = collect(pm)
    assert "toy-set" not in regs.datasets.names() and "mnist" in regs.datasets.names()
    status = {name: st for name, _, st, _ in regs.status()}
    assert status["class-plugin:x"].startswith("failed: PluginError: plugin 'class-plugin:x' registered <class")


# -- oodbench layers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backbone, shape, expected",
    [
        ("lenet", "1x28x28", [("conv1", 6), ("conv2", 16), ("fc1", 120), ("penultimate", 84), ("logits", 10)]),
        (
            "resnet18",
            "3x32x32",
            [
                ("stem", 64),
                ("layer1", 64),
                ("layer2", 128),
                ("layer3", 256),
                ("layer4", 512),
                ("penultimate", 512),
                ("logits", 10),
            ],
        ),
    ],
)
def test_layers_command(backbone, shape, expected):
    done = subprocess.run(
        [sys.executable, "-m", "oodbench.cli", "layers", backbone, "--shape", shape],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{backbone} on {shape.replace('x', '×')} inputs, 10 classes")
    assert [(row.split()[0], int(row.split()[1])) for row in lines[3:]] == expected
