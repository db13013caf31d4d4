"""The worklist in a real browser: Debian's chromium, driven by selenium through
/usr/bin/chromedriver (headless), against ``carewatch serve`` as an operator starts it.
Sign in, filter, open a failure, resolve it, see the audit row."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.streams.web.support import PASSWORDS, filled_store

pytestmark = pytest.mark.browser

CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    db = tmp_path / "browser.db"
    filled_store(str(db)).close()
    port = int(os.environ.get("CAREWATCH_TEST_WEB_PORT", "28080"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "serve", "--store", str(db), "--port", str(port),
         "--timezone", "Europe/London"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/signin", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate()
                pytest.fail(f"carewatch serve did not come up: {err.decode()}")
            time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMEDRIVER).exists() or not shutil.which("chromium"):
        pytest.fail(
            "chromium and chromium-driver are needed: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)  # fmt: skip
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_sign_in_filter_open_resolve_and_see_the_audit_row(
    server: str, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    d = browser
    d.get(server + "/")  # type: ignore[attr-defined]
    find = d.find_element  # type: ignore[attr-defined]

    def go(element: object) -> None:
        """Click something that loads a new page, and wait until it has replaced this
        one (a click returns before the browser navigates)."""
        old = find(By.TAG_NAME, "html")
        element.click()  # type: ignore[attr-defined]
        WebDriverWait(d, 30).until(expected_conditions.staleness_of(old))

    assert "/signin" in d.current_url  # type: ignore[attr-defined]
    find(By.ID, "name").send_keys("ada")
    find(By.ID, "password").send_keys("wrong password!")
    go(find(By.ID, "signin"))
    assert "Wrong name or password" in find(By.CSS_SELECTOR, ".alert").text
    find(By.ID, "password").send_keys(PASSWORDS["ada"])
    go(find(By.ID, "signin"))
    assert "30 open failures" in find(By.CSS_SELECTOR, ".counts").text

    Select(find(By.ID, "f-detector")).select_by_visible_text("result-overdue")
    Select(find(By.ID, "f-site")).select_by_visible_text("south")
    go(find(By.ID, "apply"))
    assert "5 open failures" in find(By.CSS_SELECTOR, ".counts").text
    rows = d.find_elements(By.CSS_SELECTOR, "table.list tbody tr")  # type: ignore[attr-defined]
    assert len(rows) == 5 and all("result-overdue" in r.text for r in rows)

    go(rows[0].find_element(By.TAG_NAME, "a"))
    assert "/failures/f000003" in d.current_url  # type: ignore[attr-defined]
    assert "GMT" in find(By.CSS_SELECTOR, "h1.sentence").text  # the site's local time
    find(By.ID, "reason-patient-contacted").click()
    find(By.ID, "resolve-note").send_keys("rang the patient, new date agreed")
    go(find(By.ID, "resolve"))
    assert find(By.ID, "state").text.startswith("resolved: patient contacted")
    assert "rang the patient" in find(By.ID, "actions").text
    d.save_screenshot(str(tmp_path / "failure.png"))  # type: ignore[attr-defined]

    go(find(By.ID, "audit-link"))
    audit = find(By.ID, "audit").text
    assert "ada resolve f000003 patient-contacted" in audit
    assert "ada view f000003" in audit

    d.get(server + "/")  # type: ignore[attr-defined]
    assert "29 open failures" in find(By.CSS_SELECTOR, ".counts").text
