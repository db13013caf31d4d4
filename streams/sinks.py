"""Where the embedded runner's records go.

- ``FileSink`` streams into a directory: ``outcomes.jsonl`` (every decided opportunity,
  in the order decided), ``failures.jsonl`` (every failure, including withdrawn ones),
  ``open.jsonl`` (undecided at the end) and ``rejected.jsonl`` (the dead letter). Only
  ``missed`` records wait in memory (one may still turn ``late``): memory stays flat
  however long the input.
- ``MemorySink`` keeps the latest record per ``failure_id``, for tests and anyone
  embedding Carewatch in Python.

The same records in the same order always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Protocol

import orjson

from detectors.errors import ConfigError
from detectors.records import FAILURE_OUTCOMES, Outcome
from streams.deadletter import Rejected

__all__ = ["FileSink", "MemorySink", "Sink"]


class Sink(Protocol):
    """Where a runner's records go."""

    def add(self, o: Outcome) -> None:
        """Take a record; a later record with the same ``failure_id`` supersedes it."""

    def reject(self, r: Rejected) -> None:
        """Take a rejected input."""

    def close(self, open_records: list[Outcome]) -> dict[tuple[str, str], int]:
        """Flush; return the tally of latest records by (detector, outcome)."""


class MemorySink:
    """Keeps the latest record per ``failure_id`` and every reject, in memory."""

    def __init__(self) -> None:
        self.latest: dict[str, Outcome] = {}
        self.rejected: list[Rejected] = []
        self.open: list[Outcome] = []

    def add(self, o: Outcome) -> None:
        self.latest[o.failure_id] = o

    def reject(self, r: Rejected) -> None:
        self.rejected.append(r)

    def close(self, open_records: list[Outcome]) -> dict[tuple[str, str], int]:
        self.open = open_records
        tally: dict[tuple[str, str], int] = {}
        for o in self.latest.values():
            k = (o.detector, o.outcome)
            tally[k] = tally.get(k, 0) + 1
        return tally

    def failures(self) -> list[Outcome]:
        """Records that are or were failures, sorted by (detector, failure_id)."""
        found = [o for o in self.latest.values() if o.failure_status is not None]
        return sorted(found, key=lambda o: (o.detector, o.failure_id))


class FileSink:
    """Streams records into ``out_dir`` (created if needed); see the module docstring."""

    NAMES = ("failures", "outcomes", "open", "rejected")

    def __init__(self, out_dir: Path) -> None:
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"output directory {out_dir} is a file; name a directory")
        self.files = {name: out_dir / f"{name}.jsonl" for name in self.NAMES}
        self._f: dict[str, IO[bytes]] = {}
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for name, path in self.files.items():
                # 1 MiB buffers: a run writes one line per opportunity, and with the default
                # 8 KiB each file took a write system call every ~16 records (~2% of a run)
                self._f[name] = path.open("wb", buffering=1 << 20)
        except OSError as exc:
            for f in self._f.values():
                f.close()
            raise ConfigError(f"cannot write into {out_dir}: {exc.strerror or exc}") from None
        self._outcomes, self._failures = self._f["outcomes"], self._f["failures"]
        self._missed: dict[str, Outcome] = {}
        self._tally: dict[tuple[str, str], int] = {}
        self._dumps = orjson.dumps

    def add(self, o: Outcome) -> None:
        if o.amended_from is None:
            if o.outcome == "missed":
                self._missed[o.failure_id] = o  # may still turn late: written at the end
                return
        elif self._missed.pop(o.failure_id, None) is not None:
            # the missed record it amends was never written: nothing to take back
            self._write(o, replaces=False)
            return
        self._write(o)

    def _write(self, o: Outcome, replaces: bool = True) -> None:
        k = (o.detector, o.outcome)
        tally = self._tally
        tally[k] = tally.get(k, 0) + 1
        if replaces and o.amended_from is not None:  # the record it amends leaves the tally
            before = (o.detector, o.amended_from)
            tally[before] = tally.get(before, 0) - 1
        self._outcomes.write(o.outcome_json() + b"\n")
        if o.outcome in FAILURE_OUTCOMES or o.amended_from in FAILURE_OUTCOMES:
            self._failures.write(o.failure_json() + b"\n")  # what ``failure_status`` tells

    def reject(self, r: Rejected) -> None:
        self._f["rejected"].write(self._dumps(r.to_dict()) + b"\n")

    def settle(self, before: float) -> None:
        """Write the missed records whose deadline is before ``before`` (epoch seconds):
        the engine no longer watches them, so they can no longer turn late."""
        done = [o for o in self._missed.values() if o.due_at is not None and o.due_at < before]
        for o in sorted(done, key=lambda o: (o.detected_at, o.failure_id)):
            del self._missed[o.failure_id]
            self._write(o)

    def close(self, open_records: list[Outcome]) -> dict[tuple[str, str], int]:
        for o in sorted(self._missed.values(), key=lambda o: (o.detected_at, o.failure_id)):
            self._write(o)
        self._missed.clear()
        for o in open_records:
            self._f["open"].write(o.outcome_json() + b"\n")
        for f in self._f.values():
            f.close()
        return self._tally
