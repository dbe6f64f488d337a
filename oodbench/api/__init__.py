"""The Python API (a top stage beside the CLI): ``oodbench.evaluate(model, id=…, ood=[…])`` for a model the user
already has, in a script or a notebook. It builds a :class:`~oodbench.pipeline.request.RunRequest` and runs the
same plan → supply → evaluate → record stages as ``oodbench run``. Imports the pipeline, the report and below."""

from __future__ import annotations

from oodbench.api.evaluator import Evaluation, evaluate

__all__ = ["Evaluation", "evaluate"]
