"""Deaths of patients with a future appointment, and contacts after death; the truth of
``contact-after-death``.

Each death belongs to a patient used by no other scenario, so every contact with that
patient after the death is one the generator chose to inject, and each is one violation.
"""

from __future__ import annotations

from random import Random
from typing import Any

from detectors.events import format_time
from streams.synthetic.allocate import allocate
from streams.synthetic.context import Run
from streams.synthetic.sessions import Session
from streams.synthetic.timing import DAY, HOUR, MINUTE, DailyCount, office_time_between
from streams.synthetic.truth import notice_due

__all__ = ["generate_deaths"]

#: Deaths a day at ``medium`` scale among patients with a future appointment (an assumption).
DEATHS_PER_DAY = 6
CONTACT_KINDS = ("reminder", "letter", "booking")


def generate_deaths(run: Run) -> None:
    """Emit the deaths of the window, each with an appointment booked before it, and the
    contacts after death chosen by the ``contact_after_death`` rate."""
    rng = run.rng("deaths")
    counts = DailyCount(rng)
    deaths = [
        midnight + rng.randrange(DAY)
        for midnight in run.window_midnights()
        for _ in range(counts.draw("deaths", DEATHS_PER_DAY * run.scale))
    ]
    outcomes = allocate(rng, len(deaths), {"contact": run.rates.contact_after_death}, "none")
    for t_d, outcome in zip(deaths, outcomes, strict=True):
        _Death(run, rng, t_d).emit(contact=outcome == "contact")


class _Death:
    def __init__(self, run: Run, rng: Random, t_d: int) -> None:
        self.run, self.rng, self.t_d = run, rng, t_d
        self.patient = run.new_deceased_patient()
        self.clinic = rng.choice(run.hospital.clinics)
        self.where = {
            "clinic": self.clinic.code,
            "specialty": self.clinic.specialty,
            "site": self.clinic.site,
        }

    def emit(self, *, contact: bool) -> None:
        run, rng, t_d = self.run, self.rng, self.t_d
        session = run.sessions.next_session(self.clinic, t_d + rng.randint(1, 14) * DAY)
        appointment = run.log.new_id("A")
        start = session.slot(rng.randrange(self.clinic.capacity))
        booked = office_time_between(rng, t_d - 20 * DAY, t_d - HOUR)
        self._book(booked, appointment, session, start)
        confirmed = booked + rng.randint(2 * MINUTE, 3 * HOUR)
        if confirmed < t_d:
            self._event(
                confirmed, "patient.notified", {"appointment": appointment}, {"channel": "sms"}
            )
        run.log.emit(t_d, "patient.died", self.patient, {}, {})
        edge = rng.random() < run.rates.edge_cases
        if edge and rng.random() < 0.5:
            # Contact at the very instant of death: not strictly after it, not an opportunity.
            self._event(t_d, "patient.notified", {"appointment": appointment}, {"channel": "sms"})
        last = t_d
        if contact:
            kinds = rng.sample(CONTACT_KINDS, 2 if rng.random() < 0.25 else 1)
            for kind in kinds:
                last = max(last, self._contact(kind, appointment, start))
        if edge:
            # A second death notice from another source, later: the earliest one counts.
            run.log.emit(last + rng.randint(HOUR, DAY), "patient.died", self.patient, {}, {})
        if start - HOUR - (last + HOUR) > HOUR and rng.random() < 0.7:
            t = office_time_between(rng, last + HOUR, start - HOUR)
            # The family told the hospital, or the hospital cancels the clinic's
            # appointments of a patient whose death it has recorded: a change it made, but
            # no notice is owed (the opportunity is void from its opening).
            by_hospital = run.rng_for("after-death", self.patient).random() < 0.3
            eid = self._event(
                t,
                "appointment.cancelled",
                {"appointment": appointment},
                {
                    "previous_start": format_time(start),
                    "initiated_by": "hospital" if by_hospital else "patient",
                    "reason": "patient deceased",
                    **self.where,
                },
            )
            run.sessions.leave(session, t, eid)
            if by_hospital:
                due = notice_due(t, start)
                run.truth.expectation("reschedule-notice", appointment, eid, t, due, [], [t])
        else:
            t = max(start, last) + rng.randint(30 * MINUTE, 2 * HOUR)
            self._event(t, "appointment.missed", {"appointment": appointment}, dict(self.where))

    def _contact(self, kind: str, appointment: str, start: int) -> int:
        """Inject one contact after death; returns its time (epoch s UTC)."""
        rng, t_d = self.rng, self.t_d
        if kind == "reminder":
            t = (start // DAY - 2) * DAY + rng.randint(10 * HOUR, 16 * HOUR)
            if t <= t_d:
                t = t_d + rng.randint(10 * MINUTE, max(10 * MINUTE, (start - t_d) // 2))
            eid = self._event(
                t, "patient.notified", {"appointment": appointment}, {"channel": "sms"}
            )
        elif kind == "letter":
            t = t_d + rng.randint(HOUR, 3 * DAY)
            refs = {"appointment": appointment, "document": self.run.log.new_id("D", 9)}
            eid = self._event(t, "document.sent", refs, {"kind": "appointment-letter"})
        else:
            t = t_d + rng.randint(HOUR, 5 * DAY)
            session = self.run.sessions.next_session(self.clinic, t + rng.randint(7, 28) * DAY)
            start_new = session.slot(rng.randrange(self.clinic.capacity))
            eid = self._book(t, self.run.log.new_id("A"), session, start_new)
        self.run.truth.contact_after_death(self.patient, eid, t)
        return t

    def _book(self, t: int, appointment: str, session: Session, start: int) -> str:
        eid = self._event(
            t,
            "appointment.booked",
            {"appointment": appointment, "session": session.id},
            {"start": format_time(start), **self.where},
        )
        self.run.sessions.enter(session, t, eid)
        return eid

    def _event(self, t: int, type_: str, refs: dict[str, str], attrs: dict[str, Any]) -> str:
        return self.run.log.emit(t, type_, self.patient, refs, attrs)
