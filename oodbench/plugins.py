"""The plugin manager and the three registries (detectors, datasets, backbones).

Every plugin, built-in or third party, arrives through the ``oodbench`` entry-point group
and is registered by :func:`make_plugin_manager`. A plugin that fails to import is skipped
with a warning naming it; two plugins registering one name is a :class:`PluginError`.
Set ``OODBENCH_DISABLE_PLUGIN_AUTOLOAD=1`` to load only oodbench's own entry points.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy

from . import hookspecs
from .errors import PluginError, UnknownNameError

ENTRY_POINT_GROUP = "oodbench"
T = TypeVar("T")


class PluginLoadWarning(UserWarning):
    """A plugin raised while being imported; it was skipped."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object and the plugin (distribution name) it came from."""

    name: str
    obj: T
    plugin: str

    @property
    def description(self) -> str:
        return getattr(self.obj, "description", "") or ""


@dataclass
class Registry(Generic[T]):
    """Name → object for one kind; names ending in ``:`` are prefixes (``timm:NAME``)."""

    kind: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)

    def add(self, obj: T, plugin: str) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} without a name: {obj!r}")
        if name in self.entries:
            other = self.entries[name].plugin
            raise PluginError(
                f"{self.kind} {name!r} is registered by two plugins: {other!r} and {plugin!r}"
            )
        self.entries[name] = Entry(name, obj, plugin)

    def entry(self, name: str) -> Entry[T]:
        if name in self.entries:
            return self.entries[name]
        prefix, sep, _ = name.partition(":")
        if sep and prefix + ":" in self.entries:
            return self.entries[prefix + ":"]
        raise UnknownNameError(self.kind, name, self.entries)

    def get(self, name: str) -> T:
        """The object for ``name``; a prefix entry resolves ``prefix:ARG`` via ``obj.resolve(ARG)``."""
        entry = self.entry(name)
        if entry.name.endswith(":") and name != entry.name:
            return entry.obj.resolve(name[len(entry.name):])  # type: ignore[attr-defined]
        return entry.obj

    def __contains__(self, name: str) -> bool:
        try:
            self.entry(name)
        except UnknownNameError:
            return False
        return True

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self.entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self.entries)


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else ep.value.split(".")[0]


def make_plugin_manager(autoload: bool | None = None) -> pluggy.PluginManager:
    """Build a plugin manager with every ``oodbench`` entry point registered.

    ``autoload=False`` (or ``OODBENCH_DISABLE_PLUGIN_AUTOLOAD=1``) keeps only the entry points
    of the ``oodbench`` distribution itself (the built-ins).
    """
    if autoload is None:
        autoload = not os.environ.get("OODBENCH_DISABLE_PLUGIN_AUTOLOAD")
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = _dist_name(ep)
        if not autoload and dist != "oodbench":
            continue
        plugin_name = f"{dist}:{ep.name}"
        if plugin_name in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(plugin_name)
        try:
            module = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the harness
            warnings.warn(
                f"oodbench plugin {plugin_name!r} ({ep.value}) failed to load and was skipped: "
                f"{type(exc).__name__}: {exc}",
                PluginLoadWarning,
                stacklevel=2,
            )
            continue
        pm.register(module, name=plugin_name)
    pm.check_pending()
    return pm


@dataclass
class Registries:
    detectors: Registry[Any]
    datasets: Registry[Any]
    backbones: Registry[Any]
    plugins: list[tuple[str, str, list[str]]]  # (plugin name, version, hooks implemented)

    def by_kind(self, kind: str) -> Registry[Any]:
        return {"detector": self.detectors, "dataset": self.datasets, "backbone": self.backbones}[kind]


def collect(pm: pluggy.PluginManager) -> Registries:
    """Call every registration hook and file the results by plugin, refusing duplicates."""
    regs = Registries(Registry("detector"), Registry("dataset"), Registry("backbone"), [])
    hooks = {
        "oodbench_register_detectors": regs.detectors,
        "oodbench_register_datasets": regs.datasets,
        "oodbench_register_backbones": regs.backbones,
    }
    for hook_name, registry in hooks.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order
            for obj in impl.function() or []:
                registry.add(obj, impl.plugin_name)
    for name, plugin in pm.list_name_plugin():
        dist = name.split(":")[0]
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        impls = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        regs.plugins.append((name, version, impls))
    return regs


@functools.lru_cache(maxsize=1)
def registries() -> Registries:
    """The process-wide registries (built on first use, not at import)."""
    return collect(make_plugin_manager())


def reset() -> None:
    """Forget the cached registries (tests that install plugins call this)."""
    registries.cache_clear()
