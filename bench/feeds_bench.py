"""What feed health costs per event: ``FeedHealth.observe`` on one core.

    python bench/feeds_bench.py [--events 400000] [--rounds 3]

Every event a worker or listener receives passes through ``FeedHealth.observe`` when
metrics are served. Events are synthetic and cycle through four types (three matched by
the feeds of ``deploy/compose/rules.yaml``, one by none), each with its own HL7 message
id, as a live feed's are. Prints events/s and microseconds per event, best of
``--rounds`` (the least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from detectors.events import Event
from detectors.feeds import FeedHealth
from detectors.rules import load_settings

RULES = Path(__file__).resolve().parents[1] / "deploy" / "compose" / "rules.yaml"
TYPES = ("appointment.booked", "order.placed", "result.reported", "patient.died")


def main() -> None:
    """Run the measurement and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    feeds = load_settings(RULES).feeds
    events = [
        Event(
            id=f"e{i}",
            type=TYPES[i % len(TYPES)],
            time=1.77e9 + i,
            patient="P0001",
            refs={},
            attrs={"site": "north"},
            source={"format": "hl7v2", "message_id": f"M{i}", "message_type": "SIU^S12"},
        )
        for i in range(args.events)
    ]
    best = float("inf")
    for _ in range(args.rounds):
        health = FeedHealth(feeds, CollectorRegistry())
        observe = health.observe
        t0 = time.process_time()
        for ev in events:
            observe(ev)
        best = min(best, time.process_time() - t0)
    print(
        f"feed health: {args.events / best:,.0f} events/s, {best / args.events * 1e6:.2f} µs/event"
    )


if __name__ == "__main__":
    main()
