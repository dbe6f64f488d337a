"""The user's config file: ``$OODBENCH_CONFIG``, else ``./oodbench.yaml`` when present.

Built-in datasets read its ``datasets:`` (folders, image lists); the core reads its ``backbones:``::

    backbones:
      "timm:resnet50": {pretrained_file: /weights/resnet50.safetensors}   # what --pretrained loads offline

A malformed file is one line ``FILE:LINE: …`` (:mod:`oodbench.yamlfile`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UsageError

BACKBONE_KEYS = ("pretrained_file",)


def config_path() -> Path | None:
    if os.environ.get("OODBENCH_CONFIG"):
        return Path(os.environ["OODBENCH_CONFIG"]).expanduser()
    local = Path("oodbench.yaml")
    return local if local.is_file() else None


def backbone_entry(name: str) -> dict[str, Any]:
    """The config file's ``backbones: {NAME: {...}}`` entry for ``name`` ({} when there is none)."""
    path = config_path()
    if path is None or not path.is_file():
        return {}
    from .yamlfile import YamlFile

    cfg = YamlFile(path)
    top = cfg.expect(cfg.data if cfg.data is not None else {}, dict, (), "a mapping")
    declared = cfg.expect(top.get("backbones") or {}, dict, ["backbones"], "a mapping NAME: {pretrained_file: PATH}")
    entry = cfg.expect(declared.get(name) or {}, dict, ["backbones", name], "a mapping {pretrained_file: PATH}")
    unknown = sorted(set(entry) - set(BACKBONE_KEYS))
    if unknown:
        raise cfg.error(["backbones", name, unknown[0]], f"unknown key {unknown[0]!r} (expected pretrained_file)")
    if "pretrained_file" in entry:
        cfg.expect(entry["pretrained_file"], str, ["backbones", name, "pretrained_file"], "a file path")
    return entry


def weights_file(backbone: str, pretrained: bool, pretrained_file: str | None) -> Path | None:
    """``--pretrained-file``, else the config file's ``pretrained_file`` for ``backbone`` when ``--pretrained``;
    a declared file that does not exist is one line."""
    declared = pretrained_file or (backbone_entry(backbone).get("pretrained_file") if pretrained else None)
    if declared is None:
        return None
    path = Path(declared).expanduser()
    if not path.is_file():
        raise UsageError(f"pretrained weights file {str(path)!r} does not exist")
    return path
