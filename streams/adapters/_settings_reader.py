"""Typed, validated reads from a merged mapping tree, with errors at the site's line.

Every read records a problem and returns a neutral value instead of stopping, so one run
names every mistake of the file; ``finish`` raises them together (``ConfigProblems``).
"""

from __future__ import annotations

from typing import Any

from detectors.config_reader import ConfigProblems, did_you_mean
from detectors.errors import RulesError
from streams.adapters._yaml_tree import Path, YamlTree
from streams.adapters.hl7.text import FieldPath, parse_field_path

__all__ = ["SettingsReader"]

_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})


class SettingsReader:
    """Typed, validated reads from the merged tree; problems point at the site's file."""

    def __init__(self, tree: YamlTree, defaults: dict[str, Any]) -> None:
        self.tree = tree
        self.defaults = defaults
        self.problems: list[tuple[int | None, str]] = []

    def error(self, path: Path, message: str) -> RulesError:
        """A ``RulesError`` for the setting at ``path`` (named in the message)."""
        return self.tree.error(path, self._named(path, message))

    def report(self, path: Path, message: str) -> None:
        """Record a problem with the setting at ``path`` and go on."""
        self.problems.append((self.tree.line_of(path), self._named(path, message)))

    def finish(self) -> None:
        """Raise ``ConfigProblems`` naming every recorded problem, if any."""
        if self.problems:
            raise ConfigProblems(self.tree.source, self.problems)

    @staticmethod
    def _named(path: Path, message: str) -> str:
        name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        return f"{name}: {message}" if name else message

    def get(self, path: Path) -> Any:
        node: Any = self.tree.data
        for part in path:
            if isinstance(node, dict):
                node = node.get(part) if isinstance(part, str) else None
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return None
        return node

    def section(self, path: Path, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The mapping at ``path`` (``{}`` after a problem); keys must be those of the
        defaults (or ``allowed``)."""
        value = self.get(path)
        if not isinstance(value, dict):
            self.report(path, "must be a mapping of settings")
            return {}
        if allowed is None:
            known: Any = self.defaults
            for part in path:
                known = known.get(part) if isinstance(known, dict) else None
            allowed = tuple(known) if isinstance(known, dict) else ()
        for key in value:
            if key not in allowed:
                self.report((*path, key), f"unknown setting{did_you_mean(key, allowed)}")
        return {k: v for k, v in value.items() if k in allowed}

    def optional_text(self, path: Path) -> str | None:
        """Text at ``path`` as written; ``None`` when absent, null or blank."""
        value = self.get(path)
        if value is None:
            return None
        if not isinstance(value, str):
            kind = "a list" if isinstance(value, list) else "a mapping"
            self.report(path, f"must be one value (text), not {kind}")
            return None
        return value.strip() or None

    def text(self, path: Path) -> str:
        """Non-empty text at ``path`` (``""`` after a problem)."""
        value = self.get(path)
        text = self.optional_text(path)
        if text is None:
            if value is None or isinstance(value, str):
                self.report(path, "must be set (not empty)")
            return ""
        return text

    def optional_choice(self, path: Path, choices: tuple[str, ...]) -> str | None:
        """One of ``choices`` at ``path``, or ``None`` when absent (or after a problem)."""
        value = self.optional_text(path)
        if value is not None and value not in choices:
            self.report(
                path, f"{value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}"
            )
            return None
        return value

    def choice(self, path: Path, choices: tuple[str, ...]) -> str:
        """One of ``choices`` at ``path`` (the first choice after a problem)."""
        if self.get(path) is None:
            self.report(path, f"must be one of {', '.join(choices)}")
            return choices[0]
        return self.optional_choice(path, choices) or choices[0]

    def boolean(self, path: Path) -> bool:
        """``true`` or ``false``; ``yes``, ``on``, ``1`` and the like are refused."""
        value = self.get(path)
        if value in _TRUE:
            return True
        if value not in _FALSE:
            self.report(path, f"must be true or false, got {value!r}")
        return False

    def texts(self, path: Path) -> tuple[str, ...]:
        """A list of text values (absent or null: none); a single value is refused,
        since every such setting is documented as a list."""
        value = self.get(path)
        if value is None:
            return ()
        if not isinstance(value, list):
            shown = repr(value) if isinstance(value, str) else "a mapping"
            self.report(path, f"must be a list, e.g. [A, B] (got {shown})")
            return ()
        out = []
        for index in range(len(value)):
            text = self.text((*path, index))
            if text:
                out.append(text)
        return tuple(out)

    def codes(self, path: Path) -> tuple[str, ...]:
        """Like ``texts``, upper-cased: codes are matched case-insensitively."""
        return tuple(code.upper() for code in self.texts(path))

    def code_table(self, path: Path, values: tuple[str, ...]) -> dict[str, str]:
        """``{value: [codes]}`` turned into ``{CODE: value}``; a code may appear once."""
        table = self.get(path)
        if table is None:
            return {}
        if not isinstance(table, dict):
            self.report(path, f"must map each of {', '.join(values)} to a list of codes")
            return {}
        out: dict[str, str] = {}
        for value in table:
            if value not in values:
                self.report(
                    (*path, value),
                    f"{value!r} is not one of {', '.join(values)}{did_you_mean(value, values)}",
                )
                continue
            for code in self.codes((*path, value)):
                if code in out and out[code] != value:
                    self.report((*path, value), f"code {code!r} is also listed under {out[code]}")
                out[code] = value
        return out

    def code_map(self, path: Path, values: tuple[str, ...]) -> dict[str, str]:
        """``{code: value}`` with each value one of ``values``; codes upper-cased."""
        table = self.get(path)
        if table is None:
            return {}
        if not isinstance(table, dict):
            self.report(path, "must map codes to values")
            return {}
        out = {}
        for code in table:
            value = self.choice((*path, code), values)
            out[str(code).strip().upper()] = value
        return out

    def text_map(self, path: Path) -> dict[str, str]:
        """``{name: text}`` (column names, type values) kept as written."""
        table = self.get(path)
        if table is None:
            return {}
        if not isinstance(table, dict):
            self.report(path, "must be a mapping")
            return {}
        return {str(key): self.text((*path, key)) for key in table}

    def field_paths(self, path: Path) -> tuple[FieldPath, ...]:
        """A list of HL7 field paths (``SEG-F[.C[.S]]``), each checked."""
        out = []
        for index, text in enumerate(self.texts(path)):
            try:
                out.append(parse_field_path(text))
            except ValueError as exc:
                self.report((*path, index), str(exc))
        return tuple(out)
