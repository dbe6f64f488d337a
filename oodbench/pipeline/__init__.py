"""The pipeline of one run, in stages that never reach back: :mod:`.request` (what was asked) →
:mod:`.planning` with :mod:`.protocols` and :mod:`.leakage` (plan) → :mod:`.supply` (backbone, features,
outliers) → :mod:`.evaluate` with :mod:`.tuning` (fit, tune, score, metrics) → a
:class:`~oodbench.records.record.Record`;
:mod:`.runner` chains them. Imports :mod:`oodbench.plugins`, :mod:`oodbench.models`, :mod:`oodbench.data`,
:mod:`oodbench.records` and :mod:`oodbench.core`; never the report, suites or CLI."""
