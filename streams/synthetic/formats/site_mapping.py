"""The site mapping that reads the generator's HL7 v2 and FHIR output back into the
canonical events (``mapping.yaml`` in this package)."""

from __future__ import annotations

from importlib import resources

from streams.adapters import SiteMapping, mapping_from_text

__all__ = ["MAPPING_NAME", "generator_mapping", "mapping_text"]

#: How the packaged file is named in errors and docs.
MAPPING_NAME = "streams/synthetic/formats/mapping.yaml"


def mapping_text() -> str:
    """The YAML text of the generator's site mapping (to write out for ``carewatch run
    --mapping``)."""
    return resources.files(__package__).joinpath("mapping.yaml").read_text("utf-8")


def generator_mapping() -> SiteMapping:
    """The generator's site mapping, validated and layered over the adapters' defaults."""
    return mapping_from_text(mapping_text(), MAPPING_NAME)
