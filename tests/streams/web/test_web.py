"""The web app through HTTP (Starlette's test client): who may see and do what, CSRF,
the sign-in brake, the audit rows, concurrent actions, local times, clean logs."""

from __future__ import annotations

import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from streams.store import Store
from tests.streams.web.support import PASSWORDS, client, csrf_of, filled_store, sign_in


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = filled_store(str(tmp_path / "web.db"))
    yield s
    s.close()


PAGES = ["/", "/?q=P00004", "/failures/f000001", "/feedback", "/audit", "/audit.csv"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_without_a_session_is_refused(store: Store, path: str) -> None:
    r = client(store).get(path)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    assert "P0000" not in r.text


def test_a_form_post_without_a_session_is_refused(store: Store) -> None:
    r = client(store).post("/failures/f000001/act", data={"kind": "take", "version": "1"})
    assert r.status_code == 403
    assert store.failure("f000001")["assignee"] is None  # type: ignore[index]


def test_sign_in_sets_a_hardened_cookie(store: Store) -> None:
    c = client(store)
    form = c.get("/signin")
    r = c.post(
        "/signin", data={"name": "ann", "password": PASSWORDS["ann"], "csrf": csrf_of(form.text)}
    )
    cookie = r.headers["set-cookie"].lower()
    assert "cw_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain HTTP in this test
    secure = client(store, secure_cookies=True)
    form = secure.get("/signin")
    r = secure.post(
        "/signin", data={"name": "ann", "password": PASSWORDS["ann"], "csrf": csrf_of(form.text)}
    )
    assert "secure" in r.headers["set-cookie"].lower()
    page = c.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_a_sign_in_form_without_its_token_is_refused(store: Store) -> None:
    c = client(store)
    c.get("/signin")
    r = c.post("/signin", data={"name": "ann", "password": PASSWORDS["ann"], "csrf": "forged"})
    assert r.status_code == 403 and "cw_session" not in r.headers.get("set-cookie", "")


def test_wrong_passwords_are_refused_and_repeated_ones_slow_down(store: Store) -> None:
    c = client(store)
    token = csrf_of(c.get("/signin").text)
    for _ in range(3):
        r = c.post("/signin", data={"name": "bob", "password": "not the password", "csrf": token})
        assert r.status_code == 401 and "Wrong name or password" in r.text
    r = c.post("/signin", data={"name": "bob", "password": PASSWORDS["bob"], "csrf": token})
    assert r.status_code == 429 and "wait" in r.text
    actions = [row["action"] for row in store.audit_rows()]
    assert actions[:4] == ["sign-in-braked", "sign-in-failed", "sign-in-failed", "sign-in-failed"]


def test_a_viewer_reads_but_cannot_act(store: Store) -> None:
    c = client(store)
    csrf = sign_in(c, "vic")
    page = c.get("/failures/f000001")
    assert page.status_code == 200 and 'id="take"' not in page.text
    r = c.post("/failures/f000001/act", data={"kind": "take", "version": "1", "csrf": csrf})
    assert r.status_code == 403
    assert store.failure("f000001")["assignee"] is None  # type: ignore[index]
    assert c.get("/audit").status_code == 403  # admins only


def test_a_forged_form_without_the_csrf_token_is_refused(store: Store) -> None:
    c = client(store)
    csrf = sign_in(c, "ann")
    for data in ({"kind": "take", "version": "1"}, {"kind": "take", "version": "1", "csrf": "x"}):
        r = c.post("/failures/f000001/act", data=data)
        assert r.status_code == 403
    assert store.failure("f000001")["assignee"] is None  # type: ignore[index]
    r = c.post("/failures/f000001/act", data={"kind": "take", "version": "1", "csrf": csrf})
    assert r.status_code == 303
    assert store.failure("f000001")["assignee"] == "ann"  # type: ignore[index]
    # another session's token does not fit this one
    other = client(store)
    sign_in(other, "bob")
    r = other.post("/failures/f000002/act", data={"kind": "take", "version": "1", "csrf": csrf})
    assert r.status_code == 403


def test_each_view_and_action_leaves_an_audit_row(store: Store) -> None:
    c = client(store)
    csrf = sign_in(c, "ann")
    c.get("/failures/f000005")
    c.post("/failures/f000005/act", data={"kind": "take", "version": "1", "csrf": csrf})
    c.get("/failures/f000005")
    c.post(
        "/failures/f000005/act",
        data={"kind": "resolve", "version": "2", "reason": "patient-contacted", "csrf": csrf},
    )
    rows = [(r["actor"], r["action"], r["detail"]) for r in store.audit_rows(failure_id="f000005")]
    assert rows[::-1] == [
        ("ann", "view", None),
        ("ann", "take", None),
        ("ann", "view", None),
        ("ann", "resolve", "patient-contacted"),
    ]
    admin = client(store)
    sign_in(admin, "ada")
    page = admin.get("/audit?failure=f000005")
    assert page.status_code == 200 and page.text.count(">view<") == 2
    export = admin.get("/audit.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "ann,resolve,f000005,patient-contacted" in export.text
    assert [r["action"] for r in store.audit_rows(limit=2)] == ["audit-export", "audit-read"]


def test_two_coordinators_at_once_one_wins_the_other_is_told(store: Store) -> None:
    ann, bob = client(store), client(store)
    a_csrf, b_csrf = sign_in(ann, "ann"), sign_in(bob, "bob")
    ann.get("/failures/f000007")
    bob.get("/failures/f000007")  # both see version 1
    r = ann.post(
        "/failures/f000007/act",
        data={"kind": "resolve", "version": "1", "reason": "patient-contacted", "csrf": a_csrf},
    )
    assert r.status_code == 303
    r = bob.post(
        "/failures/f000007/act",
        data={"kind": "note", "version": "1", "note": "rang twice, no answer", "csrf": b_csrf},
    )
    assert r.status_code == 409
    assert "changed by ann at" in r.text
    assert "rang twice, no answer" in r.text  # bob's text is kept in the form
    f = store.failure("f000007")
    assert f is not None and f["resolution"] == "patient-contacted"


def test_resolve_other_without_a_note_is_explained(store: Store) -> None:
    c = client(store)
    csrf = sign_in(c, "ann")
    r = c.post(
        "/failures/f000008/act",
        data={"kind": "resolve", "version": "1", "reason": "other", "csrf": csrf},
    )
    assert r.status_code == 400 and "needs a note" in r.text


def test_worklist_filters_search_counts_and_paging(store: Store) -> None:
    c = client(store)
    sign_in(c, "vic")
    page = c.get("/?per_page=10")
    assert "30</strong> open failures" in page.text
    assert "reschedule-notice <b>20</b>" in page.text and "result-overdue <b>10</b>" in page.text
    assert "page 1 of 3" in page.text and 'rel="next"' in page.text
    south = c.get("/?site=south&detector=result-overdue")
    assert "5</strong> open failures" in south.text
    found = c.get("/?q=A-12")
    assert "1</strong> open failures" in found.text and "/failures/f000012" in found.text
    ann = client(store)
    sign_in(ann, "ann")
    csrf = csrf_of(ann.get("/failures/f000003").text.split('id="take"')[0].rsplit("<form", 1)[1])
    ann.post("/failures/f000003/act", data={"kind": "take", "version": "1", "csrf": csrf})
    mine = ann.get("/?mine=1")
    assert "1</strong> open failures" in mine.text and "/failures/f000003" in mine.text


def test_times_are_in_the_sites_zone(store: Store) -> None:
    c = client(store, zone=ZoneInfo("America/New_York"))
    sign_in(c, "vic")
    page = c.get("/failures/f000001")
    # the summary said Wed 25 Feb 2026 10:15 UTC
    assert "Wed 25 Feb 2026 05:15 EST" in page.text and "10:15 UTC" not in page.text


def test_the_trusted_proxy_header_counts_only_from_the_proxy(store: Store) -> None:
    header = {"X-Remote-User": "ann"}
    assert client(store).get("/", headers=header).status_code == 303  # off by default
    elsewhere = client(store, trusted_proxies=frozenset({"10.0.0.5"}))
    assert elsewhere.get("/", headers=header).status_code == 303
    proxied = client(store, trusted_proxies=frozenset({"testclient"}))
    page = proxied.get("/", headers=header)
    assert page.status_code == 200 and "ann (coordinator)" in page.text
    assert proxied.get("/", headers={"X-Remote-User": "nobody"}).status_code == 303


def test_the_server_log_names_no_patient(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    c = client(store)
    sign_in(c, "ann")
    with caplog.at_level(logging.INFO, logger="carewatch.web"):
        c.get("/?q=P00004")
        c.get("/failures/f000004")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET / 200" in text and "GET /failures/f000004 200" in text
    assert "P00004" not in text and "A-4" not in text
    search = next(r for r in store.audit_rows() if r["action"] == "search")
    assert "P00004" not in str(search["detail"])


def test_feedback_shows_precision(store: Store) -> None:
    c = client(store)
    csrf = sign_in(c, "ann")
    for fid, reason in (("f000001", "not-a-real-failure"), ("f000002", "patient-contacted")):
        c.post(
            f"/failures/{fid}/act",
            data={"kind": "resolve", "version": "1", "reason": reason, "csrf": csrf},
        )
    page = c.get("/feedback")
    assert "50.0%" in page.text


def test_sign_out_ends_the_session(store: Store) -> None:
    c = client(store)
    csrf = sign_in(c, "ann")
    assert c.post("/signout", data={"csrf": csrf}).status_code == 303
    assert c.get("/").status_code == 303


def test_admins_manage_accounts_on_a_page_others_may_not_open(store: Store) -> None:
    ann = client(store)
    csrf = sign_in(ann, "ann")
    assert ann.get("/users").status_code == 403
    r = ann.post("/users", data={"name": "eve", "role": "admin", "csrf": csrf})
    assert r.status_code == 403 and store.user("eve") is None
    admin = client(store)
    csrf = sign_in(admin, "ada")
    page = admin.post(
        "/users",
        data={"name": "eve", "role": "viewer", "password": "eve's long password", "csrf": csrf},
    )
    assert page.status_code == 200 and "Saved: eve: viewer" in page.text
    assert store.sign_in("eve", "eve's long password")[0]
    short = admin.post(
        "/users", data={"name": "fay", "role": "viewer", "password": "short", "csrf": csrf}
    )
    assert short.status_code == 400 and "at least 10" in short.text
    admin.post("/users", data={"name": "eve", "do": "disable", "csrf": csrf})
    assert store.user("eve") is None
    assert (
        admin.post("/users", data={"name": "ada", "do": "disable", "csrf": csrf}).status_code == 400
    )
    assert admin.post("/users", data={"name": "bob", "role": "admin"}).status_code == 403  # no CSRF
    actions = [(r["actor"], r["action"], r["detail"]) for r in store.audit_rows(limit=3)]
    assert ("ada", "user-disable", "eve") in actions


def test_every_refused_action_leaves_an_audit_row(store: Store) -> None:
    """A take or resolve refused for a conflict, a missing CSRF token, a viewer's role or
    a reason that makes no sense is on the trail: who tried, which failure, why."""
    ann, bob, vic = client(store), client(store), client(store)
    a_csrf, b_csrf, v_csrf = sign_in(ann, "ann"), sign_in(bob, "bob"), sign_in(vic, "vic")
    assert ann.post(
        "/failures/f000009/act", data={"kind": "take", "version": "1", "csrf": a_csrf}
    ).status_code == 303  # fmt: skip
    tries = [
        (bob, {"kind": "take", "version": "1", "csrf": b_csrf}, 409),  # ann took it first
        (bob, {"kind": "resolve", "version": "2", "reason": "result-found"}, 403),  # no token
        (vic, {"kind": "take", "version": "2", "csrf": v_csrf}, 403),  # a viewer
        (bob, {"kind": "resolve", "version": "2", "reason": "other", "csrf": b_csrf}, 400),
    ]
    for who, data, status in tries:
        assert who.post("/failures/f000009/act", data=data).status_code == status
    f = store.failure("f000009")
    assert f is not None and f["assignee"] == "ann" and f["state"] == "open"
    refused = [
        (r["actor"], r["action"], r["detail"])
        for r in store.audit_rows(failure_id="f000009")
        if r["action"].endswith("-refused")
    ]
    assert refused[::-1] == [
        ("bob", "take-refused", "conflict: changed by ann meanwhile"),
        ("bob", "resolve-refused", "the form did not carry this session's token"),
        ("vic", "take-refused", "forbidden: viewer"),
        ("bob", "resolve-refused", 'not possible: "other" needs a note saying what was done'),
    ]
    # a page beyond one's role is on the trail too
    assert vic.get("/audit").status_code == 403
    last = next(store.audit_rows(limit=1))
    assert (last["actor"], last["action"], last["detail"]) == (
        "vic",
        "audit-refused",
        "needs the admin role",
    )
