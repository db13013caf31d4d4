"""The ``carewatch run`` command end to end, through ``main()`` as the console script
calls it, on files in a temporary directory."""

from __future__ import annotations

import gzip
import json
import os
from importlib.metadata import version
from pathlib import Path

import pytest

from streams.cli import main
from tests.detectors.helpers import at


def line(**obj: object) -> str:
    return json.dumps(obj) + "\n"


GOOD = [
    line(
        id="1",
        type="order.placed",
        time=at(0),
        patient="P1",
        refs={"order": "O1"},
        attrs={"priority": "stat", "site": "north"},
    ),
    line(
        id="2",
        type="result.reported",
        time=at(0.5),
        patient="P1",
        refs={"order": "O1"},
        attrs={"critical": True},
    ),
    line(
        id="3",
        type="order.placed",
        time=at(0),
        patient="P2",
        refs={"order": "O2"},
        attrs={"priority": "stat"},
    ),
    line(
        id="4",
        type="order.placed",
        time=at(1),
        patient="P3",
        refs={"order": "O3"},
        attrs={"priority": "routine"},
    ),
    line(id="5", type="encounter.discharged", time=at(2), patient="P4", refs={"encounter": "E1"}),
]
BAD = [
    "{not json\n",
    line(id="6", type="order.placed", time="2026-03-02T09:00:00", refs={"order": "O9"}),
    line(type="order.placed", time=at(0)),
    "[1, 2]\n",
]


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_run_writes_the_four_files_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("".join(GOOD[:2] + BAD[:2] + GOOD[2:] + BAD[2:]))
    out = tmp_path / "out"
    code = main(["run", str(src), "--out", str(out), "--as-of", at(3), "--quiet"])
    assert code == 0
    failures = read(out / "failures.jsonl")
    outcomes = read(out / "outcomes.jsonl")
    still_open = read(out / "open.jsonl")
    rejected = read(out / "rejected.jsonl")

    assert {(f["detector"], f["refs"].get("order"), f["status"]) for f in failures} == {
        ("result-overdue", "O2", "missed"),
        ("result-unacknowledged", "O1", "missed"),
    }
    o2 = next(f for f in failures if f["refs"].get("order") == "O2")
    assert o2["patient"] == "P2"
    assert o2["due_at"] == "2026-03-02T10:00:00+00:00"
    # declared when the last event (11:00) moved the watermark to 10:50
    assert o2["detected_at"] == "2026-03-02T10:50:00+00:00"
    assert "Order O2" in o2["summary"] and "has not happened" in o2["summary"]
    assert {o["outcome"] for o in outcomes} == {"met", "missed"}
    assert {(o["detector"], o["key"]) for o in still_open} == {
        ("result-overdue", "O3"),
        ("discharge-summary-overdue", "E1"),
    }
    assert [(r["origin"], r["location"], r["kind"]) for r in rejected] == [
        (str(src), "line 3", "invalid"),
        (str(src), "line 4", "invalid"),
        (str(src), "line 8", "invalid"),
        (str(src), "line 9", "invalid"),
    ]
    assert "not valid JSON" in rejected[0]["reason"]
    assert "no UTC offset" in rejected[1]["reason"]
    assert "id is missing" in rejected[2]["reason"]

    printed = capsys.readouterr().out
    assert "result-overdue" in printed and "failure rate" in printed
    assert "5 events" in printed and "4 rejected" in printed


def test_stdin_and_gzip_inputs_give_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    gz = tmp_path / "events.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write("".join(GOOD))
    assert main(["run", str(gz), "--out", str(tmp_path / "a"), "--as-of", at(3), "--quiet"]) == 0
    stdin = io.TextIOWrapper(io.BytesIO("".join(GOOD).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["run", "-", "--out", str(tmp_path / "b"), "--as-of", at(3), "--quiet"]) == 0
    for name in ("failures.jsonl", "outcomes.jsonl", "open.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert read(tmp_path / "a" / "failures.jsonl")


def test_same_input_same_bytes(tmp_path: Path) -> None:
    src = tmp_path / "e.jsonl"
    src.write_text("".join(GOOD))
    for d in ("x", "y"):
        main(["run", str(src), "--out", str(tmp_path / d), "--as-of", at(3), "--quiet"])
    assert (tmp_path / "x" / "outcomes.jsonl").read_bytes() == (
        tmp_path / "y" / "outcomes.jsonl"
    ).read_bytes()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "{missing}"], "does not exist"),
        (["run", "{src}", "--as-of", "yesterday"], "--as-of"),
        (["run", "{src}", "--as-of", "2026-03-02T09:00:00"], "no UTC offset"),
        (["run", "{src}", "--allowed-lateness", "ten minutes"], "not a duration"),
        (["run", "{src}", "--allowed-lateness", "10"], "has no unit; write e.g. 10s, 10m"),
        (["run", "{src}", "--rules", "{missing}"], "cannot read rules file"),
    ],
)
def test_unusable_arguments_give_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    src = tmp_path / "e.jsonl"
    src.write_text("".join(GOOD))
    args = [a.format(src=src, missing=tmp_path / "missing.jsonl") for a in argv]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carewatch run: error: ") and words in err
    assert len(err.splitlines()) == 1


def test_rules_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("detectors:\n  clinic-overbooked: off\n")
    assert main(["rules", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "off  clinic-overbooked" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("detectors:\n  result-overdue:\n    stat: whenever\n")
    assert main(["rules", "check", str(bad)]) == 2
    assert f"{bad}:3:" in capsys.readouterr().err


def test_example_rules_file_in_the_docs_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "rules.example.yaml"
    assert main(["rules", "check", str(example)]) == 0


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "run" in capsys.readouterr().out


def test_version_says_which_build_is_running(capsys: pytest.CaptureFixture[str]) -> None:
    # tests/run runs the suite twice: on the sources, then on the compiled build
    compiled = os.environ.get("CAREWATCH_TEST_BUILD") == "compiled"
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"carewatch {version('carewatch')}, ")
    assert ("compiled build (mypyc)" if compiled else "pure-Python build") in out


SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"


def test_run_reads_hl7_and_fhir_samples_by_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = sorted(str(p) for p in (SAMPLES / "hl7v2").glob("*.hl7"))
    inputs += [str(SAMPLES / "fhir-r4" / "Appointment-example.json")]
    out = tmp_path / "out"
    assert main(["run", *inputs, "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    events = int(printed.split(" events,")[0].split()[-1].replace(",", ""))
    assert events >= 15  # the samples carry bookings, orders, results, letters, discharges
    outcomes = read(out / "outcomes.jsonl") + read(out / "open.jsonl")
    assert {"result-overdue", "discharge-summary-overdue"} <= {o["detector"] for o in outcomes}
    for r in read(out / "rejected.jsonl"):
        # the samples span years: those further behind than the correction horizon are
        # refused by name, not used
        assert r["kind"] in ("invalid", "unsupported", "no-event", "beyond-horizon")
        assert r["reason"]


def test_run_reads_hl7_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    raw = (SAMPLES / "hl7v2" / "ORM-O01-01.hl7").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = tmp_path / "out"
    assert main(["run", "-", "--format", "hl7", "--out", str(out), "--quiet"]) == 0
    [opened] = read(out / "open.jsonl")
    assert opened["detector"] == "result-overdue"


def test_metrics_are_served_during_a_run(tmp_path: Path) -> None:
    """--metrics-port serves the engine's metrics over HTTP on loopback."""
    import socket
    import urllib.request

    from detectors.rules import parse_settings
    from streams.commands.run import _serve_metrics
    from streams.runner import Runner
    from streams.sinks import MemorySink

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = parse_settings("")
    runner = Runner(settings, MemorySink())
    _serve_metrics(runner, settings, port)
    from streams.adapters import iter_records

    runner.feed(iter_records("".join(GOOD).encode(), "jsonl"))
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'carewatch_events_total{type="order.placed"} 3.0' in body
    assert "carewatch_watermark_timestamp_seconds" in body


def test_the_failure_rate_leaves_voided_opportunities_out() -> None:
    from streams.report import RunSummary, format_summary

    tally = {("r", "met"): 3, ("r", "late"): 1, ("r", "missed"): 1, ("r", "void"): 5}
    tally[("v", "void")] = 2  # nothing that could fail: no rate at all
    summary = RunSummary(["r", "v"], tally, {}, events=0, duplicates=0, rejected=0, watermark=0)
    r, v = summary.rows()
    assert (r["opportunities"], r["failures"], r["failure_rate"]) == (10, 2, 0.4)
    assert (v["opportunities"], v["failure_rate"]) == (2, None)
    table = format_summary(summary).splitlines()
    assert table[2].endswith("40.0%") and table[3].endswith("-")


def test_count_detectors_show_counts_not_a_failure_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.report import RunSummary, format_summary

    tally = {
        ("contact-after-death", "violation"): 12,
        ("clinic-overbooked", "met"): 6,
        ("clinic-overbooked", "violation"): 2,
        ("r", "met"): 3,
        ("r", "missed"): 1,
        ("unnamed", "violation"): 4,
    }
    summary = RunSummary(
        ["clinic-overbooked", "contact-after-death", "r"],
        tally,
        {},
        events=0,
        duplicates=0,
        rejected=0,
        watermark=0,
        count_detectors=frozenset({"contact-after-death"}),
    )
    over, death, r, unnamed = summary.rows()
    # a session is met or overbooked: a rate, as QI gives it
    assert over["failure_rate"] == 0.25 and not over["counts_violations"]
    assert death["failure_rate"] is None and death["counts_violations"]
    assert death["violation"] == 12
    assert r["failure_rate"] == 0.25
    assert unnamed["counts_violations"] and unnamed["failure_rate"] is None
    table = format_summary(summary).splitlines()
    assert table[2].split()[0] == "clinic-overbooked" and table[2].endswith("25.0%")
    assert table[3].split() == ["contact-after-death", "-", "0", "0", "0", "0", "12", "0", "-"]
    # a real run: which detectors count comes from what each declares
    src = tmp_path / "e.jsonl"
    src.write_text("".join(GOOD))
    assert main(["run", str(src), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    row = next(x for x in printed.splitlines() if x.startswith("contact-after-death")).split()
    assert row[1] == "-" and row[-1] == "-"
    row = next(x for x in printed.splitlines() if x.startswith("clinic-overbooked")).split()
    assert row[1] != "-"


def test_an_output_directory_that_is_a_file_gives_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "e.jsonl"
    src.write_text("".join(GOOD))
    target = tmp_path / "a-file"
    target.write_text("keep me")
    assert main(["run", str(src), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"carewatch run: error: output directory {target} is a file; name a directory"
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("value", ["99999", "0", "http"])
def test_a_metrics_port_out_of_range_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "-", "--metrics-port", value])
    assert exit_.value.code == 2
    assert "argument --metrics-port: " in capsys.readouterr().err


def run_quietly(tmp_path: Path, events: str, *args: str) -> int:
    """``carewatch run`` over ``events`` (JSON Lines text) into ``tmp_path/o``."""
    src = tmp_path / "e.jsonl"
    src.write_text(events)
    return main(["run", str(src), "--out", str(tmp_path / "o"), "--quiet", *args])


def test_rules_that_fail_for_want_of_any_closing_event_are_pointed_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GOOD has results but no acknowledgement and no document at all, as an HL7 v2
    # feed would: the critical result and the discharge can only end missed
    assert run_quietly(tmp_path, "".join(GOOD), "--as-of", at(24 * 20)) == 0
    warnings = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert [w.split(":")[2].strip() for w in warnings] == [
        "result-unacknowledged",
        "discharge-summary-overdue",
    ]
    assert "the input has no result.acknowledged event at all" in warnings[0]
    # result-overdue failed too (O2, O3), but results do arrive in this feed: no warning
    failed = {f["detector"] for f in read(tmp_path / "o" / "failures.jsonl")}
    assert "result-overdue" in failed


def test_no_feed_warning_when_the_closing_events_do_arrive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = line(id="2", type="result.reported", time=at(0.5), patient="P1", refs={"order": "O1"})
    # O2 gets no result: a real failure
    assert run_quietly(tmp_path, GOOD[0] + result + GOOD[2], "--as-of", at(24)) == 0
    assert "result-overdue" in read(tmp_path / "o" / "failures.jsonl")[0]["detector"]
    assert "warning" not in capsys.readouterr().err


def test_an_as_of_before_the_input_watermark_is_pointed_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_quietly(tmp_path, "".join(GOOD), "--as-of", at(-5)) == 0
    err = capsys.readouterr().err
    assert f"--as-of {at(-5)} is earlier than the input's own watermark" in err
    assert "(2026-03-02T10:50:00+00:00)" in err  # the last event at 11:00, less 10m


def test_the_feed_warning_for_a_local_rule_says_to_remove_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: triage-review\n    key: encounter\n    when: triage.completed\n"
        "    expect: review.done\n    within: 1h\n"
    )
    triage = line(id="t1", type="triage.completed", time=at(0), refs={"encounter": "E9"})
    assert run_quietly(tmp_path, triage, "--rules", str(rules), "--as-of", at(5)) == 0
    warning = capsys.readouterr().err.strip()
    assert warning.startswith("carewatch: warning: triage-review: 1 of 1 opportunity failed")
    assert warning.endswith("remove the rule or plugin from the rules file.")
