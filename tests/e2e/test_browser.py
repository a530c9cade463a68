"""The console and the self-service page in a real browser: Debian's
chromium and chromedriver driven by python3-selenium, against the daemon
on loopback.

Checks what a person does: sign in, see a move made by the API, return to
base, edit a template with an error and see it marked at its line, import
a CSV (dry run, then for real); on /me/ sign in, see "currently
virtualized on", return to base.  Every view shows hostile names
(markup, script) as text: nothing they hold ever runs.  The session cookie
is not readable by the page's scripts.  Screenshots of each step are saved
under $HOTDESKD_ARTIFACTS (default build/artifacts/browser).
"""

import os
import shutil
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

import hdharness

ART = os.environ.get("HOTDESKD_ARTIFACTS",
                     os.path.join(hdharness.REPO, "build", "artifacts", "browser"))
# phones take short names (30 characters on some): hostile, yet short
HOSTILE = '<img src=x onerror=__xss=1>'
HOSTILE_ORG = '"\'><script>window.__xss=2</script><img src=x onerror="window.__xss=3">'
WAIT = 30


@pytest.fixture
def browser():
    assert shutil.which("chromium") and shutil.which("chromedriver"), \
        "chromium and chromium-driver are required (scripts/deps.sh test)"
    os.makedirs(ART, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    drv.set_page_load_timeout(WAIT)
    yield drv
    drv.quit()


def shot(drv, name):
    drv.save_screenshot(os.path.join(ART, name + ".png"))


def wait_for(drv, cond, what):
    try:
        return WebDriverWait(drv, WAIT, poll_frequency=0.1,
                             ignored_exceptions=[StaleElementReferenceException]).until(
            lambda _d: cond())
    except Exception:
        shot(drv, "failed-" + what.replace(" ", "-"))
        raise AssertionError("timed out waiting for: " + what)


def text(drv, css):
    els = drv.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else ""


def no_xss(drv):
    assert drv.execute_script("return window.__xss === undefined"), "a hostile name ran"
    assert drv.find_elements(By.CSS_SELECTOR, "main img, main script:not([src])") == [], \
        "markup from data reached the page"


def hostile_data(d):
    """An organization, extension, phone and template comment with hostile
    names (the API takes any printable text)."""
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/103", {"display_name": HOSTILE,
                                                             "label": "<b>x</b>"})
    d.admin_ok("PATCH", "/api/v1/orgs/acme", {"display_name": HOSTILE_ORG})


def test_console_in_chromium(acme, browser):
    d, demo = acme
    drv = browser
    hostile_data(d)
    base = "http://127.0.0.1:%d" % d.port
    drv.get(base + "/console/")
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "sign-in form")
    drv.find_element(By.NAME, "token").send_keys(d.admin_token)
    drv.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(drv, lambda: "acme/102" in [r.get_attribute("data-ext") for r in
             drv.find_elements(By.CSS_SELECTOR, "#where-table tbody tr")], "who-is-where")
    assert drv.execute_script("return document.cookie") == "", "the session cookie is HttpOnly"
    assert HOSTILE in drv.find_element(By.ID, "where-table").text
    no_xss(drv)
    shot(drv, "console-1-where")

    # a move made by the API shows on the page; Return to base undoes it
    d.star30("acme-101", digits="102", code=demo.code("102"), result="accepted")
    drv.find_element(By.ID, "where-refresh").click()
    row = '#where-table tr[data-ext="acme/102"]'
    wait_for(drv, lambda: "virtualized" in text(drv, row), "102 virtualized")
    assert hdharness.mac(101) in text(drv, row)
    shot(drv, "console-2-moved")
    drv.find_element(By.CSS_SELECTOR, row + " button").click()
    wait_for(drv, lambda: "home" in text(drv, row), "102 home again")
    assert hdharness.ext(d, "102")["status"] == "home"
    no_xss(drv)

    # devices: sync state and resync
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="devices"]').click()
    drow = '#dev-table tr[data-mac="%s"]' % hdharness.mac(103)
    wait_for(drv, lambda: text(drv, drow) != "", "device row")
    drv.find_element(By.CSS_SELECTOR, drow + " button").click()
    wait_for(drv, lambda: "queued" in text(drv, "#msg"), "resync queued")
    no_xss(drv)
    shot(drv, "console-3-devices")

    # a template with an error: the message and the marked line
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="templates"]').click()
    wait_for(drv, lambda: len(drv.find_elements(By.CSS_SELECTOR, "#tmpl-select option")) > 3,
             "template list")
    Select(drv.find_element(By.ID, "tmpl-select")).select_by_value("yealink/device.cfg")
    drv.find_element(By.ID, "tmpl-load").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "tmpl-text").get_attribute("value")
             .startswith("#!version"), "template text")
    area = drv.find_element(By.ID, "tmpl-text")
    content = area.get_attribute("value").split("\n")
    content.insert(1, "bad.key = {{ line.sip_usr }}")
    drv.execute_script("arguments[0].value = arguments[1]", area, "\n".join(content))
    drv.find_element(By.ID, "tmpl-dry").click()
    wait_for(drv, lambda: "line 2" in text(drv, "#tmpl-error"), "error at line 2")
    assert "sip_usr" in text(drv, "#tmpl-error")
    marked = drv.find_element(By.CSS_SELECTOR, "#tmpl-lines li.error-line")
    assert "line.sip_usr" in marked.text
    assert drv.execute_script(
        "return Array.from(arguments[0].parentNode.children).indexOf(arguments[0])",
        marked) == 1
    shot(drv, "console-4-template-error")
    # a valid change: dry run lists the Yealink phone, save, history, rollback
    content[1] = "# edited in the console"
    drv.execute_script("arguments[0].value = arguments[1]", area, "\n".join(content))
    drv.find_element(By.ID, "tmpl-dry").click()
    wait_for(drv, lambda: hdharness.mac(102) in text(drv, "#tmpl-result"), "dry run list")
    drv.find_element(By.ID, "tmpl-save").click()
    wait_for(drv, lambda: "Saved version" in text(drv, "#msg"), "saved")
    assert b"# edited in the console" in hdharness.device_files(d, hdharness.mac(102))[
        hdharness.mac(102) + ".cfg"]
    drv.find_element(By.ID, "tmpl-history").click()
    wait_for(drv, lambda: "History" in text(drv, "#tmpl-result"), "history")
    shot(drv, "console-5-history")

    # events with a filter
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="events"]').click()
    f = drv.find_element(By.ID, "ev-filter")
    f.find_element(By.NAME, "type").send_keys("template.put")
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(drv, lambda: "template.put" in text(drv, "#ev-table tbody"), "events")
    assert "virtualized" not in text(drv, "#ev-table tbody")
    no_xss(drv)
    shot(drv, "console-6-events")

    # CSV import: dry run, then for real
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="import"]').click()
    wait_for(drv, lambda: len(drv.find_elements(By.CSS_SELECTOR, "#imp-org option")) == 2,
             "organizations")
    Select(drv.find_element(By.ID, "imp-org")).select_by_value("acme")
    d.secrets.add("web-imported-pw")
    csv = ("extension,display_name,sip_user,sip_password\n"
           '700,"%s",acme-700,web-imported-pw\n' % HOSTILE.replace('"', '""'))
    drv.execute_script("arguments[0].value = arguments[1]", drv.find_element(By.ID, "imp-text"),
                       csv)
    drv.find_element(By.ID, "imp-dry").click()
    wait_for(drv, lambda: "Dry run of 1 row" in text(drv, "#imp-report"), "dry-run report")
    st, _ = d.admin("GET", "/api/v1/orgs/acme/extensions/700")
    assert st == 404
    drv.find_element(By.ID, "imp-go").click()
    wait_for(drv, lambda: "Imported 1 row" in text(drv, "#imp-report"), "import report")
    assert hdharness.ext(d, "700")["display_name"] == HOSTILE
    shot(drv, "console-7-import")
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="where"]').click()
    wait_for(drv, lambda: "acme/700" in [r.get_attribute("data-ext") for r in
             drv.find_elements(By.CSS_SELECTOR, "#where-table tbody tr")], "imported row")
    no_xss(drv)

    # sign out: the API no longer answers this browser
    drv.find_element(By.ID, "logout").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "signed out")
    drv.get(base + "/api/v1/orgs")
    assert "missing or invalid token" in drv.page_source


def test_me_in_chromium(acme, browser):
    d, demo = acme
    drv = browser
    hostile_data(d)
    d.secrets.add("carol-web-pass")
    d.admin_ok("PUT", "/api/v1/orgs/acme/extensions/103/web-password",
               {"password": "carol-web-pass"})
    base = "http://127.0.0.1:%d" % d.port
    drv.get(base + "/me/")
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "sign-in form")
    f = drv.find_element(By.ID, "login")
    f.find_element(By.NAME, "org").send_keys("acme")
    f.find_element(By.NAME, "extension").send_keys("103")
    f.find_element(By.NAME, "password").send_keys("wrong-password")
    f.find_element(By.CSS_SELECTOR, "button").click()
    wait_for(drv, lambda: "wrong" in text(drv, "#msg"), "refused")
    f.find_element(By.NAME, "password").send_keys("carol-web-pass")
    f.find_element(By.CSS_SELECTOR, "button").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "home").is_displayed(), "signed in")
    assert text(drv, "#status") == "home"
    assert HOSTILE in text(drv, "#who")
    assert drv.execute_script("return document.cookie") == ""
    no_xss(drv)
    shot(drv, "me-1-home")
    # moved by the PBX: the page shows the phone
    d.star30("acme-101", digits="103", code=demo.code("103"), result="accepted")
    drv.refresh()
    wait_for(drv, lambda: text(drv, "#status") == "virtualized", "virtualized")
    assert hdharness.mac(101) in text(drv, "#virtual-on") and "VVX_500" in text(drv, "#virtual-on")
    assert "virtualized" in text(drv, "#moves")
    shot(drv, "me-2-virtualized")
    drv.find_element(By.ID, "return").click()
    wait_for(drv, lambda: text(drv, "#status") == "home", "returned")
    assert hdharness.ext(d, "103")["status"] == "home"
    no_xss(drv)
    shot(drv, "me-3-returned")
