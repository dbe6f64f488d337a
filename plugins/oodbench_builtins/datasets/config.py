"""Image folders declared under a name in a YAML config file.

``$OODBENCH_CONFIG`` (or ``./oodbench.yaml`` when present)::

    datasets:
      my-xrays:
        folder: /data/xrays          # absolute, or relative to the data root
        description: chest X-rays, 2 classes
      imagenet-1k:                   # OpenOOD v1.5 image lists (``path label`` per line) over an image root
        lists: {train: benchmark_imglist/imagenet/train_imagenet.txt,
                test: benchmark_imglist/imagenet/test_imagenet.txt}
        root: images_largescale
        size: 224                    # streamed images are resized and centre-cropped to size×size
      big-folder: {folder: /data/big, stream: true}   # decode in batches, never whole (default: by size)

Lists (unless declared ``stream: false``) and large folders stream (``plugins/oodbench_builtins/datasets/streamed.py``).
"""

from __future__ import annotations

from pathlib import Path

from oodbench import Dataset
from oodbench.core.userconfig import config_path

from .folder import FolderDataset
from .streamed import ImageListDataset

KEYS = ("folder", "lists", "root", "description", "stream", "size")


def config_datasets() -> list[Dataset]:
    """The folders and image lists declared in the config file; a malformed file is one line ``FILE:LINE: …``
    (every command that looks names up refuses to run until it is fixed, as git does with a broken config)."""
    path = config_path()
    if path is None or not path.is_file():
        return []
    from oodbench.core.yamlfile import YamlFile

    cfg = YamlFile(path)
    top = cfg.expect(cfg.data if cfg.data is not None else {}, dict, (), "a mapping with a 'datasets:' key")
    declared = cfg.expect(top.get("datasets") or {}, dict, ["datasets"], "a mapping NAME: {folder: PATH}")
    return [_declared(cfg, str(name), spec, path) for name, spec in declared.items()]


def _declared(cfg, name: str, spec, path: Path) -> Dataset:
    where = ["datasets", name]
    spec = spec if isinstance(spec, dict) else {"folder": spec}
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise cfg.error(where, f"dataset {name!r}: unknown key {unknown[0]!r} (expected {', '.join(KEYS)})")
    if ("folder" in spec) == ("lists" in spec):
        raise cfg.error(where, f"dataset {name!r}: give either 'folder' or 'lists' (with 'root')")
    description = cfg.expect(spec.get("description", f"declared in {path}"), str, where, "text")
    size = spec.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise cfg.error([*where, "size"], f"dataset {name!r}: size must be a positive integer, got {size!r}")
    if "folder" in spec:
        cfg.expect(spec["folder"], str, [*where, "folder"], "a folder path")
        stream = cfg.expect(spec.get("stream"), (bool, type(None)), [*where, "stream"], "true or false")
        return FolderDataset(name, spec["folder"], description, stream=stream, size=size)
    lists = cfg.expect(spec["lists"], dict, [*where, "lists"], "a mapping {train: FILE, test: FILE}")
    if "test" not in lists or set(lists) - {"train", "test"}:
        raise cfg.error([*where, "lists"], f"dataset {name!r}: lists needs 'test' (and optionally 'train') only")
    for split, value in lists.items():
        cfg.expect(value, str, [*where, "lists", split], "an image-list file path")
    root = cfg.expect(spec.get("root", "."), str, [*where, "root"], "the folder the listed paths are relative to")
    stream = cfg.expect(spec.get("stream", True), bool, [*where, "stream"], "true or false")
    return ImageListDataset(name, lists, root, size, description, stream)
