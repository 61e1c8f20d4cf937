"""Signing in through OpenID providers in the web client, against fakes that consent at once: a
server with Google, `corp` ("Corp SSO") and `partner` (which refuses ada's domain), password
sign-in off and sign-up closed. The page shows a button per provider and no password form; a
button starts a sign-in that comes back with a one-time code, which the page redeems for the
session (no token ever in the URL); a refused sign-in says why; a link carrying a code for
someone else's sign-in is ignored.

    python3 BrowserTests/web_signin.py --base http://localhost:8000
"""
import json
import urllib.error
import urllib.parse
import urllib.request

from selenium.webdriver.common.by import By

import browser

args = browser.arguments()
BASE = args.base.rstrip("/")


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def attackers_code():
    """A whole Google sign-in done outside the browser, as an attacker would: its one-time code."""
    opener = urllib.request.build_opener(NoRedirects)
    cookies = {}  # kept by hand: the sign-in cookie is Secure, which urllib only sends over https

    def location(url):
        request = urllib.request.Request(url)
        if cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
        try:
            opener.open(request, timeout=10)
        except urllib.error.HTTPError as redirect:
            if redirect.code in (301, 302, 303):
                for header in redirect.headers.get_all("Set-Cookie") or []:
                    name, _, value = header.split(";", 1)[0].partition("=")
                    cookies[name] = value
                return redirect.headers["Location"]
            raise
        raise AssertionError(f"{url} did not redirect")

    at_google = location(BASE + "/auth/google/login/?next=/")
    callback = location(at_google)
    back = location(callback)
    fragment = urllib.parse.parse_qs(urllib.parse.urlsplit(back).fragment)
    assert "code" in fragment and "access" not in fragment, back
    return fragment["code"][0]


def exchange(code):
    request = urllib.request.Request(BASE + "/auth/google/exchange/", method="POST", data=json.dumps({"code": code}).encode())
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def provider_button(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f'a[data-provider="{name}"]')


def web_signin(driver):
    driver.get(BASE + "/")
    browser.wait_for(lambda: driver.find_element(By.ID, "google").is_displayed(), "the Google button")
    browser.wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "a[data-provider]")) == 2, "the OpenID providers' buttons")
    assert provider_button(driver, "corp").text == "Sign in with Corp SSO", provider_button(driver, "corp").text
    assert not driver.find_element(By.ID, "password-signin").is_displayed(), "PASSWORD_LOGIN=false: no password form"
    browser.screenshot(driver, args, "signin-providers")
    driver.find_element(By.ID, "google-link").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app after Google sign-in")
    assert driver.find_element(By.ID, "me").text == "ada@example.com", driver.find_element(By.ID, "me").text
    url = driver.current_url
    assert "code=" not in url and "signin=" not in url and "access" not in url, f"the URL was cleaned: {url}"
    history = driver.execute_script("return history.length")
    assert history >= 1
    assert driver.execute_script("return Object.keys(localStorage).length") == 0, "nothing kept in localStorage"
    browser.screenshot(driver, args, "google-signed-in")

    # Sign out, then follow a link that carries an attacker's code: the page must not redeem it.
    driver.find_element(By.ID, "sign-out").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "the sign-in form after signing out")
    code = attackers_code()
    driver.get(BASE + "/?signin=guessed#code=" + code)
    browser.wait_for(lambda: "did not start" in driver.find_element(By.ID, "auth-error").text, "the planted code refused")
    assert not driver.find_element(By.ID, "app-view").is_displayed(), "not signed in to the attacker's account"
    assert "code=" not in driver.current_url, driver.current_url
    assert exchange(code) == 200, "the page never spent the planted code"
    driver.get(BASE + "/#code=" + attackers_code())
    browser.wait_for(lambda: "did not start" in driver.find_element(By.ID, "auth-error").text, "a code with no sign-in of this tab refused")
    browser.screenshot(driver, args, "google-planted-code")

    # Another provider: the same journey, another account.
    driver.get(BASE + "/")
    browser.wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, 'a[data-provider="corp"]'), "the corp button")
    provider_button(driver, "corp").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "app-view").is_displayed(), "the app after the corp sign-in")
    assert driver.find_element(By.ID, "me").text == "grace@corp.example", driver.find_element(By.ID, "me").text
    assert "code=" not in driver.current_url, driver.current_url
    driver.find_element(By.ID, "sign-out").click()
    browser.wait_for(lambda: driver.find_element(By.ID, "auth-view").is_displayed(), "signed out of corp")

    # A provider that refuses ada's domain: back on the sign-in page, told why, not signed in.
    browser.wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, 'a[data-provider="partner"]'), "the partner button")
    provider_button(driver, "partner").click()
    browser.wait_for(lambda: "domain" in driver.find_element(By.ID, "auth-error").text, "the refusal explained")
    assert not driver.find_element(By.ID, "app-view").is_displayed()
    assert "error=" not in driver.current_url, driver.current_url
    browser.screenshot(driver, args, "signin-domain-refused")


web_signin.args = args
browser.run(web_signin)
