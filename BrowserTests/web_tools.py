"""The conversation tools in the web chat, in a real browser: a reply regenerated, the version
arrows between the two, a question edited, full-text search, export as a download; and an
axe-core audit of the sign-in page, the chat page and each of these controls (nothing may be
found, of any impact). The server's model is the Anthropic emulator, its replies queued by the test.

    python3 BrowserTests/web_tools.py --base http://localhost:8000
"""
import glob
import os
import tempfile
import time
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import a11y
import browser

args = browser.arguments()
BASE = args.base.rstrip("/")
EMAIL = f"tools-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "correct horse battery"


def api(method, path, token=None, body=None):
    return browser.api(BASE, method, path, token, body)


messages = browser.messages


def last(driver, role):
    found = driver.find_elements(By.CSS_SELECTOR, f"#messages li.message.{role}")
    return found[-1] if found else None


def text_of(element):
    return element.find_element(By.CSS_SELECTOR, ".body").text if element else ""


def status_of(element):
    return next((s for s in ("streaming", "complete", "failed", "cancelled") if element and s in element.get_attribute("class").split()), None)


def versions_of(element):
    found = element.find_elements(By.CSS_SELECTOR, ".version-count") if element else []
    return found[0].text if found else None


def button(element, label):
    return next(b for b in element.find_elements(By.CSS_SELECTOR, ".tools button")
                if b.text == label or b.get_attribute("aria-label") == label)


def web_tools(driver):
    downloads = tempfile.mkdtemp(prefix="chat-export-")
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    driver.get(BASE + "/")
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "the sign-in form")
    a11y.audit(driver, "the sign-in page")
    driver.find_element(By.ID, "auth-switch").click()
    a11y.audit(driver, "the sign-up form")
    driver.find_element(By.ID, "auth-email").send_keys(EMAIL)
    driver.find_element(By.ID, "auth-password").send_keys(PASSWORD)
    driver.find_element(By.ID, "auth-submit").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app")
    a11y.audit(driver, "the empty chat page")

    box = driver.find_element(By.ID, "input")
    box.send_keys("Plan a trip to Lisbon" + Keys.ENTER)
    browser.wait_for(lambda: status_of(last(driver, "assistant")) == "complete", "the first reply")
    browser.wait_for(lambda: driver.find_element(By.ID, "chat-title").text == "Emulated title", "the generated title")
    first = text_of(last(driver, "assistant"))
    assert "Lisbon first" in first, first
    a11y.audit(driver, "a chat with a reply")

    # Regenerate: a second reply replaces the first, which stays as version 1 of 2.
    button(last(driver, "assistant"), "Regenerate").click()
    browser.wait_for(lambda: "Lisbon second" in text_of(last(driver, "assistant")) and status_of(last(driver, "assistant")) == "complete",
                     "the regenerated reply")
    assert len(messages(driver)) == 2, "the old reply left the conversation"
    browser.wait_for(lambda: versions_of(last(driver, "assistant")) == "2/2", "the version arrows")
    a11y.audit(driver, "a reply with versions")
    button(last(driver, "assistant"), "Previous version").click()
    browser.wait_for(lambda: versions_of(last(driver, "assistant")) == "1/2" and text_of(last(driver, "assistant")) == first,
                     "the first version back")
    button(last(driver, "assistant"), "Next version").click()
    browser.wait_for(lambda: versions_of(last(driver, "assistant")) == "2/2" and "Lisbon second" in text_of(last(driver, "assistant")),
                     "the second version again")

    # Edit the question: a new version of it, and a new reply.
    button(last(driver, "user"), "Edit this message").click()
    editor = browser.wait_for(lambda: last(driver, "user").find_element(By.CSS_SELECTOR, "form.edit textarea"), "the editor")
    a11y.audit(driver, "a question being edited")
    editor.clear()
    editor.send_keys("Plan a trip to Porto")
    last(driver, "user").find_element(By.CSS_SELECTOR, "form.edit button[type=submit]").click()
    browser.wait_for(lambda: text_of(last(driver, "user")) == "Plan a trip to Porto" and versions_of(last(driver, "user")) == "2/2",
                     "the edited question")
    browser.wait_for(lambda: "Porto" in text_of(last(driver, "assistant")) and status_of(last(driver, "assistant")) == "complete",
                     "the reply to the edited question")
    assert len(messages(driver)) == 2
    browser.screenshot(driver, args, "tools-versions")

    # Search: words in any order and case, found in the messages.
    search = driver.find_element(By.ID, "chat-search")
    search.send_keys("PORTO trip")
    hit = browser.wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#search-results li a"), "a search result")
    assert "Porto" in hit.text, hit.text
    assert not driver.find_element(By.ID, "chat-list").is_displayed(), "the results replace the chat list"
    a11y.audit(driver, "search results")
    browser.screenshot(driver, args, "tools-search")
    search.send_keys(Keys.CONTROL + "a", Keys.DELETE)
    browser.wait_for(lambda: driver.find_element(By.ID, "chat-list").is_displayed(), "the chat list back")

    # Export: the chat as a Markdown download.
    driver.find_element(By.ID, "export").click()
    a11y.audit(driver, "the export menu")
    driver.find_element(By.ID, "export-markdown").click()
    path = browser.wait_for(lambda: next(iter(glob.glob(os.path.join(downloads, "*.md"))), None), "the downloaded file")
    time.sleep(0.2)
    with open(path, encoding="utf-8") as file:
        exported = file.read()
    assert exported.startswith("# Emulated title"), exported[:200]
    assert "Plan a trip to Porto" in exported and "Lisbon" not in exported.split("## You", 1)[1], exported


web_tools.args = args
browser.run(web_tools)
