"""Issue 11: every bad input is answered in one line, interrupts and crashes lose nothing.

Every case runs the real CLI (``python -m oodbench``) in its own process and asserts the exit code, that stderr
is exactly one line (``oodbench: error: …``) naming the bad thing, and that there is no traceback. A module fixture
answers the selected cases at once: each is forked from one parent that has imported torch (tests/cli_zygote.py),
which spares sixty cold interpreter starts of ~3 s each; a case that needs another ``sys.path`` starts cold. Each
test reads its own answer. Interrupts (Ctrl-C, SIGTERM, ``kill -9``) land at named moments through the test-only hook
``OODBENCH_TEST_PAUSE=STAGE`` (the process prints ``oodbench: test-pause STAGE`` and sleeps there).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, REPO

WORKERS = 3
SMALL = ("--train-limit", "300", "--test-limit", "200", "--epochs", "1", "--n-tune", "20")
RUN = ("run", "-d", "msp", "--in", "fashionmnist", "--out", "mnist", *SMALL)
NO_EPOCHS = (
    "run",
    "-d",
    "msp",
    "--in",
    "fashionmnist",
    "--out",
    "mnist",
    "--train-limit",
    "300",
    "--test-limit",
    "200",
)
SUITE_OK = "suites:\n  s:\n    runs:\n      - {detectors: [msp], id: fashionmnist, oods: [mnist], epochs: 1}\n"

# (id, argv, text the one line must contain, exit code, extra environment); "{fx}" is the fixture folder
CASES = [
    # option parsing (Typer), turned into one line by the CLI's error boundary
    ("epochs-not-a-number", (*RUN, "--epochs", "abc"), "'--epochs'", 2, {}),
    ("unknown-option", (*RUN, "--batch-size", "3"), "--batch-size", 2, {}),
    ("option-without-value", (*RUN, "--seeds"), "'--seeds'", 2, {}),
    ("enum-value", (*RUN, "--tune", "maybe"), "'maybe'", 2, {}),
    ("unknown-command", ("frobnicate",), "'frobnicate'", 2, {}),
    # numbers out of range, wrong types, repeats (RunRequest, before torch loads)
    ("epochs-negative", (*RUN, "--epochs", "-1"), "--epochs", 2, {}),
    ("train-limit-zero", (*RUN, "--train-limit", "0"), "--train-limit", 2, {}),
    ("test-limit-negative", (*RUN, "--test-limit", "-3"), "--test-limit", 2, {}),
    ("n-tune-negative", (*RUN, "--n-tune", "-1"), "--n-tune", 2, {}),
    (
        "contaminate-out-of-range",
        (*RUN, "--contaminate", "1.5", "--contaminate-with", "kmnist"),
        "--contaminate",
        2,
        {},
    ),
    ("detector-twice", (*RUN, "-d", "msp"), "'msp' twice", 2, {}),
    ("seeds-not-numbers", (*RUN, "--seeds", "0", "x"), "'x'", 2, {}),
    ("train-epochs-zero", ("train", "--epochs", "0"), "--epochs", 2, {}),
    # names and combinations (resolve)
    ("test-only-dataset-as-id", ("run", "-d", "msp", "--in", "notmnist", "--out", "mnist"), "'notmnist'", 2, {}),
    (
        "unknown-corruption",
        ("run", "-d", "msp", "--in", "mnist", "--protocol", "corruption", "--corruption", "fog"),
        "'fog'",
        2,
        {},
    ),
    (
        "severity-out-of-range",
        ("run", "-d", "msp", "--in", "mnist", "--protocol", "corruption", "--severity", "7"),
        "--severity",
        2,
        {},
    ),
    (
        "corrupt-both-severity",
        (*RUN, "--protocol", "corruption", "--corrupt-both", "gaussian_noise:9"),
        "gaussian_noise:9",
        2,
        {},
    ),
    (
        "holdout-class-out-of-range",
        ("run", "-d", "msp", "--in", "mnist", "--protocol", "novelty", "--holdout", "12"),
        "[12]",
        2,
        {},
    ),
    ("novelty-without-holdout", ("run", "-d", "msp", "--in", "mnist", "--protocol", "novelty"), "--holdout", 2, {}),
    ("tune-out-without-heldout", (*RUN, "--tune-out", "uniform"), "--tune-out", 2, {}),
    ("unknown-device", (*RUN, "--device", "tpu"), "'tpu'", 2, {}),
    ("unknown-metric", (*RUN, "--metrics", "auroc,nope"), "'nope'", 2, {}),
    ("param-detector-not-in-run", (*RUN, "--param", "odin.temperature=2"), "'odin' is not in this run", 2, {}),
    ("param-unknown-name", (*RUN, "--param", "msp.nothing=1"), "['nothing']", 2, {}),
    ("param-wrong-type", (*RUN, "-d", "odin", "--param", "odin.temperature=hot"), "odin.temperature", 2, {}),
    ("param-syntax", (*RUN, "--param", "odin"), "DETECTOR.NAME=VALUE", 2, {}),
    ("train-option-unknown", (*RUN, "--train", "lr_max=1"), "--train unknown key 'lr_max'", 2, {}),
    ("train-option-type", (*RUN, "--train", "batch_size=big"), "batch_size takes an integer", 2, {}),
    ("train-option-choice", ("train", "--train", "schedule=step"), "cosine, onecycle, none", 2, {}),
    ("train-option-augment", ("train", "--train", "augment=foo"), "mixup, cutmix, regmixup, augmix", 2, {}),
    ("train-option-own-flag", ("train", "--train", "epochs=3"), "--epochs", 2, {}),
    ("layers-for-no-layerwise-detector", (*RUN, "--layers", "conv1"), "--layers", 2, {}),
    ("layers-empty", ("run", "-d", "mahalanobis", "--in", "fashionmnist", "--layers", ","), "--layers", 2, {}),
    ("checkpoint-and-epochs", (*RUN, "--checkpoint", "{fx}/notorch.pt"), "--epochs", 2, {}),
    ("checkpoint-missing", (*NO_EPOCHS, "--checkpoint", "{fx}/nothing.pt"), "nothing.pt", 2, {}),
    ("results-is-a-file", (*RUN, "--results", "{fx}/notorch.pt"), "notorch.pt", 2, {}),
    ("data-root-is-a-file", (*RUN, "--data-root", "{fx}/notorch.pt"), "notorch.pt", 2, {}),
    ("unknown-suite", ("bench", "nosuite", "--file", "{fx}/ok.yaml"), "'nosuite'", 2, {}),
    ("no-records-to-plot", ("plot", "scores", "--out", "{fx}/x.png", "--results", "{fx}/empty"), "no records", 2, {}),
    # after the data is loaded: sizes, layers, checkpoints
    ("n-tune-larger-than-split", (*RUN, "--n-tune", "5000"), "--n-tune 5000", 2, {}),
    ("tuning-without-samples", (*RUN, "--n-tune", "0", "--tune", "oracle"), "--n-tune", 2, {}),
    ("validation-fit-without-samples", (*RUN, "-d", "klm", "--n-tune", "0"), "klm fit on the ID validation", 2, {}),
    ("max-memory-zero", (*RUN, "--max-memory", "0"), "--max-memory takes a positive number of GB", 2, {}),
    ("max-memory-env", RUN, "$OODBENCH_MAX_MEMORY takes a number of GB", 2, {"OODBENCH_MAX_MEMORY": "lots"}),
    ("max-memory-exceeded", (*RUN, "--max-memory", "0.05"), "memory budget exceeded in stage", 2, {}),
    (
        "layer-the-backbone-lacks",
        ("run", "-d", "mahalanobis", "--in", "fashionmnist", "--out", "mnist", *SMALL, "--layers", "conv2,nosuch"),
        "'nosuch'",
        2,
        {},
    ),
    ("checkpoint-not-torch", (*NO_EPOCHS, "--checkpoint", "{fx}/notorch.pt"), "notorch.pt", 2, {}),
    ("checkpoint-cut-short", (*NO_EPOCHS, "--checkpoint", "{fx}/cut.pt"), "cut.pt", 2, {}),
    ("checkpoint-other-network", (*NO_EPOCHS, "--checkpoint", "{fx}/other.pt"), "does not fit backbone", 2, {}),
    ("channels-cannot-convert", (*RUN[:6], "fourch", *SMALL), "from 4 to 1 channels", 2, {"SITE": "{fx}/site"}),
    # damaged files where oodbench reads them
    ("folder-without-images", (*RUN[:6], "folder:{fx}/no-images", *SMALL), "holds no images", 2, {}),
    ("folder-all-unreadable", (*RUN[:6], "folder:{fx}/bad-images", *SMALL), "none of its 2", 2, {}),
    ("mnist-file-cut-short", (*RUN, "--data-root", "{fx}/cut"), "t10k-images-idx3-ubyte", 2, {}),
    (
        "cifar-pickle-cut-short",
        ("run", "-d", "msp", "--in", "cifar10", "--out", "svhn", "--data-root", "{fx}/cut"),
        "data_batch_1",
        2,
        {},
    ),
    ("svhn-mat-cut-short", (*RUN[:6], "svhn", *SMALL, "--data-root", "{fx}/cut"), "test_32x32.mat", 2, {}),
    ("suite-yaml-syntax", ("bench", "s", "--file", "{fx}/syntax.yaml"), "syntax.yaml:5:", 2, {}),
    ("suite-yaml-shape", ("bench", "s", "--file", "{fx}/shape.yaml"), "shape.yaml:1: suites must be a mapping", 2, {}),
    ("suite-unknown-key", ("bench", "s", "--file", "{fx}/key.yaml"), "key.yaml:5: unknown key 'epoch'", 2, {}),
    ("suite-wrong-type", ("bench", "s", "--file", "{fx}/type.yaml"), "type.yaml:4:", 2, {}),
    ("suite-empty-seeds", ("bench", "s", "--file", "{fx}/seeds.yaml"), "seeds.yaml:4:", 2, {}),
    ("config-yaml-syntax", ("list", "datasets"), "cfg-syntax.yaml:3:", 2, {"OODBENCH_CONFIG": "{fx}/cfg-syntax.yaml"}),
    (
        "config-without-folder",
        ("list", "datasets"),
        "cfg-folder.yaml:2: dataset 'xrays': give either 'folder' or 'lists'",
        2,
        {"OODBENCH_CONFIG": "{fx}/cfg-folder.yaml"},
    ),
]

FOURCH = """
import torch
from oodbench import Dataset, ImageSet, hookimpl

class FourChannels(Dataset):
    name, description, splits = "fourch", "4-channel (multispectral) test images", ("test",)

    def load(self, split, ctx):
        return ImageSet(torch.zeros(8, 4, 28, 28, dtype=torch.uint8), torch.zeros(8, dtype=torch.long), self.name)

@hookimpl
def oodbench_register_datasets():
    return [FourChannels()]
"""


def _idx(path: Path, dims: tuple[int, ...], body: bytes) -> None:
    """An idx file (MNIST format) whose header promises ``dims`` and whose data is ``body``."""
    code = 0x0800 + len(dims)
    path.write_bytes(code.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + body)


def _damaged_root(cut: Path) -> None:
    """A data root with FashionMNIST intact (links) and MNIST test images, CIFAR-10 and SVHN files cut short."""
    (cut / "FashionMNIST").mkdir(parents=True)
    (cut / "FashionMNIST" / "raw").symlink_to(DATA / "FashionMNIST" / "raw")
    raw = cut / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _idx(raw / "t10k-images-idx3-ubyte", (10000, 28, 28), bytes(5000))
    _idx(raw / "t10k-labels-idx1-ubyte", (10000,), bytes(10000))
    cifar = cut / "cifar-10-batches-py"
    cifar.mkdir()
    batch = pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]})
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (cifar / name).write_bytes(batch[: len(batch) // 2] if name == "data_batch_1" else batch)
    from scipy.io import savemat

    (cut / "SVHN").mkdir()
    savemat(cut / "SVHN" / "full.mat", {"X": np.zeros((32, 32, 3, 50), np.uint8), "y": np.ones((50, 1), np.uint8)})
    full = (cut / "SVHN" / "full.mat").read_bytes()
    (cut / "SVHN" / "test_32x32.mat").write_bytes(full[: len(full) // 2])


def _yaml_files(fx: Path) -> None:
    files = {
        "ok.yaml": SUITE_OK,
        "syntax.yaml": "suites:\n  s:\n    runs:\n      - {detectors: [msp], id: mnist\n      - {id: x}\n",
        "shape.yaml": "suites: [smoke, cpu]\n",
        "key.yaml": "suites:\n  s:\n    runs:\n      - detectors: [msp]\n        epoch: 3\n        id: mnist\n",
        "type.yaml": "suites:\n  s:\n    runs:\n      - {detectors: [msp], id: fashionmnist, epochs: many}\n",
        "seeds.yaml": "suites:\n  s:\n    runs:\n      - {detectors: [msp], id: fashionmnist, seeds: []}\n",
        "cfg-syntax.yaml": "datasets:\n  xrays: {folder: [/data/xrays\n",
        "cfg-folder.yaml": "datasets:\n  xrays: {description: chest X-rays}\n",
    }
    for name, text in files.items():
        (fx / name).write_text(text)


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> Path:
    """Every bad file the cases read, written small in a temp folder."""
    fx = tmp_path_factory.mktemp("bad-inputs")
    (fx / "notorch.pt").write_text("not a checkpoint\n")
    torch.save({"w": torch.zeros(4000)}, fx / "full.pt")
    (fx / "cut.pt").write_bytes((fx / "full.pt").read_bytes()[:3000])
    torch.save({"state_dict": {"fc.weight": torch.zeros(3, 3)}}, fx / "other.pt")
    for sub in ("a", "b"):
        (fx / "bad-images" / sub).mkdir(parents=True)
        (fx / "bad-images" / sub / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    some = fx / "some-unreadable"
    shutil.copytree(DATA / "dtd-subset32" / "banded", some / "banded")
    shutil.copytree(fx / "bad-images" / "a", some / "broken")
    png = next((some / "banded").iterdir()).read_bytes()
    (some / "banded" / "zz-cut.png").write_bytes(png[: len(png) // 3])
    (fx / "no-images" / "class").mkdir(parents=True)
    (fx / "empty").mkdir()
    _damaged_root(fx / "cut")
    _yaml_files(fx)
    site = fx / "site"
    (site / "fourch-0.0.0.dist-info").mkdir(parents=True)
    (site / "fourch-0.0.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fourch\nVersion: 0.0.0\n")
    (site / "fourch-0.0.0.dist-info" / "entry_points.txt").write_text("[oodbench]\nfourch = fourch_plugin\n")
    (site / "fourch_plugin.py").write_text(textwrap.dedent(FOURCH))
    return fx


def cli_env(site: str = "", **extra: str) -> dict[str, str]:
    """This process's environment (conftest: data, cache, results), quiet, no debug, the code under test first."""
    env = {k: v for k, v in os.environ.items() if k not in ("OODBENCH_DEBUG", "OODBENCH_CONFIG", "OODBENCH_TEST_PAUSE")}
    paths = [p for p in (site, str(REPO), str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")) if p]
    return {**env, "PYTHONPATH": os.pathsep.join(paths), "OODBENCH_QUIET": "1", "OODBENCH_CONFIG": "none", **extra}


def oodbench(args, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oodbench", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _case_command(case, fx: Path) -> tuple[list[str], dict[str, str], str]:
    """The case's arguments, environment and the ``sys.path`` entry it needs at start-up ("" for none)."""
    _, args, _, _, extra = case
    extra = {k: v.format(fx=fx) for k, v in extra.items()}
    site = extra.pop("SITE", "")
    return [a.format(fx=fx) for a in args], cli_env(site, OODBENCH_RESULTS=str(fx / "results"), **extra), site


def _run_case(case, fx: Path) -> subprocess.CompletedProcess:
    args, env, _ = _case_command(case, fx)
    return oodbench(args, fx, env)


def forked(jobs: dict[str, tuple[list[str], dict[str, str], Path]]) -> dict[str, subprocess.CompletedProcess]:
    """``{name: (argv, env, cwd)}`` → each ``python -m oodbench ARGV`` in its own process, forked from one parent
    that imported torch once (tests/cli_zygote.py), :data:`WORKERS` at a time. A job that needs its own
    ``sys.path`` at start-up (a plugin site) must use :func:`oodbench` instead."""
    todo = [{"name": n, "argv": argv, "env": env, "cwd": str(cwd)} for n, (argv, env, cwd) in jobs.items()]
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("cli_zygote.py")), str(WORKERS)],
        input=json.dumps(todo),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    answers = json.loads(done.stdout)
    return {name: subprocess.CompletedProcess(name, *answers[name]) for name in answers}


def _run_forked(cases: list, fx: Path) -> dict[str, subprocess.CompletedProcess]:
    """The cases without a plugin site, without 60 cold interpreter starts (:func:`forked`)."""
    return forked({case[0]: (*_case_command(case, fx)[:2], fx) for case in cases})


def _extra_jobs(fx: Path) -> dict[str, tuple[tuple[str, ...], dict[str, str]]]:
    """Two more commands answered in the same pool: a case under OODBENCH_DEBUG=1, a folder with bad images."""
    return {
        "debug": ((*NO_EPOCHS, "--checkpoint", "{fx}/notorch.pt"), {"OODBENCH_DEBUG": "1"}),
        "some-unreadable": ((*RUN[:6], "folder:{fx}/some-unreadable", *SMALL), {}),
    }


@pytest.fixture(scope="module")
def answers(request, fx):
    """The CLI's answer to every selected case, computed in parallel (each case is its own process)."""
    params = [item.callspec.params for item in request.session.items if hasattr(item, "callspec")]
    wanted = {p["case"][0] for p in params if "case" in p}
    jobs = {c[0]: c for c in CASES if c[0] in wanted}
    jobs |= {name: (name, args, "", 0, env) for name, (args, env) in _extra_jobs(fx).items()}
    fresh = {name for name, job in jobs.items() if _case_command(job, fx)[2]}  # its own sys.path: a cold start
    with ThreadPoolExecutor(1) as pool:
        cold = {name: pool.submit(_run_case, jobs[name], fx) for name in fresh}
        answers = _run_forked([job for name, job in jobs.items() if name not in fresh], fx)
        return answers | {name: f.result() for name, f in cold.items()}


def test_cases_are_distinct_and_enough():
    assert len({c[0] for c in CASES}) == len(CASES) and len(CASES) >= 48
    assert len({(c[1], tuple(c[4].items())) for c in CASES}) == len(CASES)  # no two run the same command


PARAMS = [pytest.param(c, id=c[0]) for c in CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_is_one_line(case, answers):
    name, _, names, code, _ = case
    done = answers[name]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("oodbench: error: ") and names in lines[0], lines[0]
    assert done.stdout.strip() == ""


def test_debug_shows_the_traceback(answers):
    done = answers["debug"]
    assert done.returncode != 0 and "Traceback" in done.stderr and "CorruptFileError" in done.stderr


def test_unreadable_images_are_skipped_with_one_warning(answers, fx):
    done = answers["some-unreadable"]
    assert done.returncode == 0, done.stderr
    (warning,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert warning.startswith("oodbench: warning: 2 unreadable image(s) skipped")
    assert "banded/zz-cut.png" in warning and "broken/x.png" in warning
    assert f"folder:{fx}/some-unreadable" in done.stdout


# -- interrupts, kill -9, damaged cache entries, two bench processes -------------------------------------------
TINY = ("--train-limit", "500", "--test-limit", "200", "--epochs", "1", "--n-tune", "20")
TINY_RUN = ("run", "-d", "msp", "--in", "fashionmnist", "--out", "mnist", *TINY)
NEW_DATA = (*TINY_RUN, "--test-limit", "150")  # the same backbone, features not cached yet


def temps(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*.tmp")]


def files(root: Path, pattern: str) -> set[Path]:
    return set(root.rglob(pattern)) if root.exists() else set()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, even when pytest runs as a background job


def start(args, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "oodbench", *args]
    pipe = subprocess.PIPE
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=pipe, stderr=pipe, text=True, preexec_fn=_default_sigint)


def paused(args, stage: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start the CLI with ``OODBENCH_TEST_PAUSE=stage``; return once it waits there (and its stderr so far)."""
    proc = start(args, cwd, {**env, "OODBENCH_TEST_PAUSE": stage})
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"oodbench: test-pause {stage}"):
            return proc, "".join(seen)
    proc.wait()
    pytest.fail(f"the run ended (exit {proc.returncode}) before reaching {stage}:\n{''.join(seen)}")


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> Path:
    """A finished TINY_RUN: ``cache`` (trained backbone, features) and ``results`` (one record), copied by tests."""
    root = tmp_path_factory.mktemp("warm")
    env = cli_env(OODBENCH_CACHE=str(root / "cache"), OODBENCH_RESULTS=str(root / "results"))
    done = oodbench(TINY_RUN, root, env)
    assert done.returncode == 0, done.stderr
    return root


def workspace(tmp_path: Path, warm: Path | None, results: bool = False) -> tuple[Path, Path, dict[str, str]]:
    """Fresh cache and results folders for one test (the warm cache copied in; its results too if asked)."""
    cache, out = tmp_path / "cache", tmp_path / "results"
    if warm is not None:
        shutil.copytree(warm / "cache", cache)
    if results:
        shutil.copytree(warm / "results", out)
    return cache, out, cli_env(OODBENCH_CACHE=str(cache), OODBENCH_RESULTS=str(out))


def after_signal(proc: subprocess.Popen, sig: int) -> tuple[int, list[str], str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, [line for line in err.splitlines() if line.strip()], out


def killed(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.communicate(timeout=60)


@pytest.mark.parametrize(
    "stage, sig, code, word, cached",
    [
        ("train", signal.SIGINT, 130, "interrupted", False),
        ("extract", signal.SIGTERM, 143, "terminated", True),
        ("write-cache", signal.SIGINT, 130, "interrupted", True),
        ("write-record", signal.SIGTERM, 143, "terminated", True),
    ],
)
def test_interrupt_is_one_line_and_leaves_nothing_half_written(tmp_path, warm, stage, sig, code, word, cached):
    cache, results, env = workspace(tmp_path, warm if cached else None)
    args = {"extract": (*TINY_RUN, "--no-feature-cache"), "write-cache": NEW_DATA}
    before = files(cache, "*.pt")
    proc, _ = paused(args.get(stage, TINY_RUN), stage, tmp_path, env)
    if stage.startswith("write"):
        assert temps(cache, results), "the pause is inside a write: its temporary file exists"
    rc, lines, out = after_signal(proc, sig)
    assert rc == code and out == ""
    assert len(lines) == 1 and lines[0].startswith(f"oodbench: {word}"), lines
    assert temps(cache, results) == []
    assert files(results, "*.json") == set() and files(results, "*.npz") == set()
    assert files(cache, "*.pt") == before  # no cache entry was added, none half-written


def test_after_kill_9_mid_cache_write_and_a_damaged_entry_the_next_run_rebuilds(tmp_path, warm):
    cache, results, env = workspace(tmp_path, warm)
    killed(paused(NEW_DATA, "write-cache", tmp_path, env)[0])
    assert temps(cache), "kill -9 leaves the temporary file behind"
    (checkpoint,) = files(cache / "checkpoints", "*.pt")
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed: only the hash can tell
    checkpoint.write_bytes(bytes(data))
    again = oodbench(NEW_DATA, tmp_path, env)
    assert again.returncode == 0 and "| msp" in again.stdout, again.stderr
    (warning,) = [line for line in again.stderr.splitlines() if line.strip()]
    assert warning.startswith(f"oodbench: warning: checkpoint cache entry {checkpoint} is damaged (content hash")
    assert temps(cache) == []  # the dead process's temporary file is gone
    for entry in files(cache, "*.pt"):  # every entry (the rebuilt one included) matches its hash
        digest, size = (entry.parent / (entry.name + ".sha256")).read_text().split()
        data = entry.read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest and len(data) == int(size)


def test_kill_9_mid_record_write_keeps_finished_records(tmp_path, warm):
    from oodbench.records.store import record_files

    cache, results, env = workspace(tmp_path, warm, results=True)
    (record,) = files(results, "*.json")
    kept = record.read_text()
    killed(paused((*TINY_RUN, "-d", "energy"), "write-record", tmp_path, env)[0])
    assert record.read_text() == kept and temps(results)  # the finished record is whole; the new one unfinished
    assert [r.detector for _, r in record_files(results)] == ["msp"]  # the temporary file is never read
    again = oodbench((*TINY_RUN, "-d", "energy"), tmp_path, env)
    assert again.returncode == 0, again.stderr
    assert sorted(r.detector for _, r in record_files(results)) == ["energy", "msp"] and temps(results) == []


BENCH_SUITE = """suites:
  three:
    runs:
      - {detectors: [msp], id: fashionmnist, oods: [mnist], train_limit: 500, test_limit: 200, epochs: 1, n_tune: 20}
      - {detectors: [msp], id: fashionmnist, oods: [uniform], train_limit: 500, test_limit: 200, epochs: 1, n_tune: 20}
      - {detectors: [msp], id: fashionmnist, oods: [gaussian], train_limit: 500, test_limit: 200, epochs: 1,
         n_tune: 20}
"""


def ran(stderr: str) -> list[str]:
    return [line.split("] run: ", 1)[1] for line in stderr.splitlines() if "] run: " in line]


def test_two_bench_processes_never_run_one_run_twice_and_a_dead_claim_is_free(tmp_path, warm):
    """The first process claims run 1 and stops there; the second passes over it (busy), does runs 2 and 3, and
    waits for run 1. The first is killed with -9: its claim dies with it and the second runs run 1 itself."""
    cache, results, env = workspace(tmp_path, warm)
    (tmp_path / "b.yaml").write_text(BENCH_SUITE)
    env = {**env, "OODBENCH_QUIET": ""}
    args = ("bench", "three", "--file", str(tmp_path / "b.yaml"))
    first, _ = paused(args, "bench-claimed", tmp_path, env)
    second = start(args, tmp_path, env)
    seen = []
    for line in second.stderr:
        seen.append(line)
        if " busy " in line:
            break
    killed(first)
    # read the rest through the same buffered file: communicate() would skip what the loop above read ahead
    err = "".join(seen) + second.stderr.read()
    out = second.stdout.read()
    second.wait(timeout=300)
    assert second.returncode == 0, err
    assert f"[1/3] busy (another oodbench process, pid {first.pid}, is running it)" in err
    assert sorted(ran(err)) == sorted(set(ran(err))) and len(ran(err)) == 3, err
    assert "3 run(s) done" in out
    assert len(files(results / "three" / ".done", "*")) == 3
    assert len(files(results / "three", "*.json")) == 3 and temps(results) == []
