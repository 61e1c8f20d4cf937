"""Tools in the web chat, in a real browser: the chat's settings list the MCP servers' tools
(a server that is down marked so); the user checks one and sends a question; the reply's call
shows live, collapsed — "running…" while the tool works, then its arguments and its result, opened
on demand — and the answer follows. A result that looks like HTML is shown as text. Saved with the
chat (PATCH), the choice is there after a reload. Each state is audited with axe.

    python3 BrowserTests/web_mcp_tools.py --base http://localhost:8000 --gate-file /tmp/gate
"""
import os
import uuid

from selenium.webdriver.common.by import By

import a11y
import browser

args = browser.arguments("--gate-file")
BASE = args.base.rstrip("/")
EMAIL = f"tools-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "correct horse battery"


def tool_calls(driver):
    reply = browser.last_assistant(driver)
    return reply.find_elements(By.CSS_SELECTOR, ".tool-call") if reply else []


def choice(driver, value):
    return driver.find_element(By.CSS_SELECTOR, f"#tool-list input[value='{value}']")


def web_mcp_tools(driver):
    browser.sign_up(driver, BASE, EMAIL, PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "tool-choices").is_displayed(), "the tools in the settings")
    legends = [legend.text for legend in driver.find_elements(By.CSS_SELECTOR, "#tool-list legend")]
    assert "alpha" in legends and "down — not answering" in legends, legends
    choice(driver, "alpha.gate").click()
    choice(driver, "alpha.big").click()
    a11y.audit(driver, "the settings with the tools")
    browser.screenshot(driver, args, "tools-choice")
    driver.find_element(By.CSS_SELECTOR, "#settings summary").click()

    driver.find_element(By.ID, "input").send_keys("Is the gate open?")
    driver.find_element(By.ID, "send").click()
    # The first call waits for the test's gate: shown live, running.
    browser.wait_for(lambda: tool_calls(driver) and "running" in tool_calls(driver)[0].get_attribute("class"), "the running call", timeout=30)
    first = tool_calls(driver)[0]
    assert "alpha.gate" in first.text and "running…" in first.text, first.text
    assert first.get_attribute("open") is None, "collapsed"
    browser.screenshot(driver, args, "tools-running")
    a11y.audit(driver, "a reply with a call running")
    open(args.gate_file, "w").close()

    browser.wait_for(lambda: browser.reply_status(driver) == "complete", "the answer after the calls", timeout=30)
    calls = tool_calls(driver)
    assert len(calls) == 2, [call.text for call in calls]
    assert all("done" in call.get_attribute("class") for call in calls), [call.get_attribute("class") for call in calls]
    calls[0].find_element(By.TAG_NAME, "summary").click()
    browser.wait_for(lambda: calls[0].get_attribute("open") is not None, "the call opened")
    parts = [pre.text for pre in calls[0].find_elements(By.TAG_NAME, "pre")]
    assert '"name": "browser"' in parts[0] and parts[1] == "gate browser opened", parts
    # A result that looks like HTML is text.
    calls[1].find_element(By.TAG_NAME, "summary").click()
    result = browser.wait_for(lambda: calls[1].find_elements(By.TAG_NAME, "pre")[1].text, "the second result")
    assert result.startswith("<b>&"), result
    assert not calls[1].find_elements(By.CSS_SELECTOR, "pre b"), "no element made of the result"
    assert browser.reply_text(driver) == "The gate is open.", browser.reply_text(driver)
    browser.screenshot(driver, args, "tools-done")
    a11y.audit(driver, "a reply with its calls opened")

    # The choice was saved with the new chat; after a reload it is still checked, and the calls still shown.
    driver.refresh()
    browser.wait_for(lambda: len(tool_calls(driver)) == 2, "the calls after a reload")
    driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
    browser.wait_for(lambda: choice(driver, "alpha.gate").is_selected(), "the chat's tools after a reload")
    assert not choice(driver, "alpha.echo").is_selected()


web_mcp_tools.args = args
browser.run(web_mcp_tools)
