"""The plugin path: entry points, duplicates, broken plugins, and a real installed third-party package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest
from conftest import pip_install_target, site_env

from oodbench import Detector, hookimpl
from oodbench.core.errors import PluginFault, UnknownNameError, UsageError
from oodbench.plugins.manager import PluginLoadWarning, Registry, collect, make_plugin_manager, plugin_code, registries

REPO = Path(__file__).resolve().parents[1]


def test_builtins_arrive_through_entry_points():
    regs = registries()
    assert {"msp", "fssd"} <= set(regs.detectors.names())
    assert {"mnist", "fashionmnist", "svhn", "cifar10-jpeg", "folder:", "gaussian"} <= set(regs.datasets.names())
    assert {"lenet", "resnet18", "resnet34", "timm:", "torchvision:"} <= set(regs.backbones.names())
    assert regs.detectors.entry("fssd").plugin == "oodbench:builtin-detectors"
    plugin_names = [name for name, _, _ in regs.plugins]
    assert "oodbench:builtin-detectors" in plugin_names


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError, match="did you mean: fashionmnist"):
        registries().datasets.get("fashion-mnist")


def _module_plugin(name: str, detector_name: str) -> types.ModuleType:
    mod = types.ModuleType(name)

    class Dup(Detector):
        description = "duplicate"

        def score_samples(self, data):
            return data.logits().max(1).values.numpy()

    Dup.name = detector_name

    @hookimpl
    def oodbench_register_detectors():
        return [Dup]

    mod.oodbench_register_detectors = oodbench_register_detectors
    return mod


def test_duplicate_names_are_one_error_naming_both_plugins():
    pm = make_plugin_manager(autoload=False)
    pm.register(_module_plugin("thirdparty", "msp"), name="thirdparty")
    regs = collect(pm)  # the conflict does not break the registry ...
    assert regs.detectors.conflicts == {"msp": ["oodbench:builtin-detectors", "thirdparty"]}
    message = r"detector 'msp' is registered by two plugins: 'oodbench:builtin-detectors' and 'thirdparty'; disable one"
    with pytest.raises(UsageError, match=message):  # ... only using the name is an error
        regs.detectors.get("msp")
    with pytest.raises(UsageError, match=message):
        regs.detectors.owner("msp")
    assert "msp" in regs.detectors and regs.detectors.get("fssd").name == "fssd"
    status = {name: st for name, _, st, _ in regs.status()}
    assert status["thirdparty"] == "conflict: detector 'msp' (also in oodbench:builtin-detectors)"


def test_plugin_code_turns_exceptions_into_one_line_faults():
    fault = r"^dataset 'x' \(plugin p:q\) failed: KeyError: 'boom'$"
    with pytest.raises(PluginFault, match=fault) as info, plugin_code("dataset", "x", "p:q"):
        raise KeyError("boom")
    assert isinstance(info.value.__cause__, KeyError) and info.value.exit_code == 1
    with pytest.raises(UnknownNameError), plugin_code("dataset", "x", "p:q"):  # oodbench's own errors pass through
        registries().datasets.get("nope")
    reg = Registry("backbone")  # Registry.get runs a prefix's resolve() as plugin code
    reg.add(types.SimpleNamespace(name="toy:", resolve=int), "toy-plugin:toy")
    assert reg.get("toy:3") == 3 and reg.owner("toy:3") == "toy-plugin:toy"
    with pytest.raises(PluginFault, match=r"^backbone 'toy:x' \(plugin toy-plugin:toy\) failed: ValueError: invalid"):
        reg.get("toy:x")
    assert registries().backbones.owner("timm:resnet18") == "oodbench:builtin-backbones"


def _fake_distribution(tmp_path: Path, dist: str, module: str, source: str) -> None:
    """An installed-looking distribution: a dist-info with one `oodbench` entry point."""
    info = tmp_path / f"{dist}-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(f"[oodbench]\n{dist} = {module}\n")
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))


def test_broken_plugin_warns_and_the_rest_works(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "broken-plugin", "broken_mod", "raise RuntimeError('boom at import')\n")
    _fake_distribution(
        tmp_path,
        "good-plugin",
        "good_mod",
        """
        from oodbench import Detector, hookimpl

        class Neg(Detector):
            name = "negmax"
            description = "negative max logit (test plugin)"
            def score_samples(self, data):
                return -data.logits().max(1).values.numpy()

        @hookimpl
        def oodbench_register_detectors():
            return [Neg]
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginLoadWarning, match="broken-plugin.*boom at import"):
        regs = collect(make_plugin_manager(autoload=True))
    assert "negmax" in regs.detectors.names()
    assert regs.detectors.entry("negmax").plugin == "good-plugin:good-plugin"
    assert "msp" in regs.detectors.names()
    # the off-switch keeps only oodbench's own entry points
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        regs_off = collect(make_plugin_manager(autoload=False))
    assert "negmax" not in regs_off.detectors.names()


def test_hookimpl_without_spec_fails_that_plugin_alone(tmp_path, monkeypatch):
    _fake_distribution(
        tmp_path,
        "typo-plugin",
        "typo_mod",
        """
        from oodbench import hookimpl

        @hookimpl
        def oodbench_register_detector():  # typo: no such hook
            return []
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginLoadWarning, match="typo-plugin.*unknown hook 'oodbench_register_detector'"):
        regs = collect(make_plugin_manager(autoload=True))
    status = {name: st for name, _, st, _ in regs.status()}
    assert status["typo-plugin:typo-plugin"].startswith("failed: PluginValidationError")
    assert "msp" in regs.detectors.names()


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """pip-install plugins/oodbench-example into a target folder: the real entry-point machinery."""
    return pip_install_target(tmp_path_factory.mktemp("site"), REPO / "plugins" / "oodbench-example")


def _oodbench(args: list[str], site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oodbench.cli", *args], env=site_env(site), capture_output=True, text=True, timeout=600
    )


def test_installed_example_plugin_is_listed_and_runs(installed_example, tmp_path):
    listed = _oodbench(["list", "detectors"], installed_example)
    assert listed.returncode == 0, listed.stderr
    line = next(l for l in listed.stdout.splitlines() if l.startswith("example-margin"))
    assert "oodbench-example:example" in line
    plugins = _oodbench(["plugins"], installed_example)
    assert "oodbench-example:example" in plugins.stdout
    ran = _oodbench(
        [
            "run",
            "--detector",
            "example-margin",
            "--detector",
            "msp",
            "--in",
            "fashionmnist",
            "--out",
            "mnist",
            "--epochs",
            "1",
            "--train-limit",
            "3000",
            "--test-limit",
            "600",
            "--n-tune",
            "100",
            "--results",
            str(tmp_path),
            "--format",
            "json",
        ],
        installed_example,
    )
    assert ran.returncode == 0, ran.stderr
    import json

    records = json.loads(ran.stdout)
    assert [r["detector"] for r in records] == ["example-margin", "msp"]
    assert all(0 <= r["metrics"]["auroc"] <= 100 for r in records)


def test_disable_plugin_option_in_process_is_undone(capsys, monkeypatch):
    from oodbench.cli.main import main

    monkeypatch.delenv("OODBENCH_DISABLE_PLUGINS", raising=False)
    assert main(["--disable-plugin", "oodbench:builtin-detectors", "plugins"]) == 0
    out = capsys.readouterr().out
    assert "oodbench:builtin-detectors" in out and "disabled" in out
    assert main(["--disable-plugin", "oodbench:builtin-detectors", "run", "-d", "msp", "--in", "mnist"]) == 2
    assert "unknown detector 'msp'" in capsys.readouterr().err
    assert "OODBENCH_DISABLE_PLUGINS" not in os.environ and "msp" in registries().detectors.names()


def test_an_installed_backbone_never_changes_the_default_of_a_covered_shape(monkeypatch, capsys):
    """Issue 28: the default backbone is oodbench's own where it has one for the shape (a plugin's ``aaa-net``,
    first by name, suits 1×28×28 too), a plugin's only for shapes oodbench does not cover; the run says which."""
    import oodbench.pipeline.supply as supply
    from oodbench.models.backbones import BackboneFactory

    class Early(BackboneFactory):
        name, description = "aaa-net", "a plugin's backbone that suits MNIST-shaped and 5×9×9 inputs"

        def build(self, input_shape, num_classes, pretrained=False, **options):
            raise NotImplementedError

        def suits(self, input_shape):
            return tuple(input_shape) in {(1, 28, 28), (5, 9, 9)}

    mod = types.ModuleType("early-plugin")
    mod.oodbench_register_backbones = hookimpl(lambda: [Early()])
    pm = make_plugin_manager()
    pm.register(mod, name="early-plugin")
    monkeypatch.setattr(supply, "registries", lambda: collect(pm))
    monkeypatch.delenv("OODBENCH_QUIET")
    assert supply.default_backbone((1, 28, 28)) == "lenet"
    assert supply.default_backbone((3, 32, 32)) == "resnet18"
    assert supply.default_backbone((5, 9, 9)) == "aaa-net"
    assert "backbone: lenet (the default for 1×28×28 inputs; --backbone NAME to choose)" in capsys.readouterr().err
