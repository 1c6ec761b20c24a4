"""What a user sees in JupyterLab: every tutorial, 01 to 11, runs with Run All in headless Chromium.

All of them run in one JupyterLab server, one after the other, each in a fresh kernel that is shut down when its
test ends. Each runs to its last cell (every code cell has its execution count, the kernel is idle) and shows no
stderr output, no error output (traceback) and no widget error; each ipywidget a tutorial shows is used once and
must visibly react:

- 03: the training dashboard's Stop, pressed while ``trainer.fit()`` blocks the cell, ends training within
  seconds (``stop_reason == "stopped"`` in what the notebook records); the remaining cells then run. Pressed
  while the first epoch compiles or runs, it leaves a run that says it stopped and can be resumed.
- 05 and 11: the ROC explorer's controls change both its table and its plot.
- 09: the scan explorer's filter changes its table.
- 04 and 11: the dashboards of finished trainings say so, with Stop disabled.
- 01, 02, 06, 07, 08, 10 show progress bars and inline images only: rendered, nothing to press.

Small inputs keep them short (the session's 300-event samples and datasets, synthetic prediction and event
files; the parameters of the papermill tests of each tutorial), about five minutes in all on two cores. They
need Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``) and are skipped otherwise,
saying so. A failing test leaves a screenshot in ``runs/browser/<tutorial>.png``.
"""

import json
import os
import re
import time

import papermill
import pytest

from fixtures.browser import ROOT, SCREENSHOTS, needs_chromium, prepare_notebook

pytestmark = [needs_chromium, pytest.mark.slow]

WIDGET_ERRORS = ("Error displaying widget", "Loading widget", "Widget Javascript not detected")
STDERR_OUTPUTS = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
EPOCH = re.compile(r"epoch (\d+)/200")
TUTORIALS_DIR = ROOT / "tutorials"
RUN_ALL_S = 300  # the longest tutorial here (08: generation, two trainings) takes about a minute on two cores

# What each tutorial's notebook state looks like to JupyterLab: kernel status, code cells not run yet, and the
# error and stderr outputs in the notebook's model (the text a failure message quotes).
NOTEBOOK_STATE = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
if (!kernel || !w.model) { return null; }
const state = {path: w.context.path, status: kernel.status, pending: 0, errors: [], stderr: []};
for (let i = 0; i < w.model.cells.length; i++) {
  const cell = w.model.cells.get(i);
  if (cell.type !== 'code') { continue; }
  if (cell.executionCount === null) { state.pending += 1; }
  for (const out of cell.outputs.toJSON()) {
    if (out.output_type === 'error') { state.errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`); }
    if (out.output_type === 'stream' && out.name === 'stderr') {
      state.stderr.push(`cell ${i}: ${[].concat(out.text).join('').slice(0, 500)}`);
    }
  }
}
return state;
"""


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


def _state(driver) -> dict | None:
    return driver.execute_script(NOTEBOOK_STATE)


def _open_and_run_all(driver, lab, name):
    """Open notebook ``name``, wait for its kernel, and Run All (JupyterLab's own command)."""
    driver.get(lab.url(name))
    _wait(lambda: (s := _state(driver)) and s["status"] == "idle" and s["path"] == name, 120,
          f"{name}: kernel did not start")
    # Memory stays bounded: the notebooks of earlier tests are closed and their kernels shut down.
    assert len(lab.api("kernels")) == 1, f"kernels running: {lab.api('sessions')}"
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")


def _wait_until_every_cell_ran(driver, name, timeout=RUN_ALL_S) -> dict:
    """Wait until every code cell has run and the kernel is idle; fail at once, quoting it, on an error output."""
    def finished():
        state = _state(driver)
        if state and state["errors"] and state["status"] == "idle":
            pytest.fail(f"{name}: a cell raised: {state['errors']}")
        return state if state and state["pending"] == 0 and state["status"] == "idle" else None

    return _wait(finished, timeout, f"{name}: Run All did not reach the last cell", interval=0.5)


def _page_text(driver) -> str:
    return driver.execute_script("return document.body.innerText;")


def _no_widget_errors(driver):
    text = _page_text(driver)
    found = [e for e in WIDGET_ERRORS if e in text]
    assert not found, f"widget problems shown: {found}"


def _assert_clean(driver, name):
    """No stderr box, no traceback, no widget error anywhere in the notebook ``name``."""
    state = _state(driver)
    assert not state["errors"], f"{name}: error outputs: {state['errors']}"
    assert not state["stderr"], f"{name}: stderr outputs: {state['stderr']}"
    boxes = driver.execute_script(f"return Array.from(document.querySelectorAll('{STDERR_OUTPUTS}'))"
                                  ".map(e => e.innerText.slice(0, 300));")
    assert not boxes, f"{name}: stderr boxes shown: {boxes}"
    assert "Traceback" not in _page_text(driver), f"{name}: a traceback is shown"
    _no_widget_errors(driver)


def _screenshot(driver, name):
    """With DEEPJET_NB_SCREENSHOTS set, keep a picture of this moment in runs/browser/ (to look at)."""
    if os.environ.get("DEEPJET_NB_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _scroll_to(driver, element, block="center"):
    driver.execute_script(f"arguments[0].scrollIntoView({{block: '{block}'}});", element)


# -- what a user does with each widget ------------------------------------------------------------------------


def _roc_explorer_reacts(driver):
    """The ROC explorer's Background 'c' turns the table to b vs c and redraws the plot."""
    from selenium.webdriver.common.by import By

    table = _wait(lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, ".widget-html-content")
                           if "b vs udsg" in e.text and "AUC" in e.text], 60, "the explorer's table is missing")[0]
    explorer = table.find_element(By.XPATH, "./ancestor::div[contains(@class, 'widget-vbox')][1]")
    image = explorer.find_element(By.CSS_SELECTOR, "img")
    _wait(lambda: image.get_attribute("src"), 30, "the explorer's plot is empty")
    before_src, before_table = image.get_attribute("src"), table.text
    background_c = explorer.find_element(
        By.XPATH, ".//div[contains(@class, 'widget-toggle-buttons')][.//*[normalize-space(.)='Background']]"
                  "//button[normalize-space(.)='c']")
    _scroll_to(driver, background_c)
    background_c.click()
    _wait(lambda: "b vs c" in table.text, 30, "the explorer's table did not change")
    _wait(lambda: image.get_attribute("src") != before_src, 30, "the explorer's plot did not change")
    assert table.text != before_table
    _scroll_to(driver, explorer, "start")
    return explorer


def _scan_explorer_reacts(driver):
    """Choosing one learning rate in the scan explorer's filter leaves only its points in the table."""
    from selenium.webdriver.common.by import By

    metric = _wait(lambda: driver.find_elements(By.XPATH, "//div[contains(@class, 'widget-dropdown')]"
                                                           "[.//label[normalize-space(.)='Metric']]"), 60,
                   "the scan explorer is missing")[0]
    explorer = metric.find_element(By.XPATH, "./ancestor::div[contains(@class, 'widget-vbox')][1]")
    lr_filter = explorer.find_element(By.XPATH, ".//div[contains(@class, 'widget-select-multiple')]"
                                                "[.//label[normalize-space(.)='lr']]//select")
    options = lr_filter.find_elements(By.TAG_NAME, "option")
    assert len(options) == 2 and all(o.is_selected() for o in options)

    def rows():  # the table is redrawn on each change: count afresh each time (a found row would go stale)
        return driver.execute_script("return arguments[0].querySelectorAll('.widget-html-content table tr').length;",
                                     explorer)

    rows_before = rows()
    assert "4 of 4 points" in explorer.text
    _scroll_to(driver, lr_filter)
    options[0].click()  # WebDriver toggles an option of a multiple select: the first learning rate is left out
    _wait(lambda: rows() < rows_before, 30, "the scan explorer's table did not follow its filter")
    assert "2 of 4 points" in explorer.text


def _dashboards_finished(driver, count):
    """``count`` training dashboards, each saying its training finished, with Stop disabled."""
    from selenium.webdriver.common.by import By

    buttons = driver.find_elements(By.XPATH, "//button[normalize-space(.)='Finished']")
    assert len(buttons) == count and not any(b.is_enabled() for b in buttons)
    statuses = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".widget-html-content")
                if "epochs recorded" in e.text]
    assert len(statuses) == count and all("finished" in s for s in statuses), statuses


# -- every tutorial ---------------------------------------------------------------------------------------------

# Tutorial -> its small parameters (as its papermill test runs it; ``get`` gives a session fixture), and what a
# user does with its widgets. 03 and 05 are run by the tests of their widgets below.
TUTORIALS = {
    "01_samples.ipynb": (lambda get: {"events": 300, "jobs": 1}, None),
    "02_conversion.ipynb": (lambda get: {"inputs": [str(get("ttbar_sample")), str(get("qcd_sample"))]}, None),
    "04_train_deepjet.ipynb": (lambda get: {"data": str(get("deepjet_dataset")), "epochs": 2, "batch_size": 256},
                               lambda driver: _dashboards_finished(driver, 1)),
    "06_deploy.ipynb": (lambda get: {"runs": {"deepcsv": str(get("untrained_deepcsv_run"))},
                                     "test_files": [str(get("ttbar_sample"))], "repeats": 2}, None),
    "07_service.ipynb": (lambda get: {"train_files": get("event_samples"), "test_files": get("event_test_samples"),
                                      "epochs": 3, "max_events": 60}, None),
    "08_boosted.ipynb": (lambda get: {"events": 240, "epochs": 1, "batch_size": 128}, None),
    "09_scan.ipynb": (lambda get: {"data": str(get("deepcsv_dataset")), "test": [str(get("ttbar_sample"))],
                                   "lrs": [1e-3, 3e-3], "batch_sizes": [512], "seeds": 2, "epochs": 1,
                                   "workers": 2}, _scan_explorer_reacts),
    "10_your_own_ntuple.ipynb": (lambda get: {"jets": 3000, "epochs": 3}, None),
    "11_your_own_model.ipynb": (lambda get: {"data": str(get("deepjet_dataset")), "test_events": 200, "epochs": 2,
                                             "batch_size": 256},
                                lambda driver: (_dashboards_finished(driver, 2), _roc_explorer_reacts(driver))),
}


@pytest.mark.parametrize("tutorial", list(TUTORIALS))
def test_tutorial_runs_all_cells_without_errors_and_its_widgets_react(tutorial, lab, lab_samples, browser, request):
    parameters, interact = TUTORIALS[tutorial]
    out = lab.root / f"out{tutorial[:2]}"
    shared = {"out_dir": str(out), "samples_dir": str(lab_samples)}  # 10 has no sample cache
    known = papermill.inspect_notebook(str(TUTORIALS_DIR / tutorial))
    name = prepare_notebook(lab, tutorial, **parameters(request.getfixturevalue),
                            **{k: v for k, v in shared.items() if k in known})
    _open_and_run_all(browser, lab, name)
    _wait_until_every_cell_ran(browser, name)
    _assert_clean(browser, name)
    assert (out / "summary.json").is_file(), f"{name} recorded no numbers"
    if interact is not None:
        interact(browser)
        _assert_clean(browser, name)
    _screenshot(browser, tutorial[:-6])


def test_stop_ends_a_blocking_fit_in_tutorial_03(lab, lab_samples, browser, deepcsv_dataset):
    from selenium.webdriver.common.by import By

    out = lab.root / "out03"
    # Long enough to stop in the middle of it: small batches make an epoch last seconds even on a fast machine
    # (the DOM is polled, so a sub-second epoch could be missed), and early stopping needs 10 epochs without
    # improvement.
    name = prepare_notebook(lab, "03_train_deepcsv.ipynb", data=str(deepcsv_dataset), epochs=200, batch_size=4,
                            out_dir=str(out), samples_dir=str(lab_samples))
    _open_and_run_all(browser, lab, name)
    stop = _wait(lambda: browser.find_elements(By.XPATH, "//button[normalize-space(.)='Stop']"), 180,
                 "the dashboard's Stop button did not appear")[0]
    # Let two epochs finish (the dashboard then counts the third), so the run has checkpoints and history.
    status = _wait(lambda: [e for e in browser.find_elements(By.CSS_SELECTOR, ".widget-html-content")
                            if (m := EPOCH.search(e.text)) and int(m.group(1)) >= 3], 180,
                   "training did not reach epoch 3")[0]
    assert "jets/s" in status.text and "ETA" in status.text
    _no_widget_errors(browser)
    _scroll_to(browser, stop)
    _screenshot(browser, "dashboard_mid_training")
    clicked = time.monotonic()
    stop.click()
    _wait(lambda: browser.find_elements(By.XPATH, "//button[normalize-space(.)='Stopped']"), 15,
          "Stop did not end training")
    seconds = time.monotonic() - clicked
    assert seconds < 10, f"training ended {seconds:.1f} s after Stop"
    _wait_until_every_cell_ran(browser, name)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "stopped" and 2 <= summary["epochs"] < 200
    log = (out / "run" / "logs" / "train.log").read_text()
    assert "stop reason: stopped" in log
    # The button stays disabled once training is over.
    assert not browser.find_element(By.XPATH, "//button[normalize-space(.)='Stopped']").is_enabled()
    _assert_clean(browser, name)


def test_stop_in_the_first_epoch_of_tutorial_03_leaves_a_resumable_run(lab, lab_samples, browser, deepcsv_dataset):
    from deepjet_nb.run import Run

    out = lab.root / "out03_first_epoch"
    name = prepare_notebook(lab, "03_train_deepcsv.ipynb", data=str(deepcsv_dataset), epochs=200, batch_size=4,
                            out_dir=str(out), samples_dir=str(lab_samples))
    _open_and_run_all(browser, lab, name)
    _stop_in_the_first_epoch(browser)
    _wait_until_every_cell_ran(browser, name)
    _assert_clean(browser, name)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "stopped" and summary["epochs"] == 0
    assert "no epoch finished" in _page_text(browser)  # the notebook says how to go on
    status = Run(out / "run").status()
    assert "stopped" in status and "0/200 epochs" in status, status
    # Running the training cell again continues the run (resume="auto"), and Stop ends it again.
    browser.execute_script(
        "const w = window.jupyterapp.shell.currentWidget;"
        "w.content.activeCellIndex = w.content.widgets.findIndex(c => c.model.sharedModel.getSource()"
        ".includes('trainer.fit()'));"
        "window.jupyterapp.commands.execute('notebook:run-cell');")
    _wait(lambda: "continuing it" in _page_text(browser), 60, "the training cell did not resume the run")
    _stop_in_the_first_epoch(browser)
    _wait_until_every_cell_ran(browser, name)
    _assert_clean(browser, name)


def _stop_in_the_first_epoch(driver):
    """Press the dashboard's Stop while epoch 1 compiles or runs; wait until training has ended."""
    from selenium.webdriver.common.by import By

    stop = _wait(lambda: [b for b in driver.find_elements(By.XPATH, "//button[normalize-space(.)='Stop']")
                          if b.is_enabled()], 180, "the dashboard's Stop button did not appear")[0]
    status = _wait(lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, ".widget-html-content")
                            if EPOCH.search(e.text)], 30, "the dashboard shows no epoch")[0]
    assert EPOCH.search(status.text).group(1) == "1", f"Stop came too late: {status.text}"
    _scroll_to(driver, stop)
    stop.click()
    _wait(lambda: driver.find_elements(By.XPATH, "//button[normalize-space(.)='Stopped']"), 30,
          "Stop did not end training")


def test_explorer_in_tutorial_05_reacts_to_its_controls(lab, lab_samples, browser, prediction_files):
    from selenium.webdriver.common.by import By

    out = lab.root / "out05"
    name = prepare_notebook(lab, "05_evaluate.ipynb", out_dir=str(out), samples_dir=str(lab_samples),
                            predictions=[str(prediction_files["deepjet"]), str(prediction_files["deepcsv"])])
    _open_and_run_all(browser, lab, name)
    _wait_until_every_cell_ran(browser, name)
    assert (out / "summary.json").is_file()
    _assert_clean(browser, name)
    # Inline figures render in the CMS style (no findfont warning: no stderr at all, checked above).
    assert len(browser.find_elements(By.CSS_SELECTOR, ".jp-RenderedImage img")) >= 4
    _roc_explorer_reacts(browser)
    _screenshot(browser, "explorer")
    _assert_clean(browser, name)
