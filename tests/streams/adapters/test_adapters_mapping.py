"""The site mapping: defaults, the worked example, merging and errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.errors import RulesError
from streams.adapters import default_mapping, load_mapping, mapping_from_text

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "site-mapping.example.yaml"


def test_defaults() -> None:
    mapping = default_mapping()
    assert mapping.timezone == "Europe/London"
    assert mapping.date_only == "midnight"
    assert mapping.codes.document_kinds["DS"] == "discharge-summary"
    assert mapping.codes.document_kinds["11488-4"] == "clinic-letter"
    assert mapping.codes.priority_of("s") == "stat"
    assert mapping.codes.priority_of("nonsense") == "routine"
    assert mapping.codes.flags(["N", ""]) == (False, False)
    assert mapping.codes.flags(["H"]) == (True, False)
    assert mapping.codes.flags(["LL"]) == (True, True)
    assert [p.text for p in mapping.hl7v2.fields["appointment_start"]] == [
        "TQ1-7.1",
        "AIS-4.1",
        "SCH-11.4",
    ]
    assert load_mapping(None) is mapping


def test_worked_example_loads() -> None:
    mapping = load_mapping(EXAMPLE)
    assert mapping.source == str(EXAMPLE)
    assert mapping.codes.initiator("clin") == "hospital"
    assert mapping.codes.initiator("unknown") == "hospital"  # initiated_by_default
    assert mapping.codes.document_kinds["RESCHED"] == "appointment-letter"
    assert "DS" in mapping.codes.document_kinds  # listed again in the example
    assert mapping.codes.notice_documents == {"APL": "letter", "RESCHED": "letter"}
    assert mapping.hl7v2.patient_id.identifier_types == ("NH", "NHS")
    assert mapping.hl7v2.notifications[0].segment == "ZNT"
    assert mapping.hl7v2.s14_statuses["DNA"] == "appointment.missed"
    assert mapping.hl7v2.s14_statuses["ARRIVED"] == "appointment.attended"  # default kept
    assert mapping.tabular.ref_columns == {"appointment": "appointment_id"}
    assert mapping.fhir.patient_identifier_system == "https://fhir.nhs.uk/Id/nhs-number"


def test_lists_replace_and_maps_merge() -> None:
    mapping = mapping_from_text("codes:\n  priority:\n    stat: [STAT, '1']\n")
    assert mapping.codes.priority_of("S") == "routine"  # the stat list was replaced
    assert mapping.codes.priority_of("1") == "stat"
    assert mapping.codes.priority_of("ASAP") == "urgent"  # urgent list kept


def test_codes_keep_their_written_text() -> None:
    # YAML 1.1 would read NO as false and 0123 as 83.
    mapping = mapping_from_text("codes:\n  normal_flags: [NO, 0123, 20]\n")
    assert mapping.codes.normal_flags == frozenset({"NO", "0123", "20"})


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("timezone: Mars/Olympus\n", 1, "unknown timezone 'Mars/Olympus'"),
        ("\ncodez: {}\n", 2, "codez: unknown setting; did you mean 'codes'?"),
        (
            "hl7v2:\n  fields:\n    appointment_stat: [TQ1-7]\n",
            3,
            "did you mean 'appointment_start'?",
        ),
        (
            "hl7v2:\n  fields:\n    appointment_start:\n      - TQ1-7\n      - TQ1 7\n",
            5,
            "not a field path",
        ),
        ("codes:\n  priority:\n    stat: [S]\n    urgent: [s]\n", 4, "also listed under stat"),
        ("codes:\n  priority:\n    soon: [X]\n", 3, "'soon' is not one of stat, urgent, routine"),
        ("date_only: noon\n", 1, "'noon' is not one of midnight, reject"),
        ("hl7v2:\n  a04_event: encounter.arrived\n  a04_event: x\n", 3, "duplicate key"),
        ("hl7v2:\n  patient_id:\n    fallback_to_first: maybe\n", 3, "must be true or false"),
        ("codes: [1, 2]\n", 1, "must be a mapping of settings"),
        ("tabular:\n  csv:\n    delimiter: ';;'\n", 3, "one character"),
        ("hl7v2:\n  notifications:\n    - {segment: znt}\n", 3, "not a segment id"),
        ("a: [1\n", 2, "not valid YAML"),
        ("base: &b {x: 1}\ncodes:\n  <<: *b\n", 3, "merge keys"),
    ],
)
def test_errors_point_at_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        mapping_from_text(text, "site.yaml")
    assert caught.value.source == "site.yaml"
    assert caught.value.line == line
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"site.yaml:{line}: ")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the site mapping"):
        load_mapping(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_mapping(empty).timezone == "Europe/London"
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(RulesError, match="must be a YAML mapping"):
        load_mapping(scalar)
