"""The typed result record: one per (detector, target) of a run, schema-versioned.

A record's identity is (detector, backbone + checkpoint hash, ID, OOD, protocol, tuning mode, tuning
source, seed, and the configuration that changes what was evaluated); :attr:`Record.record_id` hashes it,
so a suite can skip finished work. ``target`` holds the protocol's facts about the row (for example
``{"corruption": "gaussian_noise", "severity": 3}``): tables read them, never the row's name.
Schema 1 (before 0.2: plain dicts without ``schema``/``target``) is upgraded on read. ``ci`` (95 % bootstrap
intervals of the metrics,
:mod:`oodbench.records.bootstrap`) is optional: records written before it read back with ``{}``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 2
IDENTITY_KEYS = ("detector", "backbone", "checkpoint", "id", "ood", "protocol", "tune", "tune_out", "seed", "config")
#: model sources whose weights were evaluated as they are, never trained here (hub weights, ``--model`` files)
AS_IS_SOURCES = ("pretrained", "brought")


def evaluated_as_is(model: Mapping[str, Any] | None) -> bool:
    """Whether a record's ``model`` facts name weights that were not trained here: their hash is the model's."""
    return (model or {}).get("source") in AS_IS_SOURCES


@dataclass(frozen=True)
class Record:
    """What one (detector, target) of a run produced, and everything needed to trust and redo it."""

    detector: str
    backbone: str
    checkpoint: str
    id: str
    ood: str
    protocol: str
    tune: str
    seed: int
    config: dict[str, Any]
    metrics: dict[str, float]
    ci: dict[str, Any] = field(
        default_factory=dict
    )  # bootstrap intervals (oodbench.records.bootstrap); {} in old records
    tune_out: str | None = None
    target: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    tuning: dict[str, Any] | None = None
    fit: dict[str, Any] = field(default_factory=dict)
    extra_models: list[dict[str, Any]] = field(default_factory=list)
    n_eval: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)  # peak RSS (MB) per stage so far (oodbench.core.memory)
    data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)  # hostname and pid (+ Ray node and worker) that produced it
    created: str = ""
    schema: int = SCHEMA

    @property
    def identity(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in IDENTITY_KEYS}

    @property
    def record_id(self) -> str:
        return identity_hash(self.identity)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "record_id": self.record_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """A record from its JSON form (any schema; unknown keys are ignored)."""
        data = upgrade(dict(data))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls.from_dict(json.loads(text))


def identity_hash(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 → 2: corruption sweep rows were recognised by ``TYPE@SEV`` names; 2 records the facts."""
    if data.get("schema", 1) < 2:
        ood = str(data.get("ood", ""))
        kind, _, sev = ood.partition("@")
        if data.get("protocol") == "corruption" and sev.isdigit():
            data["target"] = {"corruption": kind, "severity": int(sev)}
        data["schema"] = SCHEMA
    return data
