"""``contact-after-death``: nothing should be booked, sent or said to a patient who has died.

After ``patient.died`` at ``t_d`` (the earliest for the patient), every contact *with the
patient* (``appointment.booked``, ``patient.notified``, or ``document.sent`` whose
recipient is the patient) with a later event time is a violation. Contacts may arrive
before the death message (feeds are not ordered), so each contact is judged once the
watermark passes its time, when every death message with an earlier time is in; and a
death recorded days later, timed before contacts already judged, still makes them
violations: contacts are kept for the correction horizon.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from itertools import chain
from typing import Any, ClassVar

from detectors.contract import CARRIED_ATTRS, Context, ViolationDetector, human_time
from detectors.events import Event

__all__ = ["ContactAfterDeath"]

_CONTACT_TYPES = ("appointment.booked", "patient.notified", "document.sent")
_WORDS = {
    "appointment.booked": "an appointment was booked",
    "patient.notified": "a notice was sent",
    "document.sent": "a document was sent",
}


#: Who a document is for when ``document.sent`` does not say (``attrs.recipient``): by
#: its kind; a document of any other kind is taken to reach the patient.
DEFAULT_RECIPIENT: dict[str, str] = {
    "appointment-letter": "patient",
    "discharge-summary": "gp",
    "clinic-letter": "gp",
}


def is_patient_contact(etype: str, attrs: Mapping[str, Any]) -> bool:
    """Whether an event of a contact type is contact *with the patient*: a booking, a
    notice, or a document whose recipient is the patient (a discharge summary to the GP
    after an inpatient death is required, not a violation)."""
    if etype != "document.sent":
        return True
    recipient = attrs.get("recipient")
    if recipient is None:
        recipient = DEFAULT_RECIPIENT.get(attrs.get("kind"), "patient")  # type: ignore[arg-type]
    return recipient == "patient"


#: What of a contact's attrs its violation record carries.
_KEPT_ATTRS: tuple[str, ...] = (*CARRIED_ATTRS, "kind")
#: A contact: time, event id, patient, type, the event's refs as one flat tuple (``(k1,
#: v1, k2, v2)``: a third of a dict's size), its kept attrs (those of ``_KEPT_ATTRS`` it
#: has, a dict shared by every contact with the same values). Every contact with a
#: patient is kept for the whole correction horizon, so each costs as little as it can.
_Contact = tuple[float, str, str, str, tuple[str, ...], dict[str, Any]]
#: at most this many distinct kept-attrs dicts are shared (site, clinic, kind ...)
_SHARED_MAX = 20_000


class ContactAfterDeath(ViolationDetector):
    """No contact with a patient after their recorded death."""

    name: ClassVar[str] = "contact-after-death"

    def __init__(self) -> None:
        # patient -> (time of death, death event id): the earliest known
        self.deaths: dict[str, tuple[float, str]] = {}
        # Every contact within the correction horizon, by patient: a death recorded days
        # later, timed before them, still makes them violations.
        self.contacts: dict[str, list[_Contact]] = {}
        self.horizon = 30 * 86400.0
        self._expiry: dict[int, list[str]] = {}  # day -> patients with contacts that day
        self._expiry_check_at = float("-inf")
        # contacts to judge once the watermark passes them (every death message with an
        # earlier time has arrived by then), a heap in event-time order
        self._pending: list[_Contact] = []
        self._queued: set[str] = set()  # ids in ``_pending``: each is queued once
        self.reported: set[str] = set()
        self._shared: dict[tuple[Any, ...], dict[str, Any]] = {}

    def configure(self, *, correction_horizon: float) -> None:
        self.horizon = correction_horizon

    @property
    def reads(self) -> frozenset[str]:
        return frozenset((*_CONTACT_TYPES, "patient.died"))

    def on_event(self, event: Event, ctx: Context) -> None:
        patient = event.patient
        if patient is None:
            return
        if event.type == "patient.died":
            known = self.deaths.get(patient)
            if known is not None and known <= (event.time, event.id):
                return
            self.deaths[patient] = (event.time, event.id)
            for item in self.contacts.get(patient, ()):
                if item[0] > event.time:
                    self._queue(item)
            return
        attrs = event.attrs
        if event.type == "document.sent" and not is_patient_contact(event.type, attrs):
            return
        t = event.time
        refs = tuple(chain.from_iterable(event.refs.items()))
        kept = self.contacts.get(patient)
        if kept is None:
            item = (t, event.id, patient, event.type, refs, self._kept(attrs))
            self.contacts[patient] = [item]
        else:
            # the patient's id as its first contact has it: one string per patient kept
            item = (t, event.id, kept[0][2], event.type, refs, self._kept(attrs))
            kept.append(item)
        day = int(t // 86400)
        waiting = self._expiry.get(day)
        if waiting is None:
            self._expiry[day] = [patient]
        else:
            waiting.append(patient)
        if patient in self.deaths:
            self._queue(item)

    def _kept(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The kept attrs of a contact's event, shared with other contacts alike."""
        values = tuple(map(attrs.get, _KEPT_ATTRS))
        found = self._shared.get(values)
        if found is not None:
            return found
        kept = {k: v for k, v in zip(_KEPT_ATTRS, values, strict=True) if v is not None}
        if len(self._shared) < _SHARED_MAX:
            self._shared[values] = kept
        return kept

    def _queue(self, item: _Contact) -> None:
        cid = item[1]
        if cid not in self.reported and cid not in self._queued:
            self._queued.add(cid)
            heapq.heappush(self._pending, item)  # (time, id) are unique: dicts never compared

    def on_watermark(self, ctx: Context) -> None:
        pending = self._pending
        wm = ctx.watermark
        while pending and pending[0][0] <= wm:
            item = heapq.heappop(pending)
            self._queued.discard(item[1])
            self._check(item, ctx)
        line = wm - self.horizon
        if line < self._expiry_check_at:
            return
        self._expiry_check_at = line + 21600.0  # a quarter of a day's bucket on
        for day in [d for d in self._expiry if (d + 1) * 86400 <= line]:
            for patient in self._expiry.pop(day):
                kept = self.contacts.get(patient)
                if kept is not None:
                    kept = [c for c in kept if c[0] >= line]
                    if kept:
                        self.contacts[patient] = kept
                    else:
                        del self.contacts[patient]

    def open_count(self) -> int:
        return 0  # pending contacts are not opportunities until a death makes them one

    def _check(self, item: _Contact, ctx: Context) -> None:
        t, cid, patient, ctype, refs, kept = item
        death = self.deaths.get(patient)
        if death is not None and t > death[0]:
            self._violation(patient, t, cid, ctype, refs, kept, ctx)

    def _violation(
        self,
        patient: str,
        t: float,
        cid: str,
        ctype: str,
        refs: tuple[str, ...],
        kept: dict[str, Any],
        ctx: Context,
    ) -> None:
        if cid in self.reported:
            return
        self.reported.add(cid)
        t_d, death_id = self.deaths[patient]
        carried = {k: kept[k] for k in CARRIED_ATTRS if k in kept}
        carried["contact"] = ctype
        if ctype == "document.sent" and "kind" in kept:
            carried["kind"] = kept["kind"]
        summary = (
            f"{_WORDS.get(ctype, ctype).capitalize()} at {human_time(t, self.clock)} for a patient "
            f"recorded as dead since {human_time(t_d, self.clock)}."
        )
        ev = Event(cid, ctype, t, patient, dict(zip(refs[::2], refs[1::2], strict=True)), {})
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
                evidence_events=[("patient.died", t_d), (ctype, t)],
                attrs=carried,
                summary=summary,
            )
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "deaths": {p: list(v) for p, v in self.deaths.items()},
            "contacts": [list(c) for kept in self.contacts.values() for c in kept],
            "pending": [list(c) for c in sorted(self._pending)],
            "reported": sorted(self.reported),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.deaths = {p: (float(t), i) for p, (t, i) in state["deaths"].items()}
        self.contacts = {}
        self._expiry = {}
        self._expiry_check_at = float("-inf")
        self._shared = {}
        for t, i, p, ty, r, a in state["contacts"]:
            item = self._restored(t, i, p, ty, r, a)
            self.contacts.setdefault(p, []).append(item)
            self._expiry.setdefault(int(item[0] // 86400), []).append(p)
        self._pending = [self._restored(*c) for c in state["pending"]]
        heapq.heapify(self._pending)
        self._queued = {c[1] for c in self._pending}
        self.reported = set(state["reported"])

    def _restored(self, t: Any, i: str, p: str, ty: str, r: Any, a: Any) -> _Contact:
        """A contact from a snapshot (refs flat; older snapshots held them as pairs or as
        an object, and the kept attrs as a list of values)."""
        if isinstance(r, dict):
            r = [x for kv in r.items() for x in kv]
        elif r and isinstance(r[0], list):
            r = [x for kv in r for x in kv]
        refs = tuple(str(x) for x in r)
        attrs = dict(zip(_KEPT_ATTRS, a, strict=True)) if isinstance(a, list) else a
        return (float(t), i, p, ty, refs, self._kept(attrs))
