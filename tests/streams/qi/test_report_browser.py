"""The QI report in a real browser: Debian's chromium, driven by selenium, offline.

Every chart must render (an SVG of non-zero size in each chart section), the console must
hold no error, and the page must ask the network for nothing. The screenshot is kept in
build/test-artifacts/ for a person to look at. tests/run installs chromium and
chromium-driver when missing; without them this test fails, saying so.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from streams.cli import main

# a browser test: run in the first pass only, as every browser test is (tests/conftest.py)
pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[3] / "build" / "test-artifacts"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not Path(CHROMEDRIVER).exists() or not shutil.which("chromium"):
        pytest.fail(
            "chromium and chromium-driver are needed: apt-get install chromium chromium-driver "
            "(tests/run does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_every_chart_renders_with_no_console_error(
    run_dir: Path, tmp_path: Path, browser: webdriver.Chrome
) -> None:
    page = tmp_path / "report.html"
    args = ["qi", "report", str(run_dir), "--out", str(page), "--by", "site"]
    assert (
        main([*args, "--change", "2026-03-09:SMS reminders", "--target", "result-overdue=5%"]) == 0
    )
    browser.get(page.as_uri())

    sections = browser.find_elements(By.CSS_SELECTOR, "section.chart")
    assert len(sections) >= 10  # seven detectors, most of them per site
    for section in sections:
        svg = section.find_element(By.CSS_SELECTOR, "svg")
        size = svg.size
        assert size["width"] > 300 and size["height"] > 100, section.get_attribute("id")
        # the chart drew its marks: paths with real extent, not an empty canvas
        box = browser.execute_script(
            "const b = arguments[0].getBBox(); return [b.width, b.height];", svg
        )
        assert box[0] > 100 and box[1] > 50
    rows = browser.find_elements(By.CSS_SELECTOR, "table.summary tbody tr")
    assert len(rows) == len(sections)

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    requested = [
        e["message"]
        for e in browser.get_log("performance")
        if '"Network.requestWillBeSent"' in e["message"] and '"url":"file://' not in e["message"]
    ]
    assert requested == []

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 16000))
    assert browser.save_screenshot(str(ARTIFACTS / "qi-report.png"))
