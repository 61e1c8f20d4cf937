"""Shared set-up for the browser scenarios: headless Chromium through Selenium, screenshots,
and small waiting helpers (no fixed sleeps: every wait polls a condition with a deadline)."""
import argparse
import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def arguments(*extra, optional=()):
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the server, e.g. http://localhost:8000")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--artifacts", default="artifacts/browser")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed TLS certificate (a local trial)")
    for name in extra:
        parser.add_argument(name, required=True)
    for name in optional:
        parser.add_argument(name)
    return parser.parse_args()


def start(args, width=1280, height=900):
    options = Options()
    options.binary_location = args.chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    if args.insecure:
        options.add_argument("--ignore-certificate-errors")
    driver_path = "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
    service = Service(executable_path=driver_path) if driver_path else Service()
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    return driver


def wait_for(condition, what, timeout=15):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # the page may be between states
            last_error = error
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


def screenshot(driver, args, name):
    os.makedirs(args.artifacts, exist_ok=True)
    driver.save_screenshot(os.path.join(args.artifacts, f"{name}.png"))


def run(scenario):
    """Runs scenario(); on failure prints the page and saves a screenshot, exits 1."""
    args = scenario.args
    driver = start(args)
    try:
        scenario(driver)
        print("ok")
    except Exception as error:
        screenshot(driver, args, "failure-" + scenario.__name__)
        print(f"FAILED: {error}\nURL: {driver.current_url}\n--- page ---\n{driver.page_source[:4000]}", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()


# --- Shared by the web chat's scenarios ---------------------------------------------------------

def sign_up(driver, base, email, password):
    """Opens the web chat at `base` and signs up as `email`, waiting for the app."""
    driver.get(base + "/")
    wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "the sign-in form")
    driver.find_element(By.ID, "auth-switch").click()
    driver.find_element(By.ID, "auth-email").send_keys(email)
    driver.find_element(By.ID, "auth-password").send_keys(password)
    driver.find_element(By.ID, "auth-submit").click()
    wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app")


def api(base, method, path, token=None, body=None):
    """A JSON call to the API at `base`; the decoded answer."""
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def messages(driver):
    """The web chat's messages, in order."""
    return driver.find_elements(By.CSS_SELECTOR, "#messages li.message")


def last_assistant(driver):
    replies = driver.find_elements(By.CSS_SELECTOR, "#messages li.message.assistant")
    return replies[-1] if replies else None


def watch_reply_growth(driver):
    """Records, in the page, each length the last assistant reply's text takes as the DOM changes
    (read back with `reply_growth`): how it grew, whatever the delay of each WebDriver call."""
    driver.execute_script("""
        window.__replyLengths = [];
        const record = () => {
            const replies = document.querySelectorAll('#messages li.message.assistant');
            const body = replies.length ? replies[replies.length - 1].querySelector('.body') : null;
            if (!body) return;
            const lengths = window.__replyLengths, length = body.textContent.length;
            if (!lengths.length || lengths[lengths.length - 1] !== length) lengths.push(length);
        };
        window.__replyWatcher?.disconnect();
        window.__replyWatcher = new MutationObserver(record);
        window.__replyWatcher.observe(document.body, {subtree: true, childList: true, characterData: true});
    """)


def reply_growth(driver):
    return driver.execute_script("return window.__replyLengths || []")


def reply_text(driver):
    reply = last_assistant(driver)
    return reply.find_element(By.CSS_SELECTOR, ".body").text if reply else ""


def reply_status(driver):
    reply = last_assistant(driver)
    return next((s for s in ("streaming", "complete", "failed", "cancelled") if reply and s in reply.get_attribute("class").split()), None)
