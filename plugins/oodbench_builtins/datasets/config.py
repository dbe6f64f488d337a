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
    """The folders declared in the config file; a malformed file is one line ``FILE:LINE: …`` (every command
    that looks names up refuses to run until it is fixed, as git does with a broken config)."""
    path = config_path()
    if path is None or not path.is_file():
        return []
    from oodbench.yamlfile import YamlFile

    cfg = YamlFile(path)
    top = cfg.expect(cfg.data if cfg.data is not None else {}, dict, (), "a mapping with a 'datasets:' key")
    declared = cfg.expect(top.get("datasets") or {}, dict, ["datasets"], "a mapping NAME: {folder: PATH}")
    out = []
    for name, spec in declared.items():
        where = ["datasets", name]
        spec = spec if isinstance(spec, dict) else {"folder": spec}
        unknown = sorted(set(spec) - {"folder", "description"})
        if unknown:
            raise cfg.error(where, f"dataset {name!r}: unknown key {unknown[0]!r} (expected folder, description)")
        cfg.expect(spec.get("folder"), str, [*where, "folder"], "a folder path")
        description = cfg.expect(spec.get("description", f"image folder from {path}"), str, where, "text")
        out.append(FolderDataset(str(name), spec["folder"], description))
    return out
