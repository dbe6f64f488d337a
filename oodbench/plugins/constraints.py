"""Declared types and ranges of detector parameters, checked before any data is read (issue 27).

scikit-learn's ``_parameter_constraints`` is the model: each parameter lists what it may be — an
:class:`Interval` of ints or reals, :class:`Options`, a type, or ``None`` — and a value that matches none of them
is refused in one line naming the value and what is allowed. :data:`COMMON` declares the names many detectors
share (``k``, ``epochs``, ``lr``, ``percentile``, ``temperature`` …), for every detector whose default obeys
the common rule (a plugin's ``alpha = 0.0`` is another ``alpha``); a detector adds or overrides entries in its
``parameter_constraints`` class attribute (``{"variant": [Options("s", "p", "b")]}``). A parameter declared
nowhere keeps the older check: the type of its default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any


@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (``int`` or ``float``; a float parameter takes an int too) between ``low`` and ``high``
    (``None``: unbounded), each end included unless ``closed`` says otherwise (``both|left|right|neither``)."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def allows(self, value: Any) -> bool:
        wanted = Integral if self.kind is int else Real
        if isinstance(value, bool) or not isinstance(value, wanted) or not math.isfinite(value):
            return False
        low_ok = self.low is None or value > self.low or (value == self.low and self.closed in ("both", "left"))
        high_ok = self.high is None or value < self.high or (value == self.high and self.closed in ("both", "right"))
        return low_ok and high_ok

    def __str__(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            return f"{what} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{what} {'≥' if self.closed in ('both', 'left') else '>'} {self.low:g}"
        if self.high is not None:
            return f"{what} {'≤' if self.closed in ('both', 'right') else '<'} {self.high:g}"
        return what


@dataclass(frozen=True)
class Options:
    """One of these values."""

    values: tuple

    def __init__(self, *values: Any):
        object.__setattr__(self, "values", values)

    def allows(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(map(repr, self.values))


@dataclass(frozen=True)
class Strings:
    """A list (or tuple) of strings, e.g. layer names."""

    def allows(self, value: Any) -> bool:
        return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) and v for v in value)

    def __str__(self) -> str:
        return "a non-empty list of names"


def _describe(rule: Any) -> str:
    if rule is None:
        return "None"
    return rule.__name__ if isinstance(rule, type) else str(rule)


def allows(rule: Any, value: Any) -> bool:
    if rule is None:
        return value is None
    if isinstance(rule, type):
        return isinstance(value, rule) and not (isinstance(value, bool) and rule is not bool)
    return rule.allows(value)


POSITIVE_INT = Interval(int, 1)
POSITIVE = Interval(float, 0, closed="neither")
NON_NEGATIVE = Interval(float, 0)
PERCENT = Interval(float, 0, 100)

#: names many detectors share; a detector's own ``parameter_constraints`` adds to and overrides these
COMMON: dict[str, list] = {
    "seed": [Interval(int)],
    "k": [POSITIVE_INT],
    "m": [POSITIVE_INT],
    "epochs": [POSITIVE_INT, None],
    "pretrain_epochs": [POSITIVE_INT],
    "decoder_epochs": [POSITIVE_INT],
    "batch_size": [POSITIVE_INT],
    "outlier_batch_size": [POSITIVE_INT],
    "lr": [POSITIVE, None],
    "temperature": [POSITIVE, None],
    "epsilon": [NON_NEGATIVE],
    "gamma": [POSITIVE],
    "percentile": [PERCENT],
    "sparsity": [PERCENT],
    "dim": [POSITIVE_INT, None],
    "embedding_dim": [POSITIVE_INT],
    "hidden": [POSITIVE_INT],
    "members": [POSITIVE_INT],
    "passes": [POSITIVE_INT],
    "max_power": [POSITIVE_INT],
    "n_noise": [POSITIVE_INT],
    "n_fit": [POSITIVE_INT, None],
    "n_val": [POSITIVE_INT],
    "tailsize": [POSITIVE_INT],
    "memory_size": [POSITIVE_INT],
    "slots_per_class": [POSITIVE_INT],
    "update_interval": [POSITIVE_INT],
    "patience": [POSITIVE_INT, None],
    "dropout": [Interval(float, 0, 1, closed="left")],
    "drop": [Interval(float, 0, 1, closed="left")],
    "bank_fraction": [Interval(float, 0, 1, closed="right")],
    "alpha": [POSITIVE],
    "weight": [NON_NEGATIVE],
    "beta": [NON_NEGATIVE],
    "margin": [NON_NEGATIVE],
    "distance_weight": [NON_NEGATIVE],
    "lambda1": [NON_NEGATIVE],
    "lambda2": [NON_NEGATIVE],
    "entropy_weight": [NON_NEGATIVE],
    "layers": [Strings(), None],
    "layer": [str],
}


def violation(cls: type, key: str, value: Any, default: Any) -> str | None:
    """What ``key`` allows when ``value`` is not allowed, else None; undeclared: the default's type. A common
    name whose rule the detector's own default breaks means something else there: only its type is checked."""
    own = dict(getattr(cls, "parameter_constraints", {}) or {})
    rules: Sequence | None = own.get(key, COMMON.get(key))
    if key not in own and rules is not None and not any(allows(rule, default) for rule in rules):
        rules = None
    if rules is None:
        return _by_default(value, default)
    if any(allows(rule, value) for rule in rules):
        return None
    return " or ".join(_describe(r) for r in rules)


def _by_default(value: Any, default: Any) -> str | None:
    if default is None or value is None:
        return None
    kinds: tuple[type, ...] = (int, float) if isinstance(default, float) else (type(default),)
    if isinstance(default, (list, tuple)):
        kinds = (list, tuple)
    if not isinstance(value, kinds) or (isinstance(value, bool) and not isinstance(default, bool)):
        return f"a {type(default).__name__}"
    return None


def check_params(cls: type, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """One line per bad parameter: ``NAME=VALUE: NAME takes … (default …)``."""
    bad = []
    for key, value in params.items():
        allowed = violation(cls, key, value, defaults.get(key))
        if allowed is not None:
            bad.append(f"{cls.name}.{key}={value!r}: {key} takes {allowed} (default {defaults.get(key)!r})")
    return bad
