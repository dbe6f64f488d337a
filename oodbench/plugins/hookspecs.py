"""Hook specifications: how a plugin contributes detectors, datasets and backbones.

A plugin is a module (or object) registered under the ``oodbench`` entry-point group that
implements some of these hooks with ``@oodbench.hookimpl``. Each hook *returns a list*;
oodbench collects the lists of every plugin into one registry per kind; a name that two
plugins register is an error when it is used (``--disable-plugin NAME`` picks one). The built-in
plugins in ``plugins/oodbench_builtins`` use exactly this path.

Example (a whole plugin)::

    from oodbench import Detector, hookimpl

    class Margin(Detector):
        name = "margin"
        description = "top-1 minus top-2 logit"
        def score_samples(self, data):
            top2 = data.features(["logits"])["logits"].topk(2, dim=1).values
            return top2[:, 0] - top2[:, 1]  # a tensor on the features' device

    @hookimpl
    def oodbench_register_detectors():
        return [Margin]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from oodbench.data.imageset import Dataset
    from oodbench.models.backbones import BackboneFactory
    from oodbench.plugins.detector import Detector

PROJECT = "oodbench"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def oodbench_register_detectors() -> list[type[Detector]]:
    """Return detector classes (subclasses of :class:`oodbench.Detector`).

    Each class carries ``name`` (what ``--detector`` takes) and ``description``
    (one line, shown by ``oodbench list detectors``).
    """


@hookspec
def oodbench_register_datasets() -> list[Dataset]:
    """Return dataset objects (instances of :class:`oodbench.Dataset`).

    A dataset whose ``name`` ends with ``:`` is a *prefix*: ``folder:`` resolves
    ``folder:PATH`` by calling its ``resolve("PATH")``.
    """


@hookspec
def oodbench_register_backbones() -> list[BackboneFactory]:
    """Return backbone factories (instances of :class:`oodbench.BackboneFactory`).

    A factory builds a :class:`oodbench.Backbone`: a classifier with named feature layers.
    Prefix names (``timm:``) work as for datasets.
    """
