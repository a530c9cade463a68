"""End to end: HTTP digest for phone downloads cannot be replayed.

A phone's Authorization header, captured off the network, must not fetch
the file (and its SIP password) a second time: hotdeskd keeps the highest
nonce count (nc) answered per nonce and refuses the same or a lower one
with a fresh challenge (stale=true, what a phone retries at once).
Answers in the RFC 2069 form (no qop, hence no nc) are refused.  The
client here is the test itself (hashlib), so it controls nc exactly; curl
checks that a real client still gets in, twice in a row.
"""

import hashlib
import re
import subprocess

from hdharness import mac

REALM = "hotdeskd"


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def challenge(d, path):
    st, h, _ = d.request("GET", path)
    assert st == 401, st
    c = h["www-authenticate"]
    assert 'qop="auth"' in c, c
    return re.search(r'nonce="([^"]+)"', c).group(1), c


def authz(user, pw, path, nonce, nc=None, cnonce="0a4f113b"):
    ha1, ha2 = md5("%s:%s:%s" % (user, REALM, pw)), md5("GET:" + path)
    if nc is None:    # RFC 2069
        resp = md5("%s:%s:%s" % (ha1, nonce, ha2))
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"'
                % (user, REALM, nonce, path, resp))
    ncs = "%08x" % nc
    resp = md5("%s:%s:%s:%s:auth:%s" % (ha1, nonce, ncs, cnonce, ha2))
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
            'algorithm=MD5, qop=auth, nc=%s, cnonce="%s"' % (user, REALM, nonce, path, resp,
                                                          ncs, cnonce))


def test_captured_authorization_cannot_be_replayed(acme):
    d, demo = acme
    pw = "dl-Replay-51c0e9"
    d.secrets.add(pw)
    d.admin_ok("PATCH", "/api/v1/orgs/acme",
               {"provisioning": {"auth": "shared", "username": "phones", "password": pw}})
    path = "/provision/%s-line.cfg" % mac(101)
    secret = demo.passwords["acme-101"].encode()

    nonce, _ = challenge(d, path)
    h1 = authz("phones", pw, path, nonce, 1)
    st, _, body = d.request("GET", path, headers={"Authorization": h1})
    assert st == 200 and secret in body
    # the captured header, replayed: refused, nothing served, a fresh nonce
    for _ in range(3):
        st, h, body = d.request("GET", path, headers={"Authorization": h1})
        assert st == 401 and secret not in body, st
        assert "stale=true" in h["www-authenticate"], h["www-authenticate"]
    # the phone itself goes on with the next count, even after the replays
    st, _, body = d.request("GET", path, headers={"Authorization": authz("phones", pw, path,
                                                                         nonce, 2)})
    assert st == 200 and secret in body
    # a lower count than the last one is a replay too
    st, _, body = d.request("GET", path, headers={"Authorization": authz("phones", pw, path,
                                                                         nonce, 2)})
    assert st == 401 and secret not in body

    # RFC 2069 (no qop, no nc): right password, still refused
    nonce, _ = challenge(d, path)
    st, _, body = d.request("GET", path, headers={"Authorization": authz("phones", pw, path,
                                                                         nonce)})
    assert st == 401 and secret not in body

    # every challenge has its own nonce (two phones never share counts)
    assert challenge(d, path)[0] != challenge(d, path)[0]

    # a real client (curl --digest) gets in, twice in a row
    for _ in range(2):
        p = subprocess.run(["curl", "-s", "--digest", "-u", "phones:" + pw, "-o", "-", "-w",
                            "\n%{http_code}", "--max-time", "5",
                            "http://127.0.0.1:%d%s" % (d.port, path)],
                           capture_output=True, timeout=10)
        body, _, code = p.stdout.rpartition(b"\n")
        assert code == b"200" and secret in body, code
