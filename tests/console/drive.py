"""Drives the SecureWatch console in a real headless Chromium (Debian's chromium and
chromium-driver, through Selenium) against a running instance.

Usage: drive.py URL ADMIN_TOKEN ENGINEER_TOKEN VIEWER_TOKEN TENANTS_TOKEN SCREENSHOT_DIR
With SECUREWATCH_CONSOLE_RULE (a loaded rule's id) the engineer backtests it from the Rules
page, then the rules in SECUREWATCH_CONSOLE_CHANGED_RULES (YAML) typed into the form.
Every check is an assertion; the last line printed is a JSON summary of what was seen.
"""

import json
import os
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, ADMIN, ENGINEER, VIEWER, TENANTS, SHOTS = sys.argv[1:7]
RULE = os.environ["SECUREWATCH_CONSOLE_RULE"]
CHANGED_RULES = os.environ["SECUREWATCH_CONSOLE_CHANGED_RULES"]
os.makedirs(SHOTS, exist_ok=True)
DOWNLOADS = os.path.join(SHOTS, "downloads")
shutil.rmtree(DOWNLOADS, ignore_errors=True)  # the export below must find this run's file
os.makedirs(DOWNLOADS)


def browser(width=1280, height=900):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("SECUREWATCH_CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": DOWNLOADS, "download.prompt_for_download": False})
    # The driver is Debian's: Selenium Manager is never asked to download one.
    service = Service(executable_path=os.environ.get("SECUREWATCH_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


driver = browser()
wait = WebDriverWait(driver, 30, poll_frequency=0.1)
summary = {}


def shot(name):
    path = os.path.join(SHOTS, f"{name}.png")
    driver.save_screenshot(path)
    return path


def find(selector):
    return driver.find_element(By.CSS_SELECTOR, selector)


def finds(selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def shown(selector):
    elements = finds(selector)
    return bool(elements) and elements[0].is_displayed()


def sign_in(credential):
    driver.get(URL + "/")
    wait.until(lambda _: shown("#credential"))
    box = find("#credential")
    box.send_keys(credential)
    box.send_keys(Keys.ENTER)
    wait.until(lambda _: shown("#who") and find("#who").text)


def go(page):
    find(f'#nav a[data-page="{page}"]').click()
    wait.until(lambda _: shown(f"#{page}"))


try:
    # Sign-in page: every control labelled, the credential never in the URL or local storage.
    driver.get(URL + "/")
    wait.until(lambda _: shown("#signin-form"))
    navigation = driver.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
    summary["load_ms"] = round(navigation["loadEventEnd"] - navigation["startTime"], 1)
    sign_in(ADMIN)
    assert "admin" in find("#who").text, find("#who").text
    assert driver.execute_script("return localStorage.length") == 0
    assert ADMIN not in driver.current_url

    # Overview: both charts drawn with lines, top hosts, latest alerts, sinks, ingest and lag.
    wait.until(lambda _: finds("#chart-source svg polyline, #chart-source svg circle"))
    wait.until(lambda _: finds("#chart-severity svg polyline, #chart-severity svg circle"))
    wait.until(lambda _: len(finds("#top-hosts tbody tr td")) >= 2 and finds("#latest-alerts li a"))
    wait.until(lambda _: "ok" in find("#sinks").text and "epoch lag" in find("#ingest").text)
    hosts = [row.text for row in finds("#top-hosts tbody tr td:first-child")]
    assert "web-1" in hosts, hosts
    summary["overview_sources"] = find("#chart-source .legend").text
    summary["overview_hosts"] = hosts
    shot("overview")

    # Search: a bad query points at its error; a good one runs with progress over the WebSocket.
    go("search")
    editor = find("#query")
    editor.clear()
    editor.send_keys('events | wher host == "a"')
    find("#run").click()
    wait.until(lambda _: find("#query-error").text)
    error = find("#query-error").text
    assert error.startswith("line 1, column 10:"), error
    assert driver.execute_script("return document.getElementById('query').selectionStart") == 9
    assert editor.get_attribute("aria-invalid") == "true"
    summary["query_error"] = error.splitlines()[0]

    editor.clear()
    editor.send_keys('events | where message has "Failed" | project time, host, message')
    Select(find("#page-size")).select_by_visible_text("25")
    Select(find("#range")).select_by_value("-1h")
    editor.send_keys(Keys.CONTROL, Keys.ENTER)  # Ctrl+Enter runs, as the Run button does
    wait.until(lambda _: find("#job-state").get_attribute("data-state") == "done")
    state = find("#job-state")
    assert state.get_attribute("data-feed") == "websocket", state.get_attribute("data-feed")
    assert float(find("#progress").get_attribute("value")) == 1.0
    summary["job_state"] = state.text
    wait.until(lambda _: len(finds("#results tbody tr")) == 25)
    first_page = [row.text for row in finds("#results tbody tr")]
    assert [cell.text for cell in finds("#results thead th")] == ["time", "host", "message"]
    wait.until(lambda _: finds("#histogram svg rect"))
    summary["histogram_bars"] = len(finds("#histogram svg rect"))
    assert find("#next-page").is_enabled() and not find("#prev-page").is_enabled()
    summary["page_1"] = find("#page-info").text
    find("#next-page").click()
    wait.until(lambda _: find("#page-info").text.startswith("rows 26"))
    summary["page_2"] = find("#page-info").text
    second_page = [row.text for row in finds("#results tbody tr")]
    assert second_page and second_page[0] not in first_page
    shot("search")
    find("#prev-page").click()
    wait.until(lambda _: find("#page-info").text.startswith("rows 1–"))
    find("#export-csv").click()
    wait.until(lambda _: any(name.endswith(".csv") for name in os.listdir(DOWNLOADS)))
    exported = [name for name in os.listdir(DOWNLOADS) if name.endswith(".csv")][0]
    wait.until(lambda _: open(os.path.join(DOWNLOADS, exported)).read().count("\n") > 1)
    lines = open(os.path.join(DOWNLOADS, exported)).read().splitlines()
    assert lines[0] == "time,host,message", lines[:2]
    summary["exported_csv_rows"] = len(lines) - 1

    # Alerts: the list, then one alert's evidence in its correlation window.
    go("alerts")
    wait.until(lambda _: finds("#alert-list tbody tr a"))
    summary["alerts_listed"] = len(finds("#alert-list tbody tr a"))
    find("#alert-list tbody tr a").click()
    wait.until(lambda _: finds("#evidence tbody tr"))
    evidence = [row.text for row in finds("#evidence tbody tr")]
    assert all("Failed password" in row for row in evidence), evidence
    assert finds("#alert-detail svg rect.c3"), "the window shows the evidence ticks"
    summary["evidence_events"] = len(evidence)
    summary["alert_window"] = [row.text for row in finds("#alert-detail dd")][5]
    shot("alerts")

    # Rules: loaded and rejected, reload and the backtest form for an admin.
    go("rules")
    wait.until(lambda _: finds("#rule-list tbody tr td") and len(finds("#rule-list tbody tr td")) >= 5)
    rules = [row.text for row in finds("#rule-list tbody tr")]
    rejected = [row.text for row in finds("#rejections tbody tr")]
    assert any("Failed SSH password" in rule for rule in rules), rules
    assert any("broken.yml" in row for row in rejected), rejected
    assert shown("#reload") and shown("#backtest-form")
    assert not shown("#backtest-results"), "no results before a backtest ran"
    find("#reload").click()
    wait.until(lambda _: find("#reload-result").text.startswith("Applied"))
    summary["reload"] = find("#reload-result").text
    summary["rejections"] = rejected
    shot("rules")

    # Every control has a label; the page fits 390 px without sideways scrolling.
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')].filter(e => e.labels.length === 0).map(e => e.id)")
    assert unlabelled == [], unlabelled
    go("overview")
    driver.set_window_size(390, 844)
    time.sleep(0.3)
    overflow = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow} px wider than 390"
    shot("overview-390")
    driver.set_window_size(1280, 900)

    # No CSP violation or script error in the browser's log.
    problems = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [problem for problem in problems if "Content Security Policy" in problem or "Uncaught" in problem], problems

    # An engineer backtests a loaded rule from the Rules page, by keyboard: its "Backtest"
    # button fills in the rule's file, Ctrl+Enter runs, progress over the WebSocket to done.
    find("#sign-out").click()
    wait.until(lambda _: shown("#credential"))
    sign_in(ENGINEER)
    assert "engineer" in find("#who").text, find("#who").text
    go("rules")
    offer = f'#rule-list tbody tr[data-rule-id="{RULE}"] button'
    wait.until(lambda _: finds(offer))
    assert shown("#backtest") and not shown("#backtest-results")
    find(offer).send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "backtest-range"
    summary["backtest_rules_field"] = find("#backtest-rules").get_attribute("value")
    Select(find("#backtest-range")).select_by_value("-24h")
    state = find("#backtest-state")
    assert state.get_attribute("data-job") is None and state.text == "idle", "a fresh sign-in starts with no backtest"
    find("#backtest-rules").send_keys(Keys.CONTROL, Keys.ENTER)
    wait.until(lambda _: state.get_attribute("data-job") and state.get_attribute("data-state") not in ("queued", "running"))
    assert state.get_attribute("data-state") == "done", state.text + " " + find("#backtest-error").text
    assert state.get_attribute("data-feed") == "websocket", state.get_attribute("data-feed")
    assert float(find("#backtest-progress").get_attribute("value")) == 1.0
    assert not find("#backtest-cancel").is_enabled()
    wait.until(lambda _: shown("#backtest-results"))

    def backtest_results():
        """What the result view shows: summary pairs, rule rows, comparison counts, alerts."""
        pairs = finds("#backtest-summary dt")
        rules = {}
        for row in finds("#backtest-rule-table tbody tr"):
            cells = [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td")]
            rules[row.get_attribute("data-rule-id")] = {
                "matches": cells[2], "alerts": cells[3], "alerts_per_day": cells[4], "by_day": cells[5], "top_groups": cells[6]}
        return {
            "state": state.text,
            "summary": {dt.text: dt.find_element(By.XPATH, "following-sibling::dd[1]").text for dt in pairs},
            "rules": rules,
            "comparison": {name: find(f"#backtest-{name}").text for name in ("same", "differs", "only-backtest", "only-live")},
            "alerts": len(finds("#backtest-alerts tbody tr[data-id]")),
            "only_live": len(finds("#backtest-only-live-list tbody tr[data-id]")),
        }

    summary["backtest"] = backtest_results()
    # An alert's evidence, rendered as on the Alerts page.
    find("#backtest-alerts tbody tr[data-id] button").send_keys(Keys.ENTER)
    wait.until(lambda _: finds("#backtest-evidence tbody tr"))
    evidence = [row.text for row in finds("#backtest-evidence tbody tr")]
    assert all("Failed password" in row for row in evidence), evidence
    assert finds("#backtest-alert svg rect.c3"), "the window shows the evidence ticks"
    assert driver.switch_to.active_element.get_attribute("id") == "backtest-alert-title"
    summary["backtest_evidence"] = evidence
    shot("backtest")

    # A rule the server rejects refuses the backtest, with the reason at the rules field.
    box = find("#backtest-rules")
    box.clear()
    box.send_keys("title: Broken\nlogsource: {product: linux}\ndetection:\n  selection:\n    message|nosuchmodifier: x\n  condition: selection\n")
    find("#backtest-run").click()
    wait.until(lambda _: find("#backtest-error").text)
    summary["backtest_refused"] = find("#backtest-error").text
    assert box.get_attribute("aria-invalid") == "true"
    assert not shown("#backtest-results"), "a refused backtest leaves no results"

    # Changed rules typed in as YAML: the comparison splits into same, only backtest, only live.
    # This time the job's WebSocket upgrade fails (sent to a path the server answers 404, as a
    # proxy that drops upgrades would make it fail): the page follows the job by polling.
    box.clear()
    box.send_keys(CHANGED_RULES)
    Select(find("#backtest-range")).select_by_value("-1h")
    first_job = state.get_attribute("data-job")
    driver.execute_script("""
        window.realWebSocket = window.WebSocket;
        window.WebSocket = class extends window.realWebSocket {
            constructor(url, protocols) { super(url.replace(/\\/ws$/, "/ws-dropped"), protocols); }
        };""")
    find("#backtest-run").click()
    wait.until(lambda _: state.get_attribute("data-job") != first_job)
    wait.until(lambda _: state.get_attribute("data-state") not in ("queued", "running") and shown("#backtest-results"))
    driver.execute_script("window.WebSocket = window.realWebSocket")
    assert state.get_attribute("data-state") == "done", state.text + " " + find("#backtest-error").text
    assert state.get_attribute("data-feed") == "http", state.get_attribute("data-feed")
    summary["backtest_changed"] = backtest_results()
    Select(find("#backtest-filter")).select_by_value("only_backtest")
    only_backtest = finds("#backtest-alerts tbody tr[data-id]")
    assert all(row.get_attribute("data-comparison") == "only_backtest" for row in only_backtest)
    summary["backtest_changed"]["only_backtest_listed"] = len(only_backtest)
    only_backtest[0].find_element(By.CSS_SELECTOR, "button").click()
    wait.until(lambda _: finds("#backtest-evidence tbody tr"))
    summary["backtest_changed"]["only_backtest_evidence"] = find("#backtest-evidence tbody").text
    shot("backtest-changed")
    # Readable at 390 px: the result tables scroll inside their cards, the page does not.
    driver.set_window_size(390, 844)
    time.sleep(0.3)
    overflow = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the backtest results are {overflow} px wider than 390"
    shot("backtest-390")
    driver.set_window_size(1280, 900)
    # An only-live alert opens on the Alerts page with its live evidence.
    find("#backtest-only-live-list tbody tr[data-id] a").click()
    wait.until(lambda _: shown("#alerts") and finds("#evidence tbody tr"))
    assert "Failed password" in find("#evidence tbody").text
    problems = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [problem for problem in problems if "Content Security Policy" in problem or "Uncaught" in problem], problems

    # A viewer: no search page, no reload, no backtest.
    find("#sign-out").click()
    wait.until(lambda _: shown("#credential"))
    assert driver.execute_script("return sessionStorage.getItem('securewatch.credential')") is None
    sign_in(VIEWER)
    assert not shown('#nav a[data-page="search"]')
    go("rules")
    wait.until(lambda _: finds("#rule-list tbody tr td"))
    assert not shown("#reload") and not shown("#backtest") and not shown("#backtest-form")
    assert not shown("#backtest-results"), "the engineer's results are not left for the viewer"
    assert not finds("#backtest-alerts tbody tr") and find("#backtest-rules").get_attribute("value") == ""
    assert not finds("#rule-list tbody button") and not shown("#rule-backtest-column")
    summary["viewer_nav"] = [link.text for link in finds("#nav a") if link.is_displayed()]
    shot("viewer-rules")

    # Several tenants: the picker lists them, and a pick narrows what the API answers.
    find("#sign-out").click()
    sign_in(TENANTS)
    wait.until(lambda _: shown("#tenant"))
    options = [option.get_attribute("value") for option in Select(find("#tenant")).options]
    assert options == ["", "acme", "default"], options
    Select(find("#tenant")).select_by_value("acme")
    wait.until(lambda _: finds("#top-hosts tbody tr td.muted"))
    summary["tenant_picker"] = options
    summary["acme_top_hosts"] = find("#top-hosts tbody").text
    shot("tenant-acme")
finally:
    driver.quit()

print(json.dumps(summary))
