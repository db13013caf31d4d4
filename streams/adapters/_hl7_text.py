"""Where the site-mapping reader (``mapping.py``, ``_settings_reader.py``) finds HL7 field
paths; the HL7 v2 text layer itself is ``streams.adapters.hl7.text``. Those two readers
should import from there directly, and then this module goes."""

from __future__ import annotations

from streams.adapters.hl7.text import FieldPath, parse_field_path

__all__ = ["FieldPath", "parse_field_path"]
