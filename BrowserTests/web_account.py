"""The account page in the web chat, in a real browser, with two tabs signed in to one account: the
name is changed; the password is changed in one tab, and the other tab (its chat's stream open) is
signed out within seconds while this one goes on; the data is downloaded; on a phone the chat list
is a drawer; the account is deleted and cannot sign in again. Each state is audited with axe.

    python3 BrowserTests/web_account.py --base http://localhost:8000
"""
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import a11y
import browser

args = browser.arguments()
BASE = args.base.rstrip("/")
EMAIL = f"account-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def sign_in(driver, password):
    driver.get(BASE + "/")
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "the sign-in form")
    driver.find_element(By.ID, "auth-email").send_keys(EMAIL)
    driver.find_element(By.ID, "auth-password").send_keys(password)
    driver.find_element(By.ID, "auth-submit").click()


def send(driver, text):
    box = driver.find_element(By.ID, "input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    browser.wait_for(lambda: browser.reply_status(driver) == "complete", f"the reply to {text!r}")


def open_account(driver):
    driver.find_element(By.ID, "account-open").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "account-dialog").get_attribute("open") is not None, "the account dialog")


def status(driver):
    return driver.find_element(By.ID, "account-status").text


def web_account(driver):
    browser.sign_up(driver, BASE, EMAIL, PASSWORD)
    send(driver, "Hello from the first tab")
    first = driver.current_window_handle

    # Another window of the same browser (as a second tab, its own session; a window, so that both
    # stay painted in headless Chromium), a chat open with its stream.
    driver.switch_to.new_window("window")
    second = driver.current_window_handle
    sign_in(driver, PASSWORD)
    browser.wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app in the second tab")
    send(driver, "Hello from the second tab")

    driver.switch_to.window(first)
    driver.execute_cdp_cmd("Page.bringToFront", {})
    open_account(driver)
    assert driver.find_element(By.ID, "profile-email").get_attribute("value") == EMAIL
    a11y.audit(driver, "the account dialog")
    browser.screenshot(driver, args, "account-dialog")
    name = driver.find_element(By.ID, "profile-name")
    name.clear()
    name.send_keys("Ada <b>Lovelace</b>")
    driver.find_element(By.CSS_SELECTOR, "#profile-form button[type=submit]").click()
    browser.wait_for(lambda: status(driver) == "Name saved.", "the name saved")
    assert driver.find_element(By.ID, "profile-name").get_attribute("value") == "Ada <b>Lovelace</b>"

    # A wrong current password changes nothing and says why.
    driver.find_element(By.ID, "password-current").send_keys("not the password")
    driver.find_element(By.ID, "password-new").send_keys(NEW_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#password-form button[type=submit]").click()
    browser.wait_for(lambda: "wrong" in driver.find_element(By.ID, "password-error").text, "the wrong password refused")
    current = driver.find_element(By.ID, "password-current")
    current.clear()
    current.send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#password-form button[type=submit]").click()
    browser.wait_for(lambda: "Password changed" in status(driver), "the password changed")
    assert driver.find_element(By.ID, "password-error").text == ""

    # The other tab is signed out by itself (its stream ended), within seconds.
    driver.switch_to.window(second)
    driver.execute_cdp_cmd("Page.bringToFront", {})
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "the second tab signed out", timeout=15)
    assert "session has ended" in driver.find_element(By.ID, "auth-error").text, driver.find_element(By.ID, "auth-error").text
    browser.screenshot(driver, args, "account-other-tab-signed-out")
    driver.close()

    # This tab goes on with the session the change answered.
    driver.switch_to.window(first)
    driver.execute_cdp_cmd("Page.bringToFront", {})
    driver.find_element(By.ID, "account-close").click()
    send(driver, "Still here after the change")

    open_account(driver)
    driver.find_element(By.ID, "export-account").click()
    browser.wait_for(lambda: status(driver) == "Your data is downloading.", "the export downloaded")
    assert driver.find_element(By.ID, "data-error").text == ""
    driver.find_element(By.ID, "account-close").click()

    # On a phone the chat list is a drawer over the conversation.
    driver.set_window_size(390, 844)
    browser.wait_for(lambda: driver.find_element(By.ID, "drawer-open").is_displayed(), "the Chats button")
    browser.wait_for(lambda: not driver.find_element(By.ID, "chat-list").is_displayed(), "the list closed at first")
    driver.find_element(By.ID, "drawer-open").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "chat-list").is_displayed(), "the drawer open")
    assert driver.find_element(By.ID, "drawer-open").get_attribute("aria-expanded") == "true"
    a11y.audit(driver, "the chat list drawer on a phone")
    browser.screenshot(driver, args, "account-phone-drawer")
    links = driver.find_elements(By.CSS_SELECTOR, "#chat-list a")
    assert len(links) == 2, [link.text for link in links]
    target = links[-1]
    title = target.text
    target.click()
    browser.wait_for(lambda: not driver.find_element(By.ID, "chat-list").is_displayed(), "the drawer closed on choosing a chat")
    browser.wait_for(lambda: driver.find_element(By.ID, "chat-title").text == title, "the chosen chat")
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), "nothing wider than the phone"
    browser.screenshot(driver, args, "account-phone-chat")
    driver.find_element(By.ID, "drawer-open").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "chat-list").is_displayed(), "the drawer open again")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    browser.wait_for(lambda: not driver.find_element(By.ID, "chat-list").is_displayed(), "Escape closes it")
    driver.set_window_size(1280, 900)

    # Deleting the account: the old password is refused, the new one deletes it.
    open_account(driver)
    driver.find_element(By.CSS_SELECTOR, "#delete-account-section summary").click()
    driver.find_element(By.ID, "delete-password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#delete-account-form button[type=submit]").click()
    browser.wait_for(lambda: "wrong" in driver.find_element(By.ID, "delete-error").text, "the old password refused")
    field = driver.find_element(By.ID, "delete-password")
    field.clear()
    field.send_keys(NEW_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#delete-account-form button[type=submit]").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "signed out with the account gone")
    assert "deleted" in driver.find_element(By.ID, "auth-error").text
    sign_in(driver, NEW_PASSWORD)
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-error").text != "", "the deleted account refused")
    assert not driver.find_element(By.ID, "app-view").is_displayed()


web_account.args = args
browser.run(web_account)
