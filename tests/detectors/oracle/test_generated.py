"""The oracle against the generator's truth and against the streaming engine on generated
traffic: several seeds and sizes, in order and with out-of-order and duplicate delivery,
read to the end and cut off mid-stream."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.events import Event
from detectors.rules import parse_settings
from streams.adapters import iter_records
from streams.deadletter import Rejected
from streams.runner import Runner
from streams.sinks import MemorySink
from streams.synthetic import (
    FAILURE_PRESETS,
    DeliveryFaults,
    GeneratorConfig,
    deliver,
    generate,
)
from tests.detectors.oracle.compare import assert_same, oracle_run

DAY = 86400.0
FAR_AFTER = 120 * DAY  # as-of: past every deadline and the late retention
SETTINGS = parse_settings("")  # for the oracle only: it keeps no state in the detectors


def delivered(config: GeneratorConfig, faults: DeliveryFaults, cut: float = 1.0) -> Any:
    """The generated run, and what a reader gets of its first ``cut`` of records."""
    gen = generate(config)
    records = gen.records[: int(len(gen.records) * cut)]
    lines = b"".join(deliver(records, faults, seed=config.seed))
    return gen, records, list(iter_records(lines, "jsonl", origin="generated"))


def engine_run(read: list[Event | Rejected], as_of: float | None) -> Any:
    sink = MemorySink()
    runner = Runner(parse_settings(""), sink)  # fresh: violation detectors keep their state
    runner.feed(read)
    runner.finish(as_of)
    return sink.latest, sink.open


def truth_row(row: dict[str, Any]) -> tuple[Any, ...]:
    closed = row["closed_at"] if row["outcome"] == "late" else None
    return (row["failure_id"], row["outcome"], row["opened_at"], row["due_at"], closed)


def outcome_row(o: dict[str, Any]) -> tuple[Any, ...]:
    closed = o["closed_at"] if o["outcome"] == "late" else None
    return (o["failure_id"], o["outcome"], o["opened_at"], o["due_at"], closed)


RUNS = [
    (1, 7, "small", "default", DeliveryFaults()),
    (2, 14, "small", "default", DeliveryFaults(shuffle_within=600.0, duplicates=0.02)),
    (3, 10, "small", "high", DeliveryFaults(shuffle_within=300.0, duplicates=0.05)),
    (4, 3, "small", "high", DeliveryFaults(malformed=0.01, duplicates=0.01)),
    (5, 2, "medium", "default", DeliveryFaults(shuffle_within=120.0)),
]


@pytest.mark.parametrize(("seed", "days", "scale", "failures", "faults"), RUNS)
def test_oracle_equals_truth_and_engine_to_the_end(
    seed: int, days: int, scale: str, failures: str, faults: DeliveryFaults
) -> None:
    config = GeneratorConfig(days=days, seed=seed, scale=scale, rates=FAILURE_PRESETS[failures])
    gen, records, read = delivered(config, faults)
    as_of = records[-1][0] + FAR_AFTER
    events = [r for r in read if isinstance(r, Event)]
    oracle = oracle_run(events, SETTINGS, as_of)

    assert oracle.open == []
    assert sorted(outcome_row(o.to_outcome_dict()) for o in oracle.outcomes) == sorted(
        truth_row(t) for t in gen.truth
    )
    kinds = {(o.detector, o.outcome) for o in oracle.outcomes if o.is_failure}
    assert len(kinds) >= (12 if days >= 7 else 9), kinds
    assert oracle.duplicates == round(faults.duplicates * len(records))
    assert_same(engine_run(read, as_of), oracle)


@pytest.mark.parametrize(
    ("seed", "days", "cut", "as_of_after", "faults"),
    [
        (6, 7, 0.5, None, DeliveryFaults()),
        (7, 14, 0.3, 2 * DAY, DeliveryFaults()),
        (8, 10, 0.6, None, DeliveryFaults(shuffle_within=600.0, duplicates=0.05)),
        (9, 21, 0.45, 1 * DAY, DeliveryFaults(shuffle_within=300.0, duplicates=0.02)),
    ],
)
def test_oracle_equals_engine_mid_stream(
    seed: int, days: int, cut: float, as_of_after: float | None, faults: DeliveryFaults
) -> None:
    _, records, read = delivered(GeneratorConfig(days=days, seed=seed, scale="small"), faults, cut)
    as_of = None if as_of_after is None else records[-1][0] + as_of_after
    oracle = oracle_run([r for r in read if isinstance(r, Event)], SETTINGS, as_of)

    assert oracle.open, "a cut-off stream leaves opportunities open"
    assert {o.detector for o in oracle.open} >= {"clinic-overbooked", "result-overdue"}
    assert_same(engine_run(read, as_of), oracle)
