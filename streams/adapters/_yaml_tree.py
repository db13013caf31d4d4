"""Read a YAML mapping file into plain Python while remembering where each value was.

The site mapping needs two things PyYAML's ``safe_load`` throws away: the line of every
key (so an error points at it) and the text of every scalar as written (YAML 1.1 reads
``NO`` as ``False`` and ``0123`` as 83, which would silently corrupt code lists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from detectors.errors import RulesError

__all__ = ["Path", "YamlTree", "merge_trees", "read_yaml_tree"]

#: Position of a value in the tree: keys and list indexes from the root.
Path = tuple[str | int, ...]


@dataclass
class YamlTree:
    """Plain data (dicts, lists, scalars) plus the line and written text of each value."""

    data: Any
    source: str
    lines: dict[Path, int] = field(default_factory=dict)
    raw: dict[Path, str] = field(default_factory=dict)

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

    Raises ``RulesError`` with the line for syntax errors, duplicate keys, merge keys and
    non-scalar keys.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RulesError(
            f"not valid YAML: {exc.problem or exc}", source=source, line=line
        ) from None
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {exc}", source=source) from None
    tree = YamlTree(data=None, source=source)
    if node is None:
        tree.data = {}
        return tree
    tree.lines[()] = node.start_mark.line + 1
    tree.data = _convert(node, (), tree, SafeConstructor())
    return tree


def _convert(node: yaml.Node, path: Path, tree: YamlTree, constructor: SafeConstructor) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise RulesError("keys must be plain text", source=tree.source, line=line)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise RulesError(
                    "merge keys (<<) are not supported; write the settings out",
                    source=tree.source,
                    line=line,
                )
            key = str(key_node.value)
            if key in out:
                raise RulesError(f"duplicate key {key!r}", source=tree.source, line=line)
            tree.lines[(*path, key)] = line
            out[key] = _convert(value_node, (*path, key), tree, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            tree.lines[(*path, index)] = item.start_mark.line + 1
            items.append(_convert(item, (*path, index), tree, constructor))
        return items
    tree.raw[path] = str(node.value)
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise RulesError(
            f"unreadable value {node.value!r}: {exc}",
            source=tree.source,
            line=node.start_mark.line + 1,
        ) from None


def merge_trees(base: YamlTree, override: YamlTree) -> YamlTree:
    """Overlay ``override`` on ``base``: maps merge key by key, anything else replaces.

    Lines come from ``override`` only (errors should point into the site's file, not
    into the packaged defaults); raw texts from both, ``override`` winning.
    """
    merged = YamlTree(
        data=_merge(base.data, override.data),
        source=override.source,
        lines=dict(override.lines),
        raw={**base.raw, **override.raw},
    )
    return merged


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return override
