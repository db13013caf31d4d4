"""The per-partition logic of the Kafka worker, without Kafka: the same events split
over partitions, with the clinic sessions re-keyed, give the embedded runner's outcomes;
a crash at any batch changes nothing and publishes no failure twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from detectors.rules import load_settings
from streams.adapters import iter_records
from streams.runner import Runner
from streams.sinks import MemorySink
from streams.synthetic import DeliveryFaults, GeneratorConfig, deliver, generate
from tests.streams.kafka.sim import Cluster

# detected_at is the watermark at decision time, which is per partition on Kafka, and
# the summary of a missed failure quotes how overdue it was at that moment.
_VARIES = ("detected_at", "summary")


def project(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in _VARIES}


def week(seed: int = 3) -> tuple[list[bytes], float]:
    gen = generate(GeneratorConfig(days=7, seed=seed, scale="small"))
    faults = DeliveryFaults(shuffle_within=600.0, duplicates=0.02, malformed=0.01)
    lines = list(deliver(gen.records, faults, seed=seed))
    last = max(t for t, _, _ in gen.records)
    return lines, last + 60 * 86400.0


def embedded(lines: list[bytes], as_of: float) -> tuple[dict[str, Any], dict[str, Any], int]:
    sink = MemorySink()
    runner = Runner(load_settings(None), sink)
    runner.feed(iter_records(b"".join(lines), "jsonl", origin="x"))
    runner.finish(as_of)
    outcomes = {o.failure_id: o.to_outcome_dict() for o in sink.latest.values()}
    failures = {o.failure_id: o.to_failure_dict() for o in sink.failures()}
    return outcomes, failures, len(sink.rejected)


@pytest.fixture(scope="module")
def data() -> tuple[list[bytes], float, dict[str, Any], dict[str, Any], int]:
    lines, as_of = week()
    return (lines, as_of, *embedded(lines, as_of))


@pytest.mark.parametrize("partitions", [1, 3, 4])
def test_partitioned_outcomes_equal_the_embedded_runner(data, partitions: int) -> None:
    lines, as_of, outcomes, failures, rejected = data
    c = Cluster(load_settings(None), partitions=partitions)
    c.publish_lines(lines)
    c.drain()
    c.control("advance", as_of)
    c.drain()
    got = c.latest("outcomes")
    assert {k: project(v) for k, v in got.items()} == {k: project(v) for k, v in outcomes.items()}
    assert {k: project(v) for k, v in c.latest("failures").items()} == {
        k: project(v) for k, v in failures.items()
    }
    assert len(c.rejected) == rejected
    assert any(v["detector"] == "clinic-overbooked" for v in failures.values())


def test_a_crash_at_every_few_batches_changes_nothing(data) -> None:
    lines, as_of, outcomes, _, _ = data
    c = Cluster(load_settings(None), partitions=3)
    c.publish_lines(lines)
    rounds = 0
    while True:
        done = 0
        for p in range(3):
            done += c.step("events", p, 40 + rounds % 5)
            done += c.step("sessions", p, 40 + rounds % 3)
        rounds += 1
        if rounds % 3 == 0:
            c.commit()
        if rounds % 7 == 0:
            c.crash()  # lose state, go back to the last commit (outputs stay published)
        if not done:
            break
    c.control("advance", as_of)
    c.drain()
    assert {k: project(v) for k, v in c.latest("outcomes").items()} == {
        k: project(v) for k, v in outcomes.items()
    }
    seen = Counter((o.key, orjsonloads(o.value)["status"]) for o in c.failures)
    assert max(seen.values()) == 1


def orjsonloads(b: bytes) -> Any:
    import orjson

    return orjson.loads(b)


@pytest.fixture(scope="module")
def eight_weeks() -> tuple[list[bytes], float, dict[str, Any], dict[str, Any]]:
    """Long enough a run for the journal to be pruned, and what the embedded runner makes
    of it."""
    gen = generate(GeneratorConfig(days=56, seed=5, scale="small"))
    lines = list(deliver(gen.records, DeliveryFaults(shuffle_within=600.0), seed=5))
    as_of = max(t for t, _, _ in gen.records) + 60 * 86400.0
    outcomes, failures, _ = embedded(lines, as_of)
    return lines, as_of, outcomes, failures


def assert_same_as_embedded(c: Cluster, outcomes: dict[str, Any], failures: dict[str, Any]) -> None:
    """The cluster's final outcomes and failures are the embedded runner's, and no
    failure was published twice with the same status."""
    assert {k: project(v) for k, v in c.latest("outcomes").items()} == {
        k: project(v) for k, v in outcomes.items()
    }
    assert {k: project(v) for k, v in c.latest("failures").items()} == {
        k: project(v) for k, v in failures.items()
    }
    seen = Counter((o.key, orjsonloads(o.value)["status"]) for o in c.failures)
    assert max(seen.values()) == 1


def test_pruning_the_journal_changes_nothing(eight_weeks) -> None:
    lines, as_of, outcomes, failures = eight_weeks
    c = Cluster(load_settings(None), partitions=2)
    c.publish_lines(lines)
    c.drain(200)
    before = sum(len(st.entries) for st in c.states.values())
    assert before < len(lines)  # some entries were pruned
    c.commit()
    c.crash()  # and a rebuild from the pruned journal carries on the same way
    c.control("advance", as_of)
    c.drain()
    assert_same_as_embedded(c, outcomes, failures)


def test_a_crash_after_a_prune_and_before_the_commit_changes_nothing(eight_weeks) -> None:
    """A prune rewrites the journal as of the latest processed offset. If the worker
    dies before those offsets are committed, consumption resumes from an earlier offset,
    whose state the pruned journal no longer holds: the restore must carry on from where
    the prune was made, not rebuild an earlier state from the pruned entries."""
    lines, as_of, outcomes, failures = eight_weeks
    c = Cluster(load_settings(None), partitions=2)
    c.publish_lines(lines)
    for p in range(2):
        c.step("events", p, 500)
    c.commit()  # the last commit before the crash: early on
    c.drain(200)
    assert sum(len(st.entries) for st in c.states.values()) < len(lines)  # pruned
    c.crash()
    c.control("advance", as_of)
    c.drain()
    assert_same_as_embedded(c, outcomes, failures)


class _Killed(Exception):
    pass


def test_a_crash_half_way_through_a_prune_leaves_the_previous_journal_whole(
    eight_weeks, monkeypatch
) -> None:
    """The pieces of a pruned journal are written before the chunks they replace are
    deleted, under keys of their own: a worker killed after some of them resumes from
    the journal as it was before the prune."""
    from streams.kafka import journal

    lines, as_of, outcomes, failures = eight_weeks
    monkeypatch.setattr(journal, "MAX_CHUNK_BYTES", 3000)  # so that a prune writes pieces
    c = Cluster(load_settings(None), partitions=2)
    c.publish_lines(lines)
    for p in range(2):
        c.step("events", p, 500)
    c.commit()
    write = c._write
    cut: list[int] = []

    def write_until_killed(topic: str, writes: dict[str, bytes | None]) -> None:
        pieces = [k for k in writes if k.count(".") == 2]
        if not cut and len(pieces) > 2:
            write(topic, dict(list(writes.items())[:2]))  # two pieces land, then the kill
            cut.append(len(pieces))
            raise _Killed
        write(topic, writes)

    monkeypatch.setattr(c, "_write", write_until_killed)
    with pytest.raises(_Killed):
        c.drain(200)
    c.crash()
    c.drain(200)
    c.control("advance", as_of)
    c.drain()
    assert_same_as_embedded(c, outcomes, failures)


def test_forwards_repeated_long_after_are_applied_once(data) -> None:
    """A patient partition that re-processes after a crash forwards its session events
    again, possibly when the sessions engine is days past them (beyond its dedupe
    window): they must not count twice."""
    lines, as_of, outcomes, _, _ = data
    c = Cluster(load_settings(None), partitions=3)
    c.publish_lines(lines)
    c.drain()
    for p in range(3):  # every session event forwarded once more, at the end
        for key, value, headers in list(c.sessions[p]):
            if not headers:
                c.sessions[p].append((key, value, headers))
    c.control("advance", as_of)
    c.drain()
    assert {k: project(v) for k, v in c.latest("outcomes").items()} == {
        k: project(v) for k, v in outcomes.items()
    }


def test_a_journal_with_a_hole_is_refused(data) -> None:
    from streams.kafka.partitions import JournalIncomplete

    lines, *_ = data
    c = Cluster(load_settings(None), partitions=1)
    c.publish_lines(lines[:300])
    c.drain(50)
    resume = c.pos[("events", 0)]
    chunks = {k[1:]: v for k, v in c.table.items() if k.startswith("e")}
    assert len(chunks) >= 3
    c._new("events", 0).restore(dict(chunks), resume)  # complete: fine
    first = sorted(chunks)[0]
    with pytest.raises(JournalIncomplete, match="resumes"):
        c._new("events", 0).restore({first: chunks[first]}, resume)
    del chunks[sorted(chunks)[1]]
    with pytest.raises(JournalIncomplete, match="hole"):
        c._new("events", 0).restore(chunks, resume)


def test_small_chunks_split_batches_and_restore_the_same(data, monkeypatch) -> None:
    from streams.kafka import journal

    monkeypatch.setattr(journal, "MAX_CHUNK_BYTES", 3000)
    lines, as_of, outcomes, _, _ = data
    c = Cluster(load_settings(None), partitions=2)
    c.publish_lines(lines)
    c.drain(400)
    assert len(c.table) > 2 * len(lines) // 400  # batches were cut into pieces
    c.commit()
    c.crash()
    c.control("advance", as_of)
    c.drain()
    assert {k: project(v) for k, v in c.latest("outcomes").items()} == {
        k: project(v) for k, v in outcomes.items()
    }


def test_the_sessions_topic_gets_exactly_the_types_its_detectors_read(data) -> None:
    """What a patient partition forwards is what the session-keyed detectors read, taken
    from the detectors (``reads``), not from a list of its own."""
    import orjson

    from detectors.builtin import ClinicOverbooked
    from streams.kafka.partitions import session_detectors, session_types

    settings = load_settings(None)
    _, by_session = session_detectors(settings)
    assert session_types(by_session) == frozenset(ClinicOverbooked().reads)
    lines, _, _, _, _ = data
    c = Cluster(settings, partitions=2)
    c.publish_lines(lines)
    c.drain()
    forwarded = {
        orjson.loads(value)["type"]
        for log in c.sessions
        for key, value, _ in log
        if key is not None  # the rest are watermark control messages
    }
    assert forwarded == set(ClinicOverbooked().reads)
