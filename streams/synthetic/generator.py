"""One synthetic run, from settings to the sorted canonical events and their truth."""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

from streams.synthetic.appointments import generate_appointments
from streams.synthetic.config import SCALES, GeneratorConfig
from streams.synthetic.context import Run
from streams.synthetic.deaths import generate_deaths
from streams.synthetic.discharges import generate_discharges, generate_inpatient_deaths
from streams.synthetic.hospital import build_hospital
from streams.synthetic.labs import generate_orders
from streams.synthetic.log import Record
from streams.synthetic.timing import DAY

__all__ = ["Generated", "generate", "generate_events"]


@dataclass(frozen=True, slots=True)
class Generated:
    """The result of a run: ``records`` as ``(time, id, event)`` sorted by event time (epoch
    s UTC), ties by id, and one ``truth`` record per opportunity sorted by
    ``(detector, failure_id)``."""

    records: list[Record]
    truth: list[dict[str, Any]]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The canonical events, in stream order."""
        return [event for _, _, event in self.records]


def generate(config: GeneratorConfig) -> Generated:
    """Run the synthetic hospital described by ``config``; deterministic for its seed."""
    config.validate()
    scale = SCALES[config.scale]
    run = Run(
        seed=config.seed,
        first_day=config.start_epoch // DAY,
        days=config.days,
        scale=scale,
        rates=config.rates,
        hospital=build_hospital(scale, Random(f"{config.seed}:hospital")),
    )
    generate_appointments(run)
    generate_deaths(run)  # books into sessions too, so before the sessions are closed
    run.sessions.close(run.log, run.truth, run.rng("sessions"), config.rates.overbooked)
    generate_orders(run)
    generate_discharges(run)
    generate_inpatient_deaths(run)
    return Generated(run.log.sorted_records(), run.truth.records())


def generate_events(config: GeneratorConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(events, truth)`` of a run: canonical event dicts in event-time order and the
    expected outcome records. No delivery faults."""
    result = generate(config)
    return result.events, result.truth
