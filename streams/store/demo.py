"""The demo's store: ``carewatch demo`` writes its failures into an SQLite file beside
its other files and makes a first account, so its output leads to a working worklist."""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path
from typing import Any

from streams.store.sink import StoreSink
from streams.store.store import WorklistQuery, open_store

__all__ = ["DemoStore"]


class DemoStore(StoreSink):
    """A ``StoreSink`` into ``out/carewatch.db`` with an admin account ``demo``."""

    def __init__(self, inner: Any, out: Path) -> None:
        self.path = out / "carewatch.db"
        super().__init__(inner, open_store(str(self.path), create=True))
        # a fresh password on every run: the account reaches only synthetic data
        self.password = secrets.token_urlsafe(12)
        self.store.add_user("demo", "admin", self.password)

    def instructions(self, command: str = "carewatch") -> str:
        """What to run to see the worklist (``command`` calls carewatch), and how to
        sign in."""
        total = self.store.worklist(WorklistQuery(state="all", per_page=1)).total
        self.store.close()
        return (
            f"\nThe worklist: {total:,} failures in {self.path}. Start it with\n"
            f"  {command} serve --store {shlex.quote(str(self.path))}\n"
            f"then open http://127.0.0.1:8080/ and sign in as demo, password {self.password}"
        )
