"""``contact-after-death``: nothing should be booked, sent or said to a patient who has died.

After ``patient.died`` at ``t_d`` (the earliest for the patient), every
``appointment.booked``, ``patient.notified`` or ``document.sent`` for that patient with a
later event time is a violation. Contacts may arrive before the death message (feeds are
not ordered), so each contact is judged once the watermark passes its time, when every
death message with an earlier time is in.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from detectors.contract import CARRIED_ATTRS, Context, ViolationDetector, human_time
from detectors.events import Event

__all__ = ["ContactAfterDeath"]

_CONTACT_TYPES = ("appointment.booked", "patient.notified", "document.sent")
_WORDS = {
    "appointment.booked": "an appointment was booked",
    "patient.notified": "a notice was sent",
    "document.sent": "a document was sent",
}


_NEG_INF = float("-inf")
#: A contact waiting to be judged: time, event id, patient, type, refs, attrs.
_Contact = tuple[float, str, str, str, dict[str, str], dict[str, Any]]


def _held_items(held: dict[str, list[_Contact]]) -> list[_Contact]:
    """The contacts of one generation, in (time, id) order."""
    return sorted(c for items in held.values() for c in items)


@mypyc_attr(allow_interpreted_subclasses=True)
class ContactAfterDeath(ViolationDetector):
    """No contact with a patient after their recorded death."""

    name: ClassVar[str] = "contact-after-death"

    def __init__(self) -> None:
        # patient -> (time of death, death event id): the earliest known
        self.deaths: dict[str, tuple[float, str]] = {}
        # contacts waiting for the watermark to pass them, so that every death message
        # with an earlier time has arrived: (time, id, patient, type, refs, attrs), a heap
        # in event-time order. (Not arrival order: a contact that arrived behind a later
        # one would wait for that one, and at the end of the input stay unjudged though
        # the watermark had passed it.)
        self._pending: list[_Contact] = []
        # Contacts of patients with no known death wait apart, by patient (nearly all of
        # them: a death is rare), and join the heap only if a death message for their
        # patient comes while they are held. Two generations: the older is forgotten
        # once the watermark has passed its latest contact (each contact is held at
        # least until the watermark passes it; none needs more).
        self._held: dict[str, list[_Contact]] = {}
        self._held_latest = _NEG_INF
        self._held_old: dict[str, list[_Contact]] = {}
        self._held_old_latest = _NEG_INF
        self.reported: set[str] = set()

    @property
    def reads(self) -> frozenset[str]:
        return frozenset((*_CONTACT_TYPES, "patient.died"))

    def on_event(self, event: Event, ctx: Context) -> None:
        patient = event.patient
        if patient is None:
            return
        if event.type == "patient.died":
            known = self.deaths.get(patient)
            if known is None or (event.time, event.id) < known:
                self.deaths[patient] = (event.time, event.id)
            for generation in (self._held, self._held_old):
                for item in generation.pop(patient, ()):
                    heapq.heappush(self._pending, item)
            return
        t = event.time
        item = (t, event.id, patient, event.type, event.refs, event.attrs)
        if t < ctx.watermark:
            self._check(item, ctx)  # beyond the allowed lateness: decide now
        elif patient in self.deaths:
            heapq.heappush(self._pending, item)  # (time, id) are unique: dicts never compared
        else:
            waiting = self._held.get(patient)
            if waiting is None:
                self._held[patient] = [item]
            else:
                waiting.append(item)
            if t > self._held_latest:
                self._held_latest = t

    def on_watermark(self, ctx: Context) -> None:
        pending = self._pending
        wm = ctx.watermark
        while pending and pending[0][0] <= wm:
            self._check(heapq.heappop(pending), ctx)
        if wm >= self._held_old_latest:
            self._held_old, self._held_old_latest = self._held, self._held_latest
            self._held, self._held_latest = {}, _NEG_INF

    def open_count(self) -> int:
        return 0  # pending contacts are not opportunities until a death makes them one

    def _check(self, item: _Contact, ctx: Context) -> None:
        t, cid, patient, ctype, refs, attrs = item
        death = self.deaths.get(patient)
        if death is not None and t > death[0]:
            self._violation(patient, t, cid, ctype, refs, attrs, ctx)

    def _violation(
        self,
        patient: str,
        t: float,
        cid: str,
        ctype: str,
        refs: dict[str, str],
        attrs: dict[str, Any],
        ctx: Context,
    ) -> None:
        if cid in self.reported:
            return
        self.reported.add(cid)
        t_d, death_id = self.deaths[patient]
        carried = {k: attrs[k] for k in CARRIED_ATTRS if k in attrs}
        carried["contact"] = ctype
        if ctype == "document.sent" and "kind" in attrs:
            carried["kind"] = attrs["kind"]
        summary = (
            f"{_WORDS.get(ctype, ctype).capitalize()} at {human_time(t)} for a patient "
            f"recorded as dead since {human_time(t_d)}."
        )
        ev = Event(cid, ctype, t, patient, refs, attrs)
        ctx.emit(
            self.make_outcome(
                outcome="violation",
                key=patient,
                opening_id=cid,
                event=ev,
                opened_at=t,
                due_at=None,
                detected_at=ctx.watermark,
                evidence=[death_id, cid],
                attrs=carried,
                summary=summary,
            )
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "deaths": {p: list(v) for p, v in self.deaths.items()},
            "pending": [list(c) for c in sorted(self._pending)],
            "held": [list(c) for held in (self._held, self._held_old) for c in _held_items(held)],
            "reported": sorted(self.reported),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.deaths = {p: (float(t), i) for p, (t, i) in state["deaths"].items()}
        self._pending = [(float(t), i, p, ty, r, a) for t, i, p, ty, r, a in state["pending"]]
        heapq.heapify(self._pending)
        self._held, self._held_latest = {}, _NEG_INF
        self._held_old, self._held_old_latest = {}, _NEG_INF
        for t, i, p, ty, r, a in state.get("held", ()):
            self._held.setdefault(p, []).append((float(t), i, p, ty, r, a))
            self._held_latest = max(self._held_latest, float(t))
        self.reported = set(state["reported"])
