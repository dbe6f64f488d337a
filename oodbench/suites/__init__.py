"""Suites: ``benchmarks.yaml``, resumable execution of many runs (locally or on Ray) and the leaderboard
they feed. Imports :mod:`oodbench.pipeline`, :mod:`oodbench.report` and everything below them."""
