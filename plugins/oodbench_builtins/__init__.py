"""oodbench's built-in detectors, datasets and backbones.

Registered through the ``oodbench`` entry-point group in oodbench's ``pyproject.toml``,
exactly the way a third-party plugin is.
"""
