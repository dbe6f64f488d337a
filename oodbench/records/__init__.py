"""Records: the typed result record, where records are stored, the metrics they hold (SPEC.md) and their
bootstrap intervals, and the committed leaderboards. Imports :mod:`oodbench.core` only."""
