"""A failure's page names its evidence events (types and times in the site's zone), from
records a real run wrote into the store."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

from streams.cli import main
from streams.store import WorklistQuery, open_store
from tests.streams.web.support import PASSWORDS, ROLES, client, sign_in


def line(n: str, type_: str, time: str, patient: str, **refs: str) -> str:
    attrs = {"initiated_by": "hospital"} if type_ == "appointment.rescheduled" else {}
    if type_ == "document.sent":
        attrs = {"kind": "appointment-letter"}
    return json.dumps(
        {"id": n, "type": type_, "time": time, "patient": patient, "refs": refs, "attrs": attrs}
    )


EVENTS = [
    # moved by the hospital on 2 March, the patient told on 6 March: late (due in 48 h)
    line("mv1", "appointment.rescheduled", "2026-03-02T09:00:00Z", "P1", appointment="A1"),
    line("tel1", "patient.notified", "2026-03-06T14:30:00Z", "P1", appointment="A1"),
    # a letter after the patient's death, the death recorded a day later
    line("ltr2", "document.sent", "2026-03-03T11:00:00Z", "P2", appointment="A2"),
    line("rip2", "patient.died", "2026-03-02T23:15:00Z", "P2"),
    line("later", "order.placed", "2026-03-10T12:00:00Z", "P3", order="O3"),
]


def test_the_failure_page_shows_each_evidence_events_type_and_local_time(
    tmp_path: Path,
) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(EVENTS) + "\n")
    url = str(tmp_path / "store.db")
    out = tmp_path / "out"
    args = ["run", str(src), "--out", str(out), "--quiet", "--store", url]
    assert main([*args, "--as-of", "2026-03-20T00:00:00Z"]) == 0
    store = open_store(url)
    for name, role in ROLES.items():
        store.add_user(name, role, PASSWORDS[name])
    rows = {r["detector"]: r for r in store.worklist(WorklistQuery(state="all")).rows}
    c = client(store, zone=ZoneInfo("Europe/London"))
    sign_in(c, "ann")

    notice = c.get(f"/failures/{rows['reschedule-notice']['failure_id']}").text
    evidence = notice[notice.index('id="evidence"') :]
    evidence = evidence[: evidence.index("</table>")]
    # in the order of the record's evidence: the change, then the notice that closed it
    assert evidence.index("mv1") < evidence.index("appointment.rescheduled")
    assert evidence.index("appointment.rescheduled") < evidence.index("Mon 02 Mar 2026 09:00 GMT")
    assert evidence.index("tel1") < evidence.index("patient.notified")
    assert "Fri 06 Mar 2026 14:30 GMT" in evidence

    death = c.get(f"/failures/{rows['contact-after-death']['failure_id']}").text
    evidence = death[death.index('id="evidence"') :]
    evidence = evidence[: evidence.index("</table>")]
    # the death shows its own time, not the letter's
    assert "rip2" in evidence and "patient.died" in evidence
    assert "Mon 02 Mar 2026 23:15 GMT" in evidence
    assert "ltr2" in evidence and "document.sent" in evidence
    assert "Tue 03 Mar 2026 11:00 GMT" in evidence
    assert "not recorded" not in evidence
    store.close()
