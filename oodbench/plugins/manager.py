"""The plugin manager and the three registries (detectors, datasets, backbones).

Every plugin, built-in or third party, arrives through the ``oodbench`` entry-point group (:func:`make_plugin_manager`).
A plugin fails alone: one that raises at import or in a registration hook, or registers a detector instance or a
dataset/backbone class, is skipped with a one-line :class:`PluginLoadWarning` and listed as failed by
``oodbench plugins``; a name two plugins register is an error only when used. ``OODBENCH_DISABLE_PLUGINS=DIST,DIST:EP``
(or ``--disable-plugin``) skips plugins; ``OODBENCH_DISABLE_PLUGIN_AUTOLOAD=1`` loads only oodbench's own entry points.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy

from oodbench.core.errors import ConfigError, NameConflictError, PluginError, UnknownNameError, describe, plugin_code
from oodbench.plugins import hookspecs

ENTRY_POINT_GROUP = "oodbench"
DISABLE_ENV = "OODBENCH_DISABLE_PLUGINS"
T = TypeVar("T")


class PluginLoadWarning(UserWarning):
    """A plugin raised while being imported or registering; it was skipped."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object and the plugin (distribution name) it came from."""

    name: str
    obj: T
    plugin: str

    @property
    def description(self) -> str:
        return getattr(self.obj, "description", "") or ""


def _name_of(obj: Any, kind: str, plugin: str) -> str:
    if isinstance(obj, type) != (kind == "detector"):  # detectors are registered as classes, the rest as instances
        raise PluginError(
            f"plugin {plugin!r} registered {obj!r} as a {kind}: {kind}s are registered as "
            + ("classes" if kind == "detector" else f"instances, e.g. {obj.__name__}()")
        )
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin {plugin!r} registered a {kind} without a name: {obj!r}")
    return name


@dataclass
class Registry(Generic[T]):
    """Name → object for one kind; names ending in ``:`` are prefixes (``timm:NAME``).

    A name registered by several plugins is kept in ``conflicts`` (name → every owner) and
    raises :class:`NameConflictError` when looked up.
    """

    kind: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)
    conflicts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, obj: T, plugin: str) -> None:
        name = _name_of(obj, self.kind, plugin)
        if name in self.entries:
            self.conflicts.setdefault(name, [self.entries[name].plugin]).append(plugin)
        else:
            self.entries[name] = Entry(name, obj, plugin)

    def _key(self, name: str) -> str:
        """The registered name that serves ``name``: itself or its ``prefix:``."""
        if name in self.entries:
            return name
        prefix, sep, _ = name.partition(":")
        if sep and prefix + ":" in self.entries:
            return prefix + ":"
        raise UnknownNameError(self.kind, name, self.entries)

    def entry(self, name: str) -> Entry[T]:
        key = self._key(name)
        if key in self.conflicts:
            raise NameConflictError(self.kind, key, self.conflicts[key])
        return self.entries[key]

    def owner(self, name: str) -> str:
        """The plugin that provides ``name`` (a prefix name: the plugin of its prefix)."""
        return self.entry(name).plugin

    def call(self, obj: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """``obj.method(*args, **kwargs)`` for a registered object, as plugin code (:func:`plugin_code`)."""
        name = getattr(obj, "name", "?")
        try:
            owner = self.entries[self._key(name)].plugin
        except UnknownNameError:  # derived objects (e.g. a converted set) need not carry a registered name
            owner = "?"
        with plugin_code(self.kind, name, owner):
            return getattr(obj, method)(*args, **kwargs)

    def get(self, name: str) -> T:
        """The object for ``name``; a prefix entry resolves ``prefix:ARG`` via ``obj.resolve(ARG)``."""
        entry = self.entry(name)
        if entry.name.endswith(":") and name != entry.name:
            with plugin_code(self.kind, name, entry.plugin):
                return entry.obj.resolve(name[len(entry.name) :])  # type: ignore[attr-defined]
        return entry.obj

    def __contains__(self, name: str) -> bool:
        try:
            self._key(name)
        except UnknownNameError:
            return False
        return True

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self.entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self.entries)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager that also remembers versions and the plugins it skipped at load (failed or disabled)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.versions: dict[str, str] = {}
        self.skipped: dict[str, str] = {}  # plugin name → "failed: ExcType: msg" | "disabled"


def _skip(pm: pluggy.PluginManager, name: str, what: str, exc: BaseException) -> str:
    """Unregister a failed plugin, warn in one line naming it; returns its status."""
    if pm.get_plugin(name) is not None:
        pm.unregister(name=name)
    warnings.warn(f"plugin {name!r} {what} and was skipped: {describe(exc)}", PluginLoadWarning, stacklevel=3)
    return f"failed: {describe(exc)}"


def _canonical(name: str) -> str:
    dist, sep, ep = name.strip().partition(":")
    return re.sub(r"[-_.]+", "-", dist).lower() + sep + ep


def disabled_plugins(names: Iterable[str] | None = None) -> set[str]:
    """Canonical ``DIST`` / ``DIST:ENTRYPOINT`` names to skip (default: ``$OODBENCH_DISABLE_PLUGINS``)."""
    raw = os.environ.get(DISABLE_ENV, "").split(",") if names is None else names
    return {_canonical(n) for n in raw if n.strip()}


def _dist(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    """(distribution name, version) of an entry point."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ep.value.split(".")[0], "?"
    return dist.name, dist.version or "?"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _check_hooks(pm: pluggy.PluginManager, name: str) -> None:
    """Refuse a plugin implementing a hook oodbench does not define (a typo, usually)."""
    for caller in pm.get_hookcallers(pm.get_plugin(name)) or []:
        if not caller.has_spec() and any(not i.optionalhook for i in caller.get_hookimpls() if i.plugin_name == name):
            raise pluggy.PluginValidationError(pm.get_plugin(name), f"unknown hook {caller.name!r}")


def make_plugin_manager(autoload: bool | None = None, disable: Iterable[str] | None = None) -> PluginManager:
    """Build a plugin manager with every ``oodbench`` entry point registered (oodbench's own first).

    ``autoload=False`` (or ``OODBENCH_DISABLE_PLUGIN_AUTOLOAD=1``) keeps only the entry points of the
    ``oodbench`` distribution itself; ``disable`` (default: ``$OODBENCH_DISABLE_PLUGINS``) skips plugins.
    """
    if autoload is None:
        autoload = not os.environ.get("OODBENCH_DISABLE_PLUGIN_AUTOLOAD")
    off = disabled_plugins(disable)
    pm = PluginManager()
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: _dist(ep)[0] != "oodbench")
    for ep in eps:
        dist, version = _dist(ep)
        plugin_name = f"{dist}:{ep.name}"
        if (not autoload and dist != "oodbench") or plugin_name in pm.versions:
            continue  # not autoloaded, or the same distribution found twice on sys.path
        pm.versions[plugin_name] = version
        if _canonical(dist) in off or _canonical(plugin_name) in off:
            pm.skipped[plugin_name] = "disabled"
            continue
        try:
            pm.register(ep.load(), name=plugin_name)
            _check_hooks(pm, plugin_name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the harness
            pm.skipped[plugin_name] = _skip(pm, plugin_name, f"({ep.value}) failed to load", exc)
    pm.check_pending()
    return pm


@dataclass
class Registries:
    detectors: Registry[Any]
    datasets: Registry[Any]
    backbones: Registry[Any]
    plugins: list[tuple[str, str, list[str]]]  # loaded plugins: (plugin name, version, hooks implemented)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (plugin name, version, failed/disabled)

    def by_kind(self, kind: str) -> Registry[Any]:
        return {"detector": self.detectors, "dataset": self.datasets, "backbone": self.backbones}[kind]

    def conflicts(self) -> list[tuple[str, str, list[str]]]:
        """(kind, name, owners) for every name that several plugins register."""
        regs = (self.detectors, self.datasets, self.backbones)
        return [(r.kind, name, owners) for r in regs for name, owners in sorted(r.conflicts.items())]

    def status(self) -> list[tuple[str, str, str, list[str]]]:
        """(plugin, version, status, hooks) for every plugin: ok / conflict: … / failed: … / disabled."""
        rows = []
        for name, version, hooks in self.plugins:
            clashes = [
                f"{kind} {n!r} (also in {', '.join(o for o in owners if o != name)})"
                for kind, n, owners in self.conflicts()
                if name in owners
            ]
            rows.append((name, version, "conflict: " + "; ".join(clashes) if clashes else "ok", hooks))
        return rows + [(name, version, status, []) for name, version, status in self.skipped]


HOOKS = {
    "oodbench_register_detectors": "detectors",
    "oodbench_register_datasets": "datasets",
    "oodbench_register_backbones": "backbones",
}
Staged = dict[str, list[tuple[Registry[Any], Any]]]  # plugin name → (registry, object) it registers


def _stage(pm: pluggy.PluginManager, regs: Registries) -> tuple[Staged, dict[str, str]]:
    """Call every registration hook: (plugin → what it registers, plugin → status of those that raised).

    A plugin whose hook raises (or registers a nameless object) is unregistered and loses all its registrations.
    """
    staged: Staged = {}
    failed: dict[str, str] = {}
    for hook_name, kind in HOOKS.items():
        registry = getattr(regs, kind)
        for impl in getattr(pm.hook, hook_name).get_hookimpls():  # registration order
            plugin = impl.plugin_name
            if plugin in failed:
                continue
            try:
                objs = list(impl.function() or [])
                for obj in objs:
                    _name_of(obj, registry.kind, plugin)
            except ConfigError:  # the user's file is malformed (oodbench.yaml): one line, fix it
                raise
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the harness
                failed[plugin] = _skip(pm, plugin, f"failed in {hook_name}", exc)
                staged.pop(plugin, None)
                continue
            staged.setdefault(plugin, []).extend((registry, obj) for obj in objs)
    return staged, failed


def collect(pm: pluggy.PluginManager) -> Registries:
    """Call every registration hook and file the results by plugin; clashing names are kept as conflicts."""
    regs = Registries(Registry("detector"), Registry("dataset"), Registry("backbone"), [])
    staged, failed = _stage(pm, regs)
    versions = getattr(pm, "versions", {})
    for name, plugin in pm.list_name_plugin():  # registration order: oodbench's own first
        for registry, obj in staged.get(name, []):
            registry.add(obj, name)
        impls = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        regs.plugins.append((name, versions.get(name) or _version(name.split(":")[0]), impls))
    skipped = {**getattr(pm, "skipped", {}), **failed}
    regs.skipped = [(name, versions.get(name, "?"), status) for name, status in skipped.items()]
    return regs


@functools.lru_cache(maxsize=1)
def registries() -> Registries:
    """The process-wide registries, built on first use (not at import) with ``$OODBENCH_DISABLE_PLUGINS``."""
    return collect(make_plugin_manager())


def reset() -> None:
    """Forget the cached registries (tests that install plugins call this; so does ``--disable-plugin``)."""
    registries.cache_clear()
