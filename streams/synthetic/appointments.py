"""Outpatient appointments: booking, reschedules, cancellations, notices, attendance and
clinic letters; the truth of ``reschedule-notice`` and ``clinic-letter-overdue``.

Each appointment follows one simple path, decided up front::

    booked -> [patient reschedule] -> [hospital reschedule] -> attended | did not attend
    booked -> [patient reschedule] -> cancelled (by the patient or by the hospital)

so there is at most one hospital-initiated change per appointment (plus, as an edge case,
two reschedules covered by one notice). Every later event of the appointment happens after
the notice of the previous change, and nothing that would count as a notice follows a
notice that was never sent, so the allocated outcome is the outcome the rules give.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

from detectors.events import format_time
from streams.synthetic.allocate import allocate
from streams.synthetic.context import Run
from streams.synthetic.hospital import Clinic
from streams.synthetic.sessions import Session
from streams.synthetic.timing import DAY, HOUR, MINUTE, office_time_between, weekday
from streams.synthetic.truth import CLINIC_LETTER, notice_due

__all__ = ["generate_appointments"]

# Shares of appointment outcomes (NHS outpatient statistics, rounded; see docs/generator.md).
ATTENDED, DNA, PATIENT_CANCELLED = 0.77, 0.07, 0.08  # the rest (8%) cancelled by the hospital
HOSPITAL_RESCHEDULE = 0.07
PATIENT_RESCHEDULE = 0.05
BOOKING_CONFIRMED = 0.7
REMINDER_SENT = 0.8

HOSPITAL_REASONS = ("clinic cancelled", "clinician unavailable", "equipment unavailable")
PATIENT_REASONS = ("patient request", "unwell", "no longer required", "transport")


@dataclass(slots=True)
class _Plan:
    patient: str
    clinic: Clinic
    session: Session
    slot: int
    booked_at: int
    terminal: str  # attended | dna | cancel-patient | cancel-hospital
    patient_move: bool
    hospital_move: bool
    double_move: bool
    notice: str = "met"
    letter: str = "met"


def generate_appointments(run: Run) -> None:
    """Plan and emit every appointment whose first session falls in the window."""
    rng = run.rng("appointments")
    plans = [p for midnight in run.window_midnights() for p in _plan_day(run, rng, midnight)]
    rates = run.rates
    noticed = [
        p
        for p in plans
        if p.terminal == "cancel-hospital" or (p.hospital_move and not p.double_move)
    ]
    for plan, outcome in zip(
        noticed,
        allocate(
            rng, len(noticed), {"late": rates.notice_late, "missed": rates.notice_missed}, "met"
        ),
        strict=True,
    ):
        plan.notice = outcome
    attended = [p for p in plans if p.terminal == "attended"]
    for plan, outcome in zip(
        attended,
        allocate(
            rng, len(attended), {"late": rates.letter_late, "missed": rates.letter_missed}, "met"
        ),
        strict=True,
    ):
        plan.letter = outcome
    for plan in plans:
        _Appointment(run, rng, plan).emit()


def _plan_day(run: Run, rng: Random, midnight: int) -> list[_Plan]:
    plans: list[_Plan] = []
    day = midnight // DAY
    wd = weekday(midnight)
    edge = run.rates.edge_cases
    for clinic in run.hospital.clinics:
        for slot_wd, half in clinic.slots:
            if slot_wd != wd:
                continue
            session = run.sessions.session(clinic, day, half)
            n = max(1, round(clinic.capacity * rng.uniform(0.82, 1.0)))
            for i in range(n):
                slot = session.slot(i)
                lead_days = min(28, 1 + int(rng.expovariate(1 / 10.0)))
                booked_day = (slot // DAY - lead_days) * DAY
                booked_at = office_time_between(rng, booked_day, booked_day + DAY - 1)
                r = rng.random()
                if r < ATTENDED:
                    terminal = "attended"
                elif r < ATTENDED + DNA:
                    terminal = "dna"
                elif r < ATTENDED + DNA + PATIENT_CANCELLED:
                    terminal = "cancel-patient"
                else:
                    terminal = "cancel-hospital"
                roomy = slot - booked_at >= 2 * DAY
                patient_move = roomy and rng.random() < PATIENT_RESCHEDULE
                hospital_move = (
                    roomy and terminal in ("attended", "dna") and rng.random() < HOSPITAL_RESCHEDULE
                )
                double_move = hospital_move and rng.random() < edge
                plans.append(
                    _Plan(
                        run.random_patient(rng),
                        clinic,
                        session,
                        slot,
                        booked_at,
                        terminal,
                        patient_move,
                        hospital_move,
                        double_move,
                    )
                )
    return plans


class _Appointment:
    """Emits one planned appointment and records its truth."""

    def __init__(self, run: Run, rng: Random, plan: _Plan) -> None:
        self.run, self.rng, self.plan = run, rng, plan
        self.id = run.log.new_id("A")
        self.session = plan.session
        self.start = plan.slot
        self.last = plan.booked_at
        self.notices: list[int] = []  # every event that counts as a notice for this key
        self.openings: list[tuple[str, int, int]] = []  # (event id, t_a, due)
        self.notice_missed = False
        clinic = plan.clinic
        self.where = {"clinic": clinic.code, "specialty": clinic.specialty, "site": clinic.site}

    # -- the path ---------------------------------------------------------------------------

    def emit(self) -> None:
        plan = self.plan
        self._book()
        if plan.patient_move:
            self._patient_reschedule()
        if plan.double_move:
            self._double_reschedule()
        elif plan.hospital_move:
            self._hospital_reschedule(plan.notice)
        if plan.terminal == "cancel-hospital":
            self._cancel("hospital", plan.notice)
        elif plan.terminal == "cancel-patient":
            self._cancel("patient", "met")
        else:
            self._reminder()
            if plan.terminal == "attended":
                self._attend()
            else:
                missed_at = self.start + self.rng.randint(20 * MINUTE, 90 * MINUTE)
                self._event(missed_at, "appointment.missed", {}, dict(self.where))
        for eid, t_a, due in self.openings:
            self.run.truth.expectation("reschedule-notice", self.id, eid, t_a, due, self.notices)

    def _book(self) -> None:
        t0 = self.plan.booked_at
        eid = self._event(
            t0,
            "appointment.booked",
            {"session": self.session.id},
            {"start": format_time(self.start), **self.where},
        )
        self.run.sessions.enter(self.session, t0, eid)
        if self.rng.random() < BOOKING_CONFIRMED:
            self._notice(t0 + self.rng.randint(2 * MINUTE, 3 * HOUR))

    def _move_to(self, t: int, initiated_by: str, *, with_previous: bool = True) -> tuple[str, int]:
        """Move to the same half-day one to four weeks later; returns the event id and the
        previous start (epoch s UTC)."""
        weeks = self.rng.randint(1, 4)
        prev_session, prev_start = self.session, self.start
        half = prev_session.id.rsplit("-", 1)[1]
        new = self.run.sessions.session(
            self.plan.clinic, prev_session.start // DAY + 7 * weeks, half
        )
        self.session = new
        self.start = new.slot(self.rng.randrange(self.plan.clinic.capacity))
        attrs: dict[str, Any] = {"start": format_time(self.start)}
        if with_previous:
            attrs["previous_start"] = format_time(prev_start)
        attrs["initiated_by"] = initiated_by
        attrs.update(self.where)
        eid = self._event(t, "appointment.rescheduled", {"session": new.id}, attrs)
        self.run.sessions.leave(prev_session, t, eid)
        self.run.sessions.enter(new, t, eid)
        return eid, prev_start

    def _patient_reschedule(self) -> None:
        lo = self.last + HOUR
        t = office_time_between(self.rng, lo, lo + (self.start - lo) // 2)
        self._move_to(t, "patient")
        self.last = t
        if self.rng.random() < 0.6:
            self._notice(t + self.rng.randint(MINUTE, 2 * HOUR))

    def _hospital_reschedule(self, outcome: str) -> None:
        t = office_time_between(self.rng, self.last + HOUR, self.start - HOUR)
        edge = self.rng.random() < self.run.rates.edge_cases
        flavour = self.rng.choice(("at-due", "same-second", "no-previous")) if edge else ""
        if outcome == "met" and flavour == "same-second":
            # The notice is decided first, so its id sorts before the change it answers.
            self._notice(t)
            eid, prev_start = self._move_to(t, "hospital")
            self.openings.append((eid, t, notice_due(t, prev_start)))
            self.last = t
            return
        no_previous = flavour == "no-previous"
        eid, prev_start = self._move_to(t, "hospital", with_previous=not no_previous)
        due = notice_due(t, None if no_previous else prev_start)
        self.openings.append((eid, t, due))
        self.last = t
        self._answer(t, due, outcome, at_due=flavour in ("at-due", "no-previous"))

    def _double_reschedule(self) -> None:
        """Edge case: two hospital reschedules answered by one notice, which counts for both."""
        t1 = office_time_between(self.rng, self.last + HOUR, self.start - HOUR)
        eid1, prev1 = self._move_to(t1, "hospital")
        due1 = notice_due(t1, prev1)
        if due1 - t1 >= 8 * HOUR:
            t2 = t1 + self.rng.randint(10 * MINUTE, 3 * HOUR)  # both answered in time
        else:
            t2 = due1 + self.rng.randint(HOUR, 3 * DAY)  # the first is answered late
        eid2, prev2 = self._move_to(t2, "hospital")
        self.openings += [(eid1, t1, due1), (eid2, t2, notice_due(t2, prev2))]
        self._notice(t2 + self.rng.randint(MINUTE, HOUR))

    def _cancel(self, initiated_by: str, outcome: str) -> None:
        retrospective = (
            initiated_by == "hospital"
            and outcome == "met"
            and self.rng.random() < self.run.rates.edge_cases
        )
        if retrospective:
            # Recorded after the appointment time had passed: due is t + 48h.
            t = self.start + self.rng.randint(HOUR, 8 * HOUR)
        else:
            t = office_time_between(self.rng, self.last + HOUR, self.start - HOUR)
        reasons = HOSPITAL_REASONS if initiated_by == "hospital" else PATIENT_REASONS
        eid = self._event(
            t,
            "appointment.cancelled",
            {},
            {
                "previous_start": format_time(self.start),
                "initiated_by": initiated_by,
                "reason": self.rng.choice(reasons),
                **self.where,
            },
        )
        self.run.sessions.leave(self.session, t, eid)
        self.last = t
        if initiated_by == "hospital":
            due = notice_due(t, self.start)
            self.openings.append((eid, t, due))
            self._answer(t, due, outcome, at_due=self.rng.random() < self.run.rates.edge_cases)
        elif self.rng.random() < 0.5:
            self._notice(t + self.rng.randint(MINUTE, 3 * HOUR))

    def _answer(self, t: int, due: int, outcome: str, *, at_due: bool) -> None:
        """Send (or not) the notice of a hospital change made at ``t`` with deadline ``due``."""
        if outcome == "missed":
            self.notice_missed = True
            return
        if outcome == "late":
            over = 1 if at_due else self.rng.randint(10 * MINUTE, 3 * DAY)
            self._notice(due + over)
        elif at_due:
            self._notice(due)
        elif self.rng.random() < 0.6:
            self._notice(min(due, t + self.rng.randint(30, 15 * MINUTE)))
        else:
            self._notice(min(due, t + self.rng.randint(30 * MINUTE, 24 * HOUR)))

    def _reminder(self) -> None:
        if self.notice_missed or self.rng.random() >= REMINDER_SENT:
            return
        day = (self.start // DAY - 2) * DAY
        t = day + self.rng.randint(10 * HOUR, 16 * HOUR)
        if t > self.last + MINUTE:
            self._notice(t, channel="sms")

    def _attend(self) -> None:
        t = self.start + self.rng.randint(0, 40 * MINUTE)
        eid = self._event(t, "appointment.attended", {}, dict(self.where))
        edge = self.rng.random() < self.run.rates.edge_cases
        letters: list[int] = []
        if self.plan.letter == "met":
            letters.append(t + CLINIC_LETTER if edge else t + self.rng.randint(2 * HOUR, 6 * DAY))
        elif self.plan.letter == "late":
            letters.append(t + CLINIC_LETTER + (1 if edge else self.rng.randint(HOUR, 10 * DAY)))
        for sent in letters:
            doc = self.run.log.new_id("D", 9)
            self._event(
                sent, "document.sent", {"document": doc}, {"kind": "clinic-letter", **self.where}
            )
        self.run.truth.expectation(
            "clinic-letter-overdue", self.id, eid, t, t + CLINIC_LETTER, letters
        )

    # -- primitives -------------------------------------------------------------------------

    def _notice(self, t: int, channel: str | None = None) -> None:
        """A notice to the patient about this appointment: a text or a letter."""
        if channel is None:
            channel = (
                "letter" if self.rng.random() < 0.5 else self.rng.choice(("sms", "email", "portal"))
            )
        if channel == "letter":
            doc = self.run.log.new_id("D", 9)
            self._event(t, "document.sent", {"document": doc}, {"kind": "appointment-letter"})
        else:
            self._event(t, "patient.notified", {}, {"channel": channel})
        self.notices.append(t)
        self.last = max(self.last, t)

    def _event(self, t: int, type_: str, refs: dict[str, str], attrs: dict[str, Any]) -> str:
        return self.run.log.emit(
            t, type_, self.plan.patient, {"appointment": self.id, **refs}, attrs
        )
