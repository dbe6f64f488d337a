"""The command line: help, listing, one-line errors with exit 2, and a real end-to-end run."""

from __future__ import annotations

import json
import re

import pytest

from oodbench.cli.main import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_help(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("oodbench ")
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "run" in out and "list" in out


def test_list_detectors_shows_builtins_with_plugin(capsys):
    code, out, _ = run_cli(capsys, "list", "detectors")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "oodbench:builtin-detectors" in rows["fssd"] and "paper 003" in rows["fssd"]
    assert "msp" in rows


def test_list_detectors_says_what_each_needs_at_a_glance(capsys):
    """Issue 26 item 4: post-hoc or trains, and what it reads from a model (from its declared Needs and layers)."""
    code, out, _ = run_cli(capsys, "list", "detectors")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["name", "kind", "needs"]
    cells = {line.split()[0]: [c.strip() for c in re.split(r"\s{2,}", line)] for line in out.splitlines()[2:]}
    assert cells["msp"][1:3] == ["post-hoc", "logits"]
    assert cells["odin"][1:3] == ["post-hoc", "logits, input gradients"]
    assert cells["knn"][1:3] == ["post-hoc", "features"]
    assert cells["gram"][2] == "logits, feature maps" and cells["gradnorm"][2].endswith(", gradients")
    assert cells["klm"][1] == "post-hoc (fits on ID val)"
    assert cells["outlier-exposure"][1:3] == ["trains", "logits, own networks, outliers (required)"]
    assert all(row[1].startswith(("post-hoc", "trains")) for row in cells.values())


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--detector", "nope", "--in", "fashionmnist", "--out", "mnist"], "unknown detector 'nope'"),
        (["run", "--detector", "msp", "--in", "nosuchset", "--out", "mnist"], "unknown dataset 'nosuchset'"),
        (
            ["run", "--detector", "msp", "--in", "fashionmnist", "--out", "mnist", "--backbone", "lenett"],
            "did you mean: lenet",
        ),
        (
            ["run", "--detector", "msp", "--in", "fashionmnist", "--out", "mnist", "--data-root", "/no/such/dir"],
            "is not a directory",
        ),
        (
            [
                "run",
                "--detector",
                "msp",
                "--in",
                "fashionmnist",
                "--out",
                "mnist",
                "--tune",
                "heldout",
                "--tune-out",
                "mnist",
            ],
            "must not tune on a test OOD set",
        ),
        (["run", "--detector", "msp", "--in", "notmnist", "--out", "mnist"], "has no 'train' split"),
        (
            ["run", "--detector", "msp", "--in", "fashionmnist", "--out", "mnist", "--param", "msp.nothing=1"],
            "has no parameter",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_missing_dataset_files_name_where_they_were_looked_for(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "-d", "msp", "--in", "kmnist", "--out", "mnist", "--data-root", str(tmp_path))
    assert code == 2
    assert "dataset 'kmnist' not found under" in err and str(tmp_path) in err and len(err.strip().splitlines()) == 1


def test_unknown_option_is_usage_error(capsys):
    code, _, err = run_cli(capsys, "run", "--detector", "msp", "--bogus")
    assert code == 2 and "No such option" in err


def test_run_end_to_end_then_reuse_checkpoint(capsys, monkeypatch, tmp_path, tmp_path_factory):
    """FSSD (oracle tuning) and MSP on real FashionMNIST vs MNIST subsets; the second run reuses the checkpoint.
    Its own cache: that the first run trains must not depend on which test ran before (issue 29, item 5)."""
    monkeypatch.delenv("OODBENCH_QUIET")
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path_factory.mktemp("own-cache")))
    args = [
        "run",
        "-d",
        "fssd",
        "-d",
        "msp",
        "--in",
        "fashionmnist",
        "--out",
        "mnist",
        "--out",
        "gaussian",
        "--epochs",
        "2",
        "--train-limit",
        "6000",
        "--test-limit",
        "700",
        "--n-tune",
        "100",
        "--tune",
        "oracle",
        "--results",
        str(tmp_path),
        "--format",
        "json",
    ]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "training lenet on fashionmnist" in err
    records = json.loads(out)
    assert {(r["detector"], r["ood"]) for r in records} == {
        (d, o) for d in ("fssd", "msp") for o in ("mnist", "gaussian")
    }
    fssd = next(r for r in records if r["detector"] == "fssd" and r["ood"] == "mnist")
    assert fssd["metrics"]["auroc"] > 90.0  # a weak 2-epoch LeNet on a subset still separates FMNIST from MNIST
    assert fssd["n_eval"] == {"id": 600, "ood": 600}  # 100 + 100 tuning samples removed
    assert fssd["tuning"]["criterion"] == "tnr95" and fssd["tuning"]["grid_size"] == 21
    assert set(fssd["fit"]["ensemble"]["weights"]) == {"conv1", "conv2", "fc1", "penultimate", "logits"}
    gauss = next(r for r in records if r["ood"] == "gaussian")
    assert any("gaussian: 700 samples" in n for n in gauss["data"]["ood"])
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 4
    code, out2, err2 = run_cli(capsys, *args[:-2], "--format", "github")
    assert code == 0
    assert "reusing cached checkpoint" in err2 and "training lenet" not in err2
    assert "| fssd " in out2 and "AUROC" in out2
    assert len(list(tmp_path.rglob("*.json"))) == 4  # same identities: records replaced, not duplicated


def test_folder_dataset_rgb_id_converts_grey_ood(capsys, tmp_path):
    """--in folder:PATH with train/test folders; MNIST is converted to 3×32×32 and the conversion recorded."""
    import torch
    from torchvision.io import write_png

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 40), ("test", 30)):
        for cls, color in (("red", 0), ("blue", 2)):
            d = tmp_path / "imgs" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                img = torch.randint(0, 60, (3, 32, 32), generator=g, dtype=torch.uint8)
                img[color] += 150
                write_png(img, str(d / f"{i}.png"))
    code, out, err = run_cli(
        capsys,
        "run",
        "-d",
        "msp",
        "--in",
        f"folder:{tmp_path / 'imgs'}",
        "--out",
        "mnist",
        "--backbone",
        "resnet18",
        "--epochs",
        "1",
        "--test-limit",
        "60",
        "--n-tune",
        "10",
        "--results",
        str(tmp_path / "res"),
        "--format",
        "json",
    )
    assert code == 0, err
    (record,) = json.loads(out)
    assert any("converted 1×28×28→3×32×32" in n for n in record["data"]["ood"])
    assert record["n_eval"] == {"id": 50, "ood": 50}


def test_plots_from_saved_scores(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    args = [
        "run",
        "-d",
        "msp",
        "-d",
        "fssd",
        "--in",
        "fashionmnist",
        "--protocol",
        "corruption",
        "--corruption",
        "contrast",
        "--severity",
        "1",
        "--severity",
        "5",
        "--epochs",
        "2",
        "--train-limit",
        "10000",
        "--test-limit",
        "1200",
        "--n-tune",
        "200",
        "--results",
        str(tmp_path / "res"),
    ]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert len(list((tmp_path / "res").rglob("*.npz"))) == 4  # per-sample scores beside every record
    code, out, err = run_cli(
        capsys, "plot", "scores", "--results", str(tmp_path / "res"), "-d", "fssd", "-o", str(tmp_path / "h.png")
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "plot", "corruption", "--results", str(tmp_path / "res"), "-o", str(tmp_path / "c.png")
    )
    assert code == 0, err
    for name in ("h.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_cli(
        capsys, "plot", "scores", "--results", str(tmp_path / "res"), "-d", "nope", "-o", str(tmp_path / "x.png")
    )
    assert code == 2 and "no records match" in err


def test_train_prints_training_window_beside_wall_time(capsys):
    """`oodbench train` reports the training window and throughput from the trainer's log beside the command's
    wall time; a second call reuses the checkpoint and says its window was from the earlier training."""
    args = ("train", "--dataset", "fashionmnist", "--train-limit", "600", "--epochs", "1", "--seed", "7")
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    line = out.strip().splitlines()[-1]
    window, wall = (float(x) for x in re.findall(r"(?:window|wall time) ([\d.]+) s", line))
    assert line.startswith("training window ") and "test accuracy" in line and "img/s" in line
    assert 0 < window <= wall
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "(cache)" in out and out.strip().splitlines()[-1].startswith("cached; its training window")
