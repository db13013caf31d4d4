"""Which acknowledgement a received message earns, from what the adapters made of it.

The rule, message by message:

- at least one event: ``AA`` (the events are handed on; parts of the message that were
  rejected go to the dead letter and are named in a warning ERR segment);
- no event, and some part invalid or unsupported: ``AE`` with the reason (the sender's
  content is at fault; sending it again will not help);
- no event, and every part understood but carrying no care event (an ADT^A08 for a
  living patient, an S14 that only moved the room): ``AA``, counted as no-event;
- a frame that is not HL7 at all, too large, or cut off: ``AR`` (``refuse``).

The functions are pure; the server does the handing on and the writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from detectors.events import Event
from streams.deadletter import INVALID, NO_EVENT, TOO_LARGE, UNDELIVERED, UNSUPPORTED, Rejected
from streams.mllp.ack import ACCEPT, ERROR, REJECT, AckError

__all__ = ["NOT_HL7", "TRUNCATED", "Decision", "decide", "refuse", "undelivered"]

#: ``refuse`` causes beyond the dead-letter kinds: they pick the ERR-3 code.
NOT_HL7 = "not-hl7"
TRUNCATED = "truncated"

# HL7 table 0357 (message error condition codes) for each cause.
_ERR_CODES = {
    INVALID: ("101", "Required field missing"),
    UNSUPPORTED: ("200", "Unsupported message type"),
    NOT_HL7: ("100", "Segment sequence error"),
    TOO_LARGE: ("207", "Application internal error"),
    TRUNCATED: ("207", "Application internal error"),
    UNDELIVERED: ("207", "Application internal error"),
}


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one message: ``code`` (``AA``/``AE``/``AR``) and MSA-3 ``text``
    for the ACK, with ``error`` for its ERR segment; ``events`` to hand on;
    ``rejected`` for the dead letter (parts that did not become events, no-event ones
    included); ``kind`` the message's dead-letter kind when it is not accepted (or
    ``no-event`` when it is accepted without events), else ``None``."""

    code: str
    events: tuple[Event, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    kind: str | None = None
    text: str = ""
    error: AckError | None = None

    @property
    def accepted(self) -> bool:
        """True when the message is acknowledged ``AA``."""
        return self.code == ACCEPT


def decide(records: Sequence[Event | Rejected]) -> Decision:
    """The decision for the records ``convert_message`` made of one message."""
    events = tuple(r for r in records if isinstance(r, Event))
    rejected = tuple(r for r in records if isinstance(r, Rejected))
    failed = [r for r in rejected if r.kind != NO_EVENT]
    if events:
        if not failed:
            return Decision(ACCEPT, events, rejected)
        first = failed[0]
        total = len(events) + len(failed)
        return Decision(
            ACCEPT,
            events,
            rejected,
            text=f"accepted; {len(failed)} of {total} parts rejected",
            error=_error(first.kind, first.reason, severity="W"),
        )
    if failed:
        first = failed[0]
        return Decision(
            ERROR, (), rejected, first.kind, first.reason, _error(first.kind, first.reason)
        )
    return Decision(
        ACCEPT, (), rejected, NO_EVENT, "received; no care event under the site mapping"
    )


def refuse(rejected: Rejected, cause: str) -> Decision:
    """``AR`` for a frame that could not be read as a message at all. ``cause`` is a
    dead-letter kind, ``NOT_HL7`` or ``TRUNCATED``."""
    return Decision(
        REJECT,
        (),
        (rejected,),
        rejected.kind,
        rejected.reason,
        _error(cause, rejected.reason, kind=rejected.kind),
    )


def undelivered(rejected: Rejected) -> Decision:
    """``AE`` for a message whose events could not be handed on (Kafka unavailable):
    nothing is wrong with it, and the ACK asks the sender to send it again."""
    return Decision(
        ERROR,
        (),
        (rejected,),
        UNDELIVERED,
        rejected.reason,
        _error(UNDELIVERED, rejected.reason),
    )


def _error(cause: str, reason: str, *, severity: str = "E", kind: str | None = None) -> AckError:
    code, text = _ERR_CODES.get(cause, _ERR_CODES[INVALID])
    return AckError(code, text, severity, kind or cause, reason)
