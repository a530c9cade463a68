"""Template administration (SPEC 6) end to end: list, read, replace with
validation, history and rollback, preview, dry run; saving re-renders
exactly the devices whose files change, over HTTP and TFTP.
"""

import secrets
import time

import hdharness
from hdharness import (check_published, device_files, events, invariants, mac, prov_get,
                       preview)

T = "/api/v1/templates/"


def put_raw(d, path, text, comment=None, token=None):
    """PUT with the template as the raw body (text/plain)."""
    q = "?comment=" + comment if comment else ""
    return d.request("PUT", T + path + q, text,
                     {"Authorization": "Bearer " + (token or d.admin_token),
                      "Content-Type": "text/plain"})


def etags(d):
    """{file name: ETag} of every device's per-device files."""
    out = {}
    for m in hdharness.all_devices(d):
        for name in device_files(d, m):
            st, h, _ = prov_get(d, name, "HEAD")
            assert st == 200, name
            out[name] = (m, h["etag"])
    return out


def add_polycom(d, demo, number, parking=True):
    """One more acme extension with its own polycom phone."""
    m = mac(number)
    pw = "pw%s%s" % (number, secrets.token_hex(10))
    d.secrets.add(pw)
    demo.passwords["acme-%s" % number] = pw
    code = hdharness.fresh_code(set(demo.codes.values()))
    d.secrets.add(code)
    demo.codes[("acme", str(number))] = code
    d.admin_ok("PUT", "/api/v1/orgs/acme/extensions/%s" % number,
               {"sip_user": "acme-%s" % number, "sip_password": pw, "allow_virtualization": True,
                "secret_code": code, "display_name": "User %s" % number})
    body = {"org": "acme", "profile": "polycom", "model": "VVX_400", "home_extension": str(number)}
    if parking:
        ppw = "ppw" + secrets.token_hex(10)
        d.secrets.add(ppw)
        demo.passwords["park-" + m] = ppw
        body["parking"] = {"sip_user": "park-" + m, "sip_password": ppw}
    d.admin_ok("PUT", "/api/v1/devices/" + m, body)
    return m


def test_list_and_read(acme):
    d, demo = acme
    js = d.admin_ok("GET", "/api/v1/templates")
    got = {(t["profile"], t["name"]): t for t in js["templates"]}
    assert got[("polycom", "line.cfg")]["kind"] == "device"
    assert got[("polycom", "common.cfg")]["kind"] == "shared"
    assert got[("polycom", "000000000000.cfg")]["kind"] == "static"
    assert got[("yealink", "device.cfg")]["files"] == ["{mac}.cfg"]
    assert got[("cisco-enterprise", "device.cnf.xml")]["kind"] == "device"
    assert len(got[("cisco-mpp", "bootstrap.xml")]["files"]) == 4
    assert all(t["version"] == "default" for t in js["templates"])
    t = d.admin_ok("GET", T + "yealink/device.cfg")
    assert t["version"] == "default" and t["content"].startswith("#!version:1.0.0.1")
    assert open(hdharness.REPO + "/templates/yealink/device.cfg").read() == t["content"]
    assert d.admin("GET", T + "yealink/nope.cfg")[0] == 404
    assert d.admin("GET", T + "nokia/device.cfg")[0] == 404
    assert d.admin("GET", T + "yealink")[0] == 404
    assert d.admin("DELETE", T + "yealink/device.cfg")[0] == 405


def test_org_token_cannot_touch_templates(acme):
    d, demo = acme
    _, js = d.admin("POST", "/api/v1/tokens", {"role": "org", "org": "acme"})
    tok = js["token"]
    d.secrets.add(tok)
    assert d.admin("GET", "/api/v1/templates", token=tok)[0] == 403
    st, _, _ = put_raw(d, "yealink/device.cfg", "#!version:1.0.0.1\n", token=tok)
    assert st == 403
    # but it may preview its own devices, redacted, and not another org's
    st, js = d.admin("GET", "/api/v1/devices/%s/preview" % mac(102), token=tok)
    assert st == 200 and js["redacted"] is True
    assert d.admin("GET", "/api/v1/devices/%s/preview" % hdharness.GLOBEX_MAC, token=tok)[0] == 404
    assert d.admin("GET", "/api/v1/devices/%s/preview?reveal=1" % mac(102), token=tok)[0] == 403
    assert d.admin("GET", "/api/v1/templates", token=False)[0] == 401


def test_malformed_template_refused_with_line_and_column(prov):
    d, demo, tftp = prov
    before = etags(d)
    files = {m: device_files(d, m) for m in hdharness.all_devices(d)}
    bad = "#!version:1.0.0.1\naccount.1.enable = 1\naccount.1.user_name = {{line.sip_usr}}\n"
    st, _, body = put_raw(d, "yealink/device.cfg", bad)
    js = hdharness.json.loads(body)
    assert st == 400, js
    assert (js["line"], js["column"], js["field"], js["in"]) == (3, 25, "content", "template"), js
    assert "unknown variable" in js["error"]
    st, js = d.admin("PUT", T + "polycom/line.cfg", {"content": "<a>\n  {{#parked}}\n</a>\n"})
    assert st == 400 and js["line"] == 2 and js["column"] == 3, js
    # well-formed template text whose output is not XML
    st, js = d.admin("PUT", T + "polycom/line.cfg", {"content": "<a>{{line.label}}</b>\n"})
    assert st == 400 and js["in"] == "rendered output" and "line" in js, js
    # a shared file may not use device variables (credentials)
    st, js = d.admin("PUT", T + "polycom/common.cfg",
                     {"content": "<x p=\"{{line.password}}\"/>\n"})
    assert st == 400 and "shared" in js["error"], js
    # Yealink values with a newline are impossible; the dry run refuses too
    st, js = d.admin("POST", T + "yealink/device.cfg/dry-run", {"content": bad})
    assert st == 400 and js["line"] == 3, js
    for body in ({"content": ""}, {"content": 5}, {"content": "x", "other": 1}, []):
        assert d.admin("PUT", T + "yealink/device.cfg", body)[0] == 400, body
    # nothing changed
    assert d.admin_ok("GET", T + "yealink/device.cfg")["version"] == "default"
    assert d.admin_ok("GET", T + "yealink/device.cfg/history")["versions"] == []
    assert events(d, type="template.put") == []
    assert etags(d) == before
    assert {m: device_files(d, m) for m in hdharness.all_devices(d)} == files
    check_published(d, demo, tftp)


def test_change_rerenders_exactly_the_devices_whose_files_change(prov):
    d, demo, tftp = prov
    add_polycom(d, demo, 107)
    add_polycom(d, demo, 108, parking=False)
    # 108 goes onto 107's phone: 108's phone is parked without a parking account
    d.star30("acme-107", "108", code=demo.code(108), result="accepted", device=mac(107))
    invariants(d)
    before = etags(d)
    tmpl = d.admin_ok("GET", T + "polycom/line.cfg")["content"]
    # a change that only shows on parked phones
    cand = tmpl.replace("<polycomConfig>",
                        "<polycomConfig>\n{{#parked}}\n  <!-- away: dial *30 -->\n{{/parked}}")
    assert cand != tmpl
    dry = d.admin_ok("POST", T + "polycom/line.cfg/dry-run", {"content": cand})
    assert dry["changed"] == [mac(108)], dry
    assert dry["failed"] == [] and dry["unchanged"] == 2, dry
    # a dry run changes nothing
    assert etags(d) == before
    sync_before = {m: (s["state"], s["version"]) for m, s in
                   ((m, hdharness.dev(d, m)["sync"]) for m in (mac(101), mac(107)))}
    js = d.admin_ok("PUT", T + "polycom/line.cfg", {"content": cand, "comment": "away note"})
    assert js["version"] == 1 and js["changed"] == [mac(108)], js
    after = etags(d)
    moved = sorted({m for name, (m, tag) in after.items() if before[name][1] != tag})
    assert moved == [mac(108)], moved
    assert b"away: dial *30" in tftp.get("%s-line.cfg" % mac(108))
    # a resync is owed to exactly that device, for its new version
    sync = {m: hdharness.dev(d, m)["sync"] for m in (mac(101), mac(107), mac(108))}
    assert sync[mac(108)]["state"] in ("pending", "notified"), sync
    assert sync[mac(108)]["version"] == preview(d, mac(108))["version"], sync
    for m in (mac(101), mac(107)):  # untouched by the template change
        assert (sync[m]["state"], sync[m]["version"]) == sync_before[m], (m, sync)
    prov_get(d, "%s-line.cfg" % mac(108))  # the phone fetches: confirmed
    for _ in range(100):
        if hdharness.dev(d, mac(108))["sync"]["state"] == "synced":
            break
        time.sleep(0.05)
    assert hdharness.dev(d, mac(108))["sync"]["state"] == "synced"
    ev = events(d, type="template.put")
    assert len(ev) == 1 and ev[0]["detail"] == {"profile": "polycom", "name": "line.cfg",
                                                 "version": 1, "devices": 1}, ev
    check_published(d, demo, tftp)
    # a change for every phone of the profile, none of other profiles
    cand2 = cand.replace("<polycomConfig>", "<polycomConfig>\n  <!-- v2 -->")
    dry = d.admin_ok("POST", T + "polycom/line.cfg/dry-run", {"content": cand2})
    polycoms = sorted([mac(101), mac(107), mac(108)])
    assert sorted(dry["changed"]) == polycoms, dry
    js = d.admin_ok("PUT", T + "polycom/line.cfg", {"content": cand2})
    assert sorted(js["changed"]) == polycoms and js["version"] == 2
    after2 = etags(d)
    moved = sorted({m for name, (m, tag) in after2.items() if after[name][1] != tag})
    assert moved == polycoms, moved
    # saving the same again changes no device
    js = d.admin_ok("PUT", T + "polycom/line.cfg", {"content": cand2})
    assert js["changed"] == [] and js["version"] == 3
    assert etags(d) == after2
    check_published(d, demo, tftp)


def test_history_rollback_and_restart(prov):
    d, demo, tftp = prov
    tmpl = d.admin_ok("GET", T + "yealink/device.cfg")["content"]
    v1 = tmpl + "# marker one\n"
    v2 = tmpl + "# marker two\n"
    st, _, body = put_raw(d, "yealink/device.cfg", v1, comment="first")
    assert st == 200, body
    assert d.admin_ok("PUT", T + "yealink/device.cfg",
                      {"content": v2, "comment": "second"})["version"] == 2
    h = d.admin_ok("GET", T + "yealink/device.cfg/history")
    assert h["active"] == 2
    assert [(v["version"], v["comment"], v["active"]) for v in h["versions"]] == \
        [(1, "first", False), (2, "second", True)]
    assert d.admin_ok("GET", T + "yealink/device.cfg?version=1")["content"] == v1
    assert d.admin("GET", T + "yealink/device.cfg?version=9")[0] == 404
    yealinks = sorted([mac(102), hdharness.GLOBEX_MAC])
    for m in yealinks:
        assert b"# marker two" in prov_get(d, "%s.cfg" % m)[2]
    # rollback to 1: those devices get version 1's files
    before = etags(d)
    js = d.admin_ok("POST", T + "yealink/device.cfg/rollback", {"version": 1})
    assert js["version"] == 1 and sorted(js["changed"]) == yealinks, js
    after = etags(d)
    assert sorted({m for n, (m, t) in after.items() if before[n][1] != t}) == yealinks
    for m in yealinks:
        body = tftp.get("%s.cfg" % m)
        assert b"# marker one" in body and b"# marker two" not in body
    t = d.admin_ok("GET", T + "yealink/device.cfg")
    assert (t["version"], t["active_version"], t["content"]) == (1, 1, v1)
    t = d.admin_ok("GET", T + "yealink/device.cfg?version=default")
    assert (t["version"], t["active_version"], t["content"]) == ("default", 1, tmpl)
    assert len(events(d, type="template.rollback")) == 1
    assert d.admin("POST", T + "yealink/device.cfg/rollback", {"version": 7})[0] == 404
    assert d.admin("POST", T + "yealink/device.cfg/rollback", {"version": "1"})[0] == 400
    check_published(d, demo, tftp)
    # the active version survives a restart; nothing is re-versioned
    d.restart()
    assert d.admin_ok("GET", T + "yealink/device.cfg")["version"] == 1
    assert etags(d) == after
    assert b"# marker one" in prov_get(d, "%s.cfg" % mac(102))[2]
    check_published(d, demo, tftp)
    # back to the shipped default: PUT its content again
    d.admin_ok("PUT", T + "yealink/device.cfg", {"content": tmpl, "comment": "default"})
    assert b"# marker" not in tftp.get("%s.cfg" % mac(102))


def test_shared_file_change(prov):
    d, demo, tftp = prov
    before = etags(d)
    common = d.admin_ok("GET", T + "polycom/common.cfg")["content"]
    cand = common.replace("</polycomConfig>",
                          '  <tcpIpApp tcpIpApp.sntp.address="ntp.acme.test"/>\n</polycomConfig>')
    assert cand != common
    dry = d.admin_ok("POST", T + "polycom/common.cfg/dry-run", {"content": cand})
    assert dry["changed"] == [mac(101)], dry  # every phone of the profile fetches it
    d.admin_ok("PUT", T + "polycom/common.cfg", {"content": cand})
    assert b"ntp.acme.test" in prov_get(d, "common.cfg")[2]
    assert b"ntp.acme.test" in tftp.get("common.cfg")
    assert etags(d) == before  # per-device files unchanged
    # a static file is checked well-formed
    st, js = d.admin("PUT", T + "polycom/000000000000.cfg", {"content": "<APPLICATION"})
    assert st == 400, js
    master = d.admin_ok("GET", T + "polycom/000000000000.cfg")["content"]
    d.admin_ok("PUT", T + "polycom/000000000000.cfg",
               {"content": master.replace("common.cfg", "common.cfg, site.cfg")})
    assert b"site.cfg" in tftp.get("000000000000.cfg")
    assert b"site.cfg" in prov_get(d, "000000000000.cfg")[2]


def test_preview_redacts_unless_revealed(acme):
    d, demo = acme
    m = mac(102)
    st, js = d.admin("GET", "/api/v1/devices/%s/preview" % m)  # asserts no secret shown
    assert st == 200 and js["redacted"] is True
    per_dev = [f for f in js["files"] if not f["shared"]]
    assert [f["name"] for f in per_dev] == ["%s.cfg" % m]
    assert "account.1.password = ********" in per_dev[0]["content"]
    assert "account.1.user_name = acme-102" in per_dev[0]["content"]
    full = preview(d, m)
    assert full["redacted"] is False
    body = [f for f in full["files"] if not f["shared"]][0]["content"].encode()
    assert demo.passwords["acme-102"].encode() in body
    assert prov_get(d, "%s.cfg" % m)[2] == body
    assert full["version"] == js["version"] >= 1
    ev = events(d, type="device.reveal")
    assert [e["device"] for e in ev] == [m]
    assert d.admin("GET", "/api/v1/devices/0004f2fff999/preview")[0] == 404
    assert d.admin("GET", "/api/v1/devices/nope/preview")[0] == 400
    assert d.admin("POST", "/api/v1/devices/%s/preview" % m)[0] == 405
    assert d.admin("GET", "/api/v1/devices/%s/other" % m)[0] == 404
