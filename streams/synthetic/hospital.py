"""The synthetic hospital: sites, specialties, clinics with weekly session templates,
the laboratory's test menu and the patient list.

Everything here is invented. Identifiers follow obviously synthetic patterns
(``P0001234``) and never look like NHS numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

__all__ = [
    "INPATIENT_SPECIALTIES",
    "LAB_TESTS",
    "OUTPATIENT_SPECIALTIES",
    "SITES",
    "Clinic",
    "Hospital",
    "LabTest",
    "build_hospital",
]

SITES: tuple[str, ...] = ("north", "south", "east")

#: (specialty, clinic code prefix, share of clinics, typical session capacity range).
OUTPATIENT_SPECIALTIES: tuple[tuple[str, str, float, tuple[int, int]], ...] = (
    ("cardiology", "CARD", 0.08, (10, 16)),
    ("respiratory", "RESP", 0.06, (10, 16)),
    ("gastroenterology", "GAST", 0.07, (10, 16)),
    ("dermatology", "DERM", 0.07, (16, 24)),
    ("trauma-orthopaedics", "TORT", 0.12, (14, 22)),
    ("ophthalmology", "OPHT", 0.11, (16, 24)),
    ("ent", "ENT", 0.07, (12, 20)),
    ("general-surgery", "GSUR", 0.07, (10, 16)),
    ("urology", "UROL", 0.05, (10, 16)),
    ("gynaecology", "GYNA", 0.07, (12, 18)),
    ("paediatrics", "PAED", 0.06, (8, 14)),
    ("diabetes-endocrinology", "DIAB", 0.05, (10, 16)),
    ("rheumatology", "RHEU", 0.04, (8, 14)),
    ("neurology", "NEUR", 0.04, (8, 12)),
    ("haematology", "HAEM", 0.04, (10, 16)),
)

#: (specialty, share of discharges).
INPATIENT_SPECIALTIES: tuple[tuple[str, float], ...] = (
    ("general-medicine", 0.24),
    ("elderly-care", 0.14),
    ("general-surgery", 0.12),
    ("trauma-orthopaedics", 0.10),
    ("obstetrics", 0.12),
    ("cardiology", 0.08),
    ("respiratory", 0.07),
    ("gastroenterology", 0.05),
    ("paediatrics", 0.05),
    ("stroke", 0.03),
)


@dataclass(frozen=True, slots=True)
class LabTest:
    """A local test code with its share of orders and how likely its result is abnormal."""

    code: str
    share: float
    abnormal: float
    has_report: bool = False


LAB_TESTS: tuple[LabTest, ...] = (
    LabTest("FBC", 0.22, 0.25),
    LabTest("U&E", 0.21, 0.28),
    LabTest("LFT", 0.10, 0.22),
    LabTest("CRP", 0.12, 0.35),
    LabTest("TROP", 0.04, 0.18),
    LabTest("COAG", 0.05, 0.20),
    LabTest("TFT", 0.04, 0.12),
    LabTest("HBA1C", 0.04, 0.30),
    LabTest("LIPID", 0.03, 0.30),
    LabTest("BCUL", 0.02, 0.10, has_report=True),
    LabTest("MSU", 0.04, 0.25, has_report=True),
    LabTest("CXR", 0.05, 0.30, has_report=True),
    LabTest("CTHEAD", 0.02, 0.25, has_report=True),
    LabTest("USABDO", 0.02, 0.25, has_report=True),
)

#: Outpatient clinics of a ``medium`` hospital (about 2,000 appointments a weekday).
MEDIUM_CLINICS = 150
#: Patients known to a ``medium`` hospital.
MEDIUM_PATIENTS = 300_000


@dataclass(frozen=True, slots=True)
class Clinic:
    """An outpatient clinic: where and what it is, how many patients a session takes,
    and which half-days of the week it runs (``(weekday, "AM"|"PM")``, Monday = 0)."""

    code: str
    specialty: str
    site: str
    capacity: int
    slots: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class Hospital:
    """The whole synthetic hospital for one run."""

    sites: tuple[str, ...]
    clinics: tuple[Clinic, ...]
    patients: int

    def patient_id(self, number: int) -> str:
        """The synthetic identifier of patient ``number`` (``P`` and 7 digits)."""
        return f"P{number:07d}"


def build_hospital(scale: float, rng: Random) -> Hospital:
    """Lay out a hospital ``scale`` times the size of a mid-size acute hospital."""
    sites = SITES if scale >= 0.5 else SITES[:2]
    n_clinics = max(3, round(MEDIUM_CLINICS * scale))
    weekday_slots = [(d, half) for d in range(5) for half in ("AM", "PM")]
    clinics: list[Clinic] = []
    per_prefix: dict[str, int] = {}
    specs = [s for s, _, _, _ in OUTPATIENT_SPECIALTIES]
    weights = [w for _, _, w, _ in OUTPATIENT_SPECIALTIES]
    for i in range(n_clinics):
        # The first clinics cover the specialties in turn so a small hospital still has a mix.
        idx = i if i < len(specs) else specs.index(rng.choices(specs, weights)[0])
        spec, prefix, _, (lo, hi) = OUTPATIENT_SPECIALTIES[idx]
        per_prefix[prefix] = per_prefix.get(prefix, 0) + 1
        slots = sorted(rng.sample(weekday_slots, rng.randint(3, 7)))
        if rng.random() < 0.08:
            slots.append((5, "AM"))  # a Saturday waiting-list session
        clinics.append(
            Clinic(
                code=f"{prefix}-{per_prefix[prefix]}",
                specialty=spec,
                site=sites[i % len(sites)],
                capacity=rng.randint(lo, hi),
                slots=tuple(slots),
            )
        )
    return Hospital(sites, tuple(clinics), max(2_000, round(MEDIUM_PATIENTS * scale)))
