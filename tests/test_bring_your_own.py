"""Bring your own model (issue 23): a module built here — not a registered backbone — evaluated through the Python
API and through ``--model`` as a ``torch.export`` file and a TorchScript file scores as the same weights run
through the registered ``lenet``; bad models are one line, exit 2, with nothing written."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import oodbench
from oodbench.cli.main import main
from oodbench.core.errors import OodbenchError, UsageError
from oodbench.records.store import record_files

DETECTORS = ["msp", "energy", "knn", "vim", "mahalanobis", "fssd"]
LAYERS = ["conv1", "conv2", "fc1"]  # the registered lenet's feature layers, by the same module paths
RUN = ["--in", "fashionmnist", "--out", "mnist", "--train-limit", "1000", "--test-limit", "300", "--n-tune", "50"]


class FlatLeNet(nn.Module):
    """A classifier the test builds itself: a LeNet's blocks as direct children, normalisation inside."""

    def __init__(self, lenet: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.conv1, self.conv2, self.fc1, self.fc2, self.fc3 = lenet.conv1, lenet.conv2, lenet.fc1, lenet.fc2, lenet.fc3
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.fc3(self.fc2(self.fc1(self.conv2(self.conv1(x)))))


@pytest.fixture(scope="module")
def brought(lenet_fmnist, tmp_path_factory):
    """(the module, its checkpoint for the registered lenet, .pt2 path, TorchScript path)."""
    model, _ = lenet_fmnist
    work = tmp_path_factory.mktemp("brought")
    flat = FlatLeNet(model.net, model.mean, model.std).eval()
    torch.save(model.state_dict(), work / "lenet.pth")
    batch = torch.export.Dim("batch")
    torch.export.save(
        torch.export.export(flat, (torch.rand(4, 1, 28, 28),), dynamic_shapes=({0: batch},)), work / "m.pt2"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(flat), work / "m.ts")
    return flat, work / "lenet.pth", work / "m.pt2", work / "m.ts"


def aurocs_of_cli(capsys, tmp_path: Path, *args: str) -> dict[str, float]:
    code = main(["run", *sum((["-d", d] for d in DETECTORS), []), *RUN, "--results", str(tmp_path), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return {r.detector: r.metrics["auroc"] for _, r in record_files(tmp_path)}


def test_a_module_built_here_scores_as_the_registered_backbone(brought, capsys, tmp_path):
    flat, checkpoint, exported, scripted = brought
    registered = aurocs_of_cli(capsys, tmp_path / "reg", "--backbone", "lenet", "--checkpoint", str(checkpoint))
    layers = sum((["--model-layer", p] for p in LAYERS), [])
    api = oodbench.evaluate(
        flat, id="fashionmnist", ood=["mnist"], detectors=DETECTORS, layers=LAYERS, store=False,
        train_limit=1000, test_limit=300, n_tune=50,
    )  # fmt: skip
    got = {
        "python API": {r.detector: r.metrics["auroc"] for r in api.records},
        ".pt2": aurocs_of_cli(capsys, tmp_path / "pt2", "--model", str(exported), *layers),
        "TorchScript": aurocs_of_cli(capsys, tmp_path / "ts", "--model", str(scripted), *layers),
    }
    assert set(registered) == set(DETECTORS) and registered["fssd"] > 60  # a trained model: scores mean something
    for how, aurocs in got.items():
        assert aurocs.keys() == registered.keys(), how
        for det, value in aurocs.items():
            assert value == pytest.approx(registered[det], abs=0.1), (how, det, value, registered[det])
    assert {r.backbone for r in api.records} == {"model:FlatLeNet"}


def test_the_python_api_returns_records_rows_a_table_and_a_dataframe(brought):
    flat = brought[0]
    ev = oodbench.evaluate(flat, id="fashionmnist", ood=["mnist"], detectors=["msp"], store=False, test_limit=200)
    rows = ev.rows()
    assert len(ev.records) == 1 and rows[0]["detector"] == "msp" and rows[0]["auroc"] == ev.records[0].metrics["auroc"]
    assert "| msp" in ev.table() and "model:FlatLeNet" in repr(ev)
    frame = ev.to_pandas()
    assert list(frame["AUROC"]) == [rows[0]["auroc"]]
    with pytest.raises(UsageError, match=r"no module 'fc9'; closest: fc\d, fc\d, fc\d"):
        oodbench.evaluate(flat, id="fashionmnist", ood=["mnist"], layers=["fc9"])


def test_layers_lists_what_a_layer_wise_detector_may_read(brought, capsys):
    code = main(["layers", "--model", str(brought[2])])
    out, _ = capsys.readouterr()
    assert code == 0
    assert re.search(r"^conv1 +6 +6×12×12 +default layer", out, re.M)
    assert re.search(r"^fc3 +10 +10 +head", out, re.M)
    assert "1×28×28 inputs, 10 classes" in out  # the shape the program was exported for


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def bad_models(tmp_path: Path, brought) -> dict[str, tuple[list[str], str]]:
    """name → (the --model arguments, what the one line must say)."""
    seven = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 7))
    torch.export.save(torch.export.export(seven, (torch.rand(2, 1, 28, 28),)), tmp_path / "seven.pt2")
    fixed = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    torch.export.save(torch.export.export(fixed, (torch.rand(2, 3, 32, 32),)), tmp_path / "cifar.pt2")
    (tmp_path / "mybuilders.py").write_text("def broken():\n    raise RuntimeError('no weights here')\n")
    return {
        "not a model (.pt2)": ([str(_write(tmp_path / "junk.pt2", "junk"))], "is not a torch.export program"),
        "not a model (other)": ([str(_write(tmp_path / "junk.bin", "junk"))], "is not a model file"),
        "missing file": ([str(tmp_path / "absent.pt2")], "no such file"),
        "builder raises": (["mybuilders:broken"], "the builder raised RuntimeError: no weights here"),
        "builder missing": (["mybuilders:nothing"], "cannot import the builder"),
        "layer path": ([str(brought[2]), "--model-layer", "conv9"], "no module 'conv9'; closest: conv"),
        "head path": ([str(brought[2]), "--model-head", "fc"], "no module 'fc'"),
        "class count": ([str(tmp_path / "seven.pt2")], "outputs 7 logits but the ID set has 10 classes"),
        "input shape": ([str(tmp_path / "cifar.pt2")], "does not run on 1×28×28 inputs"),
        "with --epochs": ([str(brought[2]), "--epochs", "2"], "--epochs would build or train another"),
        "a training detector": ([str(brought[2]), "-d", "ae"], "ae train networks of their own"),
        "bad mean": ([str(brought[2]), "--input-mean", "0.5,x"], "--input-mean takes comma-separated numbers"),
    }


def test_bad_models_are_one_line_exit_2_and_write_nothing(brought, capsys, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    results = tmp_path / "results"
    for name, (args, says) in bad_models(tmp_path, brought).items():
        code = main(["run", "-d", "msp", *RUN, "--results", str(results), "--model", *args])
        _, err = capsys.readouterr()
        assert code == 2, (name, err)
        assert err.count("\n") == 1 and err.startswith("oodbench: error: ") and says in err, (name, err)
    assert not results.exists() or not record_files(results)


def test_training_over_an_hour_on_a_cpu_is_refused_without_consent(capsys, tmp_path, monkeypatch):
    from oodbench.models.estimate import TrainingTooLong, allow_long_training, check_training_time

    monkeypatch.delenv("OODBENCH_YES", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("OODBENCH_CACHE", str(cache))
    code = main(["run", "-d", "msp", *RUN, "--epochs", "1000000", "--results", str(tmp_path / "r")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(r"will take about [\d.]+ h .*--checkpoint FILE .*pass --yes \(or set OODBENCH_YES=1\)", err)
    assert not list(cache.rglob("*.pt")) and not (tmp_path / "r").exists()  # no checkpoint, no record
    with pytest.raises(TrainingTooLong):
        check_training_time(7200)
    with allow_long_training():
        check_training_time(7200)  # --yes
    monkeypatch.setenv("OODBENCH_YES", "1")
    check_training_time(7200)
    assert capsys.readouterr().err.count("will take about 2.0 h") == 2  # consented: the line, no refusal
    check_training_time(30)  # short: silent
    assert "will take" not in capsys.readouterr().err
    assert issubclass(TrainingTooLong, OodbenchError)


def openood_resnet18_32x32(num_classes: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the key names and shapes OpenOOD v1.5's ``ResNet18_32x32`` saves (its
    ``openood/networks/resnet18_32x32.py``: 3×3 stem ``conv1``/``bn1``, BasicBlocks whose projection is
    ``shortcut.0`` (1×1 conv) / ``shortcut.1`` (BN) in the first block of layers 2–4, head ``fc``), random values."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, c: int) -> None:
        state.update(
            {
                f"{prefix}.weight": 1 + 0.1 * torch.randn(c, generator=g),
                f"{prefix}.bias": 0.1 * torch.randn(c, generator=g),
            }
        )
        state.update(
            {
                f"{prefix}.running_mean": 0.1 * torch.randn(c, generator=g),
                f"{prefix}.running_var": 1 + torch.rand(c, generator=g),
            }
        )
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(100)

    def conv(key: str, cout: int, cin: int, k: int) -> None:
        state[key] = torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** 0.5

    conv("conv1.weight", 64, 3, 3)
    bn("bn1", 64)
    cin = 64
    for layer, cout in enumerate((64, 128, 256, 512), 1):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            conv(f"{p}.conv1.weight", cout, cin if block == 0 else cout, 3)
            bn(f"{p}.bn1", cout)
            conv(f"{p}.conv2.weight", cout, cout, 3)
            bn(f"{p}.bn2", cout)
            if block == 0 and cin != cout:
                conv(f"{p}.shortcut.0.weight", cout, cin, 1)
                bn(f"{p}.shortcut.1", cout)
        cin = cout
    state["fc.weight"] = 0.05 * torch.randn(num_classes, 512, generator=g)
    state["fc.bias"] = torch.zeros(num_classes)
    return state


def test_an_openood_checkpoint_loads_onto_resnet18_and_scores_as_the_same_weights_loaded_natively(capsys, tmp_path):
    from oodbench.models.checkpoints import load_file
    from oodbench.plugins.manager import registries

    theirs = openood_resnet18_32x32()
    assert len(theirs) == 122 and theirs["layer2.0.shortcut.0.weight"].shape == (128, 64, 1, 1)
    torch.save(theirs, tmp_path / "best.ckpt")  # OpenOOD's recorder saves the bare state dict
    factory = registries().backbones.get("resnet18")
    native = factory.build((3, 32, 32), 10)
    ours = {f"net.{k.replace('.shortcut.', '.downsample.')}": v for k, v in theirs.items()}
    native.load_state_dict({**ours, "mean": native.mean, "std": native.std})  # strict: every key, every shape
    torch.save(native.state_dict(), tmp_path / "native.pth")
    loaded, _ = load_file(factory.build((3, 32, 32), 10), tmp_path / "best.ckpt", "resnet18", torch.device("cpu"))
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), native.eval()(x))
    tree = tmp_path / "tree"  # ten classes of 32×32 colour images, as a folder dataset (no decoding of CIFAR)
    g = torch.Generator().manual_seed(2)
    for split, n in (("train", 3), ("test", 6)):
        for c in range(10):
            (tree / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                pixels = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(tree / split / f"c{c}" / f"{i}.png")
    args = ["run", "-d", "msp", "-d", "energy", "--in", f"folder:{tree}", "--out", "gaussian", "--backbone", "resnet18"]
    args += ["--n-tune", "10", "--test-limit", "60"]
    aurocs = {}
    for name in ("best.ckpt", "native.pth"):
        code = main([*args, "--checkpoint", str(tmp_path / name), "--results", str(tmp_path / name[:4])])
        _, err = capsys.readouterr()
        assert code == 0, err
        aurocs[name] = {r.detector: r.metrics["auroc"] for _, r in record_files(tmp_path / name[:4])}
    assert aurocs["best.ckpt"] == aurocs["native.pth"] and len(aurocs["best.ckpt"]) == 2
