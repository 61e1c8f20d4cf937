"""Share links in a real browser: a chat is shared from its Share dialog; the link opens in a fresh
browser (no session): in `public` mode the page shows the conversation at once, every text as
text; in `users` mode it asks the visitor to sign in, brings them back and then shows it. Revoked
from the dialog, the link answers "not found" at once. Each state is audited with axe.

    python3 BrowserTests/web_share.py --base http://localhost:8000 --mode public
"""
import uuid

from selenium.webdriver.common.by import By

import a11y
import browser

args = browser.arguments("--mode")
BASE = args.base.rstrip("/")
PASSWORD = "correct horse battery"
HOSTILE = '<img src=x onerror="document.title=1"> and **bold**'


def web_share(driver):
    browser.sign_up(driver, BASE, f"share-{uuid.uuid4().hex[:8]}@example.com", PASSWORD)
    driver.find_element(By.ID, "input").send_keys(HOSTILE)
    driver.find_element(By.ID, "send").click()
    browser.wait_for(lambda: browser.reply_status(driver) == "complete", "the reply")
    driver.find_element(By.ID, "share").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "share-dialog").get_attribute("open") is not None, "the share dialog")
    browser.wait_for(lambda: driver.find_element(By.ID, "share-empty").is_displayed(), "no links yet")
    driver.find_element(By.CSS_SELECTOR, "#share-form button[type=submit]").click()
    url = browser.wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#share-list input").get_attribute("value"), "the new link")
    assert "/s/" in url, url
    a11y.audit(driver, "the share dialog with a link")
    browser.screenshot(driver, args, "share-dialog")
    path = url[url.index("/s/"):]

    visitor = browser.start(args)
    try:
        visitor.get(BASE + path)
        if args.mode == "users":
            link = browser.wait_for(lambda: visitor.find_element(By.LINK_TEXT, "Sign in to see this shared chat"), "the sign-in request")
            link.click()
            browser.wait_for(lambda: visitor.find_element(By.ID, "auth-view").is_displayed(), "the sign-in form")
            visitor.find_element(By.ID, "auth-switch").click()
            visitor.find_element(By.ID, "auth-email").send_keys(f"visitor-{uuid.uuid4().hex[:8]}@example.com")
            visitor.find_element(By.ID, "auth-password").send_keys(PASSWORD)
            visitor.find_element(By.ID, "auth-submit").click()
            browser.wait_for(lambda: visitor.current_url.endswith(path), "back to the shared chat")
        texts = browser.wait_for(lambda: [e.text for e in visitor.find_elements(By.CSS_SELECTOR, ".shared-message")], "the shared messages")
        assert HOSTILE in texts[0], texts
        assert not visitor.find_elements(By.CSS_SELECTOR, "main img"), "a message's HTML is never rendered"
        assert visitor.title != "1", "no script from a message ran"
        a11y.audit(visitor, f"the shared chat ({args.mode} mode)")
        browser.screenshot(visitor, args, f"share-page-{args.mode}")

        driver.find_element(By.CSS_SELECTOR, "#share-list button.danger").click()
        browser.wait_for(lambda: driver.find_element(By.ID, "share-empty").is_displayed(), "the link revoked")
        visitor.refresh()
        browser.wait_for(lambda: "does not exist" in visitor.find_element(By.TAG_NAME, "main").text, "the revoked link gone")
    finally:
        visitor.quit()


web_share.args = args
browser.run(web_share)
