"""The operations store: failures, their Carewatch history, people's actions, accounts
and the audit trail, in SQLite (a file, the embedded default) or PostgreSQL.

``open_store(url)`` is the entry point; ``carewatch store init URL`` creates or upgrades
the schema (``streams.store.schema``). Filled by ``carewatch run --store`` and
``carewatch kafka sink``; read by ``carewatch serve`` (``streams.web``).
"""

from __future__ import annotations

from streams.store.accounts import ROLES, User
from streams.store.failures import FailureRow, UpsertResult, parse_failure
from streams.store.schema import SCHEMA_VERSION
from streams.store.store import (
    RESOLUTIONS,
    Conflict,
    Forbidden,
    Store,
    WorklistPage,
    WorklistQuery,
    open_store,
)

__all__ = [
    "RESOLUTIONS",
    "ROLES",
    "SCHEMA_VERSION",
    "Conflict",
    "FailureRow",
    "Forbidden",
    "Store",
    "UpsertResult",
    "User",
    "WorklistPage",
    "WorklistQuery",
    "open_store",
    "parse_failure",
]
