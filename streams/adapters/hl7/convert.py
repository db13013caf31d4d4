"""HL7 v2 messages -> canonical events.

``convert_message`` turns one message into events; ``iter_hl7`` reads a byte stream of
messages (a file, an archive, an MLLP capture) one by one. Neither raises for bad input:
what cannot be used comes out as a ``Rejected`` with its reason.

What each message type maps to is set out in ``docs/adapters.md``. In short: SIU
S12/S13/S14/S15/S26 -> appointment events, ORM^O01/OML^O21 -> order.placed/cancelled,
ORU^R01 -> result.reported, MDM^T02 -> document.sent, ADT A03 -> encounter.discharged
(and patient.died), A04/A10 -> encounter.arrived, A08 -> patient.died. Timestamps
without an offset are read in the mapping's timezone (default Europe/London); events
carry UTC epoch seconds. Event ids are ``<MSH-10>:<type>:<n>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from detectors.errors import InputError
from streams.adapters.hl7.clinical import (
    handle_arrival,
    handle_discharge,
    handle_document,
    handle_orders,
    handle_patient_update,
    handle_results,
)
from streams.adapters.hl7.context import MessageContext
from streams.adapters.hl7.scheduling import handle_notifications, handle_siu
from streams.adapters.hl7.text import Hl7Message, decode_message, split_messages
from streams.adapters.mapping import SiteMapping, default_mapping
from streams.adapters.memory import AdapterMemory
from streams.adapters.records import INVALID, UNSUPPORTED, Record, Rejected, excerpt

__all__ = ["SUPPORTED_MESSAGE_TYPES", "convert_message", "iter_hl7"]

_Handler = Callable[[MessageContext, str], None]

_HANDLERS: dict[tuple[str, str], _Handler] = {
    ("SIU", "S12"): handle_siu,
    ("SIU", "S13"): handle_siu,
    ("SIU", "S14"): handle_siu,
    ("SIU", "S15"): handle_siu,
    ("SIU", "S26"): handle_siu,
    ("ORM", "O01"): handle_orders,
    ("OML", "O21"): handle_orders,
    ("ORU", "R01"): handle_results,
    ("MDM", "T02"): handle_document,
    ("ADT", "A03"): handle_discharge,
    ("ADT", "A04"): handle_arrival,
    ("ADT", "A10"): handle_arrival,
    ("ADT", "A08"): handle_patient_update,
}

#: Message types with a translation, as ``"SIU^S12"``.
SUPPORTED_MESSAGE_TYPES: tuple[str, ...] = tuple(f"{c}^{t}" for c, t in _HANDLERS)


def convert_message(
    raw: bytes | str,
    mapping: SiteMapping | None = None,
    memory: AdapterMemory | None = None,
    *,
    origin: str = "<hl7v2>",
    location: str = "message 1",
) -> list[Record]:
    """Convert one HL7 v2 message (bytes or text; BOM, MLLP framing and any segment
    terminator accepted) into its events and rejections.

    ``memory`` carries appointment starts between messages (pass the same object for a
    whole stream); without one, an S13 knows only what the message itself says. Event
    times are UTC epoch seconds; HL7 times without an offset are read in
    ``mapping.timezone``. Never raises for bad input.
    """
    mapping = mapping or default_mapping()
    memory = memory if memory is not None else AdapterMemory()
    try:
        text = decode_message(raw)
        message = Hl7Message(text)
        ctx = MessageContext(message, mapping, memory, origin, location)
    except InputError as exc:
        return [Rejected(origin, location, str(exc), excerpt(raw), INVALID)]
    try:
        handle_notifications(ctx)
        code, _, trigger = ctx.message_type.partition("^")
        handler = _HANDLERS.get((code.upper(), trigger.upper()))
        if handler is not None:
            handler(ctx, trigger.upper())
        elif not ctx.out:
            return [
                Rejected(
                    origin,
                    location,
                    f"unsupported message type {ctx.message_type}",
                    excerpt(text),
                    UNSUPPORTED,
                )
            ]
    except InputError as exc:
        ctx.reject(str(exc), INVALID)
    except Exception as exc:  # a bug must cost one message, not the run
        ctx.reject(f"internal error converting this message: {type(exc).__name__}: {exc}", INVALID)
    return ctx.out


def iter_hl7(
    chunks: Iterable[bytes],
    mapping: SiteMapping | None = None,
    memory: AdapterMemory | None = None,
    *,
    origin: str = "<hl7v2>",
) -> Iterator[Record]:
    """Events and rejections from a byte stream holding any number of messages
    (``location`` is ``"message N"``, counted from 1). Times as for ``convert_message``.
    Never raises for bad input."""
    mapping = mapping or default_mapping()
    memory = memory if memory is not None else AdapterMemory()
    for number, raw in split_messages(chunks):
        if number == 0:
            yield Rejected(
                origin,
                "before message 1",
                "data before the first MSH segment is not an HL7 message",
                excerpt(raw),
                INVALID,
            )
            continue
        yield from convert_message(
            raw, mapping, memory, origin=origin, location=f"message {number}"
        )
