"""Typed, validated reads from a merged mapping tree, with errors at the site's line."""

from __future__ import annotations

import difflib
from typing import Any

from detectors.errors import RulesError
from streams.adapters._hl7_text import FieldPath, parse_field_path
from streams.adapters._yaml_tree import Path, YamlTree

__all__ = ["SettingsReader"]


class SettingsReader:
    """Typed, validated reads from the merged tree; errors point at the site's file."""

    def __init__(self, tree: YamlTree, defaults: dict[str, Any]) -> None:
        self.tree = tree
        self.defaults = defaults

    def error(self, path: Path, message: str) -> RulesError:
        name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        return self.tree.error(path, f"{name}: {message}" if name else message)

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
        """The mapping at ``path``; keys must be those of the defaults (or ``allowed``)."""
        value = self.get(path)
        if not isinstance(value, dict):
            raise self.error(path, "must be a mapping of settings")
        if allowed is None:
            known: Any = self.defaults
            for part in path:
                known = known.get(part) if isinstance(known, dict) else None
            allowed = tuple(known) if isinstance(known, dict) else ()
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error((*path, key), f"unknown setting{hint}")
        return value

    def optional_text(self, path: Path) -> str | None:
        """Text at ``path``; ``None`` when absent, null or blank."""
        value = self.get(path)
        if value is None:
            return None
        if not isinstance(value, str | int | float):
            raise self.error(path, f"must be text, got {value!r}")
        # A plain scalar that YAML read as a number or boolean keeps its text as written
        # ("0123", "NO").
        text = value if isinstance(value, str) else self.tree.raw.get(path, str(value))
        return text.strip() or None

    def text(self, path: Path) -> str:
        """Non-empty text at ``path``."""
        text = self.optional_text(path)
        if text is None:
            raise self.error(path, "must be set (not empty)")
        return text

    def optional_choice(self, path: Path, choices: tuple[str, ...]) -> str | None:
        """One of ``choices`` at ``path``, or ``None`` when absent."""
        value = self.optional_text(path)
        if value is not None and value not in choices:
            raise self.error(path, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def choice(self, path: Path, choices: tuple[str, ...]) -> str:
        """One of ``choices`` at ``path``."""
        value = self.optional_choice(path, choices)
        if value is None:
            raise self.error(path, f"must be one of {', '.join(choices)}")
        return value

    def boolean(self, path: Path) -> bool:
        value = self.get(path)
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, got {value!r}")
        return value

    def texts(self, path: Path) -> tuple[str, ...]:
        """A list of text values (a single value counts as a list of one)."""
        value = self.get(path)
        if value is None:
            return ()
        if not isinstance(value, list):
            return (self.text(path),)
        return tuple(self.text((*path, index)) for index in range(len(value)))

    def codes(self, path: Path) -> tuple[str, ...]:
        """Like ``texts``, upper-cased: codes are matched case-insensitively."""
        return tuple(code.upper() for code in self.texts(path))

    def code_table(self, path: Path, values: tuple[str, ...]) -> dict[str, str]:
        """``{value: [codes]}`` turned into ``{CODE: value}``; a code may appear once."""
        table = self.get(path)
        if table is None:
            return {}
        if not isinstance(table, dict):
            raise self.error(path, f"must map each of {', '.join(values)} to a list of codes")
        out: dict[str, str] = {}
        for value in table:
            if value not in values:
                raise self.error((*path, value), f"{value!r} is not one of {', '.join(values)}")
            for code in self.codes((*path, value)):
                if code in out and out[code] != value:
                    raise self.error(
                        (*path, value), f"code {code!r} is also listed under {out[code]}"
                    )
                out[code] = value
        return out

    def code_map(self, path: Path, values: tuple[str, ...]) -> dict[str, str]:
        """``{code: value}`` with each value one of ``values``; codes upper-cased."""
        table = self.get(path)
        if table is None:
            return {}
        if not isinstance(table, dict):
            raise self.error(path, "must map codes to values")
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
            raise self.error(path, "must be a mapping")
        return {str(key): self.text((*path, key)) for key in table}

    def field_paths(self, path: Path) -> tuple[FieldPath, ...]:
        out = []
        for index, text in enumerate(self.texts(path)):
            try:
                out.append(parse_field_path(text))
            except ValueError as exc:
                item = (*path, index) if isinstance(self.get(path), list) else path
                raise self.error(item, str(exc)) from None
        return tuple(out)
