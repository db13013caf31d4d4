"""The listener's adapter memory on disk, as durable as the events derived from it.

The adapters remember each appointment's last start and status (so a later SIU^S13 can
say which start it moved) and which order each report answers. A listener that loses
that memory in a crash loses detections: a reschedule of an appointment booked before
the crash no longer knows its ``previous_start``. So every change is kept on disk before
the message that caused it is acknowledged:

- ``FILE`` holds a snapshot (``AdapterMemory.to_dict`` as JSON), replaced atomically
  (written beside, fsync-ed, renamed over);
- ``FILE.journal`` is an append-only log of the memory operations since that snapshot,
  one JSON line per message (``["a", appointment, version, start, status, place, rank]``
  for an appointment seen, place a name->value object and rank a pair or null; older
  journals end at status, ``["r", report, order]`` for a report's order), fsync-ed before the
  listener answers AA.

Opening replays the journal over the snapshot (the operations are deterministic, so the
memory comes back as it was) and folds it into a new snapshot; so does closing, and so
does a journal grown past ``compact_after`` lines. A last line cut short by a crash was
never fsync-ed whole, so its message was never acknowledged (the sender resends it): it
is ignored. Replaying a line twice (a crash between a snapshot and the journal's
truncation) changes nothing: an appointment version already seen is not applied again.
An exclusive lock keeps a second listener off the same files.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Any

import orjson

from detectors.errors import ConfigError, InputError
from streams.adapters.memory import (
    AdapterMemory,
    AppointmentMemory,
    AppointmentState,
    Place,
    Rank,
    ReportOrderMemory,
)

__all__ = ["MemoryFile"]

Operation = list[Any]


class _Appointments(AppointmentMemory):
    """An appointment memory that notes each ``observe`` for the journal."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        super().__init__(max_entries)
        self.noted: list[Operation] | None = None

    def observe(
        self,
        appointment_id: str,
        version: str | None,
        start: float | None,
        status: str | None,
        *,
        place: Place = (),
        rank: Rank | None = None,
    ) -> AppointmentState | None:
        if self.noted is not None:
            self.noted.append(
                [
                    "a",
                    appointment_id,
                    version,
                    start,
                    status,
                    dict(place),
                    None if rank is None else list(rank),
                ]
            )
        return super().observe(appointment_id, version, start, status, place=place, rank=rank)


class _ReportOrders(ReportOrderMemory):
    """A report-order memory that notes each ``remember`` for the journal."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        super().__init__(max_entries)
        self.noted: list[Operation] | None = None

    def remember(self, report_id: str, order_id: str) -> None:
        if self.noted is not None:
            self.noted.append(["r", report_id, order_id])
        super().remember(report_id, order_id)


class MemoryFile:
    """An ``AdapterMemory`` (``memory``) kept in ``path`` and ``path.journal``.

    Use ``MemoryFile.open(path)``; call ``commit()`` after each message is converted
    and before it is acknowledged (it appends and fsyncs what the message changed), and
    ``close()`` at shutdown. Not thread-safe: one thread converts and commits.
    """

    def __init__(
        self,
        path: Path,
        memory: AdapterMemory,
        appointments: _Appointments,
        reports: _ReportOrders,
        lock: IO[bytes],
        compact_after: int,
    ) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self.memory = memory
        self._appointments = appointments
        self._reports = reports
        self._lock = lock
        self._noted: list[Operation] = []
        appointments.noted = reports.noted = self._noted
        self._compact_after = compact_after
        self._journal: IO[bytes] | None = None
        self._lines = 0

    @classmethod
    def open(cls, path: str | Path, *, compact_after: int = 50_000) -> MemoryFile:
        """Load (snapshot, then journal) or create the memory at ``path``, and fold the
        journal into a fresh snapshot. Raises ``ConfigError`` when the files cannot be
        read or written, or another process holds them."""
        path = Path(path)
        lock_path = path.with_name(path.name + ".lock")
        try:
            lock = open(lock_path, "ab")  # noqa: SIM115 (held open as the lock)
        except OSError as exc:
            raise ConfigError(f"cannot use the adapter memory {path}: {_why(exc)}") from None
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise ConfigError(
                f"the adapter memory {path} is in use by another listener; give each "
                "listener its own --memory"
            ) from None
        try:
            appointments, reports = _load(path)
            memory = AdapterMemory(appointments, reports)
            store = cls(path, memory, appointments, reports, lock, compact_after)
            store._compact()
        except BaseException:
            lock.close()
            raise
        return store

    def commit(self) -> None:
        """Append what changed since the last commit as one journal line and fsync it.
        Raises ``OSError`` when it cannot (then the message must not be acknowledged)."""
        if not self._noted:
            return
        line = orjson.dumps(self._noted) + b"\n"
        self._noted.clear()
        journal = self._journal_file()
        journal.write(line)
        journal.flush()
        os.fsync(journal.fileno())
        self._lines += 1
        if self._lines >= self._compact_after:
            self._compact()

    def close(self) -> None:
        """Fold the journal into the snapshot and release the files."""
        try:
            self.commit()
            self._compact()
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            self._lock.close()

    def _journal_file(self) -> IO[bytes]:
        if self._journal is None:
            self._journal = open(self.journal_path, "ab")  # noqa: SIM115 (kept open)
        return self._journal

    def _compact(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(temporary, "wb") as f:
                f.write(orjson.dumps(self.memory.to_dict()))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
            _fsync_directory(self.path.parent)
            # Only once the snapshot holds everything may the journal be emptied.
            journal = self._journal_file()
            journal.truncate(0)
            journal.flush()
            os.fsync(journal.fileno())
        except OSError as exc:
            raise ConfigError(f"cannot write the adapter memory {self.path}: {_why(exc)}") from None
        self._lines = 0


def _load(path: Path) -> tuple[_Appointments, _ReportOrders]:
    appointments, reports = _Appointments(), _ReportOrders()
    try:
        snapshot = path.read_bytes() if path.exists() else b""
        journal_path = path.with_name(path.name + ".journal")
        journal = journal_path.read_bytes() if journal_path.exists() else b""
    except OSError as exc:
        raise ConfigError(f"cannot read the adapter memory {path}: {_why(exc)}") from None
    if snapshot:
        try:
            loaded = AdapterMemory.from_dict(orjson.loads(snapshot))
        except (orjson.JSONDecodeError, InputError) as exc:
            raise ConfigError(f"cannot read the adapter memory {path}: {exc}") from None
        appointments = _Appointments.from_dict(loaded.appointments.to_dict())  # type: ignore[assignment]
        reports = _ReportOrders.from_dict(loaded.report_orders.to_dict())  # type: ignore[assignment]
    lines = journal.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            operations = orjson.loads(line)
            for op in operations:
                if op[0] == "a":
                    place = tuple(op[5].items()) if len(op) > 5 and op[5] else ()
                    rank = (int(op[6][0]), float(op[6][1])) if len(op) > 6 and op[6] else None
                    appointments.observe(op[1], op[2], op[3], op[4], place=place, rank=rank)
                elif op[0] == "r":
                    reports.remember(op[1], op[2])
                else:
                    raise ValueError(f"unknown operation {op[0]!r}")
        except (orjson.JSONDecodeError, ValueError, IndexError, TypeError, AttributeError) as exc:
            if number == len(lines):  # the last line, cut short by a crash
                break
            raise ConfigError(
                f"the adapter memory journal {path}.journal is damaged at line {number}: {exc}"
            ) from None
    return appointments, reports


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
