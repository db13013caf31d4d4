"""Filling the store: from an embedded run, from a failures file, from Kafka.

- ``StoreSink`` wraps a runner's sink (``FileSink``): every record still goes to the
  files, and each failure is also written into the store as it is decided (a ``missed``
  one at once; a later ``late`` or ``withdrawn`` amends it), in batches.
- ``load_failures`` reads ``failures.jsonl`` lines into the store.
- ``KafkaStoreSink`` consumes ``carewatch.failures`` in a consumer group of its own and
  commits a batch's offsets only after the store committed the batch. The upsert is
  idempotent, so whatever is read again after a crash, a rebalance or a replay changes
  nothing: each failure ends up once, with its latest status.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from detectors.errors import InputError, RuntimeFault
from detectors.records import Outcome
from streams.deadletter import Rejected
from streams.store.failures import FailureRow, UpsertResult, parse_failure
from streams.store.store import Store

__all__ = ["KafkaStoreSink", "SinkCounts", "StoreSink", "load_failures"]


@dataclass
class SinkCounts:
    """What a sink has written so far."""

    records: int = 0
    new: int = 0
    amended: int = 0
    unchanged: int = 0
    auto_closed: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, result: UpsertResult, records: int) -> None:
        """Count one batch."""
        self.records += records
        self.new += result.new
        self.amended += result.amended
        self.unchanged += result.unchanged
        self.auto_closed += result.auto_closed

    def text(self) -> str:
        """One line for the terminal."""
        bad = f", {self.rejected:,} not failure records" if self.rejected else ""
        return (
            f"{self.records:,} records: {self.new:,} new failures, {self.amended:,} amended, "
            f"{self.unchanged:,} already known, {self.auto_closed:,} closed by Carewatch{bad}"
        )


class StoreSink:
    """A runner sink that writes failures into ``store`` besides handing every record to
    ``inner`` (the files). ``batch`` records are written per transaction."""

    def __init__(self, inner: Any, store: Store, batch: int = 2000) -> None:
        self.inner = inner
        self.store = store
        self.batch = batch
        self.counts = SinkCounts()
        self._pending: list[FailureRow] = []

    def add(self, o: Outcome) -> None:
        """Hand ``o`` on; queue it for the store if it is (or was) a failure."""
        self.inner.add(o)
        if o.failure_status is not None:
            self._pending.append(parse_failure(o.failure_json()))
            if len(self._pending) >= self.batch:
                self.flush()

    def reject(self, r: Rejected) -> None:
        """Hand a rejected input on to the files."""
        self.inner.reject(r)

    def settle(self, before: float) -> None:
        """Let the inner sink settle (``FileSink`` writes its held ``missed`` records)."""
        settle = getattr(self.inner, "settle", None)
        if settle is not None:
            settle(before)

    def flush(self) -> None:
        """Write the queued failures."""
        if self._pending:
            self.counts.add(self.store.upsert(self._pending), len(self._pending))
            self._pending = []

    def close(self, open_records: list[Outcome]) -> dict[tuple[str, str], int]:
        """Write what is queued, then close the inner sink."""
        self.flush()
        tally: dict[tuple[str, str], int] = self.inner.close(open_records)
        return tally


def load_failures(
    store: Store, lines: Iterable[bytes], origin: str, batch: int = 2000
) -> SinkCounts:
    """Write failure records (JSON lines) into ``store``. A line that is not a failure
    record is counted, and reported on stderr with its place and reason."""
    counts = SinkCounts()
    pending: list[FailureRow] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pending.append(parse_failure(line))
        except InputError as exc:
            counts.rejected += 1
            print(f"carewatch: {origin}:{n}: skipped: {exc}", file=sys.stderr)
            continue
        if len(pending) >= batch:
            counts.add(store.upsert(pending), len(pending))
            pending = []
    if pending:
        counts.add(store.upsert(pending), len(pending))
    return counts


@dataclass
class _Batch:
    """Rows read from Kafka, and the offsets to commit once they are in the store."""

    rows: list[FailureRow]
    read: int
    offsets: dict[Any, int]


class KafkaStoreSink:
    """Consumes the failures topic into the store, at least once, idempotently.

    ``consumer`` is a ``kafka.KafkaConsumer`` subscribed to the topic with auto-commit
    off. Each batch's offsets are committed (exactly those, not the consumer's position)
    only after the store committed the batch; while a batch is written (in a thread of
    its own), the next one is read. ``report`` gets a line now and then (every ``every``
    seconds) and one for every record that is not a failure record (topic, partition and
    offset, never its content).
    """

    def __init__(
        self,
        consumer: Any,
        store: Store,
        *,
        batch: int = 5000,
        report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
        every: float = 10.0,
    ) -> None:
        self.consumer = consumer
        self.store = store
        self.batch = batch
        self.report = report
        self.every = every
        self.counts = SinkCounts()
        # offsets written into the store whose commit the broker did not take yet (it was
        # away): committed with the next batch's, or when the sink is idle
        self._unsent: dict[Any, int] = {}
        self._retry_at = 0.0

    def _read(self, timeout: float) -> _Batch:
        polled = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=self.batch)
        rows: list[FailureRow] = []
        offsets: dict[Any, int] = {}
        n = 0
        for tp, messages in polled.items():
            for msg in messages:
                n += 1
                try:
                    rows.append(parse_failure(msg.value or b""))
                except InputError as exc:
                    self.counts.rejected += 1
                    self.report(
                        f"carewatch: {tp.topic}[{tp.partition}]@{msg.offset}: "
                        f"not a failure record, skipped: {exc}"
                    )
            if messages:
                offsets[tp] = messages[-1].offset + 1
        return _Batch(rows, n, offsets)

    def _write(self, batch: _Batch) -> UpsertResult:
        try:
            return self.store.upsert(batch.rows)
        except Exception as exc:
            # the offsets stay uncommitted: the batch is read again after a restart
            raise RuntimeFault(f"writing into the store failed: {exc}") from None

    def _commit(self, batch: _Batch, result: UpsertResult) -> None:
        self.counts.add(result, len(batch.rows))
        for tp, offset in batch.offsets.items():
            self._unsent[tp] = max(offset, self._unsent.get(tp, offset))
        self._send_offsets()

    def _send_offsets(self) -> None:
        """Commit the offsets of everything written into the store. When the broker is
        away (a restart), they are kept and sent with the next commit or while idle:
        the rows are in the store already, and a later offset covers an earlier one."""
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        if not self._unsent:
            return
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._unsent.items()}
        try:
            self.consumer.commit(offsets)
        except CommitFailedError:
            # the partitions moved to another sink meanwhile: it reads these records
            # again, and writing them again changes nothing
            self.report("carewatch: store sink: a rebalance came first; records will be re-read")
        except KafkaError as exc:
            self._retry_at = time.monotonic() + 1.0
            self.report(
                f"carewatch: store sink: committing offsets failed ({type(exc).__name__}); "
                "trying again (the records are in the store)"
            )
            return
        self._unsent = {}

    def poll_once(self, timeout: float = 1.0) -> int:
        """Read what is there (up to ``batch`` records), write it, commit its offsets.
        Returns the number of records read."""
        batch = self._read(timeout)
        if batch.read:
            self._commit(batch, self._write(batch))
        return batch.read

    def run(
        self, *, stop: Callable[[], bool] = lambda: False, idle_exit: float | None = None
    ) -> SinkCounts:
        """Poll until ``stop()`` (or ``idle_exit`` seconds without a record once
        partitions are assigned: joining a group can wait for a crashed member's session
        to time out, and that is not idleness). Reading overlaps writing."""
        from concurrent.futures import Future, ThreadPoolExecutor

        last_record = last_report = time.monotonic()
        pending: tuple[_Batch, Future[UpsertResult]] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer") as writer:
            try:
                while not stop():
                    batch = self._read(0.05 if pending else 1.0)
                    if pending is not None and (batch.read or pending[1].done()):
                        self._commit(pending[0], pending[1].result())
                        pending = None
                    if batch.read:
                        pending = (batch, writer.submit(self._write, batch))
                    now = time.monotonic()
                    if self._unsent and pending is None and now >= self._retry_at:
                        self._send_offsets()
                    if batch.read or pending is not None or not self.consumer.assignment():
                        last_record = now
                    elif idle_exit is not None and now - last_record >= idle_exit:
                        break
                    if now - last_report >= self.every:
                        self.report(f"carewatch: store sink: {self.counts.text()}")
                        last_report = now
            finally:
                if pending is not None:
                    self._commit(pending[0], pending[1].result())
                elif self._unsent:
                    self._send_offsets()
        return self.counts
