"""What a user sees in JupyterLab: tutorials 03 and 05 run with Run All in headless Chromium.

- 03: the training dashboard renders as a widget, and Stop pressed while ``trainer.fit()`` blocks the cell ends
  training within seconds, with ``stop_reason == "stopped"`` in what the notebook records; the remaining cells
  then run.
- 05: the inline plots and the ROC explorer render (no widget errors, no font warnings), and changing an
  explorer control changes both its table and its plot.

Small inputs keep them short (the session's 300-event samples, synthetic prediction files). They need
Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``) and are skipped otherwise,
saying so. A failing test leaves a screenshot in ``runs/browser/``.
"""

import json
import os
import re
import time

import pytest

from fixtures.browser import SCREENSHOTS, needs_chromium, notebook_copy

pytestmark = [needs_chromium, pytest.mark.slow]

WIDGET_ERRORS = ("Error displaying widget", "Loading widget", "Widget Javascript not detected")


def _wait(condition, timeout, message, interval=0.2):
    """Poll ``condition()`` until it returns something truthy (returned), or fail with ``message``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{message} (after {timeout} s)")
        time.sleep(interval)


def _open_and_run_all(driver, lab, name):
    """Open notebook ``name``, wait for its kernel, and Run All (JupyterLab's own command)."""
    driver.get(lab.url(name))
    _wait(lambda: driver.execute_script(
        "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        "return k && k.status === 'idle' && w.context.path;") == name, 120, f"{name}: kernel did not start")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")


def _page_text(driver) -> str:
    return driver.execute_script("return document.body.innerText;")


def _stderr_text(driver) -> str:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-mime-type=\"application/vnd.jupyter.stderr\"]'))"
        ".map(e => e.innerText).join('\\n');")


EPOCH = re.compile(r"epoch (\d+)/200")


def _screenshot(driver, name):
    """With DEEPJET_NB_SCREENSHOTS set, keep a picture of this moment in runs/browser/ (to look at)."""
    if os.environ.get("DEEPJET_NB_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _no_widget_errors(driver):
    text = _page_text(driver)
    found = [e for e in WIDGET_ERRORS if e in text]
    assert not found, f"widget problems shown: {found}"


def test_stop_ends_a_blocking_fit_in_tutorial_03(lab, browser, deepcsv_dataset):
    from selenium.webdriver.common.by import By

    out = lab.root / "out03"
    # Long enough to stop in the middle of it: small batches make an epoch last seconds even on a fast machine
    # (the DOM is polled, so a sub-second epoch could be missed), and early stopping needs 10 epochs without
    # improvement.
    name = notebook_copy(lab, "03_train_deepcsv.ipynb", data=str(deepcsv_dataset), epochs=200, batch_size=4,
                         out_dir=str(out))
    _open_and_run_all(browser, lab, name)
    stop = _wait(lambda: browser.find_elements(By.XPATH, "//button[normalize-space(.)='Stop']"), 180,
                 "the dashboard's Stop button did not appear")[0]
    # Let two epochs finish (the dashboard then counts the third), so the run has checkpoints and history.
    status = _wait(lambda: [e for e in browser.find_elements(By.CSS_SELECTOR, ".widget-html-content")
                            if (m := EPOCH.search(e.text)) and int(m.group(1)) >= 3], 180,
                   "training did not reach epoch 3")[0]
    assert "jets/s" in status.text and "ETA" in status.text
    _no_widget_errors(browser)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", stop)
    _screenshot(browser, "dashboard_mid_training")
    clicked = time.monotonic()
    stop.click()
    _wait(lambda: browser.find_elements(By.XPATH, "//button[normalize-space(.)='Stopped']"), 15,
          "Stop did not end training")
    seconds = time.monotonic() - clicked
    assert seconds < 10, f"training ended {seconds:.1f} s after Stop"
    summary = _wait(lambda: (out / "summary.json").is_file() and json.loads((out / "summary.json").read_text()),
                    180, "the cells after fit() did not run to the end")
    assert summary["stop_reason"] == "stopped" and 2 <= summary["epochs"] < 200
    log = (out / "run" / "logs" / "train.log").read_text()
    assert "stop reason: stopped" in log
    # The button stays disabled once training is over.
    assert not browser.find_element(By.XPATH, "//button[normalize-space(.)='Stopped']").is_enabled()
    _no_widget_errors(browser)


def test_explorer_in_tutorial_05_reacts_to_its_controls(lab, browser, prediction_files):
    from selenium.webdriver.common.by import By

    out = lab.root / "out05"
    name = notebook_copy(lab, "05_evaluate.ipynb", out_dir=str(out),
                         predictions=[str(prediction_files["deepjet"]), str(prediction_files["deepcsv"])])
    _open_and_run_all(browser, lab, name)
    _wait(lambda: (out / "summary.json").is_file(), 240, "tutorial 05 did not run to the end")
    table = _wait(lambda: [e for e in browser.find_elements(By.CSS_SELECTOR, ".widget-html-content")
                           if "b vs udsg" in e.text and "AUC" in e.text], 60, "the explorer's table is missing")[0]
    explorer = table.find_element(By.XPATH, "./ancestor::div[contains(@class, 'widget-vbox')][1]")
    image = explorer.find_element(By.CSS_SELECTOR, "img")
    _wait(lambda: image.get_attribute("src"), 30, "the explorer's plot is empty")
    before_src, before_table = image.get_attribute("src"), table.text
    _no_widget_errors(browser)
    # Inline figures render in the CMS style without falling back to missing fonts.
    assert "findfont" not in _stderr_text(browser)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".jp-RenderedImage img")) >= 4
    background_c = explorer.find_element(
        By.XPATH, ".//div[contains(@class, 'widget-toggle-buttons')][.//*[normalize-space(.)='Background']]"
                  "//button[normalize-space(.)='c']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", background_c)
    background_c.click()
    _wait(lambda: "b vs c" in table.text, 30, "the explorer's table did not change")
    _wait(lambda: image.get_attribute("src") != before_src, 30, "the explorer's plot did not change")
    assert table.text != before_table
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", explorer)
    _screenshot(browser, "explorer")
    _no_widget_errors(browser)
