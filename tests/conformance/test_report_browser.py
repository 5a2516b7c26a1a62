"""The HTML report in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium): the matrix renders, counts show, cells carry their reasons on hover, filters work."""
from __future__ import annotations

import os
import shutil

import pytest

from hal.conformance.report import write_reports

from .test_report import sample_report

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("no /usr/bin/chromium and /usr/bin/chromedriver: `apt-get install -y chromium chromium-driver` (CI installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_report_renders_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    write_reports(sample_report(), tmp_path / "out")
    browser.get((tmp_path / "out" / "report.html").as_uri())
    assert browser.title == "hal conformance report"
    assert browser.find_element(By.ID, "verdict").text == "FAIL"

    cells = browser.find_elements(By.CSS_SELECTOR, "#matrix td.cell")
    assert len(cells) == 3 * 5 and all(c.is_displayed() for c in cells)
    by_class = {cls: browser.find_elements(By.CSS_SELECTOR, f"#matrix td.cell.{cls}") for cls in ("passed", "failed", "unsupported", "xfail")}
    assert all(by_class.values()), {k: len(v) for k, v in by_class.items()}
    unsupported = by_class["unsupported"][0]
    assert "Ascend 910B has no Mul" in unsupported.get_attribute("title")
    assert unsupported.value_of_css_property("background-color") != by_class["passed"][0].value_of_css_property("background-color")

    counts = {(c.get_attribute("data-target"), c.get_attribute("data-mode")): c.text
              for c in browser.find_elements(By.CSS_SELECTOR, "#counts td.passed-count")}
    assert counts[("ascend", "fallback")] == "2" and counts[("onnxruntime", "baseline")] == "2"
    assert browser.find_element(By.ID, "slowest").is_displayed()
    assert "test_mul" in browser.find_element(By.ID, "slowest").text

    rows = browser.find_elements(By.CSS_SELECTOR, "#matrix tbody tr")
    browser.find_element(By.CSS_SELECTOR, '.filters button[data-filter="failed"]').click()
    shown = [r.get_attribute("data-op") for r in rows if r.is_displayed()]
    assert shown == ["Sub"]
    assert browser.find_element(By.ID, "shown-count").text == "1 of 3 ops shown"
    browser.find_element(By.CSS_SELECTOR, '.filters button[data-filter="all"]').click()
    assert all(r.is_displayed() for r in rows)
    browser.find_element(By.ID, "op-search").send_keys("mu")
    assert [r.get_attribute("data-op") for r in rows if r.is_displayed()] == ["Mul"]

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
