"""Writing a run's records in one output format, with the delivery faults applied per
message (HL7 v2), per resource line (FHIR NDJSON) or per line (JSON Lines)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from random import Random
from typing import Any

import orjson

from detectors.errors import ConfigError
from streams.synthetic.config import DeliveryFaults
from streams.synthetic.faults import deliver, deliver_payloads
from streams.synthetic.formats import fhir_writer, hl7_writer
from streams.synthetic.formats.hl7_segments import MLLP_END, MLLP_START
from streams.synthetic.formats.malformed import malformed_fhir, malformed_hl7
from streams.synthetic.log import Record

__all__ = ["NOT_CARRIED", "OUTPUT_FORMATS", "Encoder", "deliver_as", "encoder"]

#: Formats ``carewatch generate --format`` writes.
OUTPUT_FORMATS: tuple[str, ...] = ("jsonl", "hl7", "fhir")

#: Canonical event types each format has no message or resource for (left out).
NOT_CARRIED: dict[str, frozenset[str]] = {
    "jsonl": frozenset(),
    "hl7": hl7_writer.NOT_CARRIED,
    "fhir": fhir_writer.NOT_CARRIED,
}

#: ``encode(event, t)``: the bytes one canonical event (at ``t``, epoch s UTC) is written
#: as, or ``None`` when the format cannot carry it.
Encoder = Callable[[dict[str, Any], int], bytes | None]


def encoder(fmt: str, *, mllp: bool = False) -> Encoder:
    """A fresh, stateful encoder for ``fmt`` (feed it the events in stream order).

    ``jsonl``: one JSON line; ``hl7``: one message, segments ended by CR, framed by MLLP
    with ``mllp``; ``fhir``: one resource as an NDJSON line. Raises ``ConfigError`` for an
    unknown format or ``mllp`` with a format other than ``hl7``.
    """
    _check(fmt, mllp)
    if fmt == "hl7":
        hl7 = hl7_writer.Hl7Writer()

        def encode_hl7(event: dict[str, Any], t: int) -> bytes | None:
            text = hl7.message(event, t)
            return None if text is None else _frame(text, mllp)

        return encode_hl7
    if fmt == "fhir":
        fhir = fhir_writer.FhirWriter()

        def encode_fhir(event: dict[str, Any], t: int) -> bytes | None:
            resource = fhir.resource(event, t)
            return None if resource is None else orjson.dumps(resource) + b"\n"

        return encode_fhir
    return lambda event, t: orjson.dumps(event) + b"\n"


def deliver_as(
    records: Sequence[Record],
    fmt: str,
    faults: DeliveryFaults,
    seed: int,
    *,
    mllp: bool = False,
) -> Iterator[bytes]:
    """The records (sorted by time, then id) written as ``fmt`` and delivered with
    ``faults``, one message, resource line or JSON line per item. Events the format
    cannot carry (``NOT_CARRIED``) are left out before the faults are applied, so
    ``--duplicates`` and ``--malformed`` count messages. Deterministic for ``seed``.

    JSON Lines are exactly ``deliver``'s. For HL7 and FHIR the messages are first written
    in event order (a FHIR version number, an HL7 message about a known appointment,
    depends on what came before) and then shuffled.
    """
    _check(fmt, mllp)
    if fmt == "jsonl":
        yield from deliver(records, faults, seed)
        return
    encode = encoder(fmt, mllp=mllp)
    if not faults.active:
        for t, _, event in records:
            payload = encode(event, t)
            if payload is not None:
                yield payload
        return
    times: list[int] = []
    payloads: list[bytes] = []
    examples: list[dict[str, Any]] = []
    for t, _, event in records:
        payload = encode(event, t)
        if payload is not None:
            times.append(t)
            payloads.append(payload)
            examples.append(event)

    def malformed(rng: Random, serial: int) -> bytes:
        example = examples[rng.randrange(len(examples))]
        bad_id = f"X{serial:09d}"
        if fmt == "hl7":
            return _frame(malformed_hl7(rng, example, bad_id), mllp)
        return malformed_fhir(rng, example, bad_id) + b"\n"

    yield from deliver_payloads(
        times, payloads.__getitem__, faults, seed, malformed, first_good=fmt == "fhir"
    )


def _frame(text: str, mllp: bool) -> bytes:
    data = text.encode("utf-8")
    return MLLP_START + data + MLLP_END if mllp else data


def _check(fmt: str, mllp: bool) -> None:
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    if mllp and fmt != "hl7":
        raise ConfigError("--mllp frames HL7 v2 messages; use it with --format hl7")
