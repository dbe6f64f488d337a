"""YAML files the user writes (``benchmarks.yaml``, ``oodbench.yaml``), read with line numbers.

A syntax error, or a value of the wrong shape, is one :class:`~oodbench.core.errors.ConfigError` line:
``FILE:LINE: what is wrong; what was expected``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oodbench.core.errors import ConfigError


class YamlFile:
    """A parsed YAML file: ``data`` (plain Python values) plus the node tree, to say where a value came from."""

    def __init__(self, path: str | Path):
        import yaml

        self.path = Path(path)
        try:
            text = self.path.read_text()
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.path}: not a text file ({exc.reason}); expected YAML") from None
        loader = yaml.SafeLoader(text)
        try:
            self.node = loader.get_single_node()
            self.data = loader.construct_document(self.node) if self.node is not None else None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{self.path}:{mark.line + 1}:{mark.column + 1}" if mark else str(self.path)
            context = f" {exc.context}" if exc.context else ""
            opened = exc.context_mark
            if opened is not None and mark is not None and opened.line != mark.line:
                context += f" that starts at line {opened.line + 1}"
            raise ConfigError(f"{where}: YAML syntax: {exc.problem}{context}; fix the file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path}: YAML syntax: {str(exc).splitlines()[0]}; fix the file") from None
        finally:
            loader.dispose()

    def line(self, keys: Sequence[str | int] = ()) -> int:
        """The 1-based line of the value at ``keys`` (mapping keys, sequence indices), or of its nearest parent."""
        node = self.node
        line = node.start_mark.line + 1 if node is not None else 1
        for key in keys:
            if isinstance(key, int) and node is not None and node.tag.endswith(":seq") and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            elif isinstance(key, str) and node is not None and node.tag.endswith(":map"):
                found = [(k, v) for k, v in node.value if k.value == key]
                if not found:
                    break
                node, line = found[0][1], found[0][0].start_mark.line + 1
            else:
                break
        return line

    def error(self, keys: Sequence[str | int], message: str) -> ConfigError:
        """``FILE:LINE: message`` for the value at ``keys``."""
        return ConfigError(f"{self.path}:{self.line(keys)}: {message}")

    def expect(self, value: Any, kind: type | tuple[type, ...], keys: Sequence[str | int], what: str) -> Any:
        """``value`` if it is a ``kind``, else a :class:`ConfigError` saying that ``what`` was expected."""
        if not isinstance(value, kind):
            got = "nothing" if value is None else f"{type(value).__name__} {value!r}"
            label = ".".join(map(str, keys)) or "the file"
            raise self.error(keys, f"{label} must be {what}, got {got}")
        return value
