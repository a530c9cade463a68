"""Every phone family boots right, over HTTP and over TFTP (the real daemon,
curl, a real tftpd-hpa on loopback).

Facts checked here, with their sources:
  * Cisco MPP: a profile rule is [scheme://][server[:port]]/filepath, so
    the per-device rule must be "/$MA.xml" (Cisco IP Phone 7800/8800
    Multiplatform Phones Provisioning Guide, "Profile Rule syntax").
  * Cisco enterprise: transportLayerProtocol 1 TCP, 2 UDP, 3 TLS
    (wazo-provd cisco-sip base.tpl; VENDORS.md); one featureID 9 line at
    least, never an empty <sipLines> (VENDORS.md).
  * Yealink: sip.notify_reboot_enable = 0 and check-sync;reboot=false
    (Yealink CP969 admin guide; wazo-provd v80 template);
    static.auto_provision.custom.protect = 0 (VENDORS.md); accounts left
    out keep their values, so every other account is blanked.
  * Polycom: override files take precedence over server files (Polycom
    UC software / CX5100 admin guides, "Override Files"); the phone
    synchronizes its cached files with the boot server at boot (SoundPoint
    IP admin guide, "Centralized Configuration"): they are served empty.
  * Boot chains (Polycom FAQ "What files does my phone download or
    upload", VENDORS.md): a known phone's usual 404s are not scans.
"""

import concurrent.futures
import re
import urllib.error
import urllib.request

import pytest

import hdharness
from hdharness import GLOBEX_MAC, events, mac, prov_get


def both(d, tftp, name):
    """The file over HTTP and over TFTP: both must serve it, identically."""
    st, _, h = prov_get(d, name)
    t = tftp.get(name)
    assert st == 200, "HTTP %s -> %s" % (name, st)
    assert t is not None, "TFTP %s failed" % name
    assert h == t, "%s: HTTP and TFTP serve different files" % name
    return h


# Every name of the boot chains in docs/PHONES.md that hotdeskd serves.
def boot_names():
    names = {
        # Polycom: master, per-device line file, shared file, empty overrides
        "000000000000.cfg", "common.cfg",
        "%s-line.cfg" % mac(101), "%s-phone.cfg" % mac(101), "%s-web.cfg" % mac(101),
        # Yealink: the model's common file, then <mac>.cfg
        "%s.cfg" % mac(102), "%s.cfg" % GLOBEX_MAC,
        # Cisco MPP: the model bootstrap in every spelling, then <mac>.xml
        "%s.xml" % mac(103),
        # Cisco enterprise
        "SEP%s.cnf.xml" % mac(104).upper(),
    }
    for code in ("000", "066", "108", "109", "036", "067", "052", "053", "044", "069",
                 "046", "123", "124", "096", "097", "025", "077"):
        names.add("y000000000%s.cfg" % code)
    for psn in ("301", "303", "501G", "502G", "504G", "508G", "509G", "512G", "514G",
                "525G", "525G2"):
        names.add("spa%s.cfg" % psn)
        names.add("spa%s.xml" % psn)
    for m in ("6821", "6841", "6851", "6861", "6871", "7811", "7821", "7832", "7841",
              "7861", "8811", "8832", "8841", "8845", "8851", "8861", "8865"):
        names.add("CP-%s-3PCC.xml" % m)
        names.add("%s-3PCC.xml" % m)
    return sorted(names)


def test_every_boot_file_over_http_and_tftp(prov):
    d, demo, tftp = prov
    missing = []
    for name in boot_names():
        st, _, h = prov_get(d, name)
        t = tftp.get(name)
        if st != 200 or t is None or t != h:
            missing.append("%s: HTTP %s, TFTP %s" % (
                name, st, "missing" if t is None else ("same" if t == h else "differs")))
    assert not missing, "boot files not served alike:\n  " + "\n  ".join(missing)


def test_cisco_mpp_rules_are_absolute(prov):
    d, demo, tftp = prov
    for name in ("spa502G.cfg", "CP-8841-3PCC.xml", "8841-3PCC.xml", "spa525G2.xml"):
        body = both(d, tftp, name).decode()
        rules = re.findall(r"<(\w*_Rule(?:_\w*)?)[^>]*>([^<]*)<", body)
        assert rules, name
        for el, val in rules:
            path = re.sub(r"^\[[^\]]*\]", "", val)
            path = re.sub(r"^[a-z]+://[^/]*", "", path)
            assert path.startswith("/"), "%s: %s = %r" % (name, el, val)
        assert "<Profile_Rule_B ua=\"na\">/$MA.xml</Profile_Rule_B>" in body, body


def test_cisco_enterprise_transport_and_parked_line(prov):
    d, demo, tftp = prov
    sep = "SEP%s.cnf.xml" % mac(104).upper()
    assert "<transportLayerProtocol>2</transportLayerProtocol>" in both(d, tftp, sep).decode()
    for tr, want in (("tcp", "1"), ("tls", "3"), ("udp", "2")):
        d.admin_ok("PATCH", "/api/v1/orgs/acme", {"sip_server": {"host": "pbx.acme.test",
                                                                 "port": 5060, "transport": tr}})
        body = both(d, tftp, sep).decode()
        assert "<transportLayerProtocol>%s</transportLayerProtocol>" % want in body, tr
    # 104 moves away: its phone (no parking account) keeps one featureID 9
    # line with the parked label and nothing of 104
    d.star30("acme-101", "104", code=demo.code(104), result="accepted", device=mac(101))
    body = both(d, tftp, sep).decode()
    assert body.count("<line ") == 1 and "<featureID>9</featureID>" in body, body
    assert "<featureLabel>Dial *30 to log in</featureLabel>" in body
    assert "acme-104" not in body and demo.passwords["acme-104"] not in body
    assert "<processNodeName>pbx.acme.test</processNodeName>" in body


def test_yealink_common_file_no_reboot_no_local_edits(prov):
    d, demo, tftp = prov
    for name in ("y000000000066.cfg", "y000000000000.cfg", "y000000000096.cfg"):
        body = both(d, tftp, name).decode()
        lines = body.split("\n")
        assert lines[0] == "#!version:1.0.0.1"
        assert "sip.notify_reboot_enable = 0" in lines
        assert "static.auto_provision.custom.protect = 0" in lines
        for n in range(2, 17):
            assert "account.%d.enable = 0" % n in lines, n
            assert "account.%d.password = %%NULL%%" % n in lines, n
    dev = both(d, tftp, "%s.cfg" % mac(102)).decode()
    assert "account.2." not in dev


def test_polycom_override_files_are_empty(prov):
    d, demo, tftp = prov
    m = mac(101)
    for f in ("%s-phone.cfg" % m, "%s-web.cfg" % m):
        body = both(d, tftp, f).decode()
        assert "<PHONE_CONFIG>" in body and "<OVERRIDES/>" in body, body
        assert "=" not in body.split("?>", 1)[1], "an override file carries parameters"
        assert not any(p in body for p in demo.passwords.values())
        # the phone's upload is refused and changes nothing
        st, _, _ = d.request("PUT", "/provision/" + f, b'<PHONE_CONFIG><OVERRIDES reg.1.address="x"/></PHONE_CONFIG>')
        assert st == 403
        assert both(d, tftp, f).decode() == body
    # the same for the phone after a move: still empty
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    assert "=" not in both(d, tftp, "%s-phone.cfg" % m).decode().split("?>", 1)[1]


# ---- normal boots are not scans -----------------------------------------

def polycom_boot(m):
    """What a Polycom phone asks for at boot (Polycom FAQ, VENDORS.md)."""
    return ["%s.cfg" % m, "000000000000.cfg", "%s-line.cfg" % m, "common.cfg",
            "%s-phone.cfg" % m, "%s-web.cfg" % m, "000000000000-license.cfg",
            "%s-license.cfg" % m, "%s-directory.xml" % m, "000000000000-directory.xml",
            "%s-calls.xml" % m, "sip.ld", "3111-44500-001.sip.ld"]


def cisco_ent_boot(m):
    return ["CTLSEP%s.tlv" % m.upper(), "ITLSEP%s.tlv" % m.upper(), "ITLFile.tlv",
            "SEP%s.cnf.xml" % m.upper(), "XMLDefault.cnf.xml"]


def yealink_boot(m):
    return ["%s.boot" % m, "y000000000000.boot", "y000000000066.cfg", "%s.cfg" % m,
            "T46-28.83.0.120.rom"]


def mpp_boot(m):
    return ["CP-8841-3PCC.xml", "%s.xml" % m, "spa%s.xml" % m]


BOOTS = {"polycom": polycom_boot, "cisco-enterprise": cisco_ent_boot,
         "yealink": yealink_boot, "cisco-mpp": mpp_boot}


def fetch(port, name):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/provision/%s" % (port, name),
                                    timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_200_phones_behind_one_address_boot_together(make_daemon):
    """200 phones behind one NAT address (all from 127.0.0.1) boot at once
    with the default miss threshold (20): each asks for its usual files,
    404s included, and none is blocked."""
    d = make_daemon()
    d.admin_ok("PUT", "/api/v1/orgs/acme", {"name": "acme", "sip_server": {
        "host": "pbx.acme.test", "port": 5060, "transport": "udp"}})
    profiles = sorted(BOOTS)
    phones = []
    for i in range(200):
        m = "0004f2%06x" % (0x100000 + i)
        prof = profiles[i % len(profiles)]
        d.admin_ok("PUT", "/api/v1/devices/" + m, {"org": "acme", "profile": prof})
        phones.append((m, prof))
    reqs = [(m, name) for m, prof in phones for name in BOOTS[prof](m)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
        codes = list(ex.map(lambda r: (r, fetch(d.port, r[1])), reqs))
    blocked = [r for r, c in codes if c == 403]
    assert not blocked, "%d of %d requests blocked, e.g. %r" % (len(blocked), len(codes), blocked[:5])
    # every phone got its own per-device file
    served = {r[1] for r, c in codes if c == 200}
    for m, prof in phones:
        own = {"polycom": "%s-line.cfg" % m, "cisco-enterprise": "SEP%s.cnf.xml" % m.upper(),
               "yealink": "%s.cfg" % m, "cisco-mpp": "%s.xml" % m}[prof]
        assert own in served, own
    assert events(d, type="prov.throttled") == []
    # an unknown MAC still counts: a scanner from the same address is stopped
    scan = [fetch(d.port, "0004f2ff%04x-line.cfg" % i) for i in range(25)]
    assert scan[0] == 404 and scan[-1] == 403, scan
    assert len(events(d, type="prov.throttled")) == 1


def test_cisco_enterprise_30_character_limits_at_the_api(acme):
    """name, displayName, authName, authPassword and featureLabel take at
    most 30 characters on a Cisco enterprise phone (VENDORS.md): longer
    values are refused at the API, naming the field, and nothing changes.
    An extension can be carried by any phone, so the limit applies to
    every extension; a parking account to cisco-enterprise devices."""
    d, demo = acme
    before = hdharness.snapshot(d)
    n_events = len(events(d))
    ok30, bad31 = "\u00e9" * 2 + "a" * 28, "\u00e9" * 2 + "a" * 29
    path = "/api/v1/orgs/acme/extensions/102"
    for field in ("display_name", "label", "sip_password"):
        st, js = d.admin("PATCH", path, {field: bad31})
        assert st == 400 and js["field"] == field, (field, st, js)
        assert "30" in js["error"] and bad31 not in js["error"], js
    st, js = d.admin("PUT", "/api/v1/orgs/acme/extensions/190",
                     {"sip_user": "acme-190-" + "u" * 22, "sip_password": "pw-190-x"})
    assert st == 400 and js["field"] == "sip_user", (st, js)
    st, js = d.admin("PATCH", "/api/v1/devices/" + mac(104),
                     {"parking": {"sip_user": "park-104", "sip_password": bad31}})
    assert st == 400 and js["field"] == "parking.sip_password", (st, js)
    assert hdharness.snapshot(d) == before
    assert len(events(d)) == n_events
    # 30 characters pass and reach the phone whole
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/104", {"display_name": ok30})
    st, _, body = prov_get(d, "SEP%s.cnf.xml" % mac(104).upper())
    assert st == 200 and ("<displayName>%s</displayName>" % ok30).encode() in body
