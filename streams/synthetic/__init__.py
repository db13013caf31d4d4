"""Synthetic hospital messaging traffic with exact ground truth.

::

    from streams.synthetic import GeneratorConfig, generate, deliver

    run = generate(GeneratorConfig(days=7, seed=1, scale="small"))
    run.events      # canonical event dicts, sorted by event time (ties by id)
    run.truth       # one expected-outcome record per opportunity
    lines = deliver(run.records, DeliveryFaults(shuffle_within=300), seed=1)

See ``docs/generator.md`` for the hospital, the rates and the truth format, and
``streams.synthetic.formats`` for the same traffic as HL7 v2 messages or FHIR R4 resources.
"""

from streams.synthetic.config import (
    DEFAULT_START,
    FAILURE_PRESETS,
    SCALES,
    DeliveryFaults,
    FailureRates,
    GeneratorConfig,
)
from streams.synthetic.faults import deliver
from streams.synthetic.generator import Generated, generate, generate_events
from streams.synthetic.truth import failure_id

__all__ = [
    "DEFAULT_START",
    "FAILURE_PRESETS",
    "SCALES",
    "DeliveryFaults",
    "FailureRates",
    "Generated",
    "GeneratorConfig",
    "deliver",
    "failure_id",
    "generate",
    "generate_events",
]
