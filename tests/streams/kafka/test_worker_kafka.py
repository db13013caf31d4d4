"""The Kafka worker against the real broker: each guarantee of docs/kafka.md."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.synthetic import DeliveryFaults, GeneratorConfig, deliver, generate
from tests.streams.kafka.harness import Setup, embedded

pytestmark = pytest.mark.kafka


def week(seed: int, malformed: float = 0.0) -> tuple[list[bytes], float]:
    gen = generate(GeneratorConfig(days=7, seed=seed, scale="small"))
    faults = DeliveryFaults(shuffle_within=600.0, duplicates=0.02, malformed=malformed)
    lines = list(deliver(gen.records, faults, seed=seed))
    return lines, max(t for t, _, _ in gen.records) + 60 * 86400.0


@pytest.fixture
def setup(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Setup]:
    s = Setup(kafka_bootstrap, tmp_path)
    try:
        yield s
    finally:
        s.stop()


def assert_same(s: Setup, expected: dict) -> None:
    assert s.latest("outcomes") == expected["outcomes"]
    assert s.latest("failures") == expected["failures"]


def no_repeats(s: Setup) -> None:
    seen = Counter((r["failure_id"], r["status"]) for _, r in s.read("failures"))
    repeated = {k: n for k, n in seen.items() if n > 1}
    assert not repeated


def test_replay_equals_the_embedded_runner(setup: Setup) -> None:
    lines, as_of = week(seed=11, malformed=0.01)
    expected = embedded(lines, as_of)
    setup.publish(lines)
    setup.start_worker("--replay")
    setup.advance(as_of)
    setup.wait_for_outputs(expected)
    assert_same(setup, expected)
    assert len(setup.read("rejected")) == expected["rejected"] > 0
    no_repeats(setup)


def test_live_mode_equals_the_embedded_runner_as_of_now(setup: Setup) -> None:
    lines, _ = week(seed=12)  # a week in the past: every deadline has passed
    expected = embedded(lines, time.time())
    setup.publish(lines)
    setup.start_worker()
    setup.wait_for_outputs(expected)
    assert_same(setup, expected)
    no_repeats(setup)


def halves(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    cut = len(lines) // 2
    return lines[:cut], lines[cut:]


def test_kill_9_and_restart_loses_and_repeats_nothing(setup: Setup) -> None:
    lines, as_of = week(seed=13)
    expected = embedded(lines, as_of)
    first, second = halves(lines)
    setup.publish(first)
    worker = setup.start_worker("--replay")
    setup.wait_for("first outcomes", lambda: len(setup.read("outcomes", idle=0.5)) > 0, every=0.2)
    setup.kill9(worker)
    setup.publish(second)
    worker = setup.start_worker("--replay")
    setup.wait_for("more outcomes", lambda: len(setup.read("outcomes", idle=0.5)) > 200, every=0.2)
    setup.kill9(worker)
    setup.start_worker("--replay")
    setup.advance(as_of)
    setup.wait_for_outputs(expected)
    assert_same(setup, expected)
    no_repeats(setup)


def test_a_second_worker_takes_over_from_a_killed_one(setup: Setup) -> None:
    lines, as_of = week(seed=14)
    expected = embedded(lines, as_of)
    first, second = halves(lines)
    setup.publish(first)
    one = setup.start_worker("--replay")
    setup.start_worker("--replay")
    setup.wait_for("first outcomes", lambda: len(setup.read("outcomes", idle=0.5)) > 0, every=0.2)
    time.sleep(3)  # let the group settle with both members
    setup.kill9(one)
    setup.publish(second)
    setup.advance(as_of)
    setup.wait_for_outputs(expected)
    assert_same(setup, expected)
    no_repeats(setup)


def test_malformed_messages_go_to_rejected_and_the_worker_goes_on(setup: Setup) -> None:
    import orjson

    setup.start_worker("--replay")
    producer = setup.producer()
    events = setup.topics["events"]
    bad = [b"this is not json", b'{"id": "x1", "type": "order.placed"}', b"[1, 2]"]
    for value in bad:
        producer.send(events, key=b"P1", value=value)
    good = {
        "id": "g1",
        "type": "order.placed",
        "time": "2026-03-02T09:00:00+00:00",
        "patient": "P1",
        "refs": {"order": "O1"},
        "attrs": {"priority": "stat"},
    }
    producer.send(events, key=b"P1", value=orjson.dumps(good))
    producer.flush()
    producer.close()
    setup.advance(1772442000.0 + 86400)  # a day after the order
    setup.wait_for("the missed result", lambda: len(setup.read("failures", idle=0.5)) == 1)
    rejected = [r for _, r in setup.read("rejected")]
    assert [r["kind"] for r in rejected] == ["invalid"] * 3
    assert sorted(r["reason"].split(" ")[0] for r in rejected).count("not") == 1  # not valid JSON
    assert all(r["reason"] and r["raw_base64"] for r in rejected)
    [(_, failure)] = setup.read("failures")
    assert failure["status"] == "missed" and failure["evidence"] == ["g1"]


def test_the_worker_rides_out_a_broker_restart(setup: Setup) -> None:
    import subprocess

    from tests.conftest import BROKER, broker_env

    # The restart goes through the broker script; it must manage the broker under test,
    # or it would start another one beside it (and leave it running).
    status = subprocess.run(
        [str(BROKER), "status"], env=broker_env(), capture_output=True, text=True
    )
    assert status.stdout.startswith(f"running {setup.bootstrap} "), (
        f"this test restarts the broker at {setup.bootstrap} with deploy/kafka/broker, which "
        f"(with CAREWATCH_TEST_KAFKA_PORT / _STATE_DIR as set) manages another: "
        f"{status.stdout.strip()!r}; point those at the broker under test"
    )
    lines, as_of = week(seed=15)
    expected = embedded(lines, as_of)
    first, second = halves(lines)
    setup.publish(first)
    setup.start_worker("--replay")
    setup.wait_for("first outcomes", lambda: len(setup.read("outcomes", idle=0.5)) > 0, every=0.2)
    out = subprocess.run([str(BROKER), "restart"], env=broker_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == setup.bootstrap
    setup.publish(second)
    setup.advance(as_of)
    setup.wait_for_outputs(expected, timeout=300)
    assert_same(setup, expected)
    no_repeats(setup)
    assert all(w.poll() is None for w in setup.workers)


def test_live_a_deadline_passing_on_the_wall_clock_is_reported(
    setup: Setup, tmp_path: Path
) -> None:
    import orjson

    from detectors.events import format_time

    rules = tmp_path / "rules.yaml"
    rules.write_text("engine:\n  allowed_lateness: 1s\n")
    setup.start_worker("--rules", str(rules))
    now = time.time()
    order = {
        "id": "live-1",
        "type": "order.placed",
        "time": format_time(round(now - 3600 + 8)),  # stat: a result is due in 8 s
        "patient": "P-live",
        "refs": {"order": "O-live"},
        "attrs": {"priority": "stat", "site": "north"},
    }
    setup.publish([orjson.dumps(order) + b"\n"])
    setup.wait_for("the missed result", lambda: len(setup.read("failures", idle=0.5)) > 0, 90, 0.5)
    [(_, failure)] = setup.read("failures")
    assert failure["status"] == "missed" and failure["evidence"] == ["live-1"]
    assert failure["detected_at"] >= failure["due_at"]


def test_an_archive_published_into_a_live_group_ends_with_the_in_order_answer(
    setup: Setup,
) -> None:
    # A group that has run live (its watermark stands at the wall clock), then an archive
    # of three weeks ago published into it: every event arrives far behind the
    # watermark. Within the correction horizon they are used; opportunities whose deadline
    # has passed wait for the next tick, and whatever a tick decided too early is amended
    # by the closing events behind it: the final ledger is the in-order one.
    from datetime import UTC, datetime, timedelta

    import orjson

    from detectors.events import parse_time

    setup.start_worker()
    start = (datetime.now(UTC) - timedelta(days=24)).date()
    gen = generate(GeneratorConfig(days=3, seed=21, scale="small", start=start))
    # An archive holds the past: the generator's follow-ups of the last days (a visit
    # weeks after its booking, its letter) can fall after now, and an event from the
    # future moves only its own partition's watermark, which an embedded run does not
    # have. Those are left out, so the answer does not depend on the day the test runs.
    cut = time.time() - 3600.0
    lines = [
        x
        for x in deliver(gen.records, DeliveryFaults(shuffle_within=600.0), seed=21)
        if parse_time(orjson.loads(x)["time"]) < cut
    ]
    time.sleep(5)  # a few ticks: the live watermark stands at the wall clock
    setup.publish(lines)
    # Session capacities are published a month ahead: those are further behind the live
    # watermark than the 30-day horizon, and are refused by name, not used.
    line = time.time() - 30 * 86400.0
    within = [x for x in lines if parse_time(orjson.loads(x)["time"]) >= line + 3600]
    beyond = [x for x in lines if parse_time(orjson.loads(x)["time"]) < line - 3600]
    assert beyond and len(within) + len(beyond) == len(lines)  # none near the line
    expected = embedded(within, time.time())
    setup.wait_for_outputs(expected, timeout=240)
    assert_same(setup, expected)
    no_repeats(setup)
    refused = [r for _, r in setup.read("rejected")]
    assert len(refused) == len(beyond) and {r["kind"] for r in refused} == {"beyond-horizon"}
    assert "behind the watermark" in setup.logs()
