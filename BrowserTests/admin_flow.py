"""The admin in a real browser: sign in, find a user, open their chat, delete it.

    python3 BrowserTests/admin_flow.py --base http://localhost:8000 \
        --email admin@example.com --password '…' --user someone@example.com --chat 'Chat title'
"""
from selenium.webdriver.common.by import By

import browser

args = browser.arguments("--email", "--password", "--user", "--chat")


def admin_flow(driver):
    base = args.base.rstrip("/")
    driver.get(base + "/admin/")
    browser.wait_for(lambda: "/admin/login/" in driver.current_url, "the sign-in page")
    browser.screenshot(driver, args, "admin-login")
    driver.find_element(By.ID, "email").send_keys(args.email)
    driver.find_element(By.ID, "password").send_keys(args.password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    browser.wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text == "Dashboard", "the dashboard")
    browser.screenshot(driver, args, "admin-dashboard")

    driver.find_element(By.LINK_TEXT, "Users").click()
    browser.wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text.startswith("Users"), "the user list")
    search = driver.find_element(By.NAME, "q")
    search.send_keys(args.user)
    search.submit()
    browser.wait_for(lambda: "q=" in driver.current_url, "the search results")
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 1, f"expected one user for {args.user}, found {len(rows)}"
    browser.screenshot(driver, args, "admin-users-search")
    driver.find_element(By.LINK_TEXT, args.user).click()
    browser.wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text.startswith(args.user), "the user's page")

    driver.find_element(By.LINK_TEXT, args.chat).click()
    browser.wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text == args.chat, "the chat's page")
    turns = driver.find_elements(By.CSS_SELECTOR, "ol.conversation li")
    assert len(turns) >= 2, f"expected the conversation, found {len(turns)} messages"
    browser.screenshot(driver, args, "admin-chat")

    driver.find_element(By.PARTIAL_LINK_TEXT, "Delete this chat").click()
    browser.wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text.startswith("Delete the chat"), "the confirmation")
    browser.screenshot(driver, args, "admin-chat-delete")
    driver.find_element(By.CSS_SELECTOR, "button.danger").click()
    browser.wait_for(lambda: "Deleted." in driver.find_element(By.CSS_SELECTOR, "p.notice").text, "the deletion notice")
    assert args.chat not in driver.find_element(By.TAG_NAME, "main").text, "the chat is still listed"
    browser.screenshot(driver, args, "admin-chats-after-delete")


admin_flow.args = args
browser.run(admin_flow)
