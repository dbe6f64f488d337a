"""The extension API: what a plugin implements (:mod:`.detector`, :mod:`.hookspecs`), how plugins are loaded
into registries (:mod:`.manager`) and the contract checks a plugin author runs (:mod:`.testing`). Imports
:mod:`oodbench.models`, :mod:`oodbench.data`, :mod:`oodbench.records` and :mod:`oodbench.core`.

``from oodbench.plugins import registries`` keeps working: the manager's names are re-exported here."""

from __future__ import annotations

from oodbench.plugins.manager import (
    DISABLE_ENV,
    ENTRY_POINT_GROUP,
    HOOKS,
    Entry,
    PluginLoadWarning,
    PluginManager,
    Registries,
    Registry,
    collect,
    disabled_plugins,
    make_plugin_manager,
    registries,
    reset,
)

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "HOOKS",
    "Entry",
    "PluginLoadWarning",
    "PluginManager",
    "Registries",
    "Registry",
    "collect",
    "disabled_plugins",
    "make_plugin_manager",
    "registries",
    "reset",
]
