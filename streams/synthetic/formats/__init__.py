"""The synthetic traffic as a hospital's systems would send it: HL7 v2 messages or FHIR
R4 resources, besides the canonical JSON Lines.

::

    from streams.synthetic import DeliveryFaults, GeneratorConfig, generate
    from streams.synthetic.formats import deliver_as, format_truth, generator_mapping

    run = generate(GeneratorConfig(days=3, seed=1, scale="small"))
    hl7 = b"".join(deliver_as(run.records, "hl7", DeliveryFaults(), seed=1))
    events = iter_records(hl7, "hl7", generator_mapping())   # streams.adapters
    expected = format_truth(run, "hl7")                        # what a reader can find

Which message or resource each event becomes is set out in ``hl7_writer`` and
``fhir_writer`` and in ``docs/generator.md``; ``NOT_CARRIED`` lists the events a format
has no message for, ``DETECTORS_FED`` the detectors each format can feed.
"""

from streams.synthetic.formats.delivery import (
    NOT_CARRIED,
    OUTPUT_FORMATS,
    Encoder,
    deliver_as,
    encoder,
)
from streams.synthetic.formats.expected import DETECTORS, DETECTORS_FED, format_truth
from streams.synthetic.formats.site_mapping import MAPPING_NAME, generator_mapping, mapping_text

__all__ = [
    "DETECTORS",
    "DETECTORS_FED",
    "MAPPING_NAME",
    "NOT_CARRIED",
    "OUTPUT_FORMATS",
    "Encoder",
    "deliver_as",
    "encoder",
    "format_truth",
    "generator_mapping",
    "mapping_text",
]
