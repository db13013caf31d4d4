"""A store with failures and accounts, the app over it, and signing in with a client."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from starlette.testclient import TestClient

from streams.store import Store, open_store, parse_failure
from streams.web import WebSettings, build_app
from tests.streams.store.support import line, record

PASSWORDS = {
    "ann": "ann's long password",
    "bob": "bob's long password",
    "vic": "vic's long password",
    "ada": "ada's long password",
}
ROLES = {"ann": "coordinator", "bob": "coordinator", "vic": "viewer", "ada": "admin"}


def filled_store(url: str, n: int = 30) -> Store:
    """A store with ``n`` failures (two detectors, two sites) and four accounts."""
    store = open_store(url, create=True)
    for name, role in ROLES.items():
        store.add_user(name, role, PASSWORDS[name])
    store.upsert(
        [
            parse_failure(
                line(
                    record(
                        i,
                        detector="result-overdue" if i % 3 == 0 else "reschedule-notice",
                        site="south" if i % 2 else "north",
                    )
                )
            )
            for i in range(1, n + 1)
        ]
    )
    return store


def client(store: Store, **settings: object) -> TestClient:
    """A test client of the app (client address ``testclient``)."""
    zone = settings.pop("zone", ZoneInfo("America/New_York"))
    app = build_app(store, WebSettings(zone=zone, **settings))  # type: ignore[arg-type]
    # Secure cookies travel over HTTPS only
    base = "https://testserver" if settings.get("secure_cookies") else "http://testserver"
    return TestClient(app, base_url=base, follow_redirects=False)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found[1]


def sign_in(c: TestClient, name: str, password: str | None = None) -> str:
    """Sign ``name`` in on ``c``; returns the session's CSRF token."""
    form = c.get("/signin")
    r = c.post(
        "/signin",
        data={"name": name, "password": password or PASSWORDS[name], "csrf": csrf_of(form.text)},
    )
    assert r.status_code == 303, r.text
    return csrf_of(c.get("/").text)
