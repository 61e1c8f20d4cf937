"""Attachments in the web chat, in a real browser: a PNG dropped on the conversation (a synthetic
drag and drop of a File made in the page) is highlighted while dragged, previewed and uploaded at
once; a file the server refuses shows the server's reason and is not sent; a file removed from the
tray is deleted on the server; the question goes with the picture, shown as a thumbnail that loads
with the access token and opens full size in a dialog that Escape and its Close button close; a
text file picked with the file input goes as a download chip; after a reload the picture loads
again. Each state is audited with axe.

    python3 BrowserTests/web_attachments.py --base http://localhost:8000 --model claude-sonnet-5-5
"""
import base64
import os
import struct
import tempfile
import urllib.error
import urllib.request
import uuid
import zlib

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

import a11y
import browser

args = browser.arguments("--model")
BASE = args.base.rstrip("/")
EMAIL = f"attachments-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "correct horse battery"
# The text file's words reach the model as text (the Swift test looks for them in its request).
NOTES = "Attachment marker: kumquat-7391\nA second line.\n"


def png(width, height):
    """A small RGB PNG with a gradient, made here so that the test needs no file."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), 128))
                    for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PICTURE = png(48, 32)
# An executable-like file: random bytes with a NUL and bytes that are never UTF-8 — no type the server takes.
REFUSED = b"MZ\x90\x00\x03\x00\x00\x00\xff\xfe" + os.urandom(600) + b"\x00"

# Drops files on `selector` as a user's drag would: dragenter, dragover, then drop, with a
# DataTransfer holding Files built in the page. Answers whether the drop zone was highlighted
# while dragging, and whether it still is after the drop.
DROP = """
const [selector, files] = arguments;
const target = document.querySelector(selector);
const transfer = new DataTransfer();
for (const f of files) {
  const bytes = Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0));
  transfer.items.add(new File([bytes], f.name, { type: f.type }));
}
const fire = (type) => target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
const zone = document.getElementById('conversation');
fire('dragenter');
fire('dragover');
const highlighted = zone.classList.contains('drop-active');
const accepted = !fire('drop');
return { highlighted, accepted, after: zone.classList.contains('drop-active') };
"""

_token = None


def token():
    global _token
    if _token is None:
        _token = browser.api(BASE, "POST", "/auth/login/", body={"email": EMAIL, "password": PASSWORD})["access"]
    return _token


def api(method, path):
    return browser.api(BASE, method, path, token())


def file_status(file_id):
    """The status of GET /api/files/<id>/ for this user."""
    request = urllib.request.Request(f"{BASE}/api/files/{file_id}/", headers={"Authorization": "Bearer " + token()})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def drop(driver, selector, files):
    outcome = driver.execute_script(DROP, selector, [
        {"name": name, "type": kind, "base64": base64.b64encode(data).decode()} for name, kind, data in files])
    assert outcome["highlighted"], "the conversation is highlighted while files are dragged over it"
    assert outcome["accepted"] and not outcome["after"], f"the drop is taken and the highlight goes: {outcome}"


def chip(driver, name):
    """The tray's item for the file `name`, or None."""
    for item in driver.find_elements(By.CSS_SELECTOR, "#attachment-tray li.attachment"):
        if item.find_element(By.CSS_SELECTOR, ".attachment-name").get_attribute("textContent") == name:
            return item
    return None


def settled(driver, name, state):
    """The tray's item for `name` once its upload has ended; a failure if it ended otherwise than `state`."""
    item = chip(driver, name)
    if item is None or item.get_attribute("data-state") == "uploading":
        return None
    ended = item.get_attribute("data-state")
    assert ended == state, f"{name}: {ended} (status {item.get_attribute('data-status')}): {item.get_attribute('textContent')}"
    return item


def natural_width(driver, image):
    return driver.execute_script("return arguments[0].complete ? arguments[0].naturalWidth : 0", image)


def user_messages(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#messages li.message.user")


def shown_files(message):
    """The file ids a message shows, in order."""
    return [element.get_attribute("data-file-id") for element in message.find_elements(By.CSS_SELECTOR, ".attachments li > [data-file-id]")]


def thumbnail(driver):
    """The first question's picture, once it has loaded."""
    questions = user_messages(driver)
    images = questions[0].find_elements(By.CSS_SELECTOR, ".attachments .attachment-thumb img") if questions else []
    return images[0] if images and natural_width(driver, images[0]) > 0 else None


def viewer_open(driver):
    return driver.find_element(By.ID, "image-viewer").get_attribute("open") is not None


def web_attachments(driver):
    browser.sign_up(driver, BASE, EMAIL, PASSWORD)

    # A model that takes images.
    driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
    picker = browser.wait_for(lambda: driver.find_element(By.ID, "model") if driver.find_element(By.ID, "model").is_displayed() else None,
                              "the model picker")
    Select(picker).select_by_value(args.model)
    driver.find_element(By.CSS_SELECTOR, "#settings summary").click()

    # The composer offers a real button, and a file input for several files of the types the server takes.
    attach = driver.find_element(By.ID, "attach")
    assert attach.tag_name == "button" and attach.get_attribute("aria-label") == "Attach files", attach.get_attribute("outerHTML")
    picker_input = driver.find_element(By.ID, "file-input")
    assert picker_input.get_attribute("type") == "file" and picker_input.get_attribute("multiple") is not None
    assert "image/png" in picker_input.get_attribute("accept") and "application/pdf" in picker_input.get_attribute("accept")
    assert not driver.find_element(By.ID, "attachment-tray").is_displayed(), "no tray before any file"

    # A PNG dropped on the conversation: previewed from the local file at once, then uploaded.
    drop(driver, "#messages", [("pixels.png", "image/png", PICTURE)])
    picture = browser.wait_for(lambda: chip(driver, "pixels.png"), "the dropped picture in the tray")
    preview = picture.find_element(By.CSS_SELECTOR, "img.attachment-preview")
    assert preview.get_attribute("alt") == "pixels.png"
    browser.wait_for(lambda: natural_width(driver, preview) == 48, "the picture's preview")
    picture = browser.wait_for(lambda: settled(driver, "pixels.png", "ready"), "the picture's upload", timeout=30)
    picture_id = picture.get_attribute("data-file-id")
    assert picture_id, "an uploaded file carries its id"
    assert not picture.find_elements(By.TAG_NAME, "progress"), "no progress bar once uploaded"
    assert "B" in picture.find_element(By.CSS_SELECTOR, ".attachment-size").text

    # A file the server refuses: the server's reason shown on it; the picture can still be sent.
    drop(driver, "#input", [("setup.exe", "application/x-msdownload", REFUSED)])
    refused = browser.wait_for(lambda: settled(driver, "setup.exe", "error"), "the refused file's error", timeout=30)
    reason = refused.find_element(By.CSS_SELECTOR, ".attachment-error")
    assert reason.is_displayed() and reason.text.strip(), "the refusal is explained"
    assert refused.get_attribute("data-status") == "415", refused.get_attribute("data-status")
    assert not refused.get_attribute("data-file-id"), "a refused file has no id"
    assert driver.find_element(By.ID, "send").is_enabled(), "a refused file does not block sending"
    browser.screenshot(driver, args, "attachments-tray")
    a11y.audit(driver, "the composer with an uploaded picture and a refused file")

    # A file removed from the tray is deleted on the server.
    drop(driver, "#input", [("spare.png", "image/png", png(8, 8))])
    spare = browser.wait_for(lambda: settled(driver, "spare.png", "ready"), "the spare picture's upload", timeout=30)
    spare_id = spare.get_attribute("data-file-id")
    assert file_status(spare_id) == 200
    spare.find_element(By.CSS_SELECTOR, ".attachment-remove").click()
    browser.wait_for(lambda: chip(driver, "spare.png") is None, "the removed file to leave the tray")
    browser.wait_for(lambda: file_status(spare_id) == 404, "the removed file to be deleted on the server")

    # Sent with a question: the message shows the picture, loaded with the token; not the refused file.
    driver.find_element(By.ID, "input").send_keys("What is in this picture?")
    driver.find_element(By.ID, "send").click()
    image = browser.wait_for(lambda: thumbnail(driver), "the sent picture's thumbnail", timeout=30)
    assert image.get_attribute("alt") == "pixels.png", image.get_attribute("alt")
    assert natural_width(driver, image) == 48
    question = user_messages(driver)[0]
    assert shown_files(question) == [picture_id], shown_files(question)
    assert "What is in this picture?" in question.find_element(By.CSS_SELECTOR, ".body").text
    browser.wait_for(lambda: not driver.find_element(By.ID, "attachment-tray").is_displayed()
                     and not driver.find_elements(By.CSS_SELECTOR, "#attachment-tray li"), "the tray to empty after sending")
    browser.wait_for(lambda: browser.reply_status(driver) == "complete", "the reply", timeout=30)
    chat_id = driver.execute_script("return new URLSearchParams(location.search).get('chat')")
    stored = api("GET", f"/api/chat/{chat_id}/")["messages"][0]
    assert [f["id"] for f in stored["attachments"]] == [picture_id], stored["attachments"]
    assert stored["attachments"][0]["media_type"] == "image/png" and stored["attachments"][0]["name"] == "pixels.png"
    browser.screenshot(driver, args, "attachments-message")
    a11y.audit(driver, "a question with a picture")

    # Full size, in a dialog: Escape closes it and gives the focus back; so does its Close button.
    opener = question.find_element(By.CSS_SELECTOR, ".attachment-thumb")
    opener.click()
    browser.wait_for(lambda: viewer_open(driver), "the full-size view")
    full = driver.find_element(By.ID, "image-viewer-image")
    browser.wait_for(lambda: natural_width(driver, full) == 48, "the full-size picture")
    assert full.get_attribute("alt") == "pixels.png"
    assert driver.find_element(By.ID, "image-viewer-title").text == "pixels.png"
    browser.screenshot(driver, args, "attachments-full-size")
    a11y.audit(driver, "the full-size picture")
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    browser.wait_for(lambda: not viewer_open(driver), "Escape to close the full-size view")
    browser.wait_for(lambda: driver.switch_to.active_element == opener, "the focus back on the thumbnail")
    opener.click()
    browser.wait_for(lambda: viewer_open(driver), "the full-size view again")
    driver.find_element(By.ID, "image-viewer-close").click()
    browser.wait_for(lambda: not viewer_open(driver), "the Close button to close the full-size view")

    # A text file picked with the file input, sent in the same chat: shown as a file to download.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "notes.txt")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(NOTES)
        driver.find_element(By.ID, "file-input").send_keys(path)
        notes = browser.wait_for(lambda: settled(driver, "notes.txt", "ready"), "the text file's upload", timeout=30)
    assert notes.find_elements(By.CSS_SELECTOR, ".file-icon") and not notes.find_elements(By.TAG_NAME, "img")
    notes_id = notes.get_attribute("data-file-id")
    driver.find_element(By.ID, "input").send_keys("And these notes?" + Keys.ENTER)
    browser.wait_for(lambda: len(user_messages(driver)) == 2 and shown_files(user_messages(driver)[1]) == [notes_id], "the notes sent")
    download = user_messages(driver)[1].find_element(By.CSS_SELECTOR, ".attachment-file")
    assert "notes.txt" in download.text and download.tag_name == "button", download.get_attribute("outerHTML")
    assert "notes.txt" in download.get_attribute("aria-label")
    browser.wait_for(lambda: browser.reply_status(driver) == "complete" and len(browser.messages(driver)) == 4, "the second reply", timeout=30)
    a11y.audit(driver, "a question with a text file")

    # Reloaded: the stored picture is fetched again and shown.
    driver.refresh()
    browser.wait_for(lambda: len(browser.messages(driver)) == 4, "the conversation after a reload")
    browser.wait_for(lambda: thumbnail(driver), "the picture after a reload", timeout=30)
    assert shown_files(user_messages(driver)[0]) == [picture_id]


web_attachments.args = args
browser.run(web_attachments)
