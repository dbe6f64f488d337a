"""The user's config file: ``$OODBENCH_CONFIG``, else ``./oodbench.yaml`` when present.

Built-in datasets read its ``datasets:`` (folders, image lists); the core reads its ``backbones:``::

    backbones:
      "timm:resnet50": {pretrained_file: /weights/resnet50.safetensors}   # what --pretrained loads offline

A malformed file is one line ``FILE:LINE: …`` (:mod:`oodbench.core.yamlfile`). A dataset that only a suite's
``config:`` template declares (the imagenet suite's) is explained by :func:`explain_unknown_dataset`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from oodbench.core.errors import UnknownNameError, UsageError

BACKBONE_KEYS = ("pretrained_file",)


def config_path() -> Path | None:
    """``$OODBENCH_CONFIG`` (``none``: no config file at all, whatever the working directory holds), else
    ``./oodbench.yaml`` when present."""
    if os.environ.get("OODBENCH_CONFIG", "").lower() == "none":
        return None
    if os.environ.get("OODBENCH_CONFIG"):
        return Path(os.environ["OODBENCH_CONFIG"]).expanduser()
    local = Path("oodbench.yaml")
    return local if local.is_file() else None


def backbone_entry(name: str) -> dict[str, Any]:
    """The config file's ``backbones: {NAME: {...}}`` entry for ``name`` ({} when there is none)."""
    path = config_path()
    if path is None or not path.is_file():
        return {}
    from oodbench.core.yamlfile import YamlFile

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


#: how a user declares the datasets a suite's ``config:`` template names
DECLARE = "to ./oodbench.yaml (or point $OODBENCH_CONFIG at it) and set OODBENCH_DATA to the data it names"


def _declared_by_templates(path: Path) -> dict[str, tuple[str, str]]:
    """{dataset: (suite, template)} for every dataset a suite's ``config:`` template in ``path`` declares
    (nothing when the files are absent or unreadable: this only adds a hint to an error)."""
    import yaml

    try:
        suites = (yaml.safe_load(path.read_text()) or {}).get("suites") or {}
        found: dict[str, tuple[str, str]] = {}
        for suite, body in suites.items():
            template = (body or {}).get("config")
            if template and (path.parent / template).is_file():
                declared = (yaml.safe_load((path.parent / template).read_text()) or {}).get("datasets") or {}
                found |= {name: (suite, template) for name in declared if name not in found}
        return found
    except (OSError, yaml.YAMLError, AttributeError):
        return {}


def explain_unknown_dataset(exc: UnknownNameError, path: Path = Path("benchmarks.yaml")) -> UsageError:
    """``exc`` with a way out when a suite's template declares the name (or one close to it): the datasets of
    the imagenet suite exist only once the user declares them in ``oodbench.yaml``."""
    templates = _declared_by_templates(path)
    how = f"copy it {DECLARE}"
    if exc.name in templates:
        suite, template = templates[exc.name]
        return UsageError(f"unknown dataset {exc.name!r}: the {suite!r} suite's template {template} declares it; {how}")
    close = difflib.get_close_matches(exc.name, list(templates), n=1, cutoff=0.6)
    if close:
        suite, template = templates[close[0]]
        return UsageError(f"{exc} — or {close[0]!r}, which the {suite!r} suite's template {template} declares: {how}")
    return exc
