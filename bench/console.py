"""Console page load in a real headless Chromium (Debian's chromium and chromium-driver, through
Selenium), read from the browser's Navigation Timing: ROUNDS loads of `/` each in a fresh
browser (cold cache), ROUNDS reloads in one browser (warm cache: 304s), and the time from
navigation start to the signed-in overview's charts drawn.
Usage: console.py URL TOKEN ROUNDS
"""

import statistics
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

URL, TOKEN, ROUNDS = sys.argv[1], sys.argv[2], int(sys.argv[3])
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
driver.quit()
values = sorted(ready)
print(f"{'overview charts drawn':<28} {'since navigation':<17} median {statistics.median(values):7.1f} ms  max {values[-1]:7.1f} ms  (n={len(values)})")
