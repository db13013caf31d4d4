"""``carewatch rules test``: a site's unit tests of its rules, and the worked example of
docs/rules.md, which is run here as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "rules-test"


def test_the_worked_example_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(EXAMPLE / "rules.test.yaml")]) == 0
    out = capsys.readouterr().out
    assert "PASS  a stat troponin must be reported within 30 minutes" in out
    assert out.rstrip().endswith("2 tests, 0 failed")


def test_the_failing_variant_exits_non_zero_with_a_diff(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = EXAMPLE / "rules.failing.test.yaml"
    assert main(["rules", "test", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  a stat troponin must be reported within 30 minutes ({path}:6)" in out
    diff = [line.strip() for line in out.splitlines()]
    assert diff[diff.index("result-overdue:") + 1 : diff.index("result-overdue:") + 3] == [
        "-  O1: met",
        "+  O1: late",
    ]
    assert out.rstrip().endswith("1 test, 1 failed")


def test_several_files_and_an_unexpected_opportunity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "extra.test.yaml"
    extra.write_text(
        f"rules: {EXAMPLE / 'rules.yaml'}\n"
        "tests:\n"
        "  - name: only O1 was expected\n"
        "    events:\n"
        "      - {type: order.placed, time: '2026-03-02T09:00:00+00:00', refs: {order: O1},"
        " attrs: {priority: routine}}\n"
        "      - {type: order.placed, time: '2026-03-02T09:00:00+00:00', refs: {order: O2},"
        " attrs: {priority: routine}}\n"
        "    as_of: '2026-03-20T09:00:00+00:00'\n"
        "    expect:\n"
        "      result-overdue: {O1: missed}\n"
    )
    assert main(["rules", "test", str(EXAMPLE / "rules.test.yaml"), str(extra)]) == 1
    out = capsys.readouterr().out
    assert "+  O2: missed" in out
    assert out.rstrip().endswith("3 tests, 1 failed")


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("    expect: {result-overdue: {O1: lost}}\n", 8, "'lost' is not one of met"),
        ("    expect: {result-overdoo: {O1: met}}\n", 8, "did you mean 'result-overdue'?"),
        ("    expect: {}\n", 6, None),
    ],
)
def test_a_broken_test_file_is_refused_with_its_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: str,
    line: int,
    words: str | None,
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "tests:\n"
        "  - name: t\n"
        "    events:\n"
        "      - {type: order.placed, time: +0m, refs: {order: O1}}\n"  # relative, no start
        "    as_of: 2026-03-03T00:00:00+00:00\n"
        "    tset: 1\n"
        "    \n" + body
    )
    assert main(["rules", "test", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: time '+0m' is relative: give the test file a 'start'" in err
    assert f"{path}:6: unknown key 'tset' in a test case" in err
    if words:
        assert f"{path}:{line}: " in err and words in err


def test_the_doc_shows_the_example_files_as_they_are() -> None:
    doc = (ROOT / "docs" / "rules.md").read_text()
    for name in ("rules.yaml", "rules.test.yaml"):
        text = (EXAMPLE / name).read_text()
        assert text in doc, f"docs/rules.md does not show {name} as checked in"


@pytest.mark.parametrize("name", ["rules.test.yaml", "rules.failing.test.yaml"])
def test_the_doc_shows_the_output_as_printed(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    path = f"docs/examples/rules-test/{name}"
    main(["rules", "test", path])
    shown = f"```\n$ carewatch rules test {path}\n{capsys.readouterr().out}```"
    assert shown in (ROOT / "docs" / "rules.md").read_text()
