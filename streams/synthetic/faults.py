"""Delivery faults: out-of-order delivery, re-delivery and malformed lines.

Applied to the sorted stream after the truth is fixed, and chosen so that the truth still
holds: every event (and every re-delivered copy) arrives at most ``bound`` seconds behind
the highest event time delivered before it, so a reader with an allowed lateness of at
least ``bound`` sees the same set of events; malformed lines are not events at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from random import Random
from typing import Any

import orjson

from streams.synthetic.config import DeliveryFaults
from streams.synthetic.log import Record

__all__ = ["DUPLICATE_BOUND", "deliver", "deliver_payloads", "malformed_line"]

#: Bound (seconds) of re-delivery when no ``shuffle_within`` is set: the engine's default
#: allowed lateness (10 minutes).
DUPLICATE_BOUND = 600.0

_MALFORMED_KINDS = (
    "truncated",
    "no-time",
    "time-without-offset",
    "time-not-a-time",
    "no-id",
    "no-type",
    "not-an-object",
    "refs-not-an-object",
    "ref-not-a-string",
    "hl7-in-json-feed",
)


def deliver(records: Sequence[Record], faults: DeliveryFaults, seed: int) -> Iterator[bytes]:
    """The JSON Lines of ``records`` (sorted by time, then id) as delivered with ``faults``;
    each line ends with a newline. Deterministic for ``seed``."""
    dumps = orjson.dumps
    if not faults.active:
        for _, _, event in records:
            yield dumps(event) + b"\n"
        return

    def bad(rng: Random, serial: int) -> bytes:
        _, _, example = records[rng.randrange(len(records))]
        return malformed_line(rng, example, f"X{serial:09d}") + b"\n"

    yield from deliver_payloads(
        [t for t, _, _ in records], lambda i: dumps(records[i][2]) + b"\n", faults, seed, bad
    )


def deliver_payloads(
    times: Sequence[float],
    payload: Callable[[int], bytes],
    faults: DeliveryFaults,
    seed: int,
    malformed: Callable[[Random, int], bytes],
    *,
    first_good: bool = False,
) -> Iterator[bytes]:
    """Deliver ``len(times)`` payloads (``payload(i)`` is the bytes of the i-th, whose event
    time is ``times[i]``, epoch s UTC, in stream order) with ``faults``: shuffled within
    the bound, some repeated, and ``malformed(rng, serial)`` inserted at random places
    (``serial`` counts them from 1). ``first_good`` keeps a malformed payload out of the
    first place (an NDJSON reader takes a first line that is not JSON for a pretty-printed
    document). Deterministic for ``seed``."""
    rng = Random(f"{seed}:delivery")
    order = _delivery_order(times, faults, rng)
    n_bad = _count(faults.malformed, len(times))
    total = len(order) + n_bad
    places = range(1, total) if first_good else range(total)
    bad_at = set(rng.sample(places, n_bad)) if n_bad else set()
    source = iter(order)
    bad_serial = 0
    for position in range(total):
        if position in bad_at:
            bad_serial += 1
            yield malformed(rng, bad_serial)
        else:
            yield payload(next(source))


def _count(fraction: float, n: int) -> int:
    return round(fraction * n) if n else 0


def _delivery_order(times: Sequence[float], faults: DeliveryFaults, rng: Random) -> list[int]:
    """Indexes into ``times`` in delivery order, a re-delivered payload appearing twice.

    Every item gets a delivery key in ``[time, time + bound]`` and items go out by key, so
    anything delivered before an event has a time at most ``bound`` above that event's.
    A copy's key is at least its original's, so it comes after it.
    """
    bound = faults.shuffle_within
    rand = rng.random
    keys = [t + rand() * bound for t in times] if bound else [float(t) for t in times]
    n = len(times)
    items: list[tuple[float, int, int]] = [(keys[i], i, i) for i in range(n)]
    n_dup = _count(faults.duplicates, n)
    if n_dup:
        dup_bound = bound or DUPLICATE_BOUND
        for serial, i in enumerate(sorted(rng.sample(range(n), n_dup))):
            latest = times[i] + dup_bound
            key = keys[i] + rand() * (latest - keys[i])
            items.append((key, n + serial, i))
    n_late = _count(faults.delayed, n)
    if n_late:
        for i in rng.sample(range(n), n_late):
            key = times[i] + rand() * faults.delay_within
            items[i] = (max(keys[i], key), i, i)
    if faults.resend_after and n:
        day = (int(times[0]) // 86400 + 1) * 86400  # the first whole day
        serial = len(items)
        for i in range(n):
            if day <= times[i] < day + 86400:
                items.append((keys[i] + faults.resend_after, serial, i))
                serial += 1
    items.sort()
    return [i for _, _, i in items]


def malformed_line(rng: Random, example: dict[str, Any], bad_id: str) -> bytes:
    """One line that is not a valid canonical event, modelled on ``example``; where it
    carries an id, it is ``bad_id``, shared with no event."""
    kind = rng.choice(_MALFORMED_KINDS)
    obj: dict[str, Any] = {**example, "id": bad_id}
    if kind == "truncated":
        text = orjson.dumps(obj)
        return text[: rng.randint(1, len(text) - 2)]
    if kind == "no-time":
        del obj["time"]
    elif kind == "time-without-offset":
        obj["time"] = obj["time"].removesuffix("+00:00")
    elif kind == "time-not-a-time":
        obj["time"] = rng.choice(("yesterday", "", "02/03/2026 09:30", 1772443800))
    elif kind == "no-id":
        del obj["id"]
    elif kind == "no-type":
        del obj["type"]
    elif kind == "not-an-object":
        return orjson.dumps([obj["type"], obj["time"], bad_id])
    elif kind == "refs-not-an-object":
        obj["refs"] = ",".join(obj.get("refs", {}).values()) or bad_id
    elif kind == "ref-not-a-string":
        obj["refs"] = {"order": {"id": bad_id}}
    else:
        return f"MSH|^~\\&|LAB|NORTH|CW|CW|20260302093000||ORU^R01|{bad_id}|P|2.5".encode()
    return orjson.dumps(obj)
