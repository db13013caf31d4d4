"""What every scenario of one run shares: settings, the hospital, the event log, the
truth book and the session ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from streams.synthetic.config import FailureRates
from streams.synthetic.hospital import Hospital
from streams.synthetic.log import EventLog
from streams.synthetic.sessions import SessionBook
from streams.synthetic.timing import DAY
from streams.synthetic.truth import TruthBook

__all__ = ["Run"]


@dataclass(slots=True)
class Run:
    """The state of one synthetic run. ``first_day`` is the epoch day number of the window's
    first day; the window is ``days`` days long."""

    seed: int
    first_day: int
    days: int
    scale: float
    rates: FailureRates
    hospital: Hospital
    log: EventLog = field(default_factory=EventLog)
    truth: TruthBook = field(default_factory=TruthBook)
    sessions: SessionBook = field(init=False)
    _next_deceased: int = 0

    def __post_init__(self) -> None:
        self.sessions = SessionBook(self.first_day, self.days)

    def rng(self, part: str) -> Random:
        """An independent random stream for one part of the hospital, so that changing one
        process's settings leaves the others' draws unchanged."""
        return Random(f"{self.seed}:{part}")

    def rng_for(self, part: str, item: str) -> Random:
        """A random stream of its own for one item of a part (a patient, a case), so a
        case added to a scenario draws nothing from the scenario's own stream."""
        return Random(f"{self.seed}:{part}:{item}")

    def window_midnights(self) -> list[int]:
        """Midnight (epoch s UTC) of each day of the window."""
        return [(self.first_day + i) * DAY for i in range(self.days)]

    def random_patient(self, rng: Random) -> str:
        """A living patient from the hospital's list."""
        return self.hospital.patient_id(rng.randint(1, self.hospital.patients))

    def new_deceased_patient(self) -> str:
        """A patient id used by nobody else: the deceased never share a key with the living,
        so no other scenario can contact them by accident."""
        self._next_deceased += 1
        return self.hospital.patient_id(self.hospital.patients + self._next_deceased)
