"""The administrators' console in a real browser (chromium, as in
test_browser.py): API tokens, devices, templates and events.  A file of
its own so that, with --dist loadfile, these run beside the other
browser tests rather than after them.
"""

import time

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

import hdharness
from test_browser import (HOSTILE, WAIT, _shared_chromium, browser,  # noqa: F401 (fixtures)
                          console_sign_in, ev_types, hostile_data, no_xss, open_import, shot,
                          text, wait_for)


def page_fetch(drv, method, path):
    """(status) of a fetch the signed-in page makes itself (cookie + CSRF as
    the console does)."""
    return drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[1], {method: arguments[0], credentials: 'same-origin'})"
        ".then(r => done(r.status), e => done(String(e)));", method, path)


def test_console_tokens_in_chromium(acme, browser):
    """Admins list, create (secret shown once), rotate and revoke tokens from
    the console; an organization token's console sees only its organization
    and no tokens."""
    d, demo = acme
    drv = browser
    console_sign_in(drv, d, d.admin_token)
    tab = drv.find_element(By.ID, "tab-tokens")
    assert tab.is_displayed()
    tab.click()
    wait_for(drv, lambda: "configuration file" in text(drv, "#tok-table tbody"), "token list")
    assert d.admin_token not in drv.page_source
    wait_for(drv, lambda: len(drv.find_elements(By.CSS_SELECTOR,
                                                "#tok-new select[name=org] option")) == 2,
             "organizations")
    f = drv.find_element(By.ID, "tok-new")
    Select(f.find_element(By.NAME, "role")).select_by_value("org")
    Select(f.find_element(By.NAME, "org")).select_by_value("globex")
    f.find_element(By.NAME, "name").send_keys(HOSTILE)
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "tok-secret").is_displayed(), "secret shown")
    secret = drv.find_element(By.ID, "tok-secret-value").get_attribute("value")
    d.secrets.add(secret)
    tid = text(drv, "#tok-secret-id")
    row = '#tok-table tr[data-token="%s"]' % tid
    wait_for(drv, lambda: HOSTILE in text(drv, row), "new token listed")
    assert "globex" in text(drv, row) and "org" in text(drv, row)
    no_xss(drv)
    shot(drv, "tokens-1-created")
    st, js = d.admin("GET", "/api/v1/orgs", token=secret)
    assert st == 200 and [o["name"] for o in js["orgs"]] == ["globex"]
    # shown once: gone after Done, and not in the page after a reload
    drv.find_element(By.ID, "tok-secret-done").click()
    assert not drv.find_element(By.ID, "tok-secret").is_displayed()
    assert secret not in drv.page_source
    assert drv.find_element(By.ID, "tok-secret-value").get_attribute("value") == ""
    drv.refresh()
    wait_for(drv, lambda: text(drv, row) != "", "list after reload")
    assert secret not in drv.page_source

    # the organization token's console: its organization only, no tokens
    drv.find_element(By.ID, "logout").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "signed out")
    console_sign_in(drv, d, secret)
    assert text(drv, "#who") == "organization globex"
    assert not drv.find_element(By.ID, "tab-tokens").is_displayed()
    wait_for(drv, lambda: drv.find_elements(By.CSS_SELECTOR, "#where-table tbody tr"),
             "globex extensions")
    exts = [r.get_attribute("data-ext") for r in
            drv.find_elements(By.CSS_SELECTOR, "#where-table tbody tr")]
    assert sorted(exts) == ["globex/101", "globex/201"], exts
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="devices"]').click()
    wait_for(drv, lambda: drv.find_elements(By.CSS_SELECTOR, "#dev-table tbody tr"), "devices")
    macs = [r.get_attribute("data-mac") for r in
            drv.find_elements(By.CSS_SELECTOR, "#dev-table tbody tr")]
    assert macs == [hdharness.GLOBEX_MAC], macs
    drv.get("http://127.0.0.1:%d/console/#tokens" % d.port)
    wait_for(drv, lambda: drv.find_element(By.ID, "msg").get_attribute("class") == "error",
             "tokens refused")
    assert drv.find_element(By.ID, "view-tokens").is_displayed()
    assert drv.find_elements(By.CSS_SELECTOR, "#tok-table tbody tr") == []
    assert page_fetch(drv, "GET", "/api/v1/tokens") == 403
    assert page_fetch(drv, "GET", "/api/v1/orgs/acme/extensions") == 404
    assert page_fetch(drv, "GET", "/api/v1/devices/" + hdharness.mac(101)) == 404
    shot(drv, "tokens-2-org-console")

    # back as admin: rotate (new secret once, old one dead), then revoke
    drv.find_element(By.ID, "logout").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "signed out")
    console_sign_in(drv, d, d.admin_token)
    drv.find_element(By.ID, "tab-tokens").click()
    wait_for(drv, lambda: text(drv, row) != "", "token row")
    drv.find_element(By.XPATH, '//tr[@data-token="%s"]//button[.="Rotate"]' % tid).click()
    wait_for(drv, lambda: drv.find_element(By.ID, "tok-secret").is_displayed(), "new secret")
    secret2 = drv.find_element(By.ID, "tok-secret-value").get_attribute("value")
    d.secrets.add(secret2)
    assert secret2 and secret2 != secret and text(drv, "#tok-secret-id") == tid
    assert d.admin("GET", "/api/v1/orgs", token=secret)[0] == 401
    assert d.admin("GET", "/api/v1/orgs", token=secret2)[0] == 200
    wait_for(drv, lambda: "never" not in text(drv, row), "rotated time shown")
    shot(drv, "tokens-3-rotated")
    # revoking asks first: dismissing keeps it
    drv.find_element(By.XPATH, '//tr[@data-token="%s"]//button[.="Revoke"]' % tid).click()
    WebDriverWait(drv, WAIT).until(lambda _d: _d.switch_to.alert).dismiss()
    assert d.admin("GET", "/api/v1/orgs", token=secret2)[0] == 200
    drv.find_element(By.XPATH, '//tr[@data-token="%s"]//button[.="Revoke"]' % tid).click()
    WebDriverWait(drv, WAIT).until(lambda _d: _d.switch_to.alert).accept()
    wait_for(drv, lambda: "revoked" in text(drv, "#msg"), "revoked")
    wait_for(drv, lambda: drv.find_elements(By.CSS_SELECTOR, row) == [], "row gone")
    assert d.admin("GET", "/api/v1/orgs", token=secret2)[0] == 401
    assert [e for e in hdharness.events(d, type="token.revoke")]
    no_xss(drv)
    shot(drv, "tokens-4-revoked")


def click_until(drv, button_css, cond, what):
    """Clicks button_css, then waits a moment for cond, again until WAIT."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        drv.find_element(By.CSS_SELECTOR, button_css).click()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                if cond():
                    return
            except StaleElementReferenceException:
                pass
            time.sleep(0.1)
    shot(drv, "failed-" + what.replace(" ", "-"))
    raise AssertionError("timed out waiting for: " + what)


def dev_rows(drv):
    return [r.get_attribute("data-mac") for r in
            drv.find_elements(By.CSS_SELECTOR, "#dev-table tbody tr")]


def test_console_devices_templates_events_in_chromium(acme, browser):
    """Devices: search, profile and model, sync state and last fetch as the
    API reports them; templates: preview without passwords, a hostile
    comment in the history, rollback; events: paging; CSV import: an error
    named by line and column, nothing changed."""
    d, demo = acme
    drv = browser
    hostile_data(d)
    console_sign_in(drv, d, d.admin_token)
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="devices"]').click()
    m2, m3 = hdharness.mac(102), hdharness.mac(103)
    wait_for(drv, lambda: len(dev_rows(drv)) == 5, "five devices")
    flt = drv.find_element(By.ID, "dev-filter")
    for q, want in ((m3, [m3]), ("T46S", [m2]), ("cisco", [m3, hdharness.mac(104)]),
                    ("globex", [hdharness.GLOBEX_MAC]), ("no-such-phone", [])):
        flt.clear()
        flt.send_keys(q)
        wait_for(drv, lambda: sorted(dev_rows(drv)) == sorted(want), "search " + q)
    flt.clear()
    flt.send_keys(m2)
    row = '#dev-table tr[data-mac="%s"]' % m2
    wait_for(drv, lambda: dev_rows(drv) == [m2] and "never" in text(drv, row), "102's phone")
    assert "yealink" in text(drv, row) and "T46S" in text(drv, row)
    # the phone fetches its file: the row shows the address, User-Agent, state
    ua = "Yealink SIP-T46S 66.86.0.15 console"
    assert hdharness.prov_get(d, m2 + ".cfg", headers={"User-Agent": ua})[0] == 200
    click_until(drv, "#dev-refresh", lambda: ua in text(drv, row), "last fetch shown")
    assert "127.0.0.1" in text(drv, row)
    # the state the API reports (it moves on by itself: refresh until equal)
    cell = row + " td:nth-child(7) span"

    def same_state():
        state = hdharness.dev(d, m2)["sync"]["state"]
        el = drv.find_element(By.CSS_SELECTOR, cell)
        return el.text.split(" ")[0] == state and el.get_attribute("class") == "state-" + state
    click_until(drv, "#dev-refresh", same_state, "sync state as the API reports it")
    shot(drv, "views-1-device-fetched")

    # templates: preview (passwords hidden), save with a hostile comment,
    # history, rollback
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="templates"]').click()
    wait_for(drv, lambda: len(drv.find_elements(By.CSS_SELECTOR, "#tmpl-select option")) > 3,
             "template list")
    drv.find_element(By.ID, "tmpl-mac").send_keys(m2)
    drv.find_element(By.ID, "tmpl-preview").click()
    wait_for(drv, lambda: (m2 + ".cfg") in text(drv, "#tmpl-result"), "preview")
    assert "acme-102" in text(drv, "#tmpl-result")
    assert demo.passwords["acme-102"] not in drv.page_source
    shot(drv, "views-2-preview")
    Select(drv.find_element(By.ID, "tmpl-select")).select_by_value("yealink/device.cfg")
    drv.find_element(By.ID, "tmpl-load").click()
    area = drv.find_element(By.ID, "tmpl-text")
    wait_for(drv, lambda: area.get_attribute("value").startswith("#!version"), "template")
    original = area.get_attribute("value")
    # version 1 (hostile comment), then version 2
    for mark, comment in (("# version one", HOSTILE), ("# rolled back later", "second")):
        drv.execute_script("arguments[0].value = arguments[1]", area,
                           original.replace("\n", "\n%s\n" % mark, 1))
        drv.find_element(By.ID, "tmpl-comment").clear()
        drv.find_element(By.ID, "tmpl-comment").send_keys(comment)
        drv.execute_script("document.getElementById('msg').textContent = ''")
        drv.find_element(By.ID, "tmpl-save").click()
        wait_for(drv, lambda: "Saved version" in text(drv, "#msg"), "saved")
    assert b"# rolled back later" in hdharness.device_files(d, m2)[m2 + ".cfg"]
    drv.find_element(By.ID, "tmpl-history").click()
    wait_for(drv, lambda: HOSTILE in text(drv, "#tmpl-result"), "history with the comment")
    no_xss(drv)
    backs = drv.find_elements(By.XPATH, '//div[@id="tmpl-result"]//button[.="Roll back to this"]')
    assert len(backs) == 1, "one version that is not active"
    backs[0].click()
    wait_for(drv, lambda: "active again" in text(drv, "#msg"), "rolled back")
    body = hdharness.device_files(d, m2)[m2 + ".cfg"]
    assert b"# rolled back later" not in body and b"# version one" in body
    wait_for(drv, lambda: len(drv.find_elements(
        By.XPATH, '//div[@id="tmpl-result"]//button[.="Roll back to this"]')) == 1,
        "history again")
    shot(drv, "views-3-rolled-back")

    # events: one type, two per page, every page different, in order
    drv.find_element(By.CSS_SELECTOR, '#tabs button[data-view="events"]').click()
    f = drv.find_element(By.ID, "ev-filter")
    f.find_element(By.NAME, "type").send_keys("extension.put")
    lim = f.find_element(By.NAME, "limit")
    lim.clear()
    lim.send_keys("2")
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    ids = lambda: [int(r.find_element(By.CSS_SELECTOR, "td").text) for r in  # noqa: E731
                   drv.find_elements(By.CSS_SELECTOR, "#ev-table tbody tr")]
    wait_for(drv, lambda: len(ids()) == 2, "first page")
    want = [e["id"] for e in hdharness.events(d, type="extension.put")]
    assert len(want) >= 6
    seen = ids()
    for _ in range(2):
        before = ids()
        drv.find_element(By.ID, "ev-next").click()
        wait_for(drv, lambda: ids() and ids() != before, "next page")
        seen += ids()
    assert len(seen) == 6 and len(set(seen)) == 6 and set(seen) <= set(want), (seen, want)
    assert set(ev_types(drv)) == {"extension.put"}
    no_xss(drv)
    shot(drv, "views-4-events-page-3")

    # CSV import: a bad cell is named by line and column; nothing changes
    open_import(drv)
    before = hdharness.snapshot(d)
    csv = ("extension,display_name,sip_user,allow_virtualization\n"
           "701,Ok,acme-701,yes\n"
           "702,Bad,acme-702,perhaps\n")
    drv.execute_script("arguments[0].value = arguments[1]", drv.find_element(By.ID, "imp-text"),
                       csv)
    for b in ("imp-dry", "imp-go"):
        drv.find_element(By.ID, "imp-error").get_attribute("id")
        drv.execute_script("document.getElementById('imp-error').textContent = ''")
        drv.find_element(By.ID, b).click()
        wait_for(drv, lambda: "line 3" in text(drv, "#imp-error"), "error at line 3 (%s)" % b)
        assert "column 4" in text(drv, "#imp-error")
    assert hdharness.snapshot(d) == before
    shot(drv, "views-5-import-error")
