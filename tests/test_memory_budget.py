"""Peak memory per stage in every record, and the memory budget (issue 31 item 3)."""

from __future__ import annotations

import pytest
import torch
from test_streaming import declared, imagenet_like  # noqa: F401 - fixtures: a streamed ImageNet-style ID

from oodbench.core import memory
from oodbench.core.errors import UsageError


def request(tmp_path, **kw):
    from oodbench.pipeline.runner import RunRequest
    from oodbench.plugins.manager import registries

    torch.manual_seed(0)
    net = registries().backbones.get("timm:test_resnet").build((3, 32, 32), 2)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    return RunRequest(
        detectors=["msp"],
        id="imnet",
        oods=["gaussian"],
        backbone="timm:test_resnet",
        checkpoint=tmp_path / "w.pth",
        results=str(tmp_path / "r"),
        batch_size=8,
        test_limit=20,
        feature_cache=False,
        **kw,
    )


def test_each_record_keeps_its_stages_peak_memory(declared, tmp_path):  # noqa: F811
    from oodbench.pipeline.runner import run

    (record,) = run(request(tmp_path, max_memory=1000.0))  # a budget far above: the run goes on
    peaks = record.memory
    assert {"plan", "backbone", "extract imnet", "extract gaussian", "fit", "score", "run"} <= set(peaks), peaks
    assert all(0 < v < 64 * 1024 for v in peaks.values())  # MB, in this process's range
    assert peaks["run"] == max(v for k, v in peaks.items() if k != "run")


def test_a_stage_over_the_budget_stops_the_run_in_one_line_naming_it(declared, tmp_path):  # noqa: F811
    from oodbench.pipeline.runner import run

    with pytest.raises(UsageError, match=r"memory budget exceeded in stage '[a-z ]+': .* GB resident > 0\.01 GB"):
        run(request(tmp_path, max_memory=0.01))  # 10 MB: any stage of a Python process with torch is over it
    assert memory._state["stage"] is None


def test_the_budget_comes_from_the_option_or_the_environment(monkeypatch):
    monkeypatch.setenv(memory.BUDGET_ENV, "2")
    assert memory.budget_from(None) == 2 << 30 and memory.budget_from(0.5) == 1 << 29
    monkeypatch.setenv(memory.BUDGET_ENV, "lots")
    with pytest.raises(UsageError, match="takes a number of GB"):
        memory.budget_from(None)
    with pytest.raises(UsageError, match="positive number of GB"):
        memory.budget_from(0)
