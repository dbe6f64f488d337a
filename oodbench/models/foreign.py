"""Models the user brings: an ``nn.Module`` (Python API), a ``torch.export`` file (``.pt2``), a TorchScript file,
or a ``module:callable`` builder on the Python path (``--model``), evaluated as they are — never trained here.

:class:`BroughtModel` is a :class:`~oodbench.models.backbones.BackboneFactory`, so the pipeline supplies it as it
supplies a registered backbone (one feature extraction per split for all detectors). Feature layers are module
paths: a Python module's are read with forward hooks (any path of ``named_modules()``), a compiled model's with
:mod:`oodbench.models.taps`. The default layers are the direct children whose outputs are feature maps (≥ 3
dimensions, larger than 1×1), found by one probe forward at the ID input shape — the way torchvision's
``create_feature_extractor`` names nodes by module path, without asking the user to list them. The head is the
module whose output is the logits (the last such path), its input the ``penultimate`` features.

Input: ``[0, 1]`` images, normalised by ``mean``/``std`` when given (default: none, as a model that normalises
inside, like OpenOOD's and ``../shared/models``', expects).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from oodbench.core.errors import UsageError, describe
from oodbench.models.backbones import Backbone, BackboneFactory
from oodbench.models.checkpoints import file_hash, state_hash
from oodbench.models.taps import ExportTaps, ScriptTaps

FOREIGN_PREFIX = "model:"


def load_net(source: str | nn.Module) -> tuple[nn.Module, dict]:
    """``(network, facts)`` for what the user brought; facts name the kind, the path and a content hash."""
    if isinstance(source, nn.Module):
        return source, {"kind": "python module", "class": type(source).__qualname__}
    path = Path(source)
    if not path.exists() and re.fullmatch(r"[\w.]+:[\w.]+", str(source)):
        return _built(str(source)), {"kind": "builder", "builder": str(source)}
    if path.suffix == ".pt2":
        return _exported(path), {"kind": "torch.export", "path": str(path), "file_hash": _hash_of(path)}
    return _scripted(path), {"kind": "TorchScript", "path": str(path), "file_hash": _hash_of(path)}


def _hash_of(path: Path) -> str:
    if not path.is_file():
        raise UsageError(f"--model {str(path)!r}: no such file")
    return file_hash(path)


def _exported(path: Path) -> nn.Module:
    _hash_of(path)
    try:
        with quiet_logger("torch.export"):  # its own multi-line log of the same failure
            return ExportTaps(torch.export.load(str(path)).module())
    except Exception as exc:  # noqa: BLE001 - any decoding error: not an export archive
        raise UsageError(f"--model {str(path)!r} is not a torch.export program: {describe(exc)}") from None


@contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _scripted(path: Path) -> nn.Module:
    _hash_of(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            return ScriptTaps(torch.jit.load(str(path), map_location="cpu"))
    except Exception as exc:  # noqa: BLE001 - not a TorchScript archive
        raise UsageError(
            f"--model {str(path)!r} is not a model file (a torch.export .pt2 or a TorchScript file): {describe(exc)}"
        ) from None


def _built(spec: str) -> nn.Module:
    """``package.module:callable`` → ``callable()``, which must return an ``nn.Module``."""
    module_name, _, attr = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # the working directory, as `python -m` has it
    try:
        builder = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--model {spec!r}: cannot import the builder: {describe(exc)}") from None
    try:
        net = builder()
    except Exception as exc:  # noqa: BLE001 - the user's code: named in one line
        raise UsageError(f"--model {spec!r}: the builder raised {describe(exc)}") from None
    if not isinstance(net, nn.Module):
        raise UsageError(f"--model {spec!r}: the builder returned a {type(net).__name__}, not a torch.nn.Module")
    return net


def paths_of(net: nn.Module) -> list[str]:
    """Every module path a layer may name, shallow to deep."""
    if hasattr(net, "tap_paths"):
        return net.tap_paths()
    return [name for name, _ in net.named_modules() if name]


def children_of(net: nn.Module) -> list[str]:
    return [p for p in paths_of(net) if "." not in p]


def unknown_path(path: str, known: Sequence[str], what: str) -> UsageError:
    close = difflib.get_close_matches(path, list(known), n=3, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"it has: {', '.join(list(known)[:12])}"
    return UsageError(f"{what} has no module {path!r}; {hint} (see `oodbench layers --model …`)")


def probe(net: nn.Module, input_shape: tuple[int, int, int], paths: Sequence[str], what: str) -> dict[str, tuple]:
    """One forward pass of two random images: ``{path: output}`` for ``paths`` plus ``"": logits``."""
    x = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            if hasattr(net, "forward_taps"):
                logits, outs, _ = net.forward_taps(x, list(paths))
            else:
                outs, hooks = {}, []
                modules = dict(net.named_modules())
                for p in paths:
                    hooks.append(modules[p].register_forward_hook(lambda m, i, o, p=p: outs.__setitem__(p, o)))
                try:
                    logits = net(x)
                finally:
                    for h in hooks:
                        h.remove()
    except Exception as exc:  # noqa: BLE001 - a model that refuses the input is the user's mismatch, in one line
        shape = "×".join(map(str, input_shape))
        raise UsageError(f"{what} does not run on {shape} inputs (the ID set's shape): {describe(exc)}") from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise UsageError(f"{what} must return N×classes logits, got {getattr(logits, 'shape', type(logits))}")
    return {"": logits, **{p: o for p, o in outs.items() if isinstance(o, torch.Tensor)}}


class BroughtModel(BackboneFactory):
    """A model the user brings, as a backbone factory: ``build`` wraps it (never trains it) after checking that
    it runs on the ID input shape and that its logits have one column per ID class.

    Args:
        source: an ``nn.Module``, a ``.pt2``/TorchScript path, or ``"module:callable"``.
        layers: module paths a layer-wise detector may read (default: the children that output feature maps).
        head: module path of the classifier head (default: the last module whose output is the logits).
        mean, std: per-channel normalisation of ``[0, 1]`` input (default: none; the model gets ``[0, 1]``).
    """

    def __init__(self, source, layers=None, head=None, mean=None, std=None, name: str | None = None):
        self.net, self.facts = load_net(source)
        label = name or Path(self.facts.get("path", "")).name or self.facts.get("builder") or self.facts["class"]
        self.name = FOREIGN_PREFIX + label
        self.description = f"{self.facts['kind']} brought by the user"
        self.layers, self.head, self.mean, self.std = layers, head, mean, std
        known = paths_of(self.net)
        for path in [*(layers or []), *([head] if head else [])]:
            if path not in known:
                raise unknown_path(path, known, self.name)

    def content_hash(self) -> str:
        """The weights' hash (a file's bytes, else the state dict): it keys records and cached features."""
        return self.facts.get("file_hash") or state_hash(self.net)

    def build(self, input_shape, num_classes, pretrained=False, **options) -> Backbone:
        net, c = self.net.eval(), input_shape[0]
        named = None if self.layers is None or self.head is None else {*self.layers, self.head}
        candidates = [p for p in paths_of(net) if named is None or p in named]  # all when the head must be found
        outs = probe(net, input_shape, candidates, self.name)
        logits = outs.pop("")
        if logits.shape[1] != num_classes:
            raise UsageError(
                f"{self.name} outputs {logits.shape[1]} logits but the ID set has {num_classes} classes; "
                "bring a model trained on these classes (in the dataset's class order)"
            )
        head = self.head or self._find_head(outs, logits)
        layers = self.layers if self.layers is not None else self._feature_maps(outs, head)
        mean = self.mean if self.mean is not None else (0.0,) * c
        std = self.std if self.std is not None else (1.0,) * c
        return Backbone(net, {p: p for p in layers}, head, mean, std, tuple(input_shape), arch=self.name)

    def _find_head(self, outs: dict[str, torch.Tensor], logits: torch.Tensor) -> str:
        heads = [p for p in paths_of(self.net) if p in outs and outs[p].shape == logits.shape]
        heads = [p for p in heads if torch.equal(outs[p], logits)]  # shallow to deep: the last is the head itself
        if not heads:
            raise UsageError(f"{self.name}: no module outputs the logits; name the classifier head (--model-head)")
        return heads[-1]

    def _feature_maps(self, outs: dict[str, torch.Tensor], head: str) -> list[str]:
        """Direct children (not the head) whose outputs are maps: N×C×H×W larger than 1×1, or N×L×D tokens."""
        return [
            p
            for p in children_of(self.net)
            if p != head and p in outs and (outs[p].ndim == 3 or (outs[p].ndim == 4 and outs[p].shape[2:].numel() > 1))
        ]


def example_shape(net: nn.Module) -> tuple[int, int, int] | None:
    """C×H×W a ``torch.export`` program was exported for (its first input's static sizes), else None."""
    program = getattr(net, "program", None)
    if program is None:
        return None
    for node in program.graph.nodes:
        val = node.meta.get("val") if node.op == "placeholder" else None
        if val is not None and getattr(val, "ndim", 0) == 4:
            try:
                return tuple(int(d) for d in val.shape[1:])  # type: ignore[return-value]
            except TypeError:  # a symbolic size
                return None
    return None


def layer_rows(source: str, shape: tuple[int, int, int] | None) -> tuple[str, list[tuple[str, int, str, str]]]:
    """``oodbench layers --model``: (heading, [(module path, pooled dim, output shape, role)]) shallow to deep."""
    from oodbench.models.backbones import pool_feature

    brought = BroughtModel(source)
    size = shape or example_shape(brought.net)
    if size is None:
        raise UsageError(f"{brought.name} does not say its input shape: give --shape C×H×W (e.g. 3x32x32)")
    outs = probe(brought.net, size, paths_of(brought.net), brought.name)
    logits = outs.pop("")
    model = brought.build(size, logits.shape[1])
    roles = {p: "default layer" for p in model.layer_paths.values()} | {
        model.head_path: "head (its input: penultimate)"
    }
    rows = [
        (p, int(pool_feature(o).shape[1]), "×".join(map(str, o.shape[1:])), roles.get(p, ""))
        for p, o in ((p, outs[p]) for p in paths_of(brought.net) if p in outs)
    ]
    how = "graph taps" if hasattr(brought.net, "forward_taps") else "forward hooks"
    heading = (
        f"{brought.name} ({brought.facts['kind']}) on {'×'.join(map(str, size))} inputs, {logits.shape[1]} classes: "
        f"{len(rows)} readable module paths ({how}); name them with --model-layer"
    )
    return heading, rows
