"""The places where the worker reaches inside faust-streaming, in one module.

faust gives no public way to do three things the worker needs, so it relies on these
private parts of faust's aiokafka driver (``tests/streams/kafka/test_faust_seams.py``
fails loudly if an upgrade changes any of them):

- ``Producer._settings_extra()``: the producer's extra aiokafka settings, to turn
  idempotence on outside transactions (``IdempotentProducer``);
- ``Consumer._acked``, ``_acked_index``, ``_gap``, ``_committed_offset`` and
  ``_new_offset(tp)``: the bookkeeping from which faust decides which offset to commit
  (``Consumer`` below corrects it), and ``_committed_offset`` as the worker's copy of
  the group's offsets (``committed_copy``);
- ``Consumer._commit_offsets(offsets)``: commit given offsets now, used on revocation
  (``commit_now``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.types import TP

__all__ = ["Consumer", "IdempotentProducer", "commit_now", "committed_copy"]


class IdempotentProducer(AIOKafkaProducer):
    """faust's aiokafka producer with idempotence on (acks=all, which we use anyway).

    faust turns idempotence on only inside transactions, which the worker does not use;
    without it a send retried across a broker restart can be written twice."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Consumer(AIOKafkaConsumer):
    """faust's aiokafka consumer, counting each acknowledged offset once.

    faust commits the end of the first run of consecutive offsets in its list of
    acknowledged offsets, after adding the "gaps" (offsets it never delivered, noticed
    when a later one arrives). The worker acknowledges such offsets too, once it has read
    and processed them itself (``streams.kafka.refill``); an offset then sits in the
    list twice, every run of consecutive offsets breaks at the first repeat, and the
    committed offset crept forward by one offset a commit (once a second) over the
    thousands of offsets of a rebalance's hole: a takeover or restart would have
    processed them all again. faust's own gap step can add an offset twice as well (it
    keeps the last offset of the gap it has just added). Here the gaps are added
    without repeats, and the list holds each offset once.

    Nothing is committed until the committed offset itself (the next to read) is
    acknowledged. faust let it be one short (treating 0 as "none"), so a commit could
    pass over a message the worker had not processed yet: a restart then skipped it."""

    def _new_offset(self, tp: TP) -> int | None:
        acked: list[int] = self._acked[tp]
        if not acked:
            return None
        highest = max(acked)
        gaps = self._gap[tp]
        if gaps:
            upto = highest + 1
            folded: list[int] = []
            for interval in sorted(gaps.overlap(0, highest), key=lambda i: i.begin):
                folded.extend(range(interval.begin, interval.end))
                upto = max(upto, interval.end)
            if folded:
                acked.extend(folded)
                gaps.chop(0, upto)
        committed = self._committed_offset[tp]
        offsets = sorted(set(acked) if committed is None else {o for o in acked if o >= committed})
        acked[:] = offsets
        if not offsets or (committed is not None and offsets[0] > committed):
            return None  # the next offset to commit has not been acknowledged
        end = 1
        while end < len(offsets) and offsets[end] == offsets[end - 1] + 1:
            end += 1
        del acked[:end]
        self._acked_index[tp].difference_update(offsets[:end])
        return offsets[end - 1] + 1


def committed_copy(consumer: Any) -> Mapping[TP, int | None]:
    """faust's copy of the group's committed offsets (next offset to read) for the
    partitions this worker holds; empty while a rebalance is under way."""
    return getattr(consumer, "_committed_offset", {})


async def commit_now(consumer: Any, offsets: Mapping[TP, int]) -> bool:
    """Commit ``offsets`` (next offset to read, per partition) for the group now."""
    return bool(await consumer._commit_offsets(offsets))
