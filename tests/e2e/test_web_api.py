"""The web sessions behind /console/ and /me/, driven over HTTP like a
browser would (cookies, CSRF header, Origin), without the browser.

Checks: sign-in sets an HttpOnly SameSite=Strict cookie and never reuses a
planted one (fixation); changes need the session's CSRF token and a
same-origin Origin; sign-out and expiry end the session; the self-service
user sees only their own extension, returns it to base, sets their code,
changes their password; wrong passwords lock out like secret codes; no
answer or log line shows a password, code or session id.
"""

import concurrent.futures
import json
import re
import time

import hdharness


def cookie_of(hdrs, name):
    sc = hdrs.get("set-cookie", "")
    m = re.match(r"%s=([^;]*)" % name, sc)
    return (m.group(1) if m else None), sc


def web(d, method, path, body=None, cookie=None, csrf=None, origin=None):
    h = {"Accept": "application/json", "Host": "127.0.0.1:%d" % d.port}
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body)
    if cookie:
        h["Cookie"] = cookie
    if csrf:
        h["X-CSRF-Token"] = csrf
    if origin:
        h["Origin"] = origin
    st, hdrs, data = d.request(method, path, body, h)
    text = data.decode("utf-8", "replace")
    leaked = [s for s in d.secrets if s in text]
    assert not leaked, "%s %s shows secrets %r" % (method, path, leaked)
    try:
        js = json.loads(data) if data.strip() else None
    except ValueError:
        js = None
    return st, hdrs, js


def set_web_password(d, number, pw, org="acme"):
    d.secrets.add(pw)
    st, js = d.admin("PUT", "/api/v1/orgs/%s/extensions/%s/web-password" % (org, number),
                     {"password": pw})
    assert st == 200, js


def me_login(d, number, pw, org="acme", cookie=None):
    st, hdrs, js = web(d, "POST", "/me/api/login",
                       {"org": org, "extension": number, "password": pw}, cookie=cookie)
    sid, raw = cookie_of(hdrs, "hd_me")
    if st == 200:
        d.secrets.add(sid)
    return st, js, sid, raw


def test_me_sign_in_state_return_code_password(acme):
    d, demo = acme
    set_web_password(d, "102", "bob-web-pass-1")
    st, js, sid, raw = me_login(d, "102", "wrong-password")
    assert st == 401 and sid is None
    st, js, sid, raw = me_login(d, "102", "bob-web-pass-1")
    assert st == 200, js
    assert "HttpOnly" in raw and "SameSite=Strict" in raw and "Path=/me/" in raw
    assert js["extension"] == "102" and js["status"] == "home"
    assert js["virtual_on"] is None and js["home_device"]["mac"] == hdharness.mac(102)
    csrf = js["csrf"]
    c = "hd_me=" + sid
    # moved by the PBX: the page shows where, since when
    d.star30("acme-101", digits="102", code=demo.code("102"), result="accepted")
    st, _, js = web(d, "GET", "/me/api/state", cookie=c)
    assert st == 200 and js["status"] == "virtualized"
    assert js["virtual_on"]["device"]["mac"] == hdharness.mac(101)
    assert abs(js["virtual_on"]["since"] - time.time()) < 120
    assert js["moves"][0]["type"] == "extension.virtualized" and js["moves"][0]["device"] == hdharness.mac(101)
    # a change without the CSRF token, or from another origin, is refused
    st, _, _ = web(d, "POST", "/me/api/return", {}, cookie=c)
    assert st == 403
    st, _, _ = web(d, "POST", "/me/api/return", {}, cookie=c, csrf=csrf,
                   origin="http://evil.test")
    assert st == 403
    assert hdharness.ext(d, "102")["status"] == "virtualized"
    st, _, js = web(d, "POST", "/me/api/return", {}, cookie=c, csrf=csrf,
                    origin="http://127.0.0.1:%d" % d.port)
    assert st == 200 and js["status"] == "home", js
    assert hdharness.ext(d, "102")["status"] == "home"
    # a new secret code, then *30 with it
    d.secrets.add("55443322")
    st, _, js = web(d, "POST", "/me/api/code", {"code": "55"}, cookie=c, csrf=csrf)
    assert st == 400 and js["field"] == "code"
    st, _, js = web(d, "POST", "/me/api/code", {"code": "55443322"}, cookie=c, csrf=csrf)
    assert st == 200, js
    d.star30("acme-101", digits="102", code=demo.code("102"), result="retry")
    d.star30("acme-101", digits="102", code="55443322", result="accepted")
    # password change: the current one is checked; other sessions end
    st, js2, sid2, _ = me_login(d, "102", "bob-web-pass-1")
    assert st == 200 and sid2 != sid
    st, _, js = web(d, "POST", "/me/api/password",
                    {"current": "nope-nope", "password": "bob-web-pass-2"}, cookie=c, csrf=csrf)
    assert st == 403
    d.secrets.add("bob-web-pass-2")
    st, _, js = web(d, "POST", "/me/api/password",
                    {"current": "bob-web-pass-1", "password": "bob-web-pass-2"},
                    cookie=c, csrf=csrf)
    assert st == 200, js
    st, _, _ = web(d, "GET", "/me/api/state", cookie="hd_me=" + sid2)
    assert st == 401, "the other session must end with the password change"
    assert me_login(d, "102", "bob-web-pass-1")[0] == 401
    assert me_login(d, "102", "bob-web-pass-2")[0] == 200
    # sign-out ends the session
    st, _, _ = web(d, "POST", "/me/api/logout", {}, cookie=c, csrf=csrf)
    assert st == 200
    st, _, _ = web(d, "GET", "/me/api/state", cookie=c)
    assert st == 401
    types = [e["type"] for e in hdharness.events(d, org="acme", extension="102")]
    assert "web_password.set" in types and "web.login" in types and "web.login_failed" in types


def test_me_session_fixation_and_isolation(acme):
    d, _ = acme
    set_web_password(d, "101", "alice-web-pass")
    set_web_password(d, "101", "gina-web-pass", org="globex")
    planted = "A" * 43
    st, js, sid, _ = me_login(d, "101", "alice-web-pass", cookie="hd_me=" + planted)
    assert st == 200 and sid and sid != planted
    st, _, _ = web(d, "GET", "/me/api/state", cookie="hd_me=" + planted)
    assert st == 401
    # the same number in another organization is another person
    st, js, _, _ = me_login(d, "101", "alice-web-pass", org="globex")
    assert st == 401
    st, js, sid_g, _ = me_login(d, "101", "gina-web-pass", org="globex")
    assert st == 200 and js["org"] == "globex" and js["display_name"] == "Gina Gold"
    st, _, js = web(d, "GET", "/me/api/state", cookie="hd_me=" + sid)
    assert js["org"] == "acme" and js["display_name"] == "Alice Anders"
    # the self-service cookie is no key to the admin API or the console
    st, _, _ = web(d, "GET", "/api/v1/orgs", cookie="hd_console=" + sid)
    assert st == 401
    st, _, _ = web(d, "GET", "/console/api/session", cookie="hd_console=" + sid)
    assert st == 401
    # an extension without a web password cannot sign in
    assert me_login(d, "103", "whatever-123")[0] == 401
    assert me_login(d, "999", "whatever-123")[0] == 401
    assert me_login(d, "101", "whatever-123", org="nosuch")[0] == 401


def test_me_wrong_passwords_lock_out(make_daemon):
    d = make_daemon({"secrets": {"lockout_threshold": "3", "lockout_window": "600",
                                 "lockout_backoff": "600", "lockout_backoff_max": "600"}})
    hdharness.build_demo(d)
    set_web_password(d, "101", "alice-web-pass")
    for _ in range(3):
        assert me_login(d, "101", "bad-password-x")[0] == 401
    st, js, _, _ = me_login(d, "101", "alice-web-pass")
    assert st == 429, js
    assert len(hdharness.events(d, type="web.locked")) == 1
    # the lock is per extension and source: another extension still works
    set_web_password(d, "102", "bob-web-pass-1")
    assert me_login(d, "102", "bob-web-pass-1")[0] == 200
    # and the lock survives a restart
    d.restart()
    assert me_login(d, "101", "alice-web-pass")[0] == 429
    # parallel tries never verify more passwords than the threshold allows
    set_web_password(d, "103", "carol-web-pass")
    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        codes = list(ex.map(lambda i: me_login(d, "103", "bad-password-%d" % i)[0], range(12)))
    assert sorted(set(codes)) == [401, 429], codes
    assert codes.count(401) == 3, codes
    assert len(hdharness.events(d, type="web.login_failed", extension="103")) == 3


def test_admin_web_password_rules(acme):
    d, _ = acme
    st, js = d.admin("PUT", "/api/v1/orgs/acme/extensions/101/web-password", {"password": "short"})
    assert st == 400 and js["field"] == "password"
    st, js = d.admin("PUT", "/api/v1/orgs/acme/extensions/101/web-password",
                     {"password": "long-enough", "x": 1})
    assert st == 400
    st, js = d.admin("PUT", "/api/v1/orgs/acme/extensions/999/web-password",
                     {"password": "long-enough"})
    assert st == 404
    st, js = d.admin("POST", "/api/v1/tokens", {"role": "org", "org": "globex", "name": "g"})
    gtok = js["token"]
    st, js = d.admin("PUT", "/api/v1/orgs/acme/extensions/101/web-password",
                     {"password": "long-enough"}, token=gtok)
    assert st == 404
    set_web_password(d, "101", "alice-web-pass")
    st, js = d.admin("DELETE", "/api/v1/orgs/acme/extensions/101/web-password")
    assert st == 200
    assert me_login(d, "101", "alice-web-pass")[0] == 401


def console_login(d, token, cookie=None):
    st, hdrs, js = web(d, "POST", "/console/api/login", {"token": token}, cookie=cookie)
    sid, raw = cookie_of(hdrs, "hd_console")
    if sid:
        d.secrets.add(sid)
    return st, js, sid, raw


def test_console_session_csrf_fixation_scope(acme):
    d, _ = acme
    st, js, sid, raw = console_login(d, "wrong-token")
    assert st == 401 and sid is None
    planted = "B" * 43
    st, js, sid, raw = console_login(d, d.admin_token, cookie="hd_console=" + planted)
    assert st == 200 and js["role"] == "admin"
    assert sid != planted and "HttpOnly" in raw and "SameSite=Strict" in raw
    assert web(d, "GET", "/api/v1/orgs", cookie="hd_console=" + planted)[0] == 401
    c, csrf = "hd_console=" + sid, js["csrf"]
    st, _, js = web(d, "GET", "/api/v1/orgs", cookie=c)
    assert st == 200 and len(js["orgs"]) == 2
    # a change needs the CSRF token and a same-origin Origin
    body = {"display_name": "Changed"}
    assert web(d, "PATCH", "/api/v1/orgs/acme", body, cookie=c)[0] == 403
    assert web(d, "PATCH", "/api/v1/orgs/acme", body, cookie=c, csrf="x" * 43)[0] == 403
    assert web(d, "PATCH", "/api/v1/orgs/acme", body, cookie=c, csrf=csrf,
               origin="http://evil.test")[0] == 403
    assert d.admin_ok("GET", "/api/v1/orgs/acme")["display_name"] == "Acme Inc."
    st, _, js = web(d, "PATCH", "/api/v1/orgs/acme", body, cookie=c, csrf=csrf)
    assert st == 200 and js["display_name"] == "Changed"
    # an organization token's session sees its organization only
    st, js = d.admin("POST", "/api/v1/tokens", {"role": "org", "org": "globex", "name": "g"})
    st, js, gsid, _ = console_login(d, js["token"])
    assert st == 200 and js["role"] == "org" and js["org"] == "globex"
    st, _, js = web(d, "GET", "/api/v1/orgs", cookie="hd_console=" + gsid)
    assert [o["name"] for o in js["orgs"]] == ["globex"]
    assert web(d, "GET", "/api/v1/orgs/acme/extensions", cookie="hd_console=" + gsid)[0] == 404
    # sign-out
    st, _, _ = web(d, "POST", "/console/api/logout", {}, cookie=c)
    assert st == 403
    st, hdrs, _ = web(d, "POST", "/console/api/logout", {}, cookie=c, csrf=csrf)
    assert st == 200 and "Max-Age=0" in hdrs.get("set-cookie", "")
    assert web(d, "GET", "/api/v1/orgs", cookie=c)[0] == 401
    assert web(d, "GET", "/console/api/session", cookie=c)[0] == 401


def test_static_pages_and_headers(daemon):
    d = daemon
    for path in ("/console/", "/console/console.js", "/console/console.css",
                 "/me/", "/me/me.js", "/me/style.css"):
        st, hdrs, body = d.request("GET", path)
        assert st == 200, path
        csp = hdrs.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert hdrs.get("x-content-type-options") == "nosniff"
        assert b"http://" not in body and b"https://" not in body, "no external resource: " + path
    for path in ("/console/../hotdeskd.ini", "/console/nope.html", "/me/.hidden.js",
                 "/console/x%2fy.js", "/me/me.sh"):
        st, _, _ = d.request("GET", path)
        assert st in (400, 404), path
