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
