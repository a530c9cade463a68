"""API tokens and the audit trail's actor (SPEC 6): tokens are listed,
rotated and revoked; every admin change records which token made it (its
id and role, never the secret); a device shows its last fetch."""

import time

from hdharness import events, mac

from test_provisioning import line_file


def _token_ids(d):
    return {t["id"]: t for t in d.admin_ok("GET", "/api/v1/tokens")["tokens"]}


def _works(d, tok):
    return d.admin("GET", "/api/v1/orgs", token=tok)[0] == 200


def test_tokens_listed_rotated_revoked(acme):
    d, demo = acme
    made = d.admin_ok("POST", "/api/v1/tokens",
                      {"role": "org", "org": "acme", "name": "acme desk"}, ok=(201,))
    tid, tok = made["id"], made["token"]
    d.secrets.add(tok)
    listed = _token_ids(d)
    assert listed[tid] == {"id": tid, "role": "org", "org": "acme", "name": "acme desk",
                           "created_at": listed[tid]["created_at"], "rotated_at": None,
                           "config": False}
    # the configuration's tokens are there too, marked, and no secret or hash
    cfg = [t for t in listed.values() if t["config"]]
    assert sorted(t["role"] for t in cfg) == ["admin", "pbx"], cfg
    for t in listed.values():
        assert set(t) == {"id", "role", "org", "name", "created_at", "rotated_at", "config"}
    assert d.admin_ok("GET", "/api/v1/tokens/%d" % tid) == listed[tid]
    assert _works(d, tok)

    # rotate: a new secret, same id, role and scope; the old one stops working
    rot = d.admin_ok("POST", "/api/v1/tokens/%d/rotate" % tid)
    assert rot["id"] == tid and rot["token"] != tok
    new = rot["token"]
    d.secrets.add(new)
    assert not _works(d, tok) and _works(d, new)
    assert d.admin("GET", "/api/v1/orgs/globex", token=new)[0] == 404  # still acme only
    assert _token_ids(d)[tid]["rotated_at"] is not None

    # an org token may not manage tokens, not even its own
    for method, path in (("GET", "/api/v1/tokens"), ("DELETE", "/api/v1/tokens/%d" % tid),
                         ("POST", "/api/v1/tokens/%d/rotate" % tid)):
        st, js = d.admin(method, path, token=new)
        assert st == 403, (method, path, st, js)

    # the configuration's tokens are not rotated or revoked through the API
    for t in cfg:
        st, js = d.admin("DELETE", "/api/v1/tokens/%d" % t["id"])
        assert st == 409 and "configuration" in js["error"], js
        st, js = d.admin("POST", "/api/v1/tokens/%d/rotate" % t["id"])
        assert st == 409, js
    assert _works(d, True)

    # revoke
    assert d.admin_ok("DELETE", "/api/v1/tokens/%d" % tid) == {"deleted": tid}
    assert not _works(d, new)
    assert tid not in _token_ids(d)
    assert d.admin("DELETE", "/api/v1/tokens/%d" % tid)[0] == 404
    assert d.admin("POST", "/api/v1/tokens/%d/rotate" % tid)[0] == 404
    assert d.admin("GET", "/api/v1/tokens/%d" % tid)[0] == 404
    assert d.admin("GET", "/api/v1/tokens/nope")[0] == 404
    types = [e["type"] for e in events(d) if e["type"].startswith("token.")]
    assert types == ["token.new", "token.rotate", "token.revoke"], types
    for e in events(d):
        assert tok not in str(e) and new not in str(e)


def test_every_admin_change_records_its_actor(acme):
    d, demo = acme
    admin_id = [t["id"] for t in _token_ids(d).values() if t["config"] and t["role"] == "admin"]
    assert len(admin_id) == 1
    made = d.admin_ok("POST", "/api/v1/tokens", {"role": "org", "org": "acme"}, ok=(201,))
    d.secrets.add(made["token"])
    org_actor = {"token": made["id"], "role": "org"}
    adm_actor = {"token": admin_id[0], "role": "admin"}
    after = events(d)[-1]["id"]

    d.admin_ok("PUT", "/api/v1/orgs/initech", {"display_name": "Initech"})
    d.admin_ok("PATCH", "/api/v1/orgs/acme", {"display_name": "Acme 2"})
    st, _ = d.admin("PATCH", "/api/v1/orgs/acme/extensions/101", {"label": "desk"},
                    token=made["token"])
    assert st == 200
    d.admin_ok("PATCH", "/api/v1/devices/" + mac(101), {"model": "VVX_600"})
    d.admin_ok("POST", "/api/v1/orgs/acme/extensions/103/return")
    d.admin_ok("PUT", "/api/v1/orgs/acme/extensions/150",
               {"sip_user": "acme-150", "sip_password": "pw-150-abcdef"})
    d.admin_ok("DELETE", "/api/v1/orgs/acme/extensions/150")
    d.admin_ok("PUT", "/api/v1/orgs/umbrella", {})
    d.admin_ok("DELETE", "/api/v1/orgs/umbrella")
    # a *30 from the PBX is nobody's admin change
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")

    evs = {(e["type"], e["org"], e.get("extension"), e.get("device")): e
           for e in events(d, after=after)}
    want = {
        ("org.put", "initech", None, None): adm_actor,
        ("org.put", "acme", None, None): adm_actor,
        ("extension.put", "acme", "101", None): org_actor,
        ("device.put", "acme", None, mac(101)): adm_actor,
        ("extension.put", "acme", "150", None): adm_actor,
        ("extension.delete", "acme", "150", None): adm_actor,
        # the trail names a deleted organization in the event's detail
        ("org.delete", None, None, None): adm_actor,
        ("extension.virtualized", "acme", "102", mac(101)): None,
    }
    dels = [e for e in events(d, after=after, type="org.delete")]
    assert [e["detail"]["name"] for e in dels] == ["umbrella"], dels
    for k, actor in want.items():
        assert k in evs, "no event %r in %r" % (k, list(evs))
        assert evs[k]["actor"] == actor, (k, evs[k])


def test_config_token_replaced_stops_working(make_daemon):
    d = make_daemon()
    old = d.admin_token
    assert _works(d, old)
    d.stop()
    d.admin_token = "adm-replaced-" + "7" * 40
    d.config["admin"]["token"] = d.admin_token
    d.write_config(d.config)
    d.start()
    assert _works(d, True)
    assert not _works(d, old), "the admin token removed from the file still works"
    cfg = [t for t in _token_ids(d).values() if t["config"]]
    assert sorted(t["role"] for t in cfg) == ["admin", "pbx"], cfg


def test_device_shows_its_last_fetch(acme):
    d, demo = acme
    m = mac(102)
    assert d.admin_ok("GET", "/api/v1/devices/" + m)["last_fetch"] is None
    ua = "Yealink SIP-T46S 66.86.0.15 " + m
    st, hdrs, _ = d.request("GET", "/provision/" + line_file(m), None, {"User-Agent": ua})
    assert st == 200
    version = int(d.admin_ok("GET", "/api/v1/devices/" + m)["sync"]["version"])
    deadline = time.monotonic() + 10
    while True:
        lf = d.admin_ok("GET", "/api/v1/devices/" + m)["last_fetch"]
        if lf is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert lf is not None, "no last fetch shown"
    assert lf["source"] == "127.0.0.1" and lf["user_agent"] == ua and lf["version"] == version
    assert abs(lf["at"] - time.time()) < 60
    listed = {x["mac"]: x for x in d.admin_ok("GET", "/api/v1/devices")["devices"]}
    assert listed[m]["last_fetch"] == lf
    assert listed[mac(101)]["last_fetch"] is None
