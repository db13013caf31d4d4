"""``contact-after-death``: nothing should be booked, sent or said to a patient who has died.

After ``patient.died`` at ``t_d`` (the earliest for the patient), every
``appointment.booked``, ``patient.notified`` or ``document.sent`` for that patient with a
later event time is a violation. Contacts may arrive before the death message (feeds are
not ordered), so recent contacts are kept until the watermark passes them.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
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


class ContactAfterDeath(ViolationDetector):
    """No contact with a patient after their recorded death."""

    name: ClassVar[str] = "contact-after-death"

    def __init__(self) -> None:
        # patient -> (time of death, death event id)
        self.deaths: dict[str, tuple[float, str]] = {}
        # patient -> contacts not yet past the watermark: (time, id, type, refs, attrs)
        self.recent: dict[str, list[tuple[float, str, str, dict[str, str], dict[str, Any]]]] = {}
        self._expiry: list[tuple[float, str, str]] = []
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
            if known is not None and known <= (event.time, event.id):
                return  # an earlier (or the same) death is already known
            self.deaths[patient] = (event.time, event.id)
            for t, cid, ctype, refs, attrs in self.recent.get(patient, ()):
                if t > event.time:
                    self._violation(patient, t, cid, ctype, refs, attrs, ctx)
            return
        death = self.deaths.get(patient)
        if death is not None and event.time > death[0]:
            self._violation(patient, event.time, event.id, event.type, event.refs, event.attrs, ctx)
        elif event.time >= ctx.watermark:
            item = (event.time, event.id, event.type, event.refs, event.attrs)
            self.recent.setdefault(patient, []).append(item)
            heapq.heappush(self._expiry, (event.time, patient, event.id))

    def on_watermark(self, ctx: Context) -> None:
        wm = ctx.watermark
        exp = self._expiry
        while exp and exp[0][0] < wm:
            _, patient, cid = heapq.heappop(exp)
            lst = self.recent.get(patient)
            if lst is None:
                continue
            lst[:] = [c for c in lst if c[1] != cid]
            if not lst:
                del self.recent[patient]

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
            "recent": {p: [list(c) for c in lst] for p, lst in self.recent.items()},
            "reported": sorted(self.reported),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.deaths = {p: (float(t), i) for p, (t, i) in state["deaths"].items()}
        self.recent = {
            p: [(float(t), i, ty, r, a) for t, i, ty, r, a in lst]
            for p, lst in state["recent"].items()
        }
        self._expiry = [(c[0], p, c[1]) for p, lst in self.recent.items() for c in lst]
        heapq.heapify(self._expiry)
        self.reported = set(state["reported"])
