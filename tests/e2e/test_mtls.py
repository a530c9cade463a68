"""Mutual TLS for phones (issue 13): an organization's phones prove
themselves with their factory certificate, signed by their vendor's CA
([client_ca] bundles) and naming their MAC where the vendor puts it.

A test CA per vendor and the device certificates are made in the run
(tlsutil, openssl); curl is the phone, with and without a client
certificate.  Refusals are 403, count as misses for the scanner throttle
and are recorded as prov.denied events; the rule combines with the
organization's source networks and digest credentials.
"""

import subprocess

import pytest

import hdharness
import tlsutil
from hdharness import GLOBEX_MAC, events, mac
from test_https import wait_port


def line_file(m):
    return {mac(101): "%s-line.cfg" % m, mac(102): "%s.cfg" % m, mac(103): "%s.xml" % m,
            mac(104): "SEP%s.cnf.xml" % m.upper(), GLOBEX_MAC: "%s.cfg" % m}[m]


class Phones:
    """The PKI of a test: server CA and certificate, one CA per vendor, and
    a rogue CA nobody trusts."""

    def __init__(self, tmp_path):
        base = tmp_path / "pki"
        self.server_ca = tlsutil.CA(base, "server")
        self.cert, self.key = tlsutil.server_cert(self.server_ca)
        self.poly = tlsutil.CA(base, "polycom")
        self.yea = tlsutil.CA(base, "yealink")
        self.cisco = tlsutil.CA(base, "cisco")
        self.rogue = tlsutil.CA(base, "rogue")

    def device(self, ca, stem, cn, **kw):
        return ca.issue(stem, "/O=Phone Maker/CN=%s" % cn, **kw)


@pytest.fixture
def phones(tmp_path):
    return Phones(tmp_path)


def start(make_daemon, phones, tmp_path, extra=None):
    pf = str(tmp_path / "https.port")
    over = {"listener2": {"listen": "127.0.0.1", "port": "0", "port_file": pf,
                          "tls": "true", "serves": "phones"},
            "tls": {"cert": phones.cert, "key": phones.key},
            "client_ca": {"polycom": phones.poly.cert, "yealink": phones.yea.cert,
                          "cisco-mpp": phones.cisco.cert,
                          "cisco-enterprise": phones.cisco.cert}}
    for sect, kv in (extra or {}).items():
        over.setdefault(sect, {}).update(kv)
    d = make_daemon(over)
    demo = hdharness.build_demo(d)
    return d, demo, wait_port(pf)


def set_prov(d, prov, org="acme"):
    d.admin_ok("PATCH", "/api/v1/orgs/" + org, {"provisioning": prov})


def fetch(phones, port, m, cert=None, extra=()):
    c, k = cert if cert else (None, None)
    return tlsutil.curl(port, "/provision/" + line_file(m), phones.server_ca.cert, c, k,
                        extra)


def denied(d, m):
    return [e["detail"] for e in events(d, type="prov.denied", device=m)]


def test_required_factory_certificates(make_daemon, phones, tmp_path):
    d, demo, port = start(make_daemon, phones, tmp_path)
    set_prov(d, {"client_cert": "required"})
    assert d.admin_ok("GET", "/api/v1/orgs/acme")["provisioning"]["client_cert"] == "required"
    # where each vendor puts the MAC: Polycom and Yealink the common name
    # (any case, with or without separators), Cisco "...SEP<MAC>"
    good = {
        mac(101): phones.device(phones.poly, "p101", mac(101)),
        mac(102): phones.device(phones.yea, "y102", "00:04:F2:00:01:02"),
        mac(103): phones.device(phones.cisco, "c103", "CP-8841-3PCC-SEP0004F2000103"),
        mac(104): phones.device(phones.cisco, "c104", "CP-8845-SEP0004F2000104"),
    }
    for m, cert in good.items():
        st, body = fetch(phones, port, m, cert)
        assert st == 200 and demo.passwords["acme-" + m[-3:]].encode() in body, (m, st, body)
    # no certificate: over HTTPS, and over plain HTTP
    st, body = fetch(phones, port, mac(101))
    assert st == 403 and b"client certificate" in body, (st, body)
    assert demo.passwords["acme-101"].encode() not in body
    st, _, body = hdharness.prov_get(d, line_file(mac(101)))
    assert st == 403 and b"HTTPS" in body, (st, body)
    # a valid certificate of another phone of the same vendor
    st, body = fetch(phones, port, mac(101), phones.device(phones.poly, "p105", mac(105)))
    assert st == 403 and b"another mac" in body, (st, body)
    # one refused-authentication line for fail2ban (docs/OPERATIONS.md)
    assert "kind=client-cert reason=wrong-mac" in d.log_text(), d.log_tail()
    # expired, not yet valid
    expired = phones.device(phones.poly, "old101", mac(101), not_before="20200101000000Z",
                            not_after="20210101000000Z")
    st, body = fetch(phones, port, mac(101), expired)
    assert st == 403 and b"expired" in body, (st, body)
    future = phones.device(phones.poly, "new101", mac(101), not_before="20900101000000Z",
                           not_after="20910101000000Z")
    st, body = fetch(phones, port, mac(101), future)
    assert st == 403 and b"not yet valid" in body, (st, body)
    # signed by a CA outside the bundle: a rogue CA, and another vendor's
    # (a Yealink certificate does not prove a Polycom)
    for stem, ca in (("rogue101", phones.rogue), ("yea101", phones.yea)):
        st, body = fetch(phones, port, mac(101), phones.device(ca, stem, mac(101)))
        assert st == 403 and b"untrusted" in body, (stem, st, body)
    # a certificate without a MAC in its subject
    st, body = fetch(phones, port, mac(101), phones.device(phones.poly, "nomac", "phone"))
    assert st == 403 and b"names no mac" in body, (st, body)
    # every refusal is an event naming why (and the MAC a certificate names)
    reasons = [e["reason"] for e in denied(d, mac(101))]
    assert reasons == ["no certificate", "no certificate", "certificate of another mac",
                       "expired certificate", "certificate not yet valid",
                       "untrusted certificate", "untrusted certificate",
                       "certificate names no mac"], reasons
    wrong = [e for e in denied(d, mac(101)) if e["reason"] == "certificate of another mac"]
    assert wrong[0]["certificate_mac"] == mac(105), wrong
    # another organization without the rule: served as before
    assert fetch(phones, port, GLOBEX_MAC)[0] == 200
    # shared files carry no secret and stay open
    assert tlsutil.curl(port, "/provision/000000000000.cfg", phones.server_ca.cert)[0] == 200


def test_wrong_mac_counts_as_a_miss(make_daemon, phones, tmp_path):
    """A phone with a valid certificate asking for other phones' files is
    scanning: the throttle blocks its source."""
    d, demo, port = start(make_daemon, phones, tmp_path,
                          {"provisioning": {"miss_threshold": "3", "miss_window": "60"}})
    set_prov(d, {"client_cert": "required"})
    mine = phones.device(phones.poly, "p101", mac(101))
    assert fetch(phones, port, mac(101), mine)[0] == 200
    codes = [fetch(phones, port, m, mine)[0] for m in (mac(102), mac(103), mac(104))]
    assert codes == [403, 403, 403], codes
    # blocked now, even for its own file
    st, body = fetch(phones, port, mac(101), mine)
    assert st == 403 and b"too many" in body, (st, body)
    ev = events(d, type="prov.throttled")
    assert len(ev) == 1 and ev[0]["detail"]["source"] == "127.0.0.1", ev


def test_optional_and_combined_rules(make_daemon, phones, tmp_path):
    d, demo, port = start(make_daemon, phones, tmp_path)
    mine = phones.device(phones.poly, "p101", mac(101))
    other = phones.device(phones.poly, "p102", mac(102))
    # optional: no certificate passes, a good one passes, a bad one does not
    set_prov(d, {"client_cert": "optional"})
    assert fetch(phones, port, mac(101))[0] == 200
    assert fetch(phones, port, mac(101), mine)[0] == 200
    assert fetch(phones, port, mac(101), other)[0] == 403
    # with digest credentials: the certificate does not replace them
    secret = "dl-Shared-7c1e2a"
    d.secrets.add(secret)
    set_prov(d, {"client_cert": "required", "auth": "shared", "username": "phones",
                 "password": secret})
    assert fetch(phones, port, mac(101), mine)[0] == 401
    dig = ["--digest", "-u", "phones:" + secret]
    st, body = fetch(phones, port, mac(101), mine, dig)
    assert st == 200 and demo.passwords["acme-101"].encode() in body, st
    assert fetch(phones, port, mac(101), None, dig)[0] == 403
    assert fetch(phones, port, mac(101), other, dig)[0] == 403
    # with source networks: refused by the network first
    set_prov(d, {"networks": "10.0.0.0/8"})
    st, body = fetch(phones, port, mac(101), mine, dig)
    assert st == 403 and b"source address" in body, (st, body)
    assert denied(d, mac(101))[-1]["reason"] == "network"
    set_prov(d, {"networks": None, "client_cert": "none", "auth": "none"})
    assert fetch(phones, port, mac(101))[0] == 200
    # bad values change nothing
    st, js = d.admin("PATCH", "/api/v1/orgs/acme", {"provisioning": {"client_cert": "maybe"}})
    assert st == 400 and js.get("field") == "provisioning.client_cert", js
    assert d.admin_ok("GET", "/api/v1/orgs/acme")["provisioning"]["client_cert"] == "none"


def test_bundles_are_checked_at_start(make_daemon, phones, tmp_path):
    d = hdharness.Daemon(tmp_path)
    d.write_config({"client_ca": {"polycom": str(tmp_path / "missing.pem")}})
    p = subprocess.run([d.binary, "--config", d.config_path, "--check-config"],
                       capture_output=True, timeout=30)
    assert p.returncode == 1 and b"polycom" in p.stderr, p.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    d.write_config({"client_ca": {"yealink": str(bad)}})
    p = subprocess.run([d.binary, "--config", d.config_path, "--check-config"],
                       capture_output=True, timeout=30)
    assert p.returncode == 1 and b"yealink" in p.stderr, p.stderr
