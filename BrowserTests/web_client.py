"""The web client at / in a real browser, against a server whose model is the Anthropic emulator
(each reply a few dozen pieces some tens of milliseconds apart, with Markdown in it):
sign up, chat with the reply streaming in, stop a reply, reload mid-reply and see it resume,
rename and delete a chat, hostile text shown as text, and the Markdown renderer fed hostile input.

    python3 BrowserTests/web_client.py --base http://localhost:8000
"""
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import browser
from dropproxy import DropProxy

args = browser.arguments()
BASE = args.base.rstrip("/")
# The browser reaches the server through a proxy that can cut its connections (a network drop).
_server = urllib.parse.urlsplit(BASE)
PROXY = DropProxy(_server.hostname, _server.port)
PAGE = f"{_server.scheme}://localhost:{PROXY.port}"
EMAIL = f"browser-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "correct horse battery"


def api(method, path, token=None, body=None):
    return browser.api(BASE, method, path, token, body)


messages, last_assistant, reply_text, reply_status = browser.messages, browser.last_assistant, browser.reply_text, browser.reply_status


def token():
    return api("POST", "/auth/login/", body={"email": EMAIL, "password": PASSWORD})["access"]


def current_chat_id(driver):
    return driver.execute_script("return new URLSearchParams(location.search).get('chat')")


def send(driver, text):
    box = driver.find_element(By.ID, "input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def web_client(driver):
    driver.get(PAGE + "/")
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "the sign-in form")
    browser.screenshot(driver, args, "client-sign-in")

    # Sign up.
    driver.find_element(By.ID, "auth-switch").click()
    driver.find_element(By.ID, "auth-email").send_keys(EMAIL)
    driver.find_element(By.ID, "auth-name").send_keys("Browser Test")
    driver.find_element(By.ID, "auth-password").send_keys(PASSWORD)
    driver.find_element(By.ID, "auth-submit").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app after sign-up")
    assert EMAIL in driver.find_element(By.ID, "me").text
    assert driver.execute_script("return Object.keys(localStorage).length") == 0, "nothing kept in localStorage"

    # A chat: the reply streams in, growing (as the page itself records it, however slow the
    # machine makes each WebDriver call), then matches what the server stored.
    browser.watch_reply_growth(driver)
    send(driver, "Tell me something")
    browser.wait_for(lambda: current_chat_id(driver), "the new chat")
    browser.wait_for(lambda: reply_status(driver) == "complete", "the reply to complete", timeout=30)
    lengths = [length for length in browser.reply_growth(driver) if length > 0]
    assert len(lengths) >= 4 and lengths == sorted(lengths), f"the reply did not grow piece by piece: {lengths}"
    browser.screenshot(driver, args, "client-conversation")
    chat_id = current_chat_id(driver)
    stored = api("GET", f"/api/chat/{chat_id}/", token())["messages"][-1]
    assert stored["status"] == "complete"
    shown = last_assistant(driver)
    assert shown.find_elements(By.CSS_SELECTOR, ".body strong"), "Markdown bold is rendered"
    assert shown.find_elements(By.CSS_SELECTOR, ".body li"), "Markdown lists are rendered"
    assert shown.find_elements(By.CSS_SELECTOR, ".body code"), "Markdown code is rendered"
    for word in ("word0", "word29"):
        assert word in stored["content"] and word in reply_text(driver), f"{word} shown and stored"
    # A chat started without a title is named after its first reply (the model's few words), live.
    browser.wait_for(lambda: driver.find_element(By.ID, "chat-title").text == "Emulated title", "the generated title")
    browser.wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#chat-list a[aria-current=page]").text == "Emulated title",
                     "the generated title in the chat list")

    # Stop a reply mid-way: it keeps its partial text, marked stopped.
    send(driver, "Another one, please")
    browser.wait_for(lambda: reply_status(driver) == "streaming" and len(reply_text(driver)) > 10, "the second reply to start")
    driver.find_element(By.ID, "stop").click()
    browser.wait_for(lambda: reply_status(driver) == "cancelled", "the reply to stop")
    partial = reply_text(driver)
    time.sleep(0.5)
    assert reply_text(driver) == partial, "the text stopped growing"
    assert "Stopped." in last_assistant(driver).text
    stored = api("GET", f"/api/chat/{chat_id}/", token())["messages"][-1]
    assert stored["status"] == "cancelled" and "part399" not in stored["content"], stored
    browser.screenshot(driver, args, "client-stopped")

    # Reload in the middle of a reply: the page comes back to the chat and the reply goes on.
    send(driver, "And a third")
    browser.wait_for(lambda: reply_status(driver) == "streaming" and len(reply_text(driver)) > 10, "the third reply to start")
    before = len(reply_text(driver))
    driver.refresh()
    browser.wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app after reload")
    browser.wait_for(lambda: current_chat_id(driver) == chat_id and len(messages(driver)) == 6, "the conversation after reload")
    browser.wait_for(lambda: len(reply_text(driver)) >= before, "the reply's text so far after reload")
    browser.wait_for(lambda: reply_status(driver) == "complete", "the reply to finish after reload", timeout=20)
    stored = api("GET", f"/api/chat/{chat_id}/", token())["messages"][-1]
    assert "word29" in stored["content"] and "word29" in reply_text(driver)

    # A network drop mid-reply: the stream reconnects with Last-Event-ID and misses nothing, twice nothing.
    send(driver, "And a fourth")
    browser.wait_for(lambda: reply_status(driver) == "streaming" and len(reply_text(driver)) > 10, "the fourth reply to start")
    PROXY.drop(refuse=True)
    browser.wait_for(lambda: driver.find_element(By.ID, "connection").is_displayed(), "the reconnecting notice")
    browser.screenshot(driver, args, "client-reconnecting")
    time.sleep(0.7)
    PROXY.restore()
    browser.wait_for(lambda: reply_status(driver) == "complete", "the reply to finish after the drop", timeout=30)
    browser.wait_for(lambda: not driver.find_element(By.ID, "connection").is_displayed(), "the notice to go")
    stored = api("GET", f"/api/chat/{chat_id}/", token())["messages"][-1]
    shown = reply_text(driver)
    assert shown.count("word29") == 1 and shown.count("word0 ") == 1, f"pieces missed or repeated: {shown!r}"
    assert " ".join(shown.split()).endswith(" ".join(stored["content"].split()[-5:])), (shown, stored["content"])

    # Hostile text is shown as text.
    hostile = '<img src=x onerror="window.hacked=1"><script>window.hacked=2</script> [click](javascript:window.hacked=3)'
    driver.find_element(By.ID, "new-chat").click()
    send(driver, hostile)
    browser.wait_for(lambda: reply_status(driver) == "complete", "the reply to the hostile message")
    question = driver.find_element(By.CSS_SELECTOR, "#messages li.message.user .body")
    assert question.text == hostile, f"the message is shown as typed: {question.text!r}"
    assert not driver.find_elements(By.CSS_SELECTOR, "#messages img, #messages script")
    hrefs = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#messages a")]
    assert all(h.startswith(("http:", "https:", "mailto:")) for h in hrefs), hrefs
    assert driver.execute_script("return window.hacked") is None

    # The renderer itself, fed hostile Markdown.
    report = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/app/markdown.js').then(({ renderMarkdown }) => {
          const box = document.createElement('div');
          box.appendChild(renderMarkdown([
            '<img src=x onerror=window.hacked=4>', '[a](javascript:window.hacked=5)', '[b](data:text/html,<b>x</b>)',
            '**<i>bold</i>**', '`<b>code</b>`', '```', '<script>window.hacked=6</script>', '```',
            '[ok](https://example.com/x?a=<b>)', '- <svg onload=window.hacked=7>',
          ].join('\\n')));
          done({ elements: [...box.querySelectorAll('*')].map(e => e.tagName),
                 links: [...box.querySelectorAll('a')].map(a => a.getAttribute('href')), text: box.textContent });
        }).catch(e => done({ error: String(e) }));
    """)
    assert "error" not in report, report
    assert set(report["elements"]) <= {"P", "BR", "STRONG", "EM", "CODE", "PRE", "A", "UL", "LI"}, report["elements"]
    assert report["links"] == ["https://example.com/x?a=%3Cb%3E"], report["links"]
    assert "<script>window.hacked=6</script>" in report["text"] and "<i>bold</i>" in report["text"]
    assert driver.execute_script("return window.hacked") is None

    # Rename and delete from the chat list.
    # (The list is redrawn when it changes: a link found just before may be replaced; find it again.)
    browser.wait_for(lambda: driver.find_element(By.CSS_SELECTOR, f'#chat-list a[data-chat-id="{chat_id}"]').click() or True,
                     "the first chat's link clicked")
    browser.wait_for(lambda: current_chat_id(driver) == chat_id and len(messages(driver)) == 8, "the first chat again")
    driver.find_element(By.ID, "rename").click()
    title = driver.find_element(By.ID, "rename-input")
    title.clear()
    title.send_keys("Renamed in the browser" + Keys.ENTER)
    browser.wait_for(lambda: driver.find_element(By.ID, "chat-title").text == "Renamed in the browser", "the new title")
    browser.wait_for(lambda: driver.find_elements(By.LINK_TEXT, "Renamed in the browser"), "the new title in the list")
    assert api("GET", f"/api/chat/{chat_id}/", token())["title"] == "Renamed in the browser"
    browser.screenshot(driver, args, "client-renamed")
    driver.find_element(By.ID, "delete").click()
    driver.find_element(By.ID, "delete-yes").click()
    browser.wait_for(lambda: not driver.find_elements(By.LINK_TEXT, "Renamed in the browser"), "the chat gone from the list")
    assert driver.find_element(By.ID, "chat-title").text == "New chat"
    try:
        api("GET", f"/api/chat/{chat_id}/", token())
        raise AssertionError("the chat still exists")
    except urllib.error.HTTPError as error:
        assert error.code == 404

    # A phone-sized window, and the dark theme.
    driver.set_window_size(390, 844)
    browser.screenshot(driver, args, "client-phone")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    driver.set_window_size(1280, 900)
    browser.screenshot(driver, args, "client-dark")

    # Sign out: back to the form, the refresh token forgotten.
    driver.find_element(By.ID, "sign-out").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "the sign-in form after sign-out")
    assert driver.execute_script("return sessionStorage.length") == 0


web_client.args = args
browser.run(web_client)
