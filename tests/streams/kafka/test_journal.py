"""The worker's journal: what a prune keeps, what a chunk round trip preserves, and when
a partition decides a prune is worth its rebuild."""

from __future__ import annotations

import orjson

from detectors.events import event_from_dict, format_time, parse_time
from detectors.rules import load_settings
from streams.kafka import journal
from streams.kafka.journal import EVENT, TICK, Entry
from streams.kafka.partitions import PatientPartition
from streams.kafka.wire import control_message, parse_control

DAY = 86400.0
T0 = parse_time("2026-03-02T09:00:00+00:00")
HORIZON = 10 * DAY


def _iso(t: float) -> str:
    return format_time(t)


def event(eid: str, etype: str, t: float, patient: str, **attrs: str) -> tuple[Entry, bytes]:
    raw = orjson.dumps(
        {
            "id": eid,
            "type": etype,
            "time": _iso(t),
            "patient": patient,
            "refs": {"appointment": f"A-{eid}"},
            "attrs": attrs,
        }
    )
    return journal.event_entry(len(eid), event_from_dict(orjson.loads(raw)), raw, HORIZON), raw


def test_entries_know_when_they_expire_and_whose_death_they_record() -> None:
    plain, _ = event("e1", "order.placed", T0, "P1")
    booked, _ = event("e2", "appointment.booked", T0, "P2", start=_iso(T0 + 30 * DAY))
    died, _ = event("e3", "patient.died", T0, "P3")
    assert plain.until == T0 + HORIZON
    assert booked.until == T0 + 30 * DAY + HORIZON  # a future appointment keeps it
    assert booked.contact == "P2" and booked.died is None
    assert died.died == "P3" and plain.died is None and plain.contact is None


def test_prune_keeps_deaths_and_contacts_of_the_dead_and_says_when_next() -> None:
    old, _ = event("e1", "order.placed", T0, "P1")
    contact_of_dead, _ = event("e2", "patient.notified", T0, "P2", channel="sms")
    contact_of_living, _ = event("e3", "patient.notified", T0, "P3", channel="sms")
    died, _ = event("e4", "patient.died", T0 + DAY, "P2")
    recent, _ = event("e5", "order.placed", T0 + 5 * DAY, "P1")
    ticks = [Entry(10, TICK, T0), Entry(11, TICK, T0 + DAY)]
    entries = [old, contact_of_dead, contact_of_living, died, recent, *ticks]
    kept, next_due = journal.prune(entries, T0 + HORIZON + DAY, HORIZON)
    assert kept == [contact_of_dead, died, recent, ticks[1]]  # the latest tick stays
    assert next_due == recent.until


def test_a_chunk_round_trip_keeps_what_pruning_needs() -> None:
    entries = [
        event("e1", "patient.died", T0, "P1")[0],
        event("e2", "appointment.booked", T0, "P1", start=_iso(T0 + 3 * DAY))[0],
        Entry(9, TICK, T0 + 60.0),
    ]
    chunk = journal.decode_chunk(journal.encode_chunk(entries, 9), HORIZON)
    assert (chunk.last, chunk.entries, chunk.pruned_at) == (9, entries, None)
    piece = journal.decode_chunk(journal.encode_chunk(entries, 9, pruned_at=40, pieces=3), HORIZON)
    assert (piece.last, piece.entries, piece.pruned_at, piece.pieces) == (9, entries, 40, 3)
    assert journal.parse_chunk_key(journal.chunk_key(2, 7, pruned_at=40)) == (2, 7)


def test_a_partition_prunes_only_once_a_quarter_of_its_journal_has_expired() -> None:
    st = PatientPartition(
        0, load_settings(None), allowed_lateness=0.0, session_partitions=0, horizon=HORIZON
    )

    def feed(offset: int, t: float) -> None:
        raw = orjson.dumps(
            {
                "id": f"o{offset}",
                "type": "order.placed",
                "time": _iso(t),
                "patient": "P1",
                "refs": {"order": f"O{offset}"},
                "attrs": {"priority": "routine"},
            }
        )
        st.begin_batch()
        st.handle_event(offset, b"P1", raw)
        st.end_batch()

    def advance(offset: int, t: float) -> None:
        value, _ = control_message("advance", t)
        st.begin_batch()
        st.handle_control(offset, parse_control("advance", value))
        st.end_batch()

    for i in range(8):  # eight days of one order a day
        feed(i, T0 + i * DAY)
    advance(100, T0 + HORIZON + 0.5 * DAY)  # one of eight expired: not worth a rebuild
    assert sum(e.kind == EVENT for e in st.entries) == 8
    advance(101, T0 + HORIZON + 2.5 * DAY)  # three of eight: pruned
    assert sum(e.kind == EVENT for e in st.entries) == 5
