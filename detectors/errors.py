"""The one exception tree of Carewatch.

::

    CarewatchError                 every error Carewatch raises on purpose
    ├── ConfigError                a setting, rules file or command-line value is unusable
    │   └── RulesError             a rules/mapping YAML file is invalid (carries file and line)
    ├── InputError                 an input record cannot become a canonical event
    │   └── EventError             a canonical event breaks the contract (carries the field)
    └── RuntimeFault               a runtime dependency (broker, port, file) failed

Messages say what to do, not just what went wrong. ``InputError`` is normally caught by
the readers and turned into a dead-letter record; it reaches the user only when nothing
at all could be read.
"""

from __future__ import annotations

__all__ = [
    "CarewatchError",
    "ConfigError",
    "EventError",
    "InputError",
    "RulesError",
    "RuntimeFault",
]


class CarewatchError(Exception):
    """Root of every error Carewatch raises deliberately."""


class ConfigError(CarewatchError):
    """A setting, command-line value or configuration file cannot be used."""


class RulesError(ConfigError):
    """A rules or mapping file is invalid; ``source`` and ``line`` point at the offending spot."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = source
        if line is not None:
            where = f"{source}:{line}" if source else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


class InputError(CarewatchError):
    """An input record (a JSON line, an HL7 message, a FHIR resource) cannot be used."""


class EventError(InputError):
    """A canonical event breaks the event contract; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class RuntimeFault(CarewatchError):
    """Something outside Carewatch (broker, socket, file system) failed."""
