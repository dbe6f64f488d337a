"""Image folders declared under a name in a YAML config file.

``$OODBENCH_CONFIG`` (or ``./oodbench.yaml`` when present)::

    datasets:
      my-xrays:
        folder: /data/xrays          # absolute, or relative to the data root
        description: chest X-rays, 2 classes
"""

from __future__ import annotations

import os
from pathlib import Path

from .folder import FolderDataset


def config_path() -> Path | None:
    if os.environ.get("OODBENCH_CONFIG"):
        return Path(os.environ["OODBENCH_CONFIG"]).expanduser()
    local = Path("oodbench.yaml")
    return local if local.is_file() else None


def config_datasets() -> list[FolderDataset]:
    path = config_path()
    if path is None or not path.is_file():
        return []
    import yaml

    cfg = yaml.safe_load(path.read_text()) or {}
    out = []
    for name, spec in (cfg.get("datasets") or {}).items():
        spec = spec if isinstance(spec, dict) else {"folder": spec}
        out.append(FolderDataset(str(name), spec["folder"], spec.get("description", f"image folder from {path}")))
    return out
