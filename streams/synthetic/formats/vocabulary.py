"""Codes and names the synthetic hospital's systems put into HL7 v2 and FHIR messages.

Standard codes where a standard has one (HL7 tables, FHIR value sets, LOINC document
types); the hospital's own codes otherwise, under invented ``.example`` code systems.
The site mapping shipped with the generator (``mapping.yaml``) lists the local codes.
Patient names and birth dates are made up from the patient number: plainly synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

__all__ = [
    "CHANNEL_CODES",
    "DOCUMENT_TYPES",
    "INITIATOR_CODES",
    "LOCAL_SYSTEM",
    "PRIORITY_HL7",
    "SLOT_MINUTES",
    "TESTS",
    "DocumentType",
    "PatientDetails",
    "TestCode",
    "length_of_stay",
    "patient_details",
]

#: Root of the hospital's own FHIR code systems and identifier namespaces.
LOCAL_SYSTEM = "https://synthetic-hospital.example/fhir"

#: Length of an outpatient appointment slot as written in messages, in minutes (the
#: events carry only the start).
SLOT_MINUTES = 20


@dataclass(frozen=True, slots=True)
class TestCode:
    """A local test with what its report says: ``department`` is HL7 table 0074 (HM, CH,
    MB, RAD); ``value_type`` NM (number) or TX (text); ``normal``, ``abnormal`` and
    ``critical`` are ``(flag, value)`` with flags from HL7 table 0078 / FHIR
    ObservationInterpretation."""

    name: str
    department: str
    analyte: str
    analyte_name: str
    value_type: str
    units: str
    reference_range: str
    normal: tuple[str, str]
    abnormal: tuple[str, str]
    critical: tuple[str, str]

    @property
    def imaging(self) -> bool:
        """Whether the radiology system (not the laboratory) reports it."""
        return self.department == "RAD"

    def reading(self, abnormal: bool, critical: bool) -> tuple[str, str]:
        """The ``(flag, value)`` a report of this test shows."""
        if critical:
            return self.critical
        return self.abnormal if abnormal else self.normal


TESTS: dict[str, TestCode] = {
    "FBC": TestCode(
        "Full blood count", "HM", "HB", "Haemoglobin", "NM", "g/L", "130-170",
        ("N", "142"), ("L", "98"), ("LL", "61"),
    ),
    "U&E": TestCode(
        "Urea and electrolytes", "CH", "K", "Potassium", "NM", "mmol/L", "3.5-5.3",
        ("N", "4.2"), ("H", "5.9"), ("HH", "6.8"),
    ),
    "LFT": TestCode(
        "Liver function tests", "CH", "ALT", "Alanine transaminase", "NM", "U/L", "0-40",
        ("N", "24"), ("H", "112"), ("HH", "1450"),
    ),
    "CRP": TestCode(
        "C-reactive protein", "CH", "CRP", "C-reactive protein", "NM", "mg/L", "0-5",
        ("N", "3"), ("H", "48"), ("HH", "310"),
    ),
    "TROP": TestCode(
        "Troponin T (high sensitivity)", "CH", "TROPT", "Troponin T", "NM", "ng/L", "0-14",
        ("N", "8"), ("H", "52"), ("HH", "880"),
    ),
    "COAG": TestCode(
        "Coagulation screen", "HM", "INR", "INR", "NM", "{ratio}", "0.8-1.2",
        ("N", "1.0"), ("H", "2.9"), ("HH", "8.4"),
    ),
    "TFT": TestCode(
        "Thyroid function tests", "CH", "TSH", "Thyroid stimulating hormone", "NM", "mU/L",
        "0.3-4.2", ("N", "1.8"), ("H", "9.6"), ("HH", "85"),
    ),
    "HBA1C": TestCode(
        "HbA1c", "CH", "HBA1C", "Haemoglobin A1c", "NM", "mmol/mol", "20-41",
        ("N", "36"), ("H", "68"), ("HH", "140"),
    ),
    "LIPID": TestCode(
        "Lipid profile", "CH", "CHOL", "Cholesterol", "NM", "mmol/L", "0-5.0",
        ("N", "4.4"), ("H", "7.2"), ("HH", "15.1"),
    ),
    "BCUL": TestCode(
        "Blood culture", "MB", "BCUL", "Blood culture", "TX", "", "",
        ("N", "No growth after 5 days"), ("A", "Coagulase-negative staphylococci (likely contaminant)"),
        ("AA", "Gram-negative bacilli isolated"),
    ),
    "MSU": TestCode(
        "Mid-stream urine culture", "MB", "MSU", "Urine culture", "TX", "", "",
        ("N", "No significant growth"), ("A", "Mixed growth, repeat if symptomatic"),
        ("AA", "Heavy growth of a resistant organism"),
    ),
    "CXR": TestCode(
        "Chest X-ray", "RAD", "CXR", "Chest X-ray report", "TX", "", "",
        ("N", "No acute abnormality"), ("A", "Right lower zone consolidation"),
        ("AA", "Large right pneumothorax"),
    ),
    "CTHEAD": TestCode(
        "CT head", "RAD", "CTHEAD", "CT head report", "TX", "", "",
        ("N", "No acute intracranial abnormality"), ("A", "Chronic small vessel disease"),
        ("AA", "Acute subdural haematoma"),
    ),
    "USABDO": TestCode(
        "Ultrasound abdomen", "RAD", "USABDO", "Ultrasound abdomen report", "TX", "", "",
        ("N", "Normal study"), ("A", "Gallstones without cholecystitis"),
        ("AA", "Free fluid, suspected rupture"),
    ),
}  # fmt: skip

#: Canonical priority -> HL7 table 0485 code (TQ1-9, ORC-7.6). FHIR uses the canonical
#: word itself (request-priority: stat, urgent, routine).
PRIORITY_HL7 = {"stat": "S", "urgent": "A", "routine": "R"}


@dataclass(frozen=True, slots=True)
class DocumentType:
    """How a document kind is typed: HL7 TXA-2 (table 0270 or local) and a FHIR coding."""

    hl7: str
    system: str
    code: str
    display: str


#: Canonical ``document.sent`` kind -> its type codes. No standard code exists for an
#: appointment letter, so it is the hospital's own ``APL``.
DOCUMENT_TYPES: dict[str, DocumentType] = {
    "discharge-summary": DocumentType("DS", "http://loinc.org", "18842-5", "Discharge summary"),
    "clinic-letter": DocumentType("CN", "http://loinc.org", "11488-4", "Consult note"),
    "appointment-letter": DocumentType(
        "APL", f"{LOCAL_SYSTEM}/CodeSystem/document-type", "APL", "Appointment letter"
    ),
}

#: Canonical notification channel -> (HL7 site segment ZNT-2 code, FHIR
#: Communication.medium code from v3 ParticipationMode).
CHANNEL_CODES: dict[str, tuple[str, str]] = {
    "sms": ("SMS", "SMSWRIT"),
    "email": ("EMAIL", "EMAILWRIT"),
    "portal": ("PORTAL", "ONLINEWRIT"),
    "phone": ("PHONE", "PHONE"),
    "letter": ("LETTER", "MAILWRIT"),
}

#: Who asked for a reschedule or cancellation -> (HL7 SCH-6 code, FHIR
#: appointment-cancellation-reason code); ``deceased`` is the family's cancellation.
INITIATOR_CODES: dict[str, tuple[str, str]] = {
    "hospital": ("HOSP", "prov"),
    "patient": ("PAT", "pat"),
    "deceased": ("PAT", "pat-dec"),
}

_FAMILY = ("ASH", "BEECH", "BIRCH", "CEDAR", "ELDER", "ELM", "HAZEL", "HOLLY", "LARCH")
_GIVEN = ("ALEX", "CHARLIE", "FRANKIE", "JAMIE", "JO", "KIT", "MORGAN", "ROBIN", "SAM")


@dataclass(frozen=True, slots=True)
class PatientDetails:
    """Made-up demographics of a synthetic patient (tree surnames, unisex names)."""

    family: str
    given: str
    birth_date: date
    sex: str  # HL7 table 0001: F, M


def patient_details(patient: str) -> PatientDetails:
    """Demographics derived from the digits of a patient id (``P0001234``), the same
    every time; ids without digits get those of patient 0."""
    digits = "".join(c for c in patient if c.isdigit())
    n = int(digits) if digits else 0
    return PatientDetails(
        family=_FAMILY[n % len(_FAMILY)],
        given=_GIVEN[(n // 7) % len(_GIVEN)],
        birth_date=date(1930 + n % 85, 1 + (n // 5) % 12, 1 + (n // 3) % 28),
        sex="F" if n % 2 else "M",
    )


def length_of_stay(encounter: str) -> int:
    """An invented length of stay in seconds (1-9 days and some hours) for an inpatient
    encounter (``V00000123``), from its digits, so it needs no random draw."""
    n = int(encounter[1:]) if encounter[1:].isdigit() else 0
    return (1 + n % 9) * 86400 + (n % 13) * 3600
