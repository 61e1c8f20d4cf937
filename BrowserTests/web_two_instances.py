"""Two instances on one PostgreSQL database, no affinity: the web chat is open on instance B while
the reply is started through instance A's API; the reply grows live in the browser, piece by piece,
and what B shows at the end is what A stored. Then the other way round: a message sent from the
browser on B is answered, and a stop asked of A ends it in the browser.

    python3 BrowserTests/web_two_instances.py --base http://localhost:8001 --other http://127.0.0.1:8000
"""
import time
import urllib.request
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import browser

args = browser.arguments("--other", optional=("--metrics",))
PAGE = args.base.rstrip("/")      # where the browser goes: instance B, or a load balancer
OTHER = args.other.rstrip("/")    # the instance whose API starts and stops replies (A)
# The instances whose /metrics count open streams (the page's own by default).
INSTANCES = [url.rstrip("/") for url in (args.metrics or PAGE).split(",")]
EMAIL = f"two-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "correct horse battery"


api, last_assistant, reply_text, reply_status = browser.api, browser.last_assistant, browser.reply_text, browser.reply_status


def streams_open(base):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("chat_streams_open "):
                return float(line.split()[1])
    return None


def two_instances(driver):
    session = api(OTHER, "POST", "/auth/register/", body={"email": EMAIL, "password": PASSWORD, "name": "Two Instances"})
    token = session["access"]
    chat = api(OTHER, "POST", "/api/chat/", token, {"title": "Across instances"})

    # Sign in on B and open the chat A created.
    driver.get(PAGE + "/")
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "the sign-in form on B")
    driver.find_element(By.ID, "auth-email").send_keys(EMAIL)
    driver.find_element(By.ID, "auth-password").send_keys(PASSWORD)
    driver.find_element(By.ID, "auth-submit").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app on B")
    driver.get(PAGE + "/?chat=" + chat["id"])
    browser.wait_for(lambda: driver.find_element(By.ID, "chat-title").text == "Across instances", "the chat on B")
    # B's stream is open (its metrics say so) before the reply starts on A: what follows is live.
    browser.wait_for(lambda: sum(streams_open(url) or 0 for url in INSTANCES) == 1, "the browser's stream to be open")
    print("the browser's stream is on", next(url for url in INSTANCES if streams_open(url)), "; replies start on", OTHER)

    # The page records each length the reply takes (however slow each WebDriver call is).
    browser.watch_reply_growth(driver)
    turn = api(OTHER, "POST", f"/api/chat/{chat['id']}/send/", token, {"content": "Started on A"})
    browser.wait_for(lambda: reply_status(driver) == "complete", "the reply to complete on B", timeout=30)
    lengths = [length for length in browser.reply_growth(driver) if length > 0]
    assert len(lengths) >= 4 and lengths == sorted(lengths), f"the reply did not grow live on B: {lengths}"
    stored = api(OTHER, "GET", f"/api/chat/{chat['id']}/", token)["messages"]
    assert [m["id"] for m in stored] == [turn["user_message"]["id"], turn["assistant_message"]["id"]]
    assert stored[-1]["status"] == "complete", stored[-1]
    assert reply_text(driver).split() == stored[-1]["content"].replace("**", "").replace("`", "").replace("- ", "").split(), \
        "B shows the text A stored"
    browser.screenshot(driver, args, "two-instances-live")

    # From the browser on B, a message; A is asked to stop its reply, and B shows it stopped.
    box = driver.find_element(By.ID, "input")
    box.send_keys("Started on B, stopped on A")
    box.send_keys(Keys.ENTER)
    browser.wait_for(lambda: reply_status(driver) == "streaming" and len(reply_text(driver)) > 10, "B's reply to start")
    stopped = api(OTHER, "POST", f"/api/chat/{chat['id']}/stop/", token)
    assert stopped["status"] == "cancelled", stopped
    browser.wait_for(lambda: reply_status(driver) == "cancelled", "the stop asked of A to reach B")
    partial = reply_text(driver)
    time.sleep(0.5)
    assert reply_text(driver) == partial, "the text stopped growing"
    stored = api(OTHER, "GET", f"/api/chat/{chat['id']}/", token)["messages"][-1]
    assert stored["status"] == "cancelled" and "part399" not in stored["content"], stored
    browser.screenshot(driver, args, "two-instances-stopped")


two_instances.args = args
browser.run(two_instances)
