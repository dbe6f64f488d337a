"""Declare the checkout's entry points in a folder on ``sys.path``, for running oodbench without installing it.

    python benchmarks/entry_points_stub.py DIR     # then: PYTHONPATH=DIR:.:plugins python -m oodbench …

``benchmarks/gpu_device.sh`` falls back to this where ``pip install -e .`` fails on the GPU machine (its image's
python may be read-only, or its setuptools too old to build oodbench). The built-in plugins register through
the ``oodbench`` entry-point group, and ``importlib.metadata`` finds entry points only in a distribution's
metadata: this writes ``DIR/oodbench-VERSION.dist-info`` with the name, version and entry points that
``pyproject.toml`` declares, and nothing else.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def entry_points_txt(project: dict) -> str:
    groups = dict(project.get("entry-points", {}))
    if project.get("scripts"):
        groups["console_scripts"] = project["scripts"]
    return "".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items()) + "\n"
        for group, points in groups.items()
    )


def write_stub(target: Path) -> Path:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    info = target / f"{project['name']}-{project['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (info / "entry_points.txt").write_text(entry_points_txt(project))
    return info


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[2].strip())
    print(f"wrote {write_stub(Path(sys.argv[1]))}")
