"""The store on SQLite and on the real PostgreSQL: the same tests for both."""

from __future__ import annotations

import itertools

import pytest

from detectors.errors import ConfigError, InputError
from streams.store import (
    Conflict,
    Forbidden,
    Store,
    WorklistQuery,
    open_store,
    parse_failure,
)
from streams.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from tests.streams.store.support import T0, line, record


class Clock:
    """A clock tests move by hand (epoch seconds)."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(store_url: str, clock: Clock) -> Store:
    s = open_store(store_url, create=True, clock=clock)
    s.add_user("ann", "coordinator", "correct horse battery")
    s.add_user("bob", "coordinator", "another long password")
    s.add_user("vic", "viewer", "viewer password 1")
    yield s
    s.close()


def rows(*recs: dict) -> list:
    return [parse_failure(line(r)) for r in recs]


# --- schema -------------------------------------------------------------------------------


def test_init_is_idempotent_and_records_the_version(store_url: str) -> None:
    s = open_store(store_url, create=True)
    assert schema_version(s.db) == SCHEMA_VERSION
    assert migrate(s.db) == []  # a second init has nothing to do
    s.close()


def test_an_empty_database_is_refused_with_the_command_to_run(store_url: str) -> None:
    with pytest.raises(ConfigError, match="carewatch store init"):
        open_store(store_url)


def test_a_newer_store_is_refused_and_an_older_one_upgraded(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = open_store(store_url, create=True)
    s.close()
    # this Carewatch knows a version 2: the store (at 1) is upgraded at start
    monkeypatch.setitem(
        MIGRATIONS, SCHEMA_VERSION + 1, ("test column", ["CREATE TABLE extra (x TEXT)"])
    )
    monkeypatch.setattr("streams.store.schema.SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(ConfigError, match="store init"):
        open_store(store_url, upgrade=False)
    s = open_store(store_url)
    assert schema_version(s.db) == SCHEMA_VERSION + 1
    s.close()
    # an older Carewatch (knowing only 1) refuses the store at 2
    monkeypatch.delitem(MIGRATIONS, SCHEMA_VERSION + 1)
    monkeypatch.setattr("streams.store.schema.SCHEMA_VERSION", SCHEMA_VERSION)
    with pytest.raises(ConfigError, match="newer than this Carewatch"):
        open_store(store_url)


# --- failure records ------------------------------------------------------------------------


def test_bad_records_are_refused_with_the_reason() -> None:
    with pytest.raises(InputError, match="not JSON"):
        parse_failure(b"{nope")
    with pytest.raises(InputError, match="without failure_id"):
        parse_failure(b'{"detector": "x"}')
    bad = record(1)
    bad["status"] = "met"
    with pytest.raises(InputError, match="unknown status"):
        parse_failure(line(bad))
    bad = record(1)
    bad["due_at"] = "2026-02-25T10:00:00"  # no offset
    with pytest.raises(InputError):
        parse_failure(line(bad))


def test_upsert_is_idempotent_and_keeps_the_latest_status(store: Store) -> None:
    first = store.upsert(rows(record(1), record(2)))
    assert (first.new, first.amended) == (2, 0)
    again = store.upsert(rows(record(1), record(2)))
    assert (again.new, again.amended, again.unchanged) == (0, 0, 2)
    amended = store.upsert(rows(record(1, "late")))
    assert amended.amended == 1
    f = store.failure("f000001")
    assert f is not None and f["status"] == "late"
    assert [h["status"] for h in f["history"]] == ["missed", "late"]
    # a replay of the old missed record does not turn it back
    store.upsert(rows(record(1)))
    assert store.failure("f000001")["status"] == "late"  # type: ignore[index]


@pytest.mark.parametrize("order", list(itertools.permutations(["missed", "late", "withdrawn"])))
def test_the_final_rows_do_not_depend_on_arrival_order(
    store_url: str, order: tuple[str, ...]
) -> None:
    s = open_store(store_url, create=True, clock=Clock())
    for status in order:
        s.upsert(rows(record(7, status)))
    f = s.failure("f000007")
    assert f is not None
    assert f["status"] == "withdrawn"
    assert sorted(h["status"] for h in f["history"]) == ["late", "missed", "withdrawn"]
    assert f["state"] == "resolved" and f["resolution"] == "carewatch-withdrawn"
    assert [a["kind"] for a in f["actions"]].count("auto-close") >= 1
    s.close()


def test_an_amendment_closes_a_held_failure_with_its_reason(store: Store) -> None:
    ann = store.user("ann")
    assert ann is not None
    store.upsert(rows(record(1), record(2)))
    store.act(ann, "f000001", "take", 1)
    store.upsert(rows(record(1, "late")))
    f = store.failure("f000001")
    assert f is not None
    assert (f["state"], f["resolution"], f["assignee"]) == ("resolved", "carewatch-late", "ann")
    assert f["actions"][-1]["kind"] == "auto-close" and f["actions"][-1]["actor"] == "carewatch"
    # the worklist of open failures no longer shows it; the resolved one does
    assert [r["failure_id"] for r in store.worklist(WorklistQuery()).rows] == ["f000002"]
    assert [r["failure_id"] for r in store.worklist(WorklistQuery(state="resolved")).rows] == [
        "f000001"
    ]


def test_a_late_record_never_missed_stays_open(store: Store) -> None:
    store.upsert(rows(record(3, "late")))
    assert store.failure("f000003")["state"] == "open"  # type: ignore[index]


def test_a_failure_a_person_resolved_keeps_the_persons_reason(store: Store) -> None:
    ann = store.user("ann")
    assert ann is not None
    store.upsert(rows(record(1)))
    store.act(ann, "f000001", "resolve", 1, reason="patient-contacted")
    store.upsert(rows(record(1, "withdrawn")))
    f = store.failure("f000001")
    assert f is not None
    assert (f["status"], f["state"], f["resolution"]) == (
        "withdrawn",
        "resolved",
        "patient-contacted",
    )
    assert "auto-close" not in [a["kind"] for a in f["actions"]]


def test_a_reopened_failure_is_not_closed_again_by_a_replay(store: Store) -> None:
    ann = store.user("ann")
    assert ann is not None
    store.upsert(rows(record(1)))
    store.upsert(rows(record(1, "late")))
    version = store.failure("f000001")["version"]  # type: ignore[index]
    store.act(ann, "f000001", "reopen", version)
    store.upsert(rows(record(1), record(1, "late")))
    f = store.failure("f000001")
    assert f is not None and f["state"] == "open"
    assert [a["kind"] for a in f["actions"]].count("auto-close") == 1


# --- the worklist ----------------------------------------------------------------------------


def test_worklist_filters_search_paging_and_counts(store: Store) -> None:
    recs = [
        record(n, detector="result-overdue" if n % 3 == 0 else "reschedule-notice",
               site="south" if n % 2 else "north", due=T0 + (100 - n) * 60.0)
        for n in range(1, 21)
    ]  # fmt: skip
    store.upsert(rows(*recs))
    page = store.worklist(WorklistQuery(per_page=5))
    assert page.total == 20 and page.pages == 4
    assert page.counts == {"reschedule-notice": 14, "result-overdue": 6}
    # most overdue (earliest deadline) first: n=20 has the earliest due_at
    assert [r["failure_id"] for r in page.rows] == [f"f{n:06d}" for n in (20, 19, 18, 17, 16)]
    page3 = store.worklist(WorklistQuery(per_page=5, page=3))
    assert page3.rows[0]["failure_id"] == "f000010"
    south = store.worklist(WorklistQuery(site="south", detector="result-overdue"))
    assert {r["failure_id"] for r in south.rows} == {"f000003", "f000009", "f000015"}
    # counts per detector ignore the detector filter (they are what the filter chooses from)
    assert south.counts == {"reschedule-notice": 7, "result-overdue": 3}
    for q in ("P00004", "A-4", "O-4"):
        assert [r["failure_id"] for r in store.worklist(WorklistQuery(q=q)).rows] == ["f000004"]
    assert store.worklist(WorklistQuery(q="P0000")).total == 0  # exact, not a prefix
    ann = store.user("ann")
    assert ann is not None
    store.act(ann, "f000004", "take", 1)
    assert [r["failure_id"] for r in store.worklist(WorklistQuery(assignee="ann")).rows] == [
        "f000004"
    ]
    assert store.options()["site"] == ["north", "south"]


# --- people's actions --------------------------------------------------------------------------


def test_two_people_acting_at_once_one_wins_the_other_is_told(store: Store, clock: Clock) -> None:
    ann, bob = store.user("ann"), store.user("bob")
    assert ann is not None and bob is not None
    store.upsert(rows(record(1)))
    shown = store.failure("f000001")["version"]  # type: ignore[index]  # both opened the page
    clock.t += 5
    store.act(ann, "f000001", "resolve", shown, reason="patient-contacted")
    with pytest.raises(Conflict) as lost:
        store.act(bob, "f000001", "resolve", shown, reason="not-a-real-failure")
    assert lost.value.by == "ann" and lost.value.at == T0 + 5
    f = store.failure("f000001")
    assert f is not None and f["resolution"] == "patient-contacted"
    assert [a["actor"] for a in f["actions"]] == ["ann"]


def test_a_viewer_cannot_act_and_other_needs_a_note(store: Store) -> None:
    vic, ann = store.user("vic"), store.user("ann")
    assert vic is not None and ann is not None
    store.upsert(rows(record(1)))
    with pytest.raises(Forbidden):
        store.act(vic, "f000001", "take", 1)
    with pytest.raises(ConfigError, match="needs a note"):
        store.act(ann, "f000001", "resolve", 1, reason="other")
    with pytest.raises(ConfigError, match="no coordinator"):
        store.act(ann, "f000001", "assign", 1, assignee="nobody")
    with pytest.raises(ConfigError, match="no coordinator"):
        store.act(ann, "f000001", "assign", 1, assignee="vic")  # a viewer
    with pytest.raises(ConfigError, match="open already"):
        store.act(ann, "f000001", "reopen", 1)
    v = store.act(ann, "f000001", "assign", 1, assignee="bob")
    v = store.act(ann, "f000001", "note", v, note="left a voicemail")
    store.act(ann, "f000001", "resolve", v, reason="other", note="wrote to the GP")
    with pytest.raises(ConfigError, match="resolved already"):
        store.act(ann, "f000001", "take", v + 1)
    f = store.failure("f000001")
    assert f is not None
    assert [(a["kind"], a["assignee"], a["reason"]) for a in f["actions"]] == [
        ("assign", "bob", None),
        ("note", None, None),
        ("resolve", None, "other"),
    ]
    audit = [(r["actor"], r["action"]) for r in store.audit_rows(failure_id="f000001")]
    assert audit == [("ann", "resolve"), ("ann", "note"), ("ann", "assign")]


def test_feedback_gives_precision_per_detector(store: Store) -> None:
    ann = store.user("ann")
    assert ann is not None
    store.upsert(rows(*(record(n) for n in range(1, 5)), record(9, detector="result-overdue")))
    for n, reason in ((1, "not-a-real-failure"), (2, "patient-contacted"), (3, "result-found")):
        store.act(ann, f"f{n:06d}", "resolve", 1, reason=reason)
    got = {r["detector"]: r for r in store.feedback()}
    assert got["reschedule-notice"]["resolved"] == 3
    assert got["reschedule-notice"]["not_real"] == 1
    assert got["reschedule-notice"]["precision"] == pytest.approx(2 / 3)
    assert got["result-overdue"]["precision"] is None


# --- accounts, sessions, audit ------------------------------------------------------------------


def test_sign_in_and_the_brake_on_repeated_failures(store: Store, clock: Clock) -> None:
    token, wait = store.sign_in("ann", "correct horse battery")
    assert token and wait == 0
    found = store.session(token)
    assert found is not None and found[0].name == "ann" and found[1]
    for _ in range(3):
        assert store.sign_in("ann", "wrong password!!") == ("", 0.0)
    # from the third failure on, even the right password must wait
    token, wait = store.sign_in("ann", "correct horse battery")
    assert token == "" and wait > 0
    clock.t += 2
    assert store.sign_in("ann", "wrong password!!") == ("", 0.0)
    token, wait = store.sign_in("ann", "correct horse battery")
    assert token == "" and wait == pytest.approx(2.0)  # 4 failures: 2 s
    clock.t += 2
    token, wait = store.sign_in("ann", "correct horse battery")
    assert token and wait == 0
    assert store.sign_in("nobody", "whatever password") == ("", 0.0)


def test_sessions_expire_and_end(store: Store, clock: Clock) -> None:
    token, _ = store.sign_in("bob", "another long password")
    assert store.session(token) is not None
    store.end_session(token, "bob")
    assert store.session(token) is None
    token, _ = store.sign_in("bob", "another long password")
    clock.t += 13 * 3600
    assert store.session(token) is None
    assert store.session("made-up") is None


def test_a_disabled_user_cannot_sign_in(store: Store) -> None:
    token, _ = store.sign_in("bob", "another long password")
    assert store.disable_user("bob")
    assert store.session(token) is None
    assert store.sign_in("bob", "another long password")[0] == ""


def test_passwords_are_stored_as_scrypt_hashes_and_short_ones_refused(store: Store) -> None:
    with store.db.transaction(write=False) as conn:
        stored = conn.one("SELECT password_hash FROM users WHERE name = 'ann'")[0]
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    with pytest.raises(ConfigError, match="at least"):
        store.add_user("eve", "viewer", "short")
    with pytest.raises(ConfigError, match="role"):
        store.add_user("eve", "boss", "long enough password")


def test_the_audit_trail_is_append_only(store: Store) -> None:
    store.audit("ann", "view", "f000001", None)
    for sql in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit"):
        with pytest.raises(Exception, match="append-only"), store.db.transaction() as conn:
            conn.execute(sql)
    assert [r["action"] for r in store.audit_rows(failure_id="f000001")] == ["view"]
