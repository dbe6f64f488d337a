"""Checks of a request's options that need no data: detector parameters, option combinations, paths that must
exist, and what goes with a brought model (``--model``). They run in :func:`~oodbench.pipeline.planning.resolve`,
before any data is read; each failure is one line (exit 2)."""

from __future__ import annotations

from typing import Any

from oodbench.core.errors import UsageError
from oodbench.core.userconfig import weights_file
from oodbench.pipeline.request import RunRequest
from oodbench.plugins.constraints import check_params


def make_detector(cls: type, seed: int, params: dict[str, Any]):
    det = cls()
    if "seed" in det.get_params():
        det.set_params(seed=seed)
    defaults = det.get_params()
    bad = [k for k in params if k not in defaults]
    if bad:
        raise UsageError(f"detector {cls.name!r} has no parameter(s) {bad}; it has {sorted(defaults)}")
    bad = check_params(cls, params, defaults)
    if bad:
        raise UsageError(f"--param {bad[0]}")
    return det.set_params(**params)


#: RunRequest field → (the protocol that reads it, its option)
PROTOCOL_OPTIONS = {
    "holdout": (("novelty",), "--holdout"),
    "corruptions": (("corruption", "full-spectrum"), "--corruption"),
    "severities": (("corruption", "full-spectrum"), "--severity"),
    "corrupt_both": (("corruption",), "--corrupt-both"),
}


def check_protocol_options(req: RunRequest) -> None:
    """An option that the chosen protocol does not read is an error, never silently dropped."""
    for field, (protocols, option) in PROTOCOL_OPTIONS.items():
        if getattr(req, field) and req.protocol not in protocols:
            where = " or ".join(protocols)
            raise UsageError(f"{option} applies to --protocol {where}, not {req.protocol}: drop it or change protocol")
    if bool(req.contaminate) != bool(req.contaminate_with):
        raise UsageError("--contaminate RATE and --contaminate-with NAME go together")


def check_combinations(req: RunRequest) -> None:
    """Options that cannot go together, and paths that must exist (after the names, before any work)."""
    from oodbench.records.store import results_dir

    check_protocol_options(req)

    strays = sorted(set(req.detector_params) - set(req.detectors))
    if strays:
        raise UsageError(
            f"--param {strays[0]}.…: detector {strays[0]!r} is not in this run ({', '.join(req.detectors)}); "
            f"add --detector {strays[0]} or drop the --param"
        )
    if req.checkpoint is not None:
        if req.epochs is not None:
            raise UsageError(
                "--checkpoint loads trained weights and --epochs trains new ones: give one of them "
                "(fine-tuning a checkpoint is not supported)"
            )
        if not req.checkpoint.is_file():
            raise UsageError(f"--checkpoint {str(req.checkpoint)!r} is not a file")
    if req.model is not None:
        check_brought_combinations(req)
    weights_file(req.backbone or "", req.pretrained, req.pretrained_file)  # a missing file fails before any work
    out = results_dir(req.results)
    if out.exists() and not out.is_dir():
        raise UsageError(f"results folder {str(out)!r} is a file; pass another --results folder")


def check_grid(req: RunRequest, classes: list[type]) -> None:
    """``--grid NAME`` picks a named search space: it needs tuning, and a detector of the run that has it."""
    if not req.grid:
        return
    if req.tune == "none":
        raise UsageError(f"--grid {req.grid} chooses a tuning grid: it needs --tune oracle or --tune heldout")
    known = sorted({name for cls in classes for name in cls.grids})
    if req.grid not in known:
        raise UsageError(
            f"no detector of this run has a grid named {req.grid!r} "
            f"({'its grids: ' + ', '.join(known) if known else 'none of them has named grids'})"
        )


def check_brought_combinations(req: RunRequest) -> None:
    """A brought model is evaluated as it is: nothing that builds, loads or trains a backbone goes with it."""
    from oodbench.plugins.manager import registries

    clash = [
        opt
        for opt, given in (
            ("--backbone", req.backbone),
            ("--checkpoint", req.checkpoint),
            ("--pretrained", req.pretrained or req.pretrained_file),
            ("--epochs", req.epochs),
        )
        if given
    ]
    if clash:
        raise UsageError(f"--model brings a trained model; {', '.join(clash)} would build or train another: drop it")
    trains = [name for name in req.detectors if registries().detectors.get(name).needs.trains]
    if trains:
        raise UsageError(
            f"{', '.join(trains)} train networks of their own from a registered backbone; with --model, use "
            "post-hoc detectors (`oodbench list detectors`)"
        )


def check_validation_split(req: RunRequest, classes: list[type]) -> None:
    """Detectors that fit on the ID validation split (``Needs.fits_on``) need ``--n-tune`` ≥ 1: that split is
    the ID samples held out from evaluation."""
    need = [cls.name for cls in classes if cls.needs.fits_on == "validation"]
    if need and req.n_tune < 1:
        raise UsageError(
            f"{', '.join(need)} fit on the ID validation split (the --n-tune ID samples held out from "
            f"evaluation); --n-tune {req.n_tune} leaves it empty"
        )
