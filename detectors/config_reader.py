"""The one reader of Carewatch's configuration files: the rules file, the site mapping and
the Kafka settings file.

``read_yaml`` turns a YAML document into a tree of ``Node`` objects that keep every
scalar as the text the user wrote (YAML 1.1, which PyYAML speaks, reads ``NO`` as
false, ``010`` as 8 and ``1:30`` as 90; here they stay ``"NO"``, ``"010"`` and
``"1:30"``) together with its line. Only a key whose type says so turns text into
something else, through ``Reader``: ``boolean`` accepts ``true``/``false``, ``integer``
a whole number, ``duration`` ``48h`` and the like, each within a range.

``Reader`` records a problem and moves on to the next setting (``attempt``), so one run
reports every error of a file, each as ``file:line: message`` (``ConfigProblems``).

Hostile files are refused before they cost memory: a file larger than ``MAX_BYTES``, more
than ``MAX_ALIASES`` aliases, more than ``MAX_NODES`` values once aliases are expanded
(the "billion laughs" alias bomb), or nesting deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeAlias

import yaml

from detectors.durations import format_duration, parse_duration
from detectors.errors import ConfigError, RulesError

__all__ = [
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "ConfigProblems",
    "Invalid",
    "Node",
    "Reader",
    "read_file",
    "read_yaml",
]

#: A configuration file larger than this (bytes) is refused unread.
MAX_BYTES = 1024 * 1024
#: At most this many aliases (``*name``) in one file.
MAX_ALIASES = 100
#: At most this many values (mappings, lists and scalars) once aliases are expanded.
MAX_NODES = 100_000
#: At most this many levels of nested mappings and lists.
MAX_DEPTH = 50

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_CORE_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")

Value: TypeAlias = "str | list[Node] | dict[str, Node] | None"


@dataclass(frozen=True, slots=True)
class Node:
    """One value of a configuration file and where it is.

    ``value`` is a ``dict`` (keys as written) for a mapping, a ``list`` for a sequence,
    the text as written for a scalar, or ``None`` for an empty or ``null`` value. ``line``
    (1-based) is the line of the key for a mapping entry, else of the value itself.
    ``quoted`` says a scalar was written in quotes (or as a block).
    """

    value: Value
    line: int
    quoted: bool = False

    @property
    def is_mapping(self) -> bool:
        """Whether the value is a mapping."""
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        """Whether the value is a list."""
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        """Whether the value is text (not a mapping, a list or null)."""
        return isinstance(self.value, str)

    def plain(self) -> Any:
        """The value as plain data: dicts, lists, texts and ``None``."""
        v = self.value
        if isinstance(v, dict):
            return {k: n.plain() for k, n in v.items()}
        if isinstance(v, list):
            return [n.plain() for n in v]
        return v

    def core(self) -> Any:
        """The value as an editor sees it (the YAML 1.2 core schema: ``true``/``false``,
        numbers and ``null`` typed, everything else text), which is what the JSON Schemas
        of ``carewatch rules schema`` describe."""
        v = self.value
        if isinstance(v, dict):
            return {k: n.core() for k, n in v.items()}
        if isinstance(v, list):
            return [n.core() for n in v]
        if v is None or self.quoted:
            return v
        if v in ("true", "True", "TRUE"):
            return True
        if v in ("false", "False", "FALSE"):
            return False
        if _CORE_INT.fullmatch(v):
            return int(v, 0) if v[:2] in ("0o", "0x") else int(v)
        if _CORE_FLOAT.fullmatch(v):
            return float(v)
        return v

    def get(self, key: str) -> Node | None:
        """The entry ``key`` of a mapping (``None`` when absent or not a mapping)."""
        return self.value.get(key) if isinstance(self.value, dict) else None


class ConfigProblems(RulesError):
    """Every problem found in one configuration file, sorted by line.

    The message is one ``file:line: message`` line per problem; ``line`` is the first
    problem's line and ``problems`` holds ``(line, message)`` pairs.
    """

    def __init__(self, source: str, problems: list[tuple[int | None, str]]) -> None:
        ordered = sorted(problems, key=lambda p: (p[0] is not None, p[0] or 0))
        first_line, first = ordered[0]
        rest = "".join(f"\n{_where(source, line)}{message}" for line, message in ordered[1:])
        super().__init__(first + rest, source=source, line=first_line)
        self.problems: tuple[tuple[int | None, str], ...] = tuple(ordered)


def _where(source: str, line: int | None) -> str:
    if line is None:
        return f"{source}: " if source else ""
    return f"{source}:{line}: " if source else f"line {line}: "


class _Refused(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class _Loader(yaml.SafeLoader):
    """PyYAML's composer (no constructor runs, so no tag can build an object) that
    counts aliases as it meets them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise _Refused(
                    f"more than {MAX_ALIASES} aliases (*name); write the values out",
                    mark.line + 1,
                )
        return super().compose_node(parent, index)


def read_file(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a configuration file, refused unread when larger than ``MAX_BYTES``.
    ``what`` names the file in errors ("rules file", "site mapping"...)."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise RulesError(
            f"the {what} is larger than {MAX_BYTES} bytes; a configuration file is smaller",
            source=source,
        )
    return data


def read_yaml(text: str | bytes, source: str) -> Node:
    """Parse one YAML document into a ``Node`` tree; an empty document is an empty mapping.

    Raises ``RulesError`` (with the line where known) for a file that is too large, not
    valid YAML, has duplicate, merge (``<<``) or non-text keys, or is a hostile
    (alias-bomb, deeply nested) document.
    """
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_BYTES:
        raise RulesError(
            f"the file is {size} bytes; a configuration file may have at most {MAX_BYTES}",
            source=source,
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RulesError(f"not UTF-8 text: {exc.reason}", source=source) from None
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except _Refused as exc:
        raise RulesError(str(exc), source=source, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RulesError(
            f"not valid YAML: {exc.problem or exc}", source=source, line=line
        ) from None
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {exc}", source=source) from None
    except RecursionError:
        raise RulesError(f"nested more than {MAX_DEPTH} levels deep", source=source) from None
    finally:
        loader.dispose()
    if root is None:
        return Node({}, 1)
    budget = [MAX_NODES]
    try:
        return _convert(root, root.start_mark.line + 1, 0, budget)
    except _Refused as exc:
        raise RulesError(str(exc), source=source, line=exc.line) from None


def _convert(node: yaml.Node, line: int, depth: int, budget: list[int]) -> Node:
    budget[0] -= 1
    if budget[0] < 0:
        raise _Refused(
            f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?); "
            "write the values out",
            line,
        )
    if depth > MAX_DEPTH:
        raise _Refused(f"nested more than {MAX_DEPTH} levels deep", line)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(
                    "merge keys (<<) are not supported; write the settings out", key_line
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused("keys must be plain text", key_line)
            key = str(key_node.value)
            if key in out:
                raise _Refused(f"{key!r} is given twice (duplicate key)", key_line)
            out[key] = _convert(value_node, key_line, depth + 1, budget)
        return Node(out, line)
    if isinstance(node, yaml.SequenceNode):
        return Node(
            [_convert(item, item.start_mark.line + 1, depth + 1, budget) for item in node.value],
            line,
        )
    text = str(node.value)
    quoted = isinstance(node, yaml.ScalarNode) and node.style is not None
    if not quoted and text in _NULLS:
        return Node(None, line)
    return Node(text, line, quoted)


class Invalid(Exception):
    """Raised by ``Reader`` after it recorded a problem: skip the value being read."""


_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})


class Reader:
    """Typed reads of ``Node`` values that record every problem with its line.

    Each typed read returns the value or records a problem and raises ``Invalid``; wrap
    each setting in ``with reader.attempt():`` so reading goes on, and call ``finish``
    at the end to raise ``ConfigProblems`` naming them all.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[tuple[int | None, str]] = []

    # -- problems

    def problem(self, where: Node | int | None, message: str) -> None:
        """Record a problem at a node (or line) and go on."""
        line = where.line if isinstance(where, Node) else where
        self.problems.append((line, message))

    def fail(self, where: Node | int | None, message: str) -> Invalid:
        """Record a problem; returns the ``Invalid`` to raise."""
        self.problem(where, message)
        return Invalid(message)

    def attempt(self) -> suppress:
        """Skip the rest of a block after a problem was recorded in it."""
        return suppress(Invalid)

    def finish(self) -> None:
        """Raise ``ConfigProblems`` if any problem was recorded."""
        if self.problems:
            raise ConfigProblems(self.source, self.problems)

    # -- shapes

    def mapping(
        self,
        node: Node | None,
        what: str,
        allowed: Collection[str] | None = None,
    ) -> dict[str, Node]:
        """The entries of a mapping (``{}`` when absent or null). Keys not in ``allowed``
        are each recorded as a problem with a "did you mean" hint, and left out."""
        if node is None or node.value is None:
            return {}
        if not isinstance(node.value, dict):
            raise self.fail(node, f"{what} must be a mapping (key: value lines)")
        if allowed is None:
            return node.value
        self.unknown_keys(node.value, allowed, what)
        return {k: v for k, v in node.value.items() if k in allowed}

    def unknown_keys(self, entries: dict[str, Node], allowed: Collection[str], what: str) -> None:
        """Record a problem for each key of ``entries`` not in ``allowed``."""
        for key, value in entries.items():
            if key not in allowed:
                self.problem(value, f"unknown key {key!r} in {what}{did_you_mean(key, allowed)}")

    def sequence(self, node: Node | None, what: str) -> list[Node]:
        """The items of a list (``[]`` when absent or null); a single value is refused."""
        if node is None or node.value is None:
            return []
        if not isinstance(node.value, list):
            raise self.fail(node, f"{what} must be a list ([a, b] or '- item' lines)")
        return node.value

    # -- scalars

    def text(self, node: Node | None, what: str, *, required: bool = True) -> str | None:
        """The text as written, stripped; ``None`` for absent or empty unless ``required``."""
        if (
            node is None
            or node.value is None
            or (isinstance(node.value, str) and not node.value.strip())
        ):
            if required:
                raise self.fail(node, f"{what} must be set (not empty)")
            return None
        if not isinstance(node.value, str):
            raise self.fail(node, f"{what} must be text, not a {_shape(node)}")
        return node.value.strip()

    def boolean(self, node: Node | None, what: str) -> bool:
        """``true`` or ``false`` (also ``True``/``TRUE``...); anything else is refused,
        ``yes``, ``on`` and ``1`` included: one spelling, one meaning."""
        value = node.value if node is not None else None
        if isinstance(value, str) and not (node is not None and node.quoted):
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
        shown = (
            "nothing"
            if value is None
            else repr(value)
            if isinstance(value, str)
            else f"a {_shape(node)}"
        )
        raise self.fail(node, f"{what} must be true or false, got {shown}")

    def integer(self, node: Node | None, what: str, low: int, high: int) -> int:
        """A whole number written in decimal, from ``low`` to ``high``."""
        text = self.text(node, what)
        assert text is not None
        digits = text.removeprefix("-").removeprefix("+")
        if not digits.isdigit() or not digits.isascii():
            raise self.fail(node, f"{what} must be a whole number, got {text!r}")
        n = int(text)
        if not low <= n <= high:
            raise self.fail(node, f"{what} must be from {low} to {high}, got {n}")
        return n

    def duration(self, node: Node | None, what: str, low: float, high: float) -> float:
        """A duration (``48h``, ``7d``, ``1h30m``; ``0``), in seconds, within ``[low, high]``."""
        text = self.text(node, what)
        assert text is not None
        try:
            seconds = parse_duration(text, limit=math.inf)
        except ConfigError as exc:
            raise self.fail(node, f"{what}: {exc}") from None
        if not low <= seconds <= high:
            raise self.fail(
                node,
                f"{what} of {text} is out of range; it must be from "
                f"{format_duration(low)} to {format_duration(high)}",
            )
        return seconds

    def choice(self, node: Node | None, what: str, choices: Collection[str]) -> str:
        """One of ``choices``, as written."""
        text = self.text(node, what)
        assert text is not None
        if text not in choices:
            raise self.fail(
                node,
                f"{what}: {text!r} is not one of {', '.join(choices)}{did_you_mean(text, choices)}",
            )
        return text


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _shape(node: Node | None) -> str:
    if node is None or node.value is None:
        return "nothing"
    if isinstance(node.value, dict):
        return "mapping"
    if isinstance(node.value, list):
        return "list"
    return "text"
