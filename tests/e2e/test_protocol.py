"""The HTTP contract (docs/API.md, SPEC 3): authentication, malformed and
oversized bodies (which change nothing), JSON answers, field order, unknown
routes, the PBX status and registration endpoints, token scopes, and
secrets never shown nor logged.  curl is used where a real client matters.
"""

import json
import os
import urllib.parse

from hdharness import (GLOBEX_MAC, events, ext, invariants, mac, park, parse_line,
                       snapshot)

FORM = "Content-Type: application/x-www-form-urlencoded"
ORDER = ["result", "reason", "tries_left", "extension", "device"]


def _move_events(d):
    return [(e["type"], e.get("extension"), e.get("device")) for e in events(d)
            if e["type"] in ("extension.virtualized", "extension.returned", "move.denied",
                              "code.failed", "code.locked")]


def test_unauthorized_changes_nothing(acme):
    d, demo = acme
    snap, evs = snapshot(d), _move_events(d)
    body = urllib.parse.urlencode({"caller": "acme-101", "digits": "102",
                                   "code": demo.code(102), "call_id": "x1"})
    for hdrs in ([FORM], [FORM, "Authorization: Bearer wrong-token-" + "x" * 32],
                 [FORM, "Authorization: Bearer " + d.admin_token],   # admin token is not the PBX's
                 [FORM, "Authorization: Basic " + d.pbx_token]):
        st, out = d.curl("POST", "/pbx/v1/star30", data=body, headers=hdrs)
        assert st == 401, (hdrs[1:], st, out)
    st, out = d.curl("GET", "/pbx/v1/extensions/acme-101")
    assert st == 401, (st, out)
    st, out = d.curl("POST", "/pbx/v1/registrations",
                     data="sip_user=acme-101&contact=sip:acme-101@127.0.0.1:5062",
                     headers=[FORM])
    assert st == 401, (st, out)
    # admin API: no token, wrong token, the PBX token
    for hdrs in ([], ["Authorization: Bearer nope" + "y" * 40],
                 ["Authorization: Bearer " + d.pbx_token]):
        st, out = d.curl("GET", "/api/v1/orgs", headers=hdrs)
        assert st == 401, (hdrs, st, out)
        st, out = d.curl("PATCH", "/api/v1/orgs/acme/extensions/101",
                         data='{"allow_virtualization": false}',
                         headers=hdrs + ["Content-Type: application/json"])
        assert st == 401, (hdrs, st, out)
        st, out = d.curl("POST", "/api/v1/orgs/acme/extensions/102/return", headers=hdrs)
        assert st == 401, (hdrs, st, out)
        st, out = d.curl("DELETE", "/api/v1/devices/" + mac(104), headers=hdrs)
        assert st == 401, (hdrs, st, out)
    # the bootstrap token works through curl too
    st, out = d.curl("GET", "/api/v1/orgs", headers=["Authorization: Bearer " + d.admin_token])
    assert st == 200 and b"acme" in out, (st, out)
    assert snapshot(d) == snap
    assert _move_events(d) == evs
    invariants(d)


def test_malformed_bodies_change_nothing(acme):
    d, demo = acme
    code = demo.code(102)
    auth = "Authorization: Bearer " + d.pbx_token
    snap, evs = snapshot(d), _move_events(d)
    good = {"caller": "acme-101", "digits": "102", "code": code, "call_id": "m1"}

    def enc(**over):
        f = dict(good)
        f.update(over)
        return urllib.parse.urlencode([(k, v) for k, v in f.items() if v is not None])

    cases = {
        "bad percent escape": "caller=acme-101&digits=%zz&code=" + code,
        "truncated escape": "caller=acme-101&digits=102&code=" + code + "&call_id=%4",
        "missing caller": enc(caller=None),
        "empty caller": enc(caller=""),
        "non-digit digits": enc(digits="10a"),
        "star in digits": enc(digits="*30102"),
        "17 digits": enc(digits="1" * 17),
        "non-digit code": enc(code="12ab"),
        "33-digit code": enc(code="1" * 33),
        "129-byte caller": enc(caller="a" * 129),
        "129-byte call_id": enc(call_id="c" * 129),
        "control char in caller": enc(caller="acme-101\x01"),
        "newline in call_id": enc(call_id="x\ny"),
    }
    wrong = []
    for name, body in cases.items():
        st, out = d.curl("POST", "/pbx/v1/star30", data=body, headers=[FORM, auth])
        ans = parse_line(out)
        if st != 400 or ans.get("result") != "error" or not ans.get("reason"):
            wrong.append("%s: body %r -> %s %r" % (name, body, st, out))
    # JSON bodies: not JSON, not an object, nested values, scalars that are no
    # digits.  (The daemon reads JSON numbers as their text -- a compatible
    # extension of "a flat object of strings" -- so 102 is not an error.)
    for name, body in {"invalid JSON": '{"caller": "acme-101", "digits": ',
                       "array": '["acme-101"]',
                       "real digits": '{"caller": "acme-101", "digits": 10.5}',
                       "boolean digits": '{"caller": "acme-101", "digits": true}',
                       "negative digits": '{"caller": "acme-101", "digits": -102}',
                       "nested": '{"caller": {"x": "acme-101"}, "digits": "102"}',
                       "list value": '{"caller": "acme-101", "digits": ["102"]}'}.items():
        st, out = d.curl("POST", "/pbx/v1/star30", data=body,
                         headers=["Content-Type: application/json", auth])
        if st != 400:
            wrong.append("%s: body %r -> %s %r" % (name, body, st, out))
    assert not wrong, "expected 400:\n  " + "\n  ".join(wrong)
    # unsupported content type
    st, out = d.curl("POST", "/pbx/v1/star30", data="<star30/>",
                     headers=["Content-Type: text/xml", auth])
    assert st == 415, (st, out)
    # the media type is compared whole, not by prefix
    for ct in ("application/x-www-form-urlencodedXYZ", "application/jsonx",
               "application/json-patch+json", "application/x-www-form-urlencoded x"):
        st, out = d.curl("POST", "/pbx/v1/star30", data=enc(call_id="ct-" + ct[-3:]),
                         headers=["Content-Type: " + ct, auth])
        assert st == 415, (ct, st, out)
    # wrong method
    st, out = d.curl("GET", "/pbx/v1/star30", headers=[auth])
    assert st == 405, (st, out)
    # admin API: invalid JSON and invalid fields
    adm = ["Authorization: Bearer " + d.admin_token, "Content-Type: application/json"]
    st, out = d.curl("PATCH", "/api/v1/orgs/acme/extensions/101",
                     data='{"allow_virtualization": fal', headers=adm)
    assert st == 400, (st, out)
    for body, field in (({"secret_code": "12ab"}, "secret_code"),
                        ({"secret_code": "12"}, "secret_code"),
                        ({"allow_virtualization": "yes"}, "allow_virtualization")):
        st, js = d.admin("PATCH", "/api/v1/orgs/acme/extensions/103", body)
        assert st == 400, (body, st, js)
        assert js.get("field") == field and js.get("error"), (body, js)
    st, js = d.admin("PUT", "/api/v1/devices/" + mac(105), {"org": "acme", "profile": "polycom"})
    assert st in (200, 201), (st, js)      # a device without home extension is fine...
    st, js = d.admin("DELETE", "/api/v1/devices/" + mac(105))
    assert st in (200, 204), (st, js)
    st, js = d.admin("PUT", "/api/v1/devices/not-a-mac", {"org": "acme", "profile": "polycom"})
    assert st in (400, 404), (st, js)       # ... a bad MAC is not
    st, js = d.admin("PUT", "/api/v1/orgs/acme/extensions/1x2", {
        "sip_user": "acme-1x2", "sip_password": "pw-" + "z" * 20})
    assert st in (400, 404), (st, js)
    # sip_user is unique across the server
    st, js = d.admin("PUT", "/api/v1/orgs/globex/extensions/301", {
        "sip_user": "acme-101", "sip_password": "pw-" + "q" * 20})
    assert st == 409, (st, js)
    assert snapshot(d) == snap
    assert _move_events(d) == evs
    # and the right request still works afterwards
    d.star30("acme-101", "102", code=code, result="accepted", device=mac(101))
    invariants(d)


def test_content_type_parameters_aside(acme):
    """A media type with parameters, spaces or other case is still the type."""
    d, demo = acme
    auth = "Authorization: Bearer " + d.pbx_token
    body = urllib.parse.urlencode({"caller": "acme-101", "digits": "102",
                                   "code": demo.code(102), "call_id": "ct1"})
    st, out = d.curl("POST", "/pbx/v1/star30", data=body, headers=[
        "Content-Type: Application/X-WWW-Form-URLencoded ; charset=utf-8", auth])
    assert st == 200 and parse_line(out).get("result") == "accepted", (st, out)
    d.star30("acme-102", None, result="returned", extension="102")
    st, out = d.curl("POST", "/pbx/v1/star30", data=json.dumps(
        {"caller": "acme-101", "digits": "102", "code": demo.code(102), "call_id": "ct2"}),
        headers=["Content-Type: application/json;charset=UTF-8", auth])
    assert st == 200 and parse_line(out).get("result") == "accepted", (st, out)
    invariants(d)


def test_oversized_body(acme, tmp_path):
    d, demo = acme
    snap = snapshot(d)
    big = tmp_path / "big.txt"
    big.write_bytes(b"caller=acme-101&digits=102&code=" + demo.code(102).encode() +
                    b"&call_id=" + b"x" * 70000)
    st, out = d.curl("POST", "/pbx/v1/star30", data_file=str(big),
                     headers=[FORM, "Authorization: Bearer " + d.pbx_token])
    # each API answers 413 in its own error form
    assert st == 413, (st, out[:200])
    assert parse_line(out) == {"result": "error", "reason": "body too large"}, out
    st, out = d.curl("POST", "/pbx/v1/star30", data_file=str(big),
                     headers=[FORM, "Authorization: Bearer " + d.pbx_token,
                              "Accept: application/json"])
    assert st == 413 and json.loads(out) == {"result": "error", "reason": "body too large"}, out
    bigjson = tmp_path / "big.json"
    bigjson.write_text(json.dumps({"display_name": "x" * 70000}))
    st, out = d.curl("PATCH", "/api/v1/orgs/acme/extensions/101", data_file=str(bigjson),
                     headers=["Authorization: Bearer " + d.admin_token,
                              "Content-Type: application/json"])
    assert st == 413, (st, out[:200])
    assert json.loads(out) == {"error": "body too large", "field": None}, out
    # the same when the body is sent in chunks (no Content-Length to refuse early)
    for path, hdrs, form in (
            ("/pbx/v1/star30", [FORM, "Authorization: Bearer " + d.pbx_token], True),
            ("/api/v1/orgs/acme/extensions/101", ["Authorization: Bearer " + d.admin_token,
                                                  "Content-Type: application/json"], False)):
        st, out = d.curl("POST" if form else "PATCH", path,
                         data_file=str(big if form else bigjson),
                         headers=hdrs + ["Transfer-Encoding: chunked"])
        assert st == 413, (path, st, out[:200])
        if form:
            assert parse_line(out)["reason"] == "body too large", out
        else:
            assert json.loads(out)["error"] == "body too large", out
    assert snapshot(d) == snap
    assert d.alive()
    invariants(d)


def test_json_answers(acme):
    d, demo = acme
    st, hdrs, js = d.pbx_json("/pbx/v1/star30", caller="acme-101", digits="102", call_id="j1")
    assert st == 200 and hdrs.get("content-type", "").startswith("application/json"), (st, hdrs)
    assert js["result"] == "need_code" and str(js["extension"]) == "102", js
    # a JSON request body, JSON answer
    st, hdrs, js = d.pbx_json("/pbx/v1/star30", json_body=True, caller="acme-101",
                              digits="102", code="11119999", call_id="j2")
    assert st == 200 and js["result"] == "retry" and str(js["tries_left"]) == "2", js
    st, hdrs, js = d.pbx_json("/pbx/v1/star30", json_body=True, caller="acme-101",
                              digits="102", code=demo.code(102), call_id="j3")
    assert (js["result"], str(js["extension"]), js["device"]) == ("accepted", "102", mac(101)), js
    st, hdrs, js = d.pbx_json("/pbx/v1/star30", caller="nobody", call_id="j4")
    assert (js["result"], js["reason"]) == ("denied", "unknown_caller"), js
    # errors are JSON too
    st, hdrs, js = d.pbx_json("/pbx/v1/star30", caller="acme-101", digits="x", call_id="j5")
    assert st == 400 and js["result"] == "error" and js.get("reason"), (st, js)
    st, js = d.pbx_get("/pbx/v1/extensions/acme-102", accept_json=True)
    assert st == 200, (st, js)
    assert (js.get("status"), js.get("device")) == ("virtualized", mac(101)), js
    # without Accept: one form line with text/plain
    st, h, body = d.pbx_raw("/pbx/v1/star30", caller="acme-102", call_id="j6")
    assert st == 200 and h.get("content-type", "").startswith("text/plain"), (st, h)
    assert body.decode().strip() == ("result=returned&extension=102&device=" + mac(102) +
                                     "&sip_code=200&sip_reason=Extension%20returned"), body
    invariants(d)


def test_answer_field_order(acme):
    d, demo = acme
    seen = []

    def post(**f):
        st, h, body = d.pbx_raw("/pbx/v1/star30", **f)
        keys = [k for k, _ in urllib.parse.parse_qsl(body.decode().strip(),
                                                     keep_blank_values=True)]
        seen.append(body)
        idx = [ORDER.index(k) for k in keys if k in ORDER]
        assert keys[0] == "result" and idx == sorted(idx), "field order of %r" % body

    post(caller="acme-101", digits="102", call_id="o1")
    post(caller="acme-101", digits="102", code="99990000", call_id="o2")
    post(caller="acme-104", digits="102", call_id="o3")
    post(caller="acme-101", digits="102", code=demo.code(102), call_id="o4")
    post(caller="acme-102", call_id="o5")
    post(caller="acme-102", call_id="o6")
    post(caller="acme-101", digits="x", call_id="o7")
    assert len(seen) == 7
    invariants(d)


def test_unknown_routes(acme):
    d, demo = acme
    pbx = "Authorization: Bearer " + d.pbx_token
    adm = "Authorization: Bearer " + d.admin_token
    for path, hdr in (("/pbx/v1/nope", pbx), ("/pbx/v2/star30", pbx), ("/api/v1/nope", adm),
                      ("/api/v1/orgs/acme/nope", adm), ("/nope", adm), ("/api/v1/orgs/nope", adm),
                      ("/api/v1/orgs/acme/extensions/999", adm),
                      ("/api/v1/devices/0004f2abcdef", adm)):
        st, out = d.curl("GET", path, headers=[hdr])
        assert st == 404, (path, st, out)
    st, out = d.curl("POST", "/pbx/v1/nope", data="caller=acme-101", headers=[pbx, FORM])
    assert st == 404, (st, out)
    # MACs in any case, with separators
    st, js = d.admin("GET", "/api/v1/devices/00:04:F2:00:01:01")
    assert st == 200 and js["mac"] == mac(101), (st, js)
    st, js = d.admin("GET", "/api/v1/devices/00-04-f2-00-01-02")
    assert st == 200 and js["mac"] == mac(102), (st, js)
    invariants(d)


def test_pbx_extension_status(acme):
    d, demo = acme

    def status(sip_user):
        st, ans = d.pbx_get("/pbx/v1/extensions/" + sip_user)
        assert st == 200, (sip_user, st, ans)
        return ans["status"], ans.get("device", "")

    assert status("acme-101") == ("home", mac(101))
    assert status("acme-105") == ("unplaced", "")
    assert status("globex-101") == ("home", GLOBEX_MAC)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    assert status("acme-102") == ("virtualized", mac(101))
    st_, dev_ = status("acme-101")
    assert st_ == "inactive" and dev_ in ("", mac(101)), (st_, dev_)
    d.star30("acme-102", "105", code=demo.code(105), result="accepted")
    assert status("acme-105") == ("virtualized", mac(101))
    assert status("acme-102") == ("home", mac(102))
    for unknown in ("nobody", "park-" + mac(101), "acme-999"):
        st, ans = d.pbx_get("/pbx/v1/extensions/" + unknown)
        assert st == 404, (unknown, st, ans)
        assert (ans.get("result"), ans.get("reason")) == ("error", "unknown_extension"), ans
    invariants(d)


def test_registrations(acme):
    d, demo = acme
    ok = {"sip_user": "acme-101", "contact": "sip:acme-101@127.0.0.1:5062;transport=udp",
          "source": "127.0.0.1:5062", "user_agent": "PolycomVVX-VVX_500-UA/6.4.3.5018",
          "call_id": "reg-1@127.0.0.1", "expires": "3600"}
    st, ans = d.pbx("/pbx/v1/registrations", **ok)
    assert (st, ans.get("result")) == (200, "ok"), (st, ans)
    st, ans = d.pbx("/pbx/v1/registrations", sip_user=park(102),
                    contact="sips:" + park(102) + "@127.0.0.1:5063", expires="60")
    assert (st, ans.get("result")) == (200, "ok"), (st, ans)
    st, hdrs, js = d.pbx_json("/pbx/v1/registrations", json_body=True, **ok)
    assert st == 200 and js["result"] == "ok", (st, js)
    st, ans = d.pbx("/pbx/v1/registrations", **dict(ok, expires="0"))
    assert (st, ans.get("result")) == (200, "ok"), (st, ans)
    bad = {
        "missing sip_user": dict(ok, sip_user=None),
        "missing contact": dict(ok, contact=None),
        "http contact": dict(ok, contact="http://127.0.0.1:5062/"),
        "not a URI": dict(ok, contact="acme-101 at home"),
        "bad source": dict(ok, source="not-an-address"),
        "source without port": dict(ok, source="127.0.0.1"),
        "negative expires": dict(ok, expires="-5"),
        "non-numeric expires": dict(ok, expires="soon"),
        "long user_agent": dict(ok, user_agent="U" * 5000),
    }
    wrong = []
    for name, fields in bad.items():
        st, ans = d.pbx("/pbx/v1/registrations", **fields)
        if st != 400 or ans.get("result") != "error":
            wrong.append("%s: %s -> %s %s" % (name, fields, st, dict(ans)))
    assert not wrong, "expected 400 result=error:\n  " + "\n  ".join(wrong)
    st, out = d.curl("POST", "/pbx/v1/registrations", data="sip_user=acme-101&contact=%zz",
                     headers=[FORM, "Authorization: Bearer " + d.pbx_token])
    assert st == 400, (st, out)
    assert d.alive()
    invariants(d)


def test_org_token_scope(acme):
    d, demo = acme
    js = d.admin_ok("POST", "/api/v1/tokens", {"role": "org", "org": "acme", "name": "acme-desk"})
    tok = js["token"]
    assert isinstance(js["id"], int) and len(tok) >= 16, js
    st, js = d.admin("GET", "/api/v1/orgs/acme/extensions", token=tok)
    assert st == 200 and len(js["extensions"]) == 6, (st, js)
    # Assumption: API.md says 403 for "out of the token's scope"; answering 404
    # (as if the other tenant did not exist) reveals less and is accepted too.
    st, js = d.admin("GET", "/api/v1/orgs/globex/extensions", token=tok)
    assert st in (403, 404), (st, js)
    st, js = d.admin("POST", "/api/v1/orgs/globex/extensions/201/return", token=tok)
    assert st in (403, 404), (st, js)
    st, js = d.admin("PATCH", "/api/v1/orgs/globex/extensions/101",
                     {"allow_virtualization": False}, token=tok)
    assert st in (403, 404), (st, js)
    assert ext(d, 101, "globex")["allow_virtualization"] is True
    st, js = d.admin("GET", "/api/v1/orgs", token=tok)
    assert st == 200 and "globex" not in json.dumps(js), (st, js)
    st, js = d.admin("GET", "/api/v1/devices", token=tok)
    assert st == 200 and {x["mac"] for x in js["devices"]} == {mac(n) for n in (101, 102, 103, 104)}, js
    st, js = d.admin("GET", "/api/v1/devices/" + GLOBEX_MAC, token=tok)
    assert st in (403, 404), (st, js)
    st, js = d.admin("POST", "/api/v1/tokens", {"role": "admin", "name": "escalate"}, token=tok)
    assert st == 403, (st, js)
    invariants(d)


def test_org_token_cannot_take_over_another_tenants_device(acme):
    """PUT replaces a device by MAC: an organization token must not be able to
    replace (and so pull into its own organization) a device of another one."""
    d, demo = acme
    tok = d.admin_ok("POST", "/api/v1/tokens", {"role": "org", "org": "acme"})["token"]
    before = d.admin_ok("GET", "/api/v1/devices/" + GLOBEX_MAC)
    st, js = d.admin("PUT", "/api/v1/devices/" + GLOBEX_MAC,
                     {"org": "acme", "profile": "polycom", "model": "VVX_500"}, token=tok)
    assert st in (403, 404, 409), (st, js)
    after = d.admin_ok("GET", "/api/v1/devices/" + GLOBEX_MAC)
    assert after == before, (before, after)
    invariants(d)


def test_secrets_never_shown_nor_logged(acme):
    d, demo = acme
    # exercise codes (right and wrong), moves and admin writes, then read everything
    wrong = "30507090"
    d.secrets.add(wrong)
    d.star30("acme-101", "102", code=wrong, result="retry")
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    d.star30(park(102), "105", code=demo.code(105), result="accepted")
    newpw = "pwchanged" + "5a" * 10
    d.secrets.add(newpw)
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/103", {"sip_password": newpw,
                                                             "secret_code": "66554433"})
    d.secrets.add("66554433")
    # every admin answer is checked by the harness; read everything there is
    for path in ("/api/v1/orgs", "/api/v1/orgs/acme", "/api/v1/orgs/acme/extensions",
                 "/api/v1/orgs/globex/extensions", "/api/v1/devices",
                 "/api/v1/devices?org=acme", "/api/v1/events?limit=1000",
                 "/api/v1/orgs/acme/extensions/102", "/api/v1/orgs/acme/extensions/103",
                 "/api/v1/devices/" + mac(101), "/api/v1/devices/" + mac(102)):
        st, js = d.admin("GET", path)
        assert st == 200, (path, st, js)
    e = ext(d, 103)
    assert "sip_password" not in e and "secret_code" not in e and e["has_secret_code"] is True, e
    dv = d.admin_ok("GET", "/api/v1/devices/" + mac(101))
    assert "sip_password" not in (dv.get("parking") or {}), dv
    # and through a real client as well
    st, out = d.curl("GET", "/api/v1/devices", headers=["Authorization: Bearer " + d.admin_token])
    assert st == 200 and not [s for s in d.secrets if s.encode() in out]
    assert d.leaked_in_log() == [], "secrets in stderr log: %r" % d.leaked_in_log()
    assert os.path.getsize(d.log_path) > 0, "log level debug wrote nothing to stderr"
    invariants(d)


def test_malformed_json_answer_does_not_echo_values(acme):
    """A 400 names the position of a JSON error, not the token there: the
    token may be a secret code or a SIP password."""
    d, demo = acme
    code, pw = "86420975", "pw-Echo-" + "7c" * 8
    d.secrets.add(pw)
    h = {"Content-Type": "application/json", "Accept": "application/json",
         "Authorization": "Bearer " + d.pbx_token}
    st, _, out = d.request("POST", "/pbx/v1/star30",
                           '{"caller": "acme-101", "code" "%s"}' % code, h)
    assert st == 400 and b"column" in out and code.encode() not in out, (st, out)
    h = {"Content-Type": "application/json", "Authorization": "Bearer " + d.admin_token}
    st, _, out = d.request("PUT", "/api/v1/orgs/acme/extensions/190",
                           '{"sip_user": "acme-190", "sip_password" "%s"}' % pw, h)
    assert st == 400 and b"column" in out and pw.encode() not in out, (st, out)
    assert ext(d, 101)["status"] == "home"
    invariants(d)


def test_admin_errors_name_the_field_at_fault(acme):
    # "field" names the body's field whenever one is at fault, null otherwise
    d, demo = acme
    m = "0004f2000999"
    cases = [
        ("PUT", "/api/v1/devices/" + m,
         {"org": "acme", "profile": "yealink", "home_extension": "999"}, 400, "home_extension"),
        ("PUT", "/api/v1/devices/" + m, {"org": "nosuch", "profile": "yealink"}, 400, "org"),
        ("PUT", "/api/v1/devices/" + mac(101), {"org": "globex", "profile": "polycom"},
         409, "org"),
        ("PUT", "/api/v1/devices/" + m, {"org": "acme", "profile": "nokia"}, 400, "profile"),
        ("PUT", "/api/v1/devices/" + m,
         {"org": "acme", "profile": "yealink", "parking": {"sip_user": "a b", "sip_password": "x"}},
         400, "parking.sip_user"),
        ("PUT", "/api/v1/devices/" + m, {"org": "acme", "profile": "yealink", "color": "red"},
         400, "color"),
        ("PATCH", "/api/v1/orgs/acme/extensions/101", {"sip_user": "acme-102"}, 409, "sip_user"),
        ("PATCH", "/api/v1/orgs/acme/extensions/101", {"secret_code": "12a"}, 400, "secret_code"),
        ("PATCH", "/api/v1/orgs/acme", {"sip_server": {"port": 0}}, 400, "sip_server.port"),
        ("POST", "/api/v1/tokens", {"role": "org", "org": "nosuch"}, 400, "org"),
        ("DELETE", "/api/v1/orgs/acme/extensions/999", None, 404, None),
    ]
    for method, path, body, status, field in cases:
        st, js = d.admin(method, path, body)
        assert (st, js.get("field")) == (status, field), (method, path, body, st, js)
