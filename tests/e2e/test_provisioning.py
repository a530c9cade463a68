"""The phone interface (SPEC 4) end to end: the real daemon, curl over HTTP
and a real tftpd-hpa serving the daemon's TFTP root on loopback.

Demo (hdharness.build_demo): acme devices 0004f2000101 polycom (home 101,
parking account), ...102 yealink, ...103 cisco-mpp, ...104
cisco-enterprise (no parking account); globex ...201 yealink.

After every scenario check_published() asserts I4 and I5 of SPEC 2.1 on
what HTTP and TFTP actually serve: every per-device file equals a fresh
render (the revealed preview), carries the credentials of the identity the
device carries and of no other one.
"""

import os
import sqlite3
import subprocess

import pytest

import hdharness
from hdharness import (GLOBEX_MAC, check_published, device_files, etag_book, events,
                       invariants, mac, park, prov_get)


def line_file(m):
    """Name of the per-device file of a demo device (its only one)."""
    return {mac(101): "%s-line.cfg" % m, mac(102): "%s.cfg" % m, mac(103): "%s.xml" % m,
            mac(104): "SEP%s.cnf.xml" % m.upper(), GLOBEX_MAC: "%s.cfg" % m}[m]


def curl_http(d, name):
    """curl -sf over HTTP: the body, or None on failure."""
    p = subprocess.run(["curl", "-sf", "--max-time", "5",
                        "http://127.0.0.1:%d/provision/%s" % (d.port, name)],
                       capture_output=True, timeout=10)
    return p.stdout if p.returncode == 0 else None


def both(d, tftp, name):
    """The file over HTTP and over TFTP: they must be equal."""
    h, t = curl_http(d, name), tftp.get(name)
    assert h is not None, "HTTP %s failed" % name
    assert t is not None, "TFTP %s failed" % name
    assert h == t, "%s: HTTP and TFTP serve different files" % name
    return h


def test_move_follows_on_http_and_tftp(prov):
    d, demo, tftp = prov
    pw = {k: v.encode() for k, v in demo.passwords.items()}
    check_published(d, demo, tftp)

    # 102 moves onto 101's polycom: the base phone carries 102 ...
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    base = both(d, tftp, line_file(mac(101)))
    assert b'reg.1.address="acme-102"' in base and pw["acme-102"] in base
    assert pw["acme-101"] not in base and b"acme-101" not in base
    # ... and 102's own yealink is parked on its parking account, nothing of 102
    home = both(d, tftp, line_file(mac(102)))
    assert b"acme-102" not in home and pw["acme-102"] not in home
    assert ("account.1.user_name = %s" % park(102)).encode() in home
    assert pw[park(102)] in home
    invariants(d)
    check_published(d, demo, tftp)

    # 102 moves on to 103's cisco-mpp: the displaced 101 is back on its phone
    d.star30("acme-103", "102", code=demo.code(102), result="accepted", device=mac(103))
    back = both(d, tftp, line_file(mac(101)))
    assert b'reg.1.address="acme-101"' in back and pw["acme-101"] in back
    assert pw["acme-102"] not in back
    mpp = both(d, tftp, line_file(mac(103)))
    assert b"<User_ID_1_ ua=\"na\">acme-102</User_ID_1_>" in mpp and pw["acme-102"] in mpp
    assert pw["acme-103"] not in mpp
    invariants(d)
    check_published(d, demo, tftp)

    # 104 onto 101's phone: 104's cisco-enterprise has no parking account,
    # so it gets its one featureID 9 line without credentials
    d.star30("acme-101", "104", code=demo.code(104), result="accepted", device=mac(101))
    sep = both(d, tftp, line_file(mac(104)))
    assert b"acme-104" not in sep and pw["acme-104"] not in sep
    assert sep.count(b"<line ") == 1 and b"<authPassword></authPassword>" in sep
    invariants(d)
    check_published(d, demo, tftp)

    # bare *30 from both bases: everything back home
    d.star30("acme-104", result="returned", extension="104")
    d.star30("acme-102", result="returned", extension="102")
    for n in ("101", "102", "103", "104"):
        f = both(d, tftp, line_file(mac(n)))
        assert pw["acme-%s" % n] in f, "extension %s not back on its phone" % n
    invariants(d)
    check_published(d, demo, tftp)


def test_file_names_and_shared_files(prov):
    d, demo, tftp = prov
    files = device_files(d, mac(104))
    name = line_file(mac(104))
    # MACs match case-insensitively; the content is the same file
    for variant in (name, "SEP%s.cnf.xml" % mac(104), "sep%s.CNF.XML" % mac(104).upper()):
        st, _, body = prov_get(d, variant)
        assert st == 200 and body == files[name], variant
    # shared files: over HTTP and TFTP, carrying no credentials
    for shared in ("000000000000.cfg", "common.cfg"):
        body = both(d, tftp, shared)
        assert all(p.encode() not in body for p in demo.passwords.values())
    for shared in ("y000000000066.cfg", "spa502G.cfg", "CP-8841-3PCC.xml"):
        st, _, body = prov_get(d, shared)
        assert st == 200 and body, shared
        assert all(p.encode() not in body for p in demo.passwords.values())
    # unknown MACs and names: 404
    for miss in ("0004f2999999-line.cfg", "SEP0004F2999999.cnf.xml", "nothing.cfg",
                 "%s-phone.cfg" % mac(104), "0004f2999999-phone.cfg"):
        assert prov_get(d, miss)[0] == 404, miss
    assert tftp.get("0004f2999999-line.cfg") is None


def test_head_and_if_none_match(prov):
    d, demo, tftp = prov
    name = line_file(mac(102))
    st, h, body = prov_get(d, name)
    assert st == 200 and etag_book(d).problem(body, h["etag"]) is None, h["etag"]
    st, hh, hbody = prov_get(d, name, "HEAD")
    assert st == 200 and hbody == b"" and int(hh["content-length"]) == len(body)
    assert hh["etag"] == h["etag"]
    st, h304, b304 = prov_get(d, name, headers={"If-None-Match": h["etag"]})
    assert st == 304 and b304 == b""
    st, _, _ = prov_get(d, name, headers={"If-None-Match": '"0123", ' + h["etag"]})
    assert st == 304
    # a move changes the file: the old ETag no longer matches
    d.star30("acme-102", "103", code=demo.code(103), result="accepted", device=mac(102))
    st, h2, body2 = prov_get(d, name, headers={"If-None-Match": h["etag"]})
    assert st == 200 and body2 != body and h2["etag"] != h["etag"]
    assert etag_book(d).problem(body2, h2["etag"]) is None, h2["etag"]
    # curl agrees
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                        "If-None-Match: " + h2["etag"],
                        "http://127.0.0.1:%d/provision/%s" % (d.port, name)],
                       capture_output=True, timeout=10)
    assert p.stdout == b"304"
    check_published(d, demo, tftp)


TRAVERSALS = [
    "/provision/../hotdeskd.ini",
    "/provision/%2e%2e/hotdeskd.ini",
    "/provision/%2E%2E%2Fhotdeskd.ini",
    "/provision/..%2fhotdeskd.db",
    "/provision/..%2Fport",
    "/provision/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/provision/0004f2000101-line.cfg%00",
    "/provision/0004f2000101-line.cfg%00.txt",
    "/provision/%00",
    "/provision/..\\hotdeskd.ini",
    "/provision/..%5chotdeskd.ini",
    "/provision/tftp%2f0004f2000101-line.cfg",
    "/provision/tftp/0004f2000101-line.cfg",
    "/provision/./0004f2000101-line.cfg",
    "/provision//0004f2000101-line.cfg",
    "/provision/.hidden",
    "/provision/%252e%252e%252fhotdeskd.ini",
    "/provision/0004f2000101-line.cfg/..",
    "/provision/",
    "/provision",
]


def test_path_traversal_never_leaves_the_set(make_daemon, tmp_path):
    root = tmp_path / "tftp"
    d = make_daemon({"provisioning": {"tftp_root": str(root), "miss_threshold": "1000"}})
    import hdharness
    demo = hdharness.build_demo(d)
    ini = open(d.config_path, "rb").read()
    for path in TRAVERSALS:
        st, _, body = d.request("GET", path)
        assert st in (400, 404), "%s -> %s %r" % (path, st, body[:200])
        assert d.pbx_token.encode() not in body and d.admin_token.encode() not in body
        assert not any(p.encode() in body for p in demo.passwords.values()), path
        assert b"[server]" not in body and b"SQLite" not in body and b"root:" not in body
    # the same with a real client that does not normalize the path
    for path in ("/provision/../hotdeskd.ini", "/provision/%2e%2e/%2e%2e/etc/passwd",
                 "/provision/..%2f..%2fhotdeskd.ini"):
        p = subprocess.run(["curl", "-s", "--path-as-is", "-o", "-", "-w", "\n%{http_code}",
                            "http://127.0.0.1:%d%s" % (d.port, path)],
                           capture_output=True, timeout=10)
        body, _, code = p.stdout.rpartition(b"\n")
        assert code in (b"400", b"404"), (path, code)
        assert ini not in body
    assert d.alive()


def test_tftp_stays_in_its_root(prov, tmp_path):
    d, demo, tftp = prov
    (tmp_path / "outside.txt").write_text("outside the root")
    for name in ("../outside.txt", "..%2foutside.txt", "/etc/passwd", "../hotdeskd.db"):
        got = tftp.get(name)
        assert got is None or (b"outside the root" not in got and b"root:" not in got), name


def test_miss_throttle_blocks_scanning(make_daemon):
    d = make_daemon({"provisioning": {"miss_threshold": "5", "miss_window": "60",
                                      "miss_block": "300"}})
    import hdharness
    hdharness.build_demo(d)
    good = line_file(mac(102))
    assert prov_get(d, good)[0] == 200
    codes = [prov_get(d, "0004f2ff%04x.cfg" % i)[0] for i in range(8)]
    assert codes[:4] == [404] * 4, codes
    assert codes[-1] == 403, codes
    # blocked: even a real file, and shared ones, are refused now
    assert prov_get(d, good)[0] == 403
    assert prov_get(d, "common.cfg")[0] == 403
    ev = events(d, type="prov.throttled")
    assert len(ev) == 1 and ev[0]["detail"]["source"] == "127.0.0.1", ev
    # the admin and PBX interfaces are not affected
    assert d.admin("GET", "/api/v1/orgs")[0] == 200


def set_org_prov(d, prov):
    d.admin_ok("PATCH", "/api/v1/orgs/acme", {"provisioning": prov})


def curl_digest(d, name, user=None, password=None):
    cmd = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5"]
    if user is not None:
        cmd += ["--digest", "-u", "%s:%s" % (user, password)]
    cmd.append("http://127.0.0.1:%d/provision/%s" % (d.port, name))
    p = subprocess.run(cmd, capture_output=True, timeout=10)
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), body


def test_digest_shared_credentials(acme):
    d, demo = acme
    secret = "dl-Shared-9f3b1c"
    d.secrets.add(secret)
    set_org_prov(d, {"auth": "shared", "username": "phones", "password": secret})
    name = line_file(mac(102))
    code, body = curl_digest(d, name)
    assert code == 401 and demo.passwords["acme-102"].encode() not in body
    st, h, _ = prov_get(d, name)
    assert st == 401 and "digest" in h.get("www-authenticate", "").lower()
    assert curl_digest(d, name, "phones", "wrong")[0] == 401
    assert curl_digest(d, name, "other", secret)[0] == 401
    code, body = curl_digest(d, name, "phones", secret)
    assert code == 200 and demo.passwords["acme-102"].encode() in body
    # the two wrong answers are in the audit trail (a bare challenge is not)
    ev = events(d, type="prov.denied", device=mac(102))
    assert [e["detail"]["reason"] for e in ev] == ["credentials", "credentials"], ev
    assert all(e["org"] == "acme" and e["detail"]["source"] == "127.0.0.1" for e in ev)
    # another organization without settings is not affected
    assert curl_digest(d, line_file(GLOBEX_MAC))[0] == 200
    # shared files carry no credentials and stay public
    assert curl_digest(d, "common.cfg")[0] == 200
    org = d.admin_ok("GET", "/api/v1/orgs/acme")
    assert org["provisioning"]["has_password"] is True and "password" not in org["provisioning"]


def test_digest_per_device_credentials(acme):
    d, demo = acme
    set_org_prov(d, {"auth": "device"})
    name = line_file(mac(101))
    # a device without a download password cannot be fetched at all
    assert curl_digest(d, name, mac(101), "anything")[0] == 403
    pw101 = "dev-pw-101-7c2e"
    d.secrets.add(pw101)
    d.admin_ok("PATCH", "/api/v1/devices/" + mac(101), {"provisioning_password": pw101})
    dv = d.admin_ok("GET", "/api/v1/devices/" + mac(101))
    assert dv["has_provisioning_password"] is True and "provisioning_password" not in dv
    assert curl_digest(d, name)[0] == 401
    assert curl_digest(d, name, mac(101), "wrong")[0] == 401
    # the user name is the device's MAC; another device's name does not do
    assert curl_digest(d, name, mac(102), pw101)[0] == 401
    code, body = curl_digest(d, name, mac(101), pw101)
    assert code == 200 and demo.passwords["acme-101"].encode() in body
    assert curl_digest(d, name, mac(101).upper(), pw101)[0] == 200


def test_source_networks(acme):
    d, demo = acme
    name = line_file(mac(103))
    set_org_prov(d, {"networks": "10.0.0.0/8, 192.168.0.0/16"})
    st, _, body = prov_get(d, name)
    assert st == 403 and demo.passwords["acme-103"].encode() not in body
    ev = events(d, type="prov.denied", device=mac(103))
    assert len(ev) == 1 and ev[0]["detail"]["reason"] == "network", ev
    assert prov_get(d, line_file(GLOBEX_MAC))[0] == 200
    set_org_prov(d, {"networks": "127.0.0.0/8"})
    assert prov_get(d, name)[0] == 200
    st, js = d.admin("PATCH", "/api/v1/orgs/acme", {"provisioning": {"networks": "300.1.2.3/8"}})
    assert st == 400, js
    set_org_prov(d, {"networks": None})
    assert prov_get(d, name)[0] == 200


def test_polycom_log_uploads_and_overrides(make_daemon, tmp_path):
    logs = tmp_path / "phone-logs"
    d = make_daemon({"provisioning": {"phone_logs": str(logs), "log_max": "4096"}})
    import hdharness
    hdharness.build_demo(d)
    m = mac(101)
    text = b"0101 boot: ok\n" * 20
    st, _, _ = d.request("PUT", "/provision/%s-app.log" % m, text)
    assert st in (200, 201, 204)
    assert (logs / ("%s-app.log" % m)).read_bytes() == text
    st, _, _ = d.request("PUT", "/provision/%s-boot.log" % m.upper(), b"updater\n")
    assert st in (200, 201, 204)
    assert (logs / ("%s-boot.log" % m)).read_bytes() == b"updater\n"
    # size cap
    st, _, _ = d.request("PUT", "/provision/%s-app.log" % m, b"x" * 5000)
    assert st == 413
    assert (logs / ("%s-app.log" % m)).read_bytes() == text
    # an unknown device's log is a miss
    assert d.request("PUT", "/provision/0004f2fff000-app.log", b"x")[0] == 404
    # override files written by the phone are refused and never served:
    # what is served is the empty override (test_phones.py)
    for f in ("%s-phone.cfg" % m, "%s-web.cfg" % m, "%s-line.cfg" % m, "common.cfg"):
        st, _, _ = d.request("PUT", "/provision/" + f, b"<x/>")
        assert st == 403, f
    for f in ("%s-phone.cfg" % m, "%s-web.cfg" % m, "%s-line.cfg" % m):
        assert b"<x/>" not in prov_get(d, f)[2], f
    assert sorted(os.listdir(logs)) == [".hotdeskd-tmp", "%s-app.log" % m, "%s-boot.log" % m]
    assert os.listdir(logs / ".hotdeskd-tmp") == [], "temporary files left"


def test_startup_reconcile_of_the_tftp_root(prov):
    d, demo, tftp = prov
    root = tftp.root
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    check_published(d, demo, tftp)
    d.stop()
    stale, missing, gone = line_file(mac(101)), line_file(mac(102)), line_file(mac(104))
    with open(os.path.join(root, stale), "wb") as f:
        f.write(b'<polycomConfig reg.1.address="stale"/>')
    os.unlink(os.path.join(root, missing))
    with open(os.path.join(root, "foreign.txt"), "wb") as f:
        f.write(b"put here by someone else\n")
    with open(os.path.join(root, "SEP0004F2FFFFFF.cnf.xml"), "wb") as f:
        f.write(b"<device/>")  # looks like ours but was never written by hotdeskd
    # device 104 deleted by a transaction whose unlink never happened
    # (a crash between the commit and the publishing)
    db = sqlite3.connect(d.db_path)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("DELETE FROM devices WHERE mac = ?", (mac(104),))
    db.commit()
    db.close()
    assert os.path.exists(os.path.join(root, gone))
    d.start()
    assert not os.path.exists(os.path.join(root, gone)), "file of a deleted device kept"
    assert open(os.path.join(root, "foreign.txt"), "rb").read() == b"put here by someone else\n"
    assert open(os.path.join(root, "SEP0004F2FFFFFF.cnf.xml"), "rb").read() == b"<device/>"
    assert b"stale" not in tftp.get(stale)
    assert tftp.get(missing) is not None
    for name in os.listdir(root):
        mode = os.stat(os.path.join(root, name)).st_mode & 0o777
        if name == ".hotdeskd-tmp":   # where temporaries are made: private
            assert mode == 0o700, (name, oct(mode))
        elif name not in ("foreign.txt", "SEP0004F2FFFFFF.cnf.xml"):
            assert mode == 0o644, (name, oct(mode))
    assert [n for n in os.listdir(root) if n.startswith(".")] == [".hotdeskd-tmp"]
    # what is left there are spares: replaced files emptied, to be
    # written into (at most 64), holding nothing
    tmp = os.path.join(root, ".hotdeskd-tmp")
    left = {n: os.stat(os.path.join(tmp, n)).st_size for n in os.listdir(tmp)}
    assert len(left) <= 64 and not any(left.values()), "temporary files left: %r" % left
    assert prov_get(d, gone)[0] == 404
    check_published(d, demo, tftp)
    invariants(d)


def test_render_failure_is_the_event_render_failed(prov):
    """A device whose files cannot be rendered at start-up (its profile
    unknown: the database was changed behind hotdeskd's back) is served
    nothing and records the event render.failed (noun.verb), whose detail
    says only that it happened; the other devices are published."""
    d, demo, tftp = prov
    m = mac(103)
    d.stop()
    db = sqlite3.connect(d.db_path)
    db.execute("UPDATE devices SET profile = 'nosuch' WHERE mac = ?", (m,))
    db.commit()
    db.close()
    d.start()
    ev = events(d, type="render.failed", device=m)
    assert len(ev) == 1 and ev[0]["detail"] == {"error": "render failed"}, ev
    assert ev[0]["actor"] is None
    # one name only: no row under the name it had before (render_failed)
    assert [e["type"] for e in events(d, device=m) if "render" in e["type"]] == ["render.failed"]
    assert prov_get(d, line_file(m))[0] == 404
    assert prov_get(d, line_file(mac(101)))[0] == 200


def _last_run_log(d):
    return d.log_text().rsplit("==== harness: starting daemon ====", 1)[-1]


def _clean_record(d):
    """The TFTP root a clean stop recorded as synced, or None."""
    db = sqlite3.connect(d.db_path)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'tftp_clean'").fetchone()
    finally:
        db.close()
    return row[0] if row else None


def test_torn_tftp_file_after_a_crash_is_rewritten_before_ready(prov):
    """Files of the TFTP root are not synced one by one: a clean stop syncs
    them once and records it, and a start without that record (a crash, a
    power loss) compares every file with its render, so a file torn at
    its full size (what a power loss can leave) is rewritten before the
    daemon is ready; after a clean stop a restart trusts the files."""
    d, demo, tftp = prov
    root = tftp.root
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    check_published(d, demo, tftp)
    assert _clean_record(d) is None, "a running daemon's root is recorded clean"
    d.stop()
    assert _clean_record(d) == root
    d.start()
    assert "no clean stop recorded" not in _last_run_log(d)
    assert _clean_record(d) is None, "the clean record outlives the start"
    torn, short = line_file(mac(101)), line_file(mac(102))
    d.kill9()
    want = open(os.path.join(root, torn), "rb").read()
    with open(os.path.join(root, torn), "r+b") as f:   # same size, zeroed tail
        f.seek(len(want) // 2)
        f.write(b"\0" * (len(want) - len(want) // 2))
    with open(os.path.join(root, short), "r+b") as f:
        f.truncate(10)
    d.start()
    assert "no clean stop recorded" in _last_run_log(d)
    assert open(os.path.join(root, torn), "rb").read() == want
    assert tftp.get(torn) == want
    check_published(d, demo, tftp)
    invariants(d)


def _taken_as_is(d):
    """How many devices the last start took as they are (0 if none)."""
    import re
    m = re.search(r"(\d+) devices' files taken as they are", _last_run_log(d))
    return int(m.group(1)) if m else 0


def test_clean_restart_renders_only_what_changed_while_stopped(prov):
    """After a clean stop a restart renders only the devices whose render
    input or templates changed: the others' files are taken as they are in
    the TFTP root (and loaded from it on their first HTTP fetch).  What
    HTTP and TFTP serve is still exactly a fresh render: after a plain
    restart, and after a restart with a setting and a template changed
    in the store while the daemon was stopped."""
    d, demo, tftp = prov
    ndev = len(check_published(d, demo, tftp))
    d.stop()
    d.start()
    assert _taken_as_is(d) == ndev, "an unchanged device was rendered at a clean restart"
    check_published(d, demo, tftp)

    tmpl = d.admin_ok("GET", "/api/v1/templates/yealink/device.cfg")["content"]
    first = tmpl.index("\n") + 1   # after Yealink's version line
    d.stop()
    db = sqlite3.connect(d.db_path)
    try:
        with db:
            db.execute("UPDATE extensions SET display_name = 'Renamed While Stopped' "
                       "WHERE sip_user = 'acme-101'")
            db.execute("UPDATE templates SET active = 0 WHERE profile = 'yealink' "
                       "AND name = 'device.cfg'")
            db.execute("INSERT INTO templates (profile, name, version, content, active, "
                       "comment, created_at) VALUES ('yealink', 'device.cfg', 99, ?, 1, "
                       "'while stopped', 0)",
                       (tmpl[:first] + "# changed while stopped\n" + tmpl[first:],))
    finally:
        db.close()
    d.start()
    # 101's polycom carries the renamed extension; the two yealinks have
    # the new template: three rendered, the rest taken as they are
    assert _taken_as_is(d) == ndev - 3, _last_run_log(d)
    published = check_published(d, demo, tftp)
    assert b"Renamed While Stopped" in published[mac(101)][line_file(mac(101))]
    for m in (mac(102), GLOBEX_MAC):
        assert b"# changed while stopped" in published[m][line_file(m)]
        assert both(d, tftp, line_file(m)) == published[m][line_file(m)]
    invariants(d)


def _stopped_with_a_published_file(prov):
    """Checks what prov's daemon publishes, stops it, and returns the name
    of 102's line file, its published bytes and its path in the TFTP root."""
    d, demo, tftp = prov
    name = line_file(mac(102))
    want = check_published(d, demo, tftp)[mac(102)][name]
    d.stop()
    return name, want, os.path.join(tftp.root, name)


def test_file_changed_in_place_while_stopped_is_not_served(prov):
    """A file of the TFTP root changed in place while the daemon was
    stopped (no name added or removed: its start takes the files as they
    are) is checked against the hash of what was published when HTTP first
    reads it: the phone gets a fresh render, and the TFTP root is
    rewritten with it."""
    d, demo, tftp = prov
    name, want, path = _stopped_with_a_published_file(prov)
    with open(path, "r+b") as f:       # same size, another content
        f.write(b"#" * 16)
    assert open(path, "rb").read() != want
    d.start()
    assert _taken_as_is(d) > 0
    hdharness.served_fresh_and_rewritten(d, name, path, want,
                                         "the TFTP file was not rewritten with a fresh render")
    check_published(d, demo, tftp)


def test_file_replaced_while_stopped_is_rewritten_at_start(prov):
    """A file of the TFTP root replaced while the daemon was stopped with
    another of the same size (an editor writes a new file and renames it
    over the old: the root's directory changed) is rewritten before the
    daemon is ready: after a clean stop only an untouched root is trusted
    by name and size, a touched one is compared by content as after a
    crash, so tftpd never serves what hotdeskd did not publish."""
    d, demo, tftp = prov
    name, want, path = _stopped_with_a_published_file(prov)
    other = path + ".new"
    with open(other, "wb") as f:       # same size, another content
        f.write(b"#" * 16 + want[16:])
    os.chmod(other, 0o644)
    os.rename(other, path)
    assert open(path, "rb").read() != want
    d.start()
    assert open(path, "rb").read() == want, "a replaced file was left in the TFTP root"
    assert tftp.get(name) == want
    check_published(d, demo, tftp)


def test_failed_render_is_refused_up_front(prov):
    """A template that is valid for every sample device but breaks for a
    device without a model: saving it is fine while every polycom device
    has one; then taking a device's model away is refused (409, naming the
    device: its files would not render) and the files stay as they are on
    HTTP and TFTP; a template failing for a real device is refused at
    save, naming it."""
    d, demo, tftp = prov
    import hdharness
    m = mac(101)
    name = line_file(m)
    good = device_files(d, m)[name]
    tmpl = d.admin_ok("GET", "/api/v1/templates/polycom/line.cfg")["content"]
    broken = tmpl.replace("<polycomConfig>", "<polycomConfig>{{^model}}<oops>{{/model}}")
    assert broken != tmpl
    js = d.admin_ok("PUT", "/api/v1/templates/polycom/line.cfg",
                    {"content": broken, "comment": "breaks without a model"})
    assert js["changed"] == []
    st, js = d.admin("PATCH", "/api/v1/devices/" + m, {"model": None})
    assert st == 409 and m in js["error"] and "malformed XML" in js["error"], (st, js)
    assert prov_get(d, name)[2] == good and tftp.get(name) == good
    assert events(d, type="render.failed", device=m) == []
    # a later change of what the device carries renders as usual
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/101", {"display_name": "Alice Renamed"})
    renamed = prov_get(d, name)[2]
    assert b"Alice Renamed" in renamed and tftp.get(name) == renamed
    # the default template back; a device without a model; then a template
    # failing for that device is refused up front, naming it
    d.admin_ok("PUT", "/api/v1/templates/polycom/line.cfg", {"content": tmpl})
    d.admin_ok("PATCH", "/api/v1/devices/" + m, {"model": None})
    st, js = d.admin("PUT", "/api/v1/templates/polycom/line.cfg",
                     {"content": broken.replace("<oops>", "<oops2>")})
    assert st == 400 and js["devices"][0]["mac"] == m, js
    d.admin_ok("PATCH", "/api/v1/devices/" + m, {"model": "VVX_500"})
    hdharness.check_published(d, demo, tftp)


def _last_fetch(d, m):
    db = sqlite3.connect(d.db_path)
    try:
        return db.execute("SELECT f.source, f.user_agent, f.version FROM device_fetch f "
                          "JOIN devices d ON d.id = f.device_id WHERE d.mac = ?",
                          (m,)).fetchone()
    finally:
        db.close()


def _wait_fetch(d, m, want):
    import time
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = _last_fetch(d, m)
        if row is not None and row[1] == want:
            return row
        time.sleep(0.05)
    raise AssertionError("device_fetch of %s: %r, wanted user agent %r"
                         % (m, _last_fetch(d, m), want))


def test_fetches_record_source_user_agent_and_version(acme):
    # each fetch's facts reach the store when they change: version, address
    # or User-Agent (a repeat of the same facts writes nothing)
    d, demo = acme
    m = mac(102)
    name = line_file(m)
    ua1 = "Yealink SIP-T46S 66.86.0.15 " + m
    assert prov_get(d, name, headers={"User-Agent": ua1})[0] == 200
    src, ua, version = _wait_fetch(d, m, ua1)
    assert src == "127.0.0.1" and version >= 1
    ua2 = "Yealink SIP-T46S 66.86.0.20 " + m  # new firmware, same version
    assert prov_get(d, name, headers={"User-Agent": ua2})[0] == 200
    assert _wait_fetch(d, m, ua2)[2] == version
