"""A configuration file as plain Python, remembering where each value was.

The site mapping is read by Carewatch's one configuration reader
(``detectors.config_reader.read_yaml``): every scalar stays the text as written (``NO``
stays ``"NO"``, ``0123`` stays ``"0123"``; YAML 1.1 would read false and 83), hostile
files (alias bombs, oversized files) are refused, and every value keeps its line so an
error can point at it. This module flattens that tree into plain data plus a table of
lines, which ``SettingsReader`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.config_reader import Node, read_yaml
from detectors.errors import RulesError

__all__ = ["Path", "YamlTree", "merge_trees", "read_yaml_tree"]

#: Position of a value in the tree: keys and list indexes from the root.
Path = tuple[str | int, ...]


@dataclass
class YamlTree:
    """Plain data (dicts, lists, texts, ``None``) plus the line of each value."""

    data: Any
    source: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line (1-based) of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def error(self, path: Path, message: str) -> RulesError:
        """A ``RulesError`` for the setting at ``path``, pointing at its line."""
        return RulesError(message, source=self.source, line=self.line_of(path))


def read_yaml_tree(text: str, source: str) -> YamlTree:
    """Parse ``text`` (one YAML document) into a ``YamlTree``.

    Raises ``RulesError`` with the line for syntax errors, duplicate keys, merge keys,
    non-scalar keys and hostile documents (see ``detectors.config_reader``).
    """
    root = read_yaml(text, source)
    tree = YamlTree(data=None, source=source)
    tree.data = _flatten(root, (), tree)
    return tree


def _flatten(node: Node, path: Path, tree: YamlTree) -> Any:
    tree.lines[path] = node.line
    value = node.value
    if isinstance(value, dict):
        return {key: _flatten(item, (*path, key), tree) for key, item in value.items()}
    if isinstance(value, list):
        return [_flatten(item, (*path, index), tree) for index, item in enumerate(value)]
    return value


def merge_trees(base: YamlTree, override: YamlTree) -> YamlTree:
    """Overlay ``override`` on ``base``: maps merge key by key, anything else replaces.

    Lines come from ``override`` only (errors should point into the site's file, not
    into the packaged defaults).
    """
    return YamlTree(
        data=_merge(base.data, override.data),
        source=override.source,
        lines=dict(override.lines),
    )


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return override
