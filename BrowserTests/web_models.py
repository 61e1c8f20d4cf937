"""Models from several providers in the web chat, in a real browser: the picker groups them by
provider and shows a provider that does not answer as such (its models not selectable); a chat on
an OpenAI-compatible model streams its reasoning live, collapsed above the answer, kept apart from
it, and still there after a reload. Each state is audited with axe. The server's providers are the
emulator (Anthropic's API and OpenAI's) and one at a closed port.

    python3 BrowserTests/web_models.py --base http://localhost:8000 --model openai/gpt-emu --dead dead/m1
"""
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

import a11y
import browser

args = browser.arguments("--model", "--dead")
BASE = args.base.rstrip("/")
EMAIL = f"models-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "correct horse battery"


def reasoning_of(driver):
    reply = browser.last_assistant(driver)
    return reply.find_element(By.CSS_SELECTOR, "details.reasoning") if reply else None


def web_models(driver):
    browser.sign_up(driver, BASE, EMAIL, PASSWORD)

    # The picker: a group per provider; the dead provider's model shown, not selectable.
    driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
    picker = browser.wait_for(lambda: driver.find_element(By.ID, "model") if driver.find_element(By.ID, "model").is_displayed() else None,
                              "the model picker")
    groups = [group.get_attribute("label") for group in picker.find_elements(By.TAG_NAME, "optgroup")]
    assert groups == ["anthropic", "openai", "dead"], groups
    dead = picker.find_element(By.CSS_SELECTOR, f'option[value="{args.dead}"]')
    assert dead.get_attribute("disabled") is not None, "a provider that does not answer cannot be chosen"
    assert "not answering" in dead.text, dead.text
    default = Select(picker).first_selected_option
    assert "(default)" in default.text, default.text
    a11y.audit(driver, "the model picker")
    Select(picker).select_by_value(args.model)

    # The reply: reasoning first, live and collapsed; then the answer, apart.
    driver.find_element(By.ID, "input").send_keys("Why is the sky blue?" + Keys.ENTER)
    thinking = browser.wait_for(lambda: reasoning_of(driver) if reasoning_of(driver).is_displayed() else None, "the reasoning")
    browser.wait_for(lambda: thinking.find_element(By.TAG_NAME, "summary").text == "Thinking…", "the live reasoning's label")
    assert thinking.get_attribute("open") is None, "reasoning starts collapsed"
    browser.screenshot(driver, args, "models-thinking")
    a11y.audit(driver, "a reply while it reasons")
    browser.wait_for(lambda: browser.reply_status(driver) == "complete", "the reply", timeout=30)
    answer = browser.reply_text(driver)
    assert answer.startswith("Rayleigh scattering"), answer
    assert "scatter more" not in answer, "no reasoning in the answer: " + answer
    reply = browser.last_assistant(driver)
    assert args.model in reply.find_element(By.CSS_SELECTOR, ".role").text
    details = reasoning_of(driver)
    assert details.find_element(By.TAG_NAME, "summary").text == "Reasoning"
    assert details.get_attribute("open") is None, "still collapsed once the answer came"
    details.find_element(By.TAG_NAME, "summary").click()
    thoughts = details.find_element(By.CSS_SELECTOR, ".thoughts")
    browser.wait_for(lambda: thoughts.is_displayed(), "the reasoning opened")
    assert "Short wavelengths scatter more" in thoughts.text, thoughts.text
    browser.screenshot(driver, args, "models-reasoning-open")
    a11y.audit(driver, "a reply with its reasoning open")

    # Reloaded: the stored message keeps both, apart.
    driver.refresh()
    browser.wait_for(lambda: browser.reply_status(driver) == "complete" and browser.reply_text(driver) == answer, "the reply after a reload")
    browser.wait_for(lambda: reasoning_of(driver).is_displayed(), "the stored reasoning")
    assert Select(driver.find_element(By.ID, "model")).first_selected_option.get_attribute("value") == args.model


web_models.args = args
browser.run(web_models)
