"""What ``oodbench run`` takes (:class:`RunRequest`); :func:`oodbench.pipeline.planning.resolve` looks its names up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench.core.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

TUNE_MODES = ("none", "oracle", "heldout")
N_TUNE_DEFAULT = 1000  # capped at half of each test set; an explicit larger --n-tune is refused (planning)
OPTION = {"detectors": "--detector", "id": "--in", "oods": "--out", "corruptions": "--corruption"}
OPTION |= {"severities": "--severity", "detector_params": "--param", "seeds": "--seeds", "train_options": "--train"}


class BadValue(UsageError):
    """An option value of the wrong type or out of range; ``field`` is the :class:`RunRequest` field (YAML key)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{option(name)} {message}")
        self.field = name


def option(name: str) -> str:
    """The command-line option of a :class:`RunRequest` field."""
    return OPTION.get(name, "--" + name.replace("_", "-"))


def check_int(name: str, value: Any, low: int | None = None, optional: bool = False) -> None:
    """``value`` is an integer ≥ ``low`` (None allowed when ``optional``), else one line naming the option."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(name, f"takes a whole number, got {value!r}")
    if low is not None and value < low:
        raise BadValue(name, f"takes a whole number ≥ {low}, got {value}")


def check_seeds(seeds: Any) -> list[int]:
    """A non-empty list of integer seeds (``--seeds``, a suite's ``seeds:``)."""
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise BadValue("seeds", f"takes a non-empty list of whole numbers, e.g. 0 1 2; got {seeds!r}")
    for s in seeds:
        check_int("seeds", s)
    return list(seeds)


def _check_names(name: str, value: Any, optional: bool = False, many: bool = False) -> None:
    if value is None and optional:
        return
    items = value if many else [value]
    if many and (not isinstance(value, (list, tuple)) or (not optional and not value)):
        raise BadValue(name, f"takes a list of names, got {value!r}")
    bad = [v for v in items if not isinstance(v, str) or not v.strip()]
    if bad:
        raise BadValue(name, f"takes {'names' if many else 'a name'}, got {bad[0]!r}")
    twice = sorted({v for v in items if items.count(v) > 1})
    if twice:
        raise BadValue(name, f"names {twice[0]!r} twice")


def check_request(req: RunRequest) -> None:
    """Types and ranges of every field (one line naming the option); names are looked up later, in resolve."""
    _check_names("detectors", req.detectors, many=True)
    _check_names("id", req.id)
    _check_names("oods", req.oods, many=True, optional=True)
    check_groups(req.ood_groups, req.oods)
    for name in ("backbone", "tune", "tune_out", "device", "protocol", "holdout", "corrupt_both", "train_out", "grid"):
        _check_names(name, getattr(req, name), optional=True)
    for name in ("data_root", "results", "contaminate_with"):
        _check_names(name, getattr(req, name), optional=True)
    _check_names("corruptions", req.corruptions, many=True, optional=True)
    for name in ("epochs", "train_limit", "test_limit"):
        check_int(name, getattr(req, name), 1, optional=True)
    check_int("n_tune", req.n_tune, 0)
    check_int("batch_size", req.batch_size, 1)
    check_int("seed", req.seed)
    for s in req.severities or []:
        check_int("severities", s)
    for name in ("download", "pretrained", "feature_cache"):
        if not isinstance(getattr(req, name), bool):
            raise BadValue(name, f"is true or false, got {getattr(req, name)!r}")
    rate = req.contaminate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise BadValue("contaminate", f"takes a rate in [0, 1) (0 = off), got {rate!r}")
    if req.checkpoint is not None and not isinstance(req.checkpoint, Path):
        raise BadValue("checkpoint", f"takes a file path, got {req.checkpoint!r}")
    check_brought(req)
    if req.precision not in PRECISIONS:
        raise BadValue("precision", f"takes {' | '.join(p for p in PRECISIONS if p)}, got {req.precision!r}")
    params = req.detector_params
    if not isinstance(params, Mapping) or not all(isinstance(v, Mapping) for v in params.values()):
        raise BadValue("detector_params", f"takes DETECTOR.NAME=VALUE (a mapping per detector), got {params!r}")
    checked_train_options(req.train_options)


def check_groups(groups: Any, oods: list[str]) -> None:
    """``ood_groups``: group name → OOD sets of the run, each set in at most one group."""
    if not isinstance(groups, Mapping) or not all(
        isinstance(g, str) and g and isinstance(m, (list, tuple)) for g, m in groups.items()
    ):
        raise BadValue("ood_groups", f"takes GROUP: [OOD sets] (e.g. near: [...], far: [...]), got {groups!r}")
    seen: dict[str, str] = {}
    for g, members in groups.items():
        for name in members:
            if name not in oods:
                raise BadValue("ood_groups", f"group {g!r} names {name!r}, which is not an OOD set of the run")
            if name in seen:
                raise BadValue("ood_groups", f"{name!r} is in two groups ({seen[name]!r} and {g!r})")
            seen[name] = g


def group_of(req: RunRequest, name: str) -> str | None:
    """The group (``ood_groups``) OOD set ``name`` belongs to, or None."""
    return next((g for g, members in req.ood_groups.items() if name in members), None)


def check_brought(req: RunRequest) -> None:
    """Types of the ``--model`` options (the file itself is opened in resolve, before any data is read)."""
    if req.model is not None and not isinstance(req.model, (str, Path)) and not hasattr(req.model, "named_modules"):
        raise BadValue("model", f"takes a model file, module:callable or a torch.nn.Module, got {req.model!r}")
    _check_names("model_layers", req.model_layers, many=True, optional=True)
    _check_names("models", req.models, many=True, optional=True)
    _check_names("model_name", req.model_name, optional=True)
    if req.models is not None and req.model is not None:
        raise BadValue("models", "takes the checkpoints of one recipe instead of --model, not beside it")
    _check_names("model_head", req.model_head, optional=True)
    for name in ("input_mean", "input_std"):
        values = getattr(req, name)
        if values is not None and not (
            isinstance(values, (list, tuple)) and all(isinstance(v, (int, float)) for v in values) and values
        ):
            raise BadValue(name, f"takes one number per input channel, got {values!r}")
    brought = req.model is not None or req.models is not None
    if not brought and (req.model_layers or req.model_head or req.input_mean or req.input_std or req.model_name):
        raise BadValue(
            "model_layers", "--model-layer/--model-head/--input-mean/--input-std/--model-name describe a --model"
        )


def checked_train_options(options: Any) -> dict[str, Any]:
    """``--train`` / ``train_options``: TrainConfig overrides, or a one-line :class:`BadValue`."""
    from oodbench.models.train_config import train_overrides

    if not isinstance(options, Mapping):
        raise BadValue("train_options", f"takes KEY=VALUE (a mapping of training settings), got {options!r}")
    try:
        return train_overrides(options)
    except ValueError as exc:
        raise BadValue("train_options", str(exc)) from None


@dataclass
class RunRequest:
    """Everything ``oodbench run`` takes (CLI options map one to one)."""

    detectors: list[str]
    id: str
    oods: list[str] = field(default_factory=list)
    backbone: str | None = None
    checkpoint: Path | None = None
    epochs: int | None = None
    tune: str = "none"
    tune_out: str | None = None
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    train_limit: int | None = None
    test_limit: int | None = None
    n_tune: int = N_TUNE_DEFAULT
    pretrained: bool = False
    pretrained_file: str | None = None  # local weights (implies pretrained); oodbench.models.pretrained
    feature_cache: bool = True
    max_memory: float | None = None  # GB of resident memory before a stage stops with one line (core.memory)
    batch_size: int = 512
    results: str | None = None
    protocol: str = "anomaly"
    holdout: str | None = None
    corruptions: list[str] | None = None
    severities: list[int] | None = None
    corrupt_both: str | None = None
    train_out: str | None = None
    contaminate: float = 0.0
    contaminate_with: str | None = None
    detector_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides: --train batch_size=512
    # a model the user brings (oodbench.models.foreign): a .pt2 / TorchScript file, "module:callable", or an
    # nn.Module (Python API); its feature layers and head by module path, its input normalisation
    model: Any = None
    # several checkpoints of one recipe (OpenOOD's three): one run each, records under one backbone name
    # (``model_name``, default: the files' common name), tables report mean ± std over them
    models: list[str] | None = None
    model_name: str | None = None
    model_layers: list[str] | None = None
    model_head: str | None = None
    input_mean: list[float] | None = None
    input_std: list[float] | None = None
    # feature extraction *and* input-perturbation passes: fp32, or bf16 autocast (CUDA); None: bf16 on CUDA, else fp32
    precision: str | None = None
    # a named tuning grid (Detector.grids: paper003 | odin | lee2018 | openood for ODIN and Mahalanobis)
    grid: str | None = None
    # OpenOOD's groups of the OOD sets ({"near": [...], "far": [...]}; --near/--far): every member is in ``oods``
    ood_groups: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.checkpoint, str):  # from a suite file
            self.checkpoint = Path(self.checkpoint)
        check_request(self)


def describe_run(req: RunRequest) -> str:
    """One line naming a run: protocol, ID → OOD sets or held-out classes, seed, the model file brought, detectors."""
    model = f" model {Path(req.model).name}" if isinstance(req.model, (str, Path)) else ""
    where = ",".join(req.oods) or req.holdout or ""
    return f"{req.protocol} {req.id}→{where} seed {req.seed}{model}: {', '.join(req.detectors)}"


PRECISIONS = (None, "fp32", "bf16")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """The run's one precision (issue 28): ``bf16`` autocast on the accelerated path unless fp32 is asked for;
    fp32 elsewhere (bf16 autocast on a CPU is slower than fp32 and not what any table reports)."""
    from oodbench.core.precision import accelerated

    if precision == "bf16" and not accelerated(device):
        raise UsageError(f"--precision bf16 runs on a CUDA device; this run is on {device.type}")
    return precision or ("bf16" if accelerated(device) else "fp32")


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r} (auto | cpu | cuda)")
    return torch.device(name)
