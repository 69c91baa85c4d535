"""Console page load in a real headless Chromium (Debian's chromium and chromium-driver, through
Selenium), read from the browser's Navigation Timing: ROUNDS loads of `/` each in a fresh
browser (cold cache), ROUNDS reloads in one browser (warm cache: 304s), and the time from
navigation start to the signed-in overview's charts drawn. With EVENTS (the events
`securewatch-bench search --load-only` stored: 24 h, 200 hosts), searches from the Search page
as a user runs them (typed into the editor, Run clicked, last 24 hours), ROUNDS of each query,
timed by the page's own clock from the form's submit to the first result row in the table and
to the job's done state.
Usage: console.py URL TOKEN ROUNDS [EVENTS]
"""

import statistics
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, TOKEN, ROUNDS = sys.argv[1], sys.argv[2], int(sys.argv[3])
EVENTS = int(sys.argv[4]) if len(sys.argv) > 4 else 0
TIMING = "const n = performance.getEntriesByType('navigation')[0]; return [n.responseEnd - n.startTime, n.domContentLoadedEventEnd - n.startTime, n.loadEventEnd - n.startTime];"


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))


def loaded(driver):
    WebDriverWait(driver, 10, poll_frequency=0.01).until(lambda d: d.execute_script("return performance.getEntriesByType('navigation')[0]?.loadEventEnd > 0"))
    return driver.execute_script(TIMING)


def report(name, samples):
    for index, label in enumerate(("response end", "DOMContentLoaded", "load")):
        values = sorted(sample[index] for sample in samples)
        print(f"{name:<28} {label:<17} median {statistics.median(values):7.1f} ms  max {values[-1]:7.1f} ms  (n={len(values)})")


# Installed once in the page: the submit of the search form (capture phase, so before the
# console's own handler) starts the clock; a MutationObserver on the results table stamps the
# first row put in it, one on the job state its first `done`.
OBSERVE = """
if (!window.benchSearch) {
  const stamps = window.benchSearch = {submit: null, first: null, done: null};
  document.addEventListener("submit", () => { stamps.submit = performance.now(); stamps.first = stamps.done = null; }, true);
  const body = document.querySelector("#results tbody");
  new MutationObserver(() => {
    if (stamps.submit !== null && stamps.first === null && body.querySelector("tr")) stamps.first = performance.now();
  }).observe(body, {childList: true});
  const state = document.getElementById("job-state");
  new MutationObserver(() => {
    if (stamps.submit !== null && stamps.done === null && state.dataset.state === "done") stamps.done = performance.now();
  }).observe(state, {attributes: true, attributeFilter: ["data-state"]});
}
"""
FINISHED = """
const stamps = window.benchSearch, state = document.getElementById("job-state").dataset.state;
if (state === "failed" || state === "cancelled") return "failed";
return stamps.first !== null && stamps.done !== null && document.getElementById("histogram").childElementCount > 0;
"""


def quantile(values, q):
    return values[round((len(values) - 1) * q)]


def search(driver):
    """ROUNDS runs of each query from the Search page, signed in; prints p50/p99/max."""
    driver.find_element(By.CSS_SELECTOR, '#nav a[data-page="search"]').click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "search").is_displayed())
    driver.execute_script(OBSERVE)
    Select(driver.find_element(By.ID, "range")).select_by_value("-24h")
    editor = driver.find_element(By.ID, "query")
    for name, text in (
        ("take 100 of one host", 'events | where host == "host-0017" | take 100'),
        ("count by 1 h and severity", "events | summarize count() by bin(time, 1h), severity"),
        ("free text \"needle\"", 'events | search "needle"'),
    ):
        first, done = [], []
        for _ in range(ROUNDS):
            editor.clear()
            editor.send_keys(text)
            driver.find_element(By.ID, "run").click()
            # The histogram (its own search) is the last thing a finished job draws: the next run
            # starts after it, so two never share the store.
            outcome = WebDriverWait(driver, 300, poll_frequency=0.02).until(lambda d: d.execute_script(FINISHED))
            if outcome == "failed":
                sys.exit(f"{name}: {driver.find_element(By.ID, 'job-state').text} {driver.find_element(By.ID, 'query-error').text}")
            submit, row, end = driver.execute_script("const s = window.benchSearch; return [s.submit, s.first, s.done];")
            first.append(row - submit)
            done.append(end - submit)
        state = driver.find_element(By.ID, "job-state").text
        for label, samples in (("first result row", first), ("job done", done)):
            values = sorted(samples)
            print(f"search {name:<26} {label:<17} p50 {quantile(values, 0.5):7.1f} ms  p99 {quantile(values, 0.99):7.1f} ms  max {values[-1]:7.1f} ms  (n={len(values)}; {state})")


cold = []
for _ in range(ROUNDS):
    driver = browser()
    driver.get(URL + "/")
    cold.append(loaded(driver))
    driver.quit()
report("cold (fresh browser)", cold)

driver = browser()
driver.get(URL + "/")
loaded(driver)
warm = []
for _ in range(ROUNDS):
    driver.refresh()
    warm.append(loaded(driver))
report("warm (reload, 304s)", warm)

# Signed in (the token in session storage): navigation start to both charts drawn.
driver.execute_script("sessionStorage.setItem('securewatch.credential', arguments[0])", TOKEN)
ready = []
for _ in range(ROUNDS):
    driver.refresh()
    WebDriverWait(driver, 10, poll_frequency=0.005).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chart-source svg, #chart-severity svg")) == 2)
    ready.append(driver.execute_script("return performance.now()"))
values = sorted(ready)
print(f"{'overview charts drawn':<28} {'since navigation':<17} median {statistics.median(values):7.1f} ms  max {values[-1]:7.1f} ms  (n={len(values)})")
if EVENTS:
    search(driver)
driver.quit()
