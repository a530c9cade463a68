"""Who may see an organization's SIP passwords: admin tokens only.

The rule, on every path: an organization token never sees a SIP password
(neither in the API, nor in a preview, nor in an export, nor by setting
download credentials and downloading the phone's file as a phone would);
an admin token sees them through preview?reveal=1 and export?reveal=1,
and each reveal is recorded as an event naming the token (its id and role).
"""


from hdharness import events, mac

from test_provisioning import curl_digest, line_file, set_org_prov


def _org_token(d, org="acme"):
    js = d.admin_ok("POST", "/api/v1/tokens", {"role": "org", "org": org}, ok=(201,))
    d.secrets.add(js["token"])
    return js["id"], js["token"]


def _raw(d, method, path, token, body=None):
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = "application/json"
    return d.request(method, path, body, h)


def _admin_id(d):
    ids = [t["id"] for t in d.admin_ok("GET", "/api/v1/tokens")["tokens"]
           if t["config"] and t["role"] == "admin"]
    assert len(ids) == 1
    return ids[0]


def test_org_token_sees_no_sip_password_on_any_path(acme):
    d, demo = acme
    tid, tok = _org_token(d)
    pw = demo.passwords["acme-101"].encode()
    m = mac(101)
    n_reveals = len(events(d, type="device.reveal")) + len(events(d, type="export.reveal"))

    # API answers: never (the harness checks every admin answer too)
    for path in ("/api/v1/orgs/acme/extensions/101", "/api/v1/devices/" + m,
                 "/api/v1/devices/%s/preview" % m, "/api/v1/orgs/acme/export"):
        st, _, body = _raw(d, "GET", path, tok)
        assert st == 200 and pw not in body, (path, st)
    # reveal in a preview or an export: refused
    for path in ("/api/v1/devices/%s/preview?reveal=1" % m,
                 "/api/v1/orgs/acme/export?reveal=1"):
        st, _, body = _raw(d, "GET", path, tok)
        assert st == 403 and pw not in body, (path, st, body)

    # downloads: an org token may not set the credentials that would let
    # it fetch the phone's file (per device, or the organization's shared
    # ones), nor open download access up
    set_org_prov(d, {"auth": "device"})
    before = d.admin_ok("GET", "/api/v1/orgs/acme")
    for method, path, body, field in (
            ("PATCH", "/api/v1/devices/" + m, '{"provisioning_password": "mine-123456"}',
             "provisioning_password"),
            ("PUT", "/api/v1/devices/0004f2000777",
             '{"org": "acme", "profile": "yealink", "home_extension": "105", '
             '"provisioning_password": "mine-123456"}', "provisioning_password"),
            ("PATCH", "/api/v1/orgs/acme",
             '{"provisioning": {"auth": "shared", "username": "u", "password": "mine-123456"}}',
             "provisioning"),
            ("PATCH", "/api/v1/orgs/acme", '{"provisioning": {"auth": "none"}}', "provisioning"),
            ("PUT", "/api/v1/orgs/acme", '{"provisioning": {"auth": "none"}}', "provisioning")):
        st, _, out = _raw(d, method, path, tok, body)
        assert st == 403 and (b'"field":"%s"' % field.encode()) in out, (method, path, st, out)
    assert d.admin_ok("GET", "/api/v1/orgs/acme") == before
    assert d.admin_ok("GET", "/api/v1/devices/" + m)["has_provisioning_password"] is False
    assert d.admin("GET", "/api/v1/devices/0004f2000777")[0] == 404
    assert curl_digest(d, line_file(m), m, "mine-123456")[0] == 403
    # a phone it creates itself gets no download password: no file either
    st, _, _ = _raw(d, "PUT", "/api/v1/devices/0004f2000778", tok,
                    '{"org": "acme", "profile": "yealink", "home_extension": "105"}')
    assert st == 201
    code, body = curl_digest(d, "0004f2000778.cfg", "0004f2000778", "anything")
    assert code == 403 and demo.passwords["acme-105"].encode() not in body
    # nothing of this was a reveal
    assert len(events(d, type="device.reveal")) + len(events(d, type="export.reveal")) == n_reveals
    assert not [e for e in events(d) if (e.get("actor") or {}).get("token") == tid
                and e["type"].endswith("reveal")]


def test_admin_reveals_are_recorded_with_their_actor(acme):
    d, demo = acme
    admin = {"token": _admin_id(d), "role": "admin"}
    m = mac(101)
    pw = demo.passwords["acme-101"].encode()
    st, _, body = _raw(d, "GET", "/api/v1/devices/%s/preview?reveal=1" % m, d.admin_token)
    assert st == 200 and pw in body
    st, _, body = _raw(d, "GET", "/api/v1/orgs/acme/export?reveal=1", d.admin_token)
    assert st == 200 and pw in body
    ev = events(d, type="device.reveal")
    assert len(ev) == 1 and ev[0]["device"] == m and ev[0]["actor"] == admin, ev
    ev = events(d, type="export.reveal")
    assert len(ev) == 1 and ev[0]["org"] == "acme" and ev[0]["actor"] == admin, ev
    # without reveal: redacted, nothing recorded
    st, _, body = _raw(d, "GET", "/api/v1/devices/%s/preview" % m, d.admin_token)
    assert st == 200 and pw not in body and b"********" in body
    assert len(events(d, type="device.reveal")) == 1
    # an admin's download credentials work as before
    set_org_prov(d, {"auth": "device"})
    d.secrets.add("dev-pw-101-abcdef")
    d.admin_ok("PATCH", "/api/v1/devices/" + m, {"provisioning_password": "dev-pw-101-abcdef"})
    code, body = curl_digest(d, line_file(m), m, "dev-pw-101-abcdef")
    assert code == 200 and pw in body
