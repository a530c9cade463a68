"""Mutual TLS for phones (issue 13): an organization's phones prove
themselves with their factory certificate, signed by their vendor's CA
([client_ca] bundles) and naming their MAC where the vendor puts it.

A test CA per vendor and the device certificates are made in the run
(tlsutil, openssl); curl is the phone, with and without a client
certificate.  Refusals are 403, count as misses for the scanner throttle
and are recorded as prov.denied events; the rule combines with the
organization's source networks and digest credentials.
"""

import http.client
import signal
import ssl
import subprocess
import threading
import time

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


def test_revoked_by_the_bundles_crl(make_daemon, phones, tmp_path):
    """A factory certificate its vendor revoked: on a CRL of [client_crl]
    (here one past its next update: a stale list still revokes) or kept
    in the bundle file itself.  403, an event, a client-cert log line and
    a miss; the vendor's other certificates are still served."""
    old101 = phones.device(phones.poly, "old101", mac(101))
    new101 = phones.device(phones.poly, "new101", mac(101))
    old102 = phones.device(phones.yea, "old102", "00:04:F2:00:01:02")
    new102 = phones.device(phones.yea, "new102", "00:04:F2:00:01:02")
    poly_crl = tlsutil.crl(phones.poly, str(tmp_path / "polycom.crl"), [old101[0]],
                           this_update="2024-01-01 00:00:00",
                           next_update="2024-02-01 00:00:00")
    yea_bundle = str(tmp_path / "yealink-bundle.pem")
    yea_crl = tlsutil.crl(phones.yea, str(tmp_path / "yealink.crl"), [old102[0]])
    with open(yea_bundle, "w") as f:
        f.write(open(phones.yea.cert).read() + open(yea_crl).read())
    d, demo, port = start(make_daemon, phones, tmp_path, {
        "client_ca": {"yealink": yea_bundle}, "client_crl": {"polycom": poly_crl},
        "provisioning": {"miss_threshold": "3", "miss_window": "60"}})
    set_prov(d, {"client_cert": "required"})
    for m, cert in ((mac(101), new101), (mac(102), new102)):
        st, body = fetch(phones, port, m, cert)
        assert st == 200 and demo.passwords["acme-" + m[-3:]].encode() in body, (m, st)
    for m, cert in ((mac(101), old101), (mac(102), old102)):
        st, body = fetch(phones, port, m, cert)
        assert st == 403 and b"revoked certificate" in body, (m, st, body)
        assert demo.passwords["acme-" + m[-3:]].encode() not in body
        assert [e["reason"] for e in denied(d, m)] == ["revoked certificate"], denied(d, m)
    assert "kind=client-cert reason=revoked" in d.log_text(), d.log_tail()
    # refusals are misses: the third blocks the source, good certificate or not
    assert fetch(phones, port, mac(101), old101)[0] == 403
    st, body = fetch(phones, port, mac(101), new101)
    assert st == 403 and b"too many" in body, (st, body)
    assert len(events(d, type="prov.throttled")) == 1


def test_crls_are_checked_at_start(make_daemon, phones, tmp_path):
    """A CRL signed by no CA of its bundle, a file without a CRL, a CRL for
    a family without a bundle: --check-config and start-up refuse them."""
    rogue_crl = tlsutil.crl(phones.rogue, str(tmp_path / "rogue.crl"))
    poly_crl = tlsutil.crl(phones.poly, str(tmp_path / "polycom.crl"))
    cases = [({"client_ca": {"polycom": phones.poly.cert},
               "client_crl": {"polycom": rogue_crl}}, "not signed by a CA"),
             ({"client_ca": {"polycom": phones.poly.cert},
               "client_crl": {"polycom": phones.poly.cert}}, "polycom"),
             ({"client_ca": {"polycom": phones.poly.cert},
               "client_crl": {"polycom": str(tmp_path / "missing.crl")}}, "cannot read"),
             ({"client_crl": {"yealink": poly_crl}}, "no [client_ca] yealink bundle")]
    for over, msg in cases:
        d = hdharness.Daemon(tmp_path)
        d.write_config(over)
        p = subprocess.run([d.binary, "--config", d.config_path, "--check-config"],
                           capture_output=True, timeout=30)
        assert p.returncode == 1 and msg in p.stderr.decode(), (over, p.stderr)
        assert b"client_crl" in p.stderr, p.stderr
    d = hdharness.Daemon(tmp_path)
    d.write_config({"client_ca": {"polycom": phones.poly.cert},
                    "client_crl": {"polycom": poly_crl}})
    p = subprocess.run([d.binary, "--config", d.config_path, "--check-config"],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr


def ca_names(port, cafile):
    """The CA names a new TLS connection is asked a client certificate of
    (openssl s_client)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-CAfile", cafile], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    out = p.stdout.decode()
    if "Acceptable client certificate CA names" not in out:
        return []
    names = out.split("Acceptable client certificate CA names", 1)[1].splitlines()[1:]
    return [n for n in (x.strip() for x in names[:8]) if "Test CA" in n]


def test_bundles_and_crls_reload_without_dropping_connections(make_daemon, phones, tmp_path):
    """SIGHUP reads the bundles and CRLs again: a vendor added to
    [client_ca] is trusted and asked for by the next connections, a
    certificate revoked since is refused at once, even on a connection
    opened before; no connection is dropped, no handshake fails; a CRL
    that does not load keeps the lists in force."""
    crl_file = str(tmp_path / "polycom.crl")
    tlsutil.crl(phones.poly, crl_file)
    over = {"listener2": {"listen": "127.0.0.1", "port": "0",
                          "port_file": str(tmp_path / "https.port"), "tls": "true",
                          "serves": "phones"},
            "tls": {"cert": phones.cert, "key": phones.key},
            "client_ca": {"polycom": phones.poly.cert, "yealink": "", "cisco-mpp": "",
                          "cisco-enterprise": ""},
            "client_crl": {"polycom": crl_file}}
    d, demo, port = start(make_daemon, phones, tmp_path, over)
    set_prov(d, {"client_cert": "required"})
    p101 = phones.device(phones.poly, "p101", mac(101))
    y102 = phones.device(phones.yea, "y102", mac(102))
    assert ca_names(port, phones.server_ca.cert) == ["O = polycom, CN = polycom Test CA"]
    st, body = fetch(phones, port, mac(102), y102)
    assert st == 403 and b"no trusted bundle" in body, (st, body)

    # two connections kept open across the reloads: a phone with its
    # certificate, and a client without one fetching the shared file
    mine = http.client.HTTPSConnection("127.0.0.1", port, timeout=20,
                                       context=tlsutil.context(phones.server_ca.cert, *p101))
    plain = http.client.HTTPSConnection("127.0.0.1", port, timeout=20,
                                        context=tlsutil.context(phones.server_ca.cert))

    def get(c, name):
        c.request("GET", "/provision/" + name)
        r = c.getresponse()
        return r.status, r.read()

    assert get(mine, line_file(mac(101)))[0] == 200
    assert get(plain, "000000000000.cfg")[0] == 200
    socks = (mine.sock.getsockname(), plain.sock.getsockname())

    # new handshakes all along: none may fail while the CAs are swapped
    stop, failures, count = threading.Event(), [], [0]

    def handshakes():
        ctx = tlsutil.context(phones.server_ca.cert, *p101)
        while not stop.is_set():
            c = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, context=ctx)
            try:
                c.request("GET", "/provision/000000000000.cfg",
                          headers={"Connection": "close"})
                r = c.getresponse()
                if r.status != 200 or not r.read():
                    failures.append(r.status)
                count[0] += 1
            except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                failures.append(repr(e))
            finally:
                c.close()

    def reload():
        want = d.log_text().count("configuration reloaded from") + 1
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while d.log_text().count("configuration reloaded from") < want:
            assert time.monotonic() < deadline, d.log_tail()
            time.sleep(0.05)

    loader = threading.Thread(target=handshakes)
    loader.start()
    try:
        # the Yealink bundle added, p101 revoked by a new CRL
        tlsutil.crl(phones.poly, crl_file, [p101[0]], number=2)
        over["client_ca"]["yealink"] = phones.yea.cert
        d.write_config(over)
        reload()
        st, body = get(mine, line_file(mac(101)))
        assert st == 403 and b"revoked certificate" in body, (st, body)
        assert fetch(phones, port, mac(101), p101)[0] == 403
        st, body = fetch(phones, port, mac(102), y102)
        assert st == 200 and demo.passwords["acme-102"].encode() in body, (st, body)
        assert sorted(ca_names(port, phones.server_ca.cert)) == [
            "O = polycom, CN = polycom Test CA", "O = yealink, CN = yealink Test CA"]
        # a CRL file that does not load: the lists in force stay
        with open(crl_file, "w") as f:
            f.write("not a CRL\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "keeping the client CA bundles and CRLs in force" not in d.log_text():
            assert time.monotonic() < deadline, d.log_tail()
            time.sleep(0.05)
        assert fetch(phones, port, mac(101), p101)[0] == 403
        assert fetch(phones, port, mac(102), y102)[0] == 200
        # the revocation lifted: the kept connection is served again
        tlsutil.crl(phones.poly, crl_file, number=3)
        reload()
        st, body = get(mine, line_file(mac(101)))
        assert st == 200 and demo.passwords["acme-101"].encode() in body, st
        assert get(plain, "000000000000.cfg")[0] == 200
    finally:
        stop.set()
        loader.join(30)
    # the same two connections all along
    assert (mine.sock.getsockname(), plain.sock.getsockname()) == socks
    mine.close()
    plain.close()
    assert not failures, failures[:5]
    assert count[0] >= 3, count


def test_resumed_sessions_keep_the_phones_certificate(make_daemon, phones, tmp_path):
    """A phone that reconnects resumes its TLS session (session tickets):
    the resumed session still proves the phone by the certificate of its
    first handshake, for its own file and against other files."""
    d, demo, port = start(make_daemon, phones, tmp_path)
    set_prov(d, {"client_cert": "required"})
    ctx = tlsutil.context(phones.server_ca.cert, *phones.device(phones.poly, "p101", mac(101)))
    path = "/provision/" + line_file(mac(101))
    st, body, session, reused = tlsutil.get_once(port, path, ctx)
    assert st == 200 and not reused, st
    for _ in range(3):
        st, body, session, reused = tlsutil.get_once(port, path, ctx, session)
        assert reused, "session not resumed"
        assert st == 200 and demo.passwords["acme-101"].encode() in body, (st, body)
    st, body, _, reused = tlsutil.get_once(port, "/provision/" + line_file(mac(102)), ctx,
                                           session)
    # (a Yealink's file: a Polycom certificate does not prove it)
    assert reused and st == 403 and b"untrusted certificate" in body, (reused, st, body)
    # a client without a certificate resumes as one without a certificate
    bare = tlsutil.context(phones.server_ca.cert)
    _, _, s2, _ = tlsutil.get_once(port, "/provision/000000000000.cfg", bare)
    st, body, _, reused = tlsutil.get_once(port, path, bare, s2)
    assert reused and st == 403 and b"client certificate" in body, (reused, st, body)


def test_session_tickets_can_be_turned_off(make_daemon, phones, tmp_path):
    d, demo, port = start(make_daemon, phones, tmp_path, {"tls": {"session_tickets": "false"}})
    ctx = tlsutil.context(phones.server_ca.cert)
    st, _, session, _ = tlsutil.get_once(port, "/provision/000000000000.cfg", ctx)
    st2, _, _, reused = tlsutil.get_once(port, "/provision/000000000000.cfg", ctx, session)
    assert st == st2 == 200 and not reused
