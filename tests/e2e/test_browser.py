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
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

import hdharness

ART = os.environ.get("HOTDESKD_ARTIFACTS",
                     os.path.join(hdharness.REPO, "build", "artifacts", "browser"))
# phones take short names (30 characters on some): hostile, yet short
HOSTILE = '<img src=x onerror=__xss=1>'
HOSTILE_ORG = '"\'><script>window.__xss=2</script><img src=x onerror="window.__xss=3">'
WAIT = 30


def _chromium():
    """A headless chromium under chromedriver: (driver, its temporary directory)."""
    assert shutil.which("chromium") and shutil.which("chromedriver"), \
        "chromium and chromium-driver are required (scripts/deps.sh test)"
    os.makedirs(ART, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    # chromium's own temporary directories (its profile, its singleton
    # socket) go into one of the test's, removed after it: left in /tmp
    # they stayed there.  A short path: the socket's must fit sun_path.
    tmp = tempfile.mkdtemp(prefix="hd-chromium-")
    opts.add_argument("--user-data-dir=" + os.path.join(tmp, "profile"))
    env = dict(os.environ, TMPDIR=tmp)
    # Selenium gives chromedriver a port it found free by binding port 0
    # and closing it; another process can take it first, and chromedriver
    # then exits ("bind() failed: Address already in use"): started again,
    # on another port, as the harness starts its peers (hdharness.py)
    for attempt in range(5):
        try:
            drv = webdriver.Chrome(service=Service(shutil.which("chromedriver"), env=env),
                                   options=opts)
            break
        except WebDriverException as e:
            if "unexpectedly exited" in str(e) and attempt < 4:
                continue
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    drv.set_page_load_timeout(WAIT)
    return drv, tmp


def _blank(drv):
    """Leaves drv as a new browser is: no page, no cookie, no cache, no
    dialog open.  Every daemon of the suite is on 127.0.0.1, and cookies
    do not tell ports apart: a session cookie left by one test would be
    sent to the next test's daemon."""
    try:
        drv.switch_to.alert.dismiss()
    except Exception:
        pass
    drv.get("about:blank")
    drv.execute_cdp_cmd("Network.clearBrowserCookies", {})
    drv.execute_cdp_cmd("Network.clearBrowserCache", {})
    assert drv.execute_cdp_cmd("Network.getAllCookies", {})["cookies"] == [], \
        "cookies left after clearing them"
    assert len(drv.window_handles) == 1, "a test left a window open"


@pytest.fixture(scope="module")
def _shared_chromium():
    """One chromium for the tests of a file (starting one costs about
    5 s of CPU); `browser` hands it to each test as if new."""
    drv, tmp = _chromium()
    try:
        yield drv
    finally:
        try:
            drv.quit()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def browser(_shared_chromium):
    drv = _shared_chromium
    _blank(drv)
    yield drv
    # what the test left (its session cookie, an alert) goes now, and a
    # browser that cannot be cleared fails this test, not the next one
    _blank(drv)


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
    """The text of the first element matching css ("" if none); a view
    re-rendered while it is read (a search typed key by key) is read again."""
    for _ in range(50):
        try:
            els = drv.find_elements(By.CSS_SELECTOR, css)
            return els[0].text if els else ""
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError("%s kept changing" % css)


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
    # opening the tab loaded every event: wait for the filtered answer (a
    # console that let the first answer, arriving last, stand would time out)
    wait_for(drv, lambda: set(ev_types(drv)) == {"template.put"}, "only template.put events")
    assert "virtualized" not in text(drv, "#ev-table tbody")
    no_xss(drv)
    shot(drv, "console-6-events")

    # CSV import: dry run, then for real
    open_import(drv)
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


def ev_types(drv):
    """The type column of each row of the events table."""
    return [r.find_elements(By.CSS_SELECTOR, "td")[2].text for r in
            drv.find_elements(By.CSS_SELECTOR, "#ev-table tbody tr")]


def open_import(drv):
    """The console's CSV import view, for organization acme."""
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="import"]').click()
    wait_for(drv, lambda: len(drv.find_elements(By.CSS_SELECTOR, "#imp-org option")) == 2,
             "organizations")
    Select(drv.find_element(By.ID, "imp-org")).select_by_value("acme")


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


def console_sign_in(drv, d, token):
    drv.get("http://127.0.0.1:%d/console/" % d.port)
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "sign-in form")
    assert not drv.find_element(By.ID, "tabs").is_displayed(), "views offered while signed out"
    drv.find_element(By.NAME, "token").send_keys(token)
    drv.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "tabs").is_displayed(), "signed in")


def field_error(drv, css):
    """The text of the .field-error next to (in the same cell or label as) css."""
    el = drv.find_element(By.CSS_SELECTOR, css)
    return drv.execute_script(
        "const c = arguments[0].closest('label, tr');"
        "return Array.from(c.querySelectorAll('.field-error')).map(e => e.textContent).join('');",
        el)


def invalid(drv, css):
    return drv.find_element(By.CSS_SELECTOR, css).get_attribute("aria-invalid") == "true"


def test_console_user_settings_in_chromium(acme, browser):
    """A phone's user settings (those of the extension it carries) are shown
    and edited from the device view; each refusal is shown at its field and
    changes nothing; a saved change reaches the phone's file; hostile key
    labels stay text."""
    d, demo = acme
    drv = browser
    hostile_data(d)
    m = hdharness.mac(102)
    path = "/api/v1/orgs/acme/extensions/102"
    d.admin_ok("PATCH", path, {"voicemail": "*9102", "keys": [
        {"type": "blf", "value": "7102", "label": HOSTILE}]})
    console_sign_in(drv, d, d.admin_token)
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="devices"]').click()
    drow = '#dev-table tr[data-mac="%s"]' % m
    wait_for(drv, lambda: "Settings" in text(drv, drow), "device row with Settings")
    drv.find_element(By.XPATH, '//tr[@data-mac="%s"]//button[.="Settings"]' % m).click()
    form = drv.find_element(By.ID, "settings")
    wait_for(drv, form.is_displayed, "settings form")
    assert "acme/102" in text(drv, "#set-title") and "carries extension 102" in text(drv, "#set-note")
    vm = form.find_element(By.NAME, "voicemail")
    assert vm.get_attribute("value") == "*9102"
    rows = lambda: drv.find_elements(By.CSS_SELECTOR, "#set-keys tbody tr")  # noqa: E731
    assert len(rows()) == 1
    assert rows()[0].find_element(By.NAME, "label").get_attribute("value") == HOSTILE
    no_xss(drv)
    shot(drv, "settings-1-open")
    before = hdharness.device_files(d, m)

    # a bad voicemail number: the error is at the voicemail field
    vm.clear()
    vm.send_keys("12a")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(drv, lambda: invalid(drv, '#settings [name="voicemail"]'), "voicemail marked")
    assert "voicemail" in field_error(drv, '#settings [name="voicemail"]')
    assert not invalid(drv, '#settings [name="language"]')
    shot(drv, "settings-2-voicemail-error")
    vm.clear()
    vm.send_keys("*97")
    # a second key whose number is not dialable: marked on that key's row
    drv.find_element(By.ID, "set-add-key").click()
    k2 = rows()[1]
    Select(k2.find_element(By.NAME, "type")).select_by_value("speed_dial")
    k2.find_element(By.NAME, "value").send_keys("12;3")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(drv, lambda: invalid(drv, "#set-keys tbody tr:nth-child(2) [name=value]"),
             "key 2 marked")
    assert not invalid(drv, "#set-keys tbody tr:nth-child(1) [name=value]")
    assert not invalid(drv, '#settings [name="voicemail"]'), "the old mark is cleared"
    assert "keys" in text(drv, "#set-keys tbody tr:nth-child(2)")
    # a label too long for some phones (refused by the render check)
    k2.find_element(By.NAME, "value").clear()
    k2.find_element(By.NAME, "value").send_keys("7203")
    k2.find_element(By.NAME, "label").send_keys("L" * 31)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(drv, lambda: invalid(drv, "#set-keys tbody tr:nth-child(2) [name=label]"),
             "label of key 2 marked")
    assert not invalid(drv, "#set-keys tbody tr:nth-child(2) [name=value]")
    assert "keys.label" in field_error(drv, "#set-keys tbody tr:nth-child(2) [name=label]")
    shot(drv, "settings-3-key-error")
    # nothing of the refused attempts was stored or published
    ext = hdharness.ext(d, "102")
    assert ext["voicemail"] == "*9102" and len(ext["keys"]) == 1
    assert hdharness.device_files(d, m) == before

    # a good change: stored, and the phone's file follows
    k2.find_element(By.NAME, "label").clear()
    k2.find_element(By.NAME, "label").send_keys("Desk 7203")
    Select(form.find_element(By.NAME, "language")).select_by_value("fr_FR")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # the refusal before said "Not saved: ...": wait for the success text
    wait_for(drv, lambda: "saved: the phones" in text(drv, "#msg"), "settings saved")
    ext = hdharness.ext(d, "102")
    assert ext["voicemail"] == "*97" and ext["language"] == "fr_FR"
    assert ext["keys"] == [{"type": "blf", "value": "7102", "label": HOSTILE},
                           {"type": "speed_dial", "value": "7203", "label": "Desk 7203"}]
    body = hdharness.device_files(d, m)[m + ".cfg"].decode()
    assert "voice_mail.number.1 = *97\n" in body
    assert "linekey.3.type = 13\nlinekey.3.line = 1\nlinekey.3.value = 7203\n" in body
    assert [e for e in hdharness.events(d, type="extension.put") if e.get("extension") == "102"]
    no_xss(drv)
    shot(drv, "settings-4-saved")

    # removing every key and the voicemail clears them
    for b in drv.find_elements(By.XPATH, '//table[@id="set-keys"]//button[.="Remove"]'):
        b.click()
    vm.clear()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(drv, lambda: hdharness.ext(d, "102").get("keys") in ([], None), "keys cleared")
    assert hdharness.ext(d, "102").get("voicemail") is None

    # the same editor from who-is-where, for a hostile display name
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="where"]').click()
    wait_for(drv, lambda: not form.is_displayed(), "editor closed with the view")
    r103 = '//tr[@data-ext="acme/103"]//button[.="Settings"]'
    # (the view may render again under the click: click until the editor opens)
    wait_for(drv, lambda: drv.find_element(By.XPATH, r103).click() or
             HOSTILE in text(drv, "#set-title"), "title with the hostile name")
    no_xss(drv)


def test_console_csrf_fixation_revocation_in_chromium(acme, browser, tmp_path):
    """In the browser: a cookie planted before sign-in is replaced; a page of
    another origin (same site: 127.0.0.1, another port) can neither change
    anything with the signed-in cookie nor read an answer; a session whose
    token is revoked is signed out at its next request."""
    import http.server
    import threading
    d, demo = acme
    drv = browser
    base = "http://127.0.0.1:%d" % d.port
    drv.get(base + "/console/")
    planted = "P" * 43
    drv.add_cookie({"name": "hd_console", "value": planted, "path": "/"})
    console_sign_in(drv, d, d.admin_token)
    c = drv.get_cookie("hd_console")
    assert c["value"] != planted and c["httpOnly"] and c.get("sameSite") == "Strict", c

    d.star30("acme-101", digits="102", code=demo.code("102"), result="accepted")
    assert hdharness.ext(d, "102")["status"] == "virtualized"
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "form.html").write_text(
        '<form method="POST" enctype="text/plain" action="%s/api/v1/orgs/acme/extensions/102/'
        'return"><input name=\'{"a":"\' value=\'"}\'></form>'
        '<script>document.forms[0].submit()</script>' % base)
    (tmp_path / "evil" / "read.html").write_text(
        "<script>window.result = 'pending';"
        "fetch('%s/api/v1/orgs', {credentials: 'include'}).then(r => r.text())"
        ".then(t => { window.result = 'read: ' + t; }, e => { window.result = 'blocked'; });"
        "fetch('%s/api/v1/orgs/acme/extensions/102/return', {method: 'POST',"
        " credentials: 'include', mode: 'no-cors', body: '{}'});</script>" % (base, base))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path / "evil"), **k)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        evil = "http://127.0.0.1:%d" % srv.server_address[1]
        drv.get(evil + "/form.html")
        wait_for(drv, lambda: drv.current_url.startswith(base), "form posted")
        assert "missing CSRF token or cross-origin request" in drv.page_source, drv.page_source
        assert hdharness.ext(d, "102")["status"] == "virtualized", "a forged form changed state"
        drv.get(evil + "/read.html")
        wait_for(drv, lambda: drv.execute_script("return window.result") != "pending",
                 "cross-origin read")
        assert drv.execute_script("return window.result") == "blocked"
        time.sleep(0.5)
        assert hdharness.ext(d, "102")["status"] == "virtualized", "a forged fetch changed state"
    finally:
        srv.shutdown()
        srv.server_close()
    shot(drv, "security-1-forged-request")

    # the console itself still works with the same session
    drv.get(base + "/console/#where")
    row = '#where-table tr[data-ext="acme/102"]'
    wait_for(drv, lambda: "virtualized" in text(drv, row), "still signed in")
    drv.find_element(By.CSS_SELECTOR, row + " button").click()
    wait_for(drv, lambda: "home" in text(drv, row), "returned from the console")

    # a session opened with a token that is then revoked is signed out
    js = d.admin_ok("POST", "/api/v1/tokens", {"role": "admin", "name": "temporary"})
    d.secrets.add(js["token"])
    drv.find_element(By.ID, "logout").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "signed out")
    console_sign_in(drv, d, js["token"])
    wait_for(drv, lambda: text(drv, row) != "", "who-is-where")
    d.admin_ok("DELETE", "/api/v1/tokens/%d" % js["id"])
    drv.find_element(By.ID, "where-refresh").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "signed out")
    assert not drv.find_element(By.ID, "tabs").is_displayed()
    shot(drv, "security-2-revoked")

