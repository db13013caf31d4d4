"""Prometheus metrics of the MLLP listener, on an injected registry (never the global one).

The counts add up: every message received is answered ``AA`` (accepted, with or without
events), answered ``AE``/``AR`` (rejected, by kind; ``undelivered`` when its events
could not be handed on), or left unanswered because its dead-letter record (or the
adapter memory) could not be made durable (the sender sends it again):

    received = accepted + sum(rejected by kind) + unanswered

Labels take values from fixed sets only (the dead-letter kinds), so no patient
identifier, message content or peer address can become a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from detectors.feeds import FeedHealth
from detectors.metrics import register_build_info
from streams.deadletter import INVALID, TOO_LARGE, UNDELIVERED, UNSUPPORTED

__all__ = ["REJECT_KINDS", "MllpMetrics"]

#: Kinds a whole message can be rejected for (``rejected`` label values).
REJECT_KINDS: tuple[str, ...] = (INVALID, UNSUPPORTED, TOO_LARGE, UNDELIVERED)


class MllpMetrics:
    """The listener's counters and gauges, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "carewatch_mllp_messages_received",
            "Messages received (complete frames, including ones then rejected).",
            registry=registry,
        )
        self.accepted = Counter(
            "carewatch_mllp_messages_accepted",
            "Messages answered AA (their events handed on durably, or none to hand on).",
            registry=registry,
        )
        self.without_event = Counter(
            "carewatch_mllp_messages_without_event",
            "Accepted messages that carry no care event under the site mapping (no-event).",
            registry=registry,
        )
        self.rejected = Counter(
            "carewatch_mllp_messages_rejected",
            "Messages answered AE or AR and written to the dead letter, by kind.",
            ["kind"],
            registry=registry,
        )
        self.rejected_parts = Counter(
            "carewatch_mllp_rejected_parts",
            "Parts of accepted messages (an ORU's OBR, say) written to the dead letter, by kind.",
            ["kind"],
            registry=registry,
        )
        self.unanswered = Counter(
            "carewatch_mllp_messages_unanswered",
            "Messages not answered because the dead letter (or the adapter memory) could not be "
            "written (sender retries).",
            registry=registry,
        )
        self.events = Counter(
            "carewatch_mllp_events_handed_on",
            "Canonical events handed on durably.",
            registry=registry,
        )
        self.incomplete = Counter(
            "carewatch_mllp_incomplete_messages",
            "Messages unfinished, or received but not processed, when their connection ended.",
            registry=registry,
        )
        self.junk = Counter(
            "carewatch_mllp_junk_bytes",
            "Bytes outside any MLLP frame (other than blank lines), written to the dead letter.",
            registry=registry,
        )
        self.connections = Counter(
            "carewatch_mllp_connections",
            "Connections accepted.",
            registry=registry,
        )
        self.connections_open = Gauge(
            "carewatch_mllp_connections_open",
            "Connections open now.",
            registry=registry,
        )
        self.idle_closed = Counter(
            "carewatch_mllp_idle_timeouts",
            "Connections closed for being idle longer than the idle timeout.",
            registry=registry,
        )
        #: Feed health, when the listener reports it (``listen mllp --feeds``).
        self.feeds: FeedHealth | None = None
        register_build_info(registry)
        self.frame_timeouts = Counter(
            "carewatch_mllp_frame_timeouts",
            "Connections closed because a message was not finished within the frame timeout.",
            registry=registry,
        )
        self.connections_refused = Counter(
            "carewatch_mllp_connections_refused",
            "Connections closed at once because the maximum number was open.",
            registry=registry,
        )
        for kind in REJECT_KINDS:
            # Present from the start at 0, so a rate() over them never starts blank.
            self.rejected.labels(kind)
            self.rejected_parts.labels(kind)

    def count_rejected(self, kind: str) -> None:
        """Count one rejected message under ``kind`` (an unknown kind counts as invalid)."""
        self.rejected.labels(kind if kind in REJECT_KINDS else INVALID).inc()

    def count_rejected_part(self, kind: str) -> None:
        """Count one rejected part of an accepted message."""
        self.rejected_parts.labels(kind if kind in REJECT_KINDS else INVALID).inc()
