"""API keys in the web chat, in a real browser: the dialog opens from the account corner; a key is
made with a name, a scope and an expiry; its secret is shown once with a sample and works against
the API; listed by name and prefix (never the secret again, even after a reload); revoked, it is
refused at once. Each state is audited with axe.

    python3 BrowserTests/web_keys.py --base http://localhost:8000
"""
import urllib.error
import urllib.request
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

import a11y
import browser

args = browser.arguments()
BASE = args.base.rstrip("/")
EMAIL = f"keys-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "correct horse battery"


def status_with(key):
    request = urllib.request.Request(BASE + "/api/chat/", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def listed(driver):
    return [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#key-list li")]


def web_keys(driver):
    browser.sign_up(driver, BASE, EMAIL, PASSWORD)
    driver.find_element(By.ID, "account-open").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "account-dialog").get_attribute("open") is not None, "the account dialog")
    browser.wait_for(lambda: driver.find_element(By.ID, "keys-empty").is_displayed(), "no keys yet")
    a11y.audit(driver, "the account dialog, empty")

    driver.find_element(By.ID, "key-name").send_keys("<i>deploy</i> script")
    Select(driver.find_element(By.ID, "key-scope")).select_by_value("full")
    Select(driver.find_element(By.ID, "key-expiry")).select_by_value("30")
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    secret = browser.wait_for(lambda: driver.find_element(By.ID, "key-secret").get_attribute("value"), "the new key")
    assert secret.startswith("csk_") and len(secret) == 47, secret
    assert secret in driver.find_element(By.ID, "key-sample").text, "the sample uses the key"
    browser.wait_for(lambda: len(listed(driver)) == 1, "the key listed")
    item = listed(driver)[0]
    assert "<i>deploy</i> script" in item and "full" in item and secret[:12] in item and secret not in item, item
    assert not driver.find_elements(By.CSS_SELECTOR, "#key-list i"), "the name is text"
    browser.screenshot(driver, args, "keys-made")
    a11y.audit(driver, "the account dialog with a new key")
    assert status_with(secret) == 200, "the key reaches the chat API"

    # Closed and opened again: the secret is gone from the page; after a reload it is nowhere.
    driver.find_element(By.ID, "account-close").click()
    driver.find_element(By.ID, "account-open").click()
    browser.wait_for(lambda: len(listed(driver)) == 1, "the key listed again")
    assert driver.find_element(By.ID, "key-made").is_displayed() is False
    driver.refresh()
    browser.wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app after a reload")
    driver.find_element(By.ID, "account-open").click()
    browser.wait_for(lambda: len(listed(driver)) == 1, "the key after a reload")
    assert secret not in driver.page_source

    driver.find_element(By.CSS_SELECTOR, "#key-list button").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "keys-empty").is_displayed(), "the key revoked")
    assert status_with(secret) == 401, "refused once revoked"


web_keys.args = args
browser.run(web_keys)
