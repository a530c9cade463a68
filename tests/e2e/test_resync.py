"""End to end: resync NOTIFYs (SPEC 5) from the real daemon to sipp phones.

Each phone is one sipp UAS on its own loopback port (scenarios in
tests/sip/), registered through POST /pbx/v1/registrations with the
identity it carries before a move.  sipp's message log (-trace_msg) tells
what arrived: how many NOTIFYs, their Request-URI, Event, body and
Authorization.  What is checked:
  * a *30 move NOTIFYs exactly the changed phones (base, parked home,
    displaced extension's phone), once each, at the contact each phone
    registered before the move (never the moved extension's address of
    record), with each profile's Event; none for an unchanged phone;
  * Cisco enterprise's service-control body with the REGISTER's Call-ID;
  * a 401 answered with the credentials of the line the phone carries;
  * a phone that never answers: retransmissions, then a failed result;
  * confirmation: a fetch of the new version makes a device synced, a
    phone that does not fetch is notified again and ends stale;
  * kill -9 with unconfirmed resyncs: after restart they are sent.
"""

import os
import re
import signal
import subprocess
import time
import uuid
from xml.sax.saxutils import escape

import pytest

import hdharness
from hdharness import mac

SIP_DIR = os.path.join(hdharness.REPO, "tests", "sip")
FAST = {"t1_ms": "100", "timer_f_ms": "1000"}

# the per-device file each demo phone fetches (VENDORS.md)
FILE_OF = {
    "101": "%s-line.cfg" % mac(101),                 # polycom
    "102": "%s.cfg" % mac(102),                      # yealink
    "103": "%s.xml" % mac(103),                      # cisco-mpp
    "104": "SEP%s.cnf.xml" % mac(104).upper(),       # cisco-enterprise
}


class SippPhone:
    """One phone: sipp as a UAS on 127.0.0.1 running `scenario`.

    Its SIP port is a hdharness.UdpReservation: held by the harness until
    the moment sipp starts, given to sipp with -p, and sipp is started again
    if it could not bind it (on a fresh port, or on the same one when the
    test passed its own reservation as `port` because it needs the port
    before the phone runs).  sipp's media and control ports are left to
    sipp, which takes the first it can bind (from 6000 and 8888).  Not
    sipp's own choice of SIP port: it scans from 5060, where other daemons
    on this host send their NOTIFYs.  Ready when sipp's own sockets are
    bound, the control socket (on 0.0.0.0, opened last) included."""

    def __init__(self, tmp_path, scenario, name, calls=5, port=None):
        self.dir = str(tmp_path)
        self.name = name
        self.fixed = port               # the test's reservation, or None
        self.port = port.port if port is not None else None
        self.msglog = os.path.join(self.dir, "sipp-%s-messages.log" % name)
        self.outlog = os.path.join(self.dir, "sipp-%s.out" % name)
        self.scenario = scenario
        self.calls = calls
        self.peer = hdharness.Peer("sipp %s" % name, self.outlog)

    @property
    def proc(self):
        return self.peer.proc

    def _spawn(self):
        r = self.fixed if self.fixed is not None else hdharness.UdpReservation()
        self.port = r.port
        r.release()
        self.peer.spawn(["sipp", "-sf", self.scenario, "-i", "127.0.0.1", "-p", str(self.port),
                         "-m", str(self.calls), "-nostdin", "-timeout", "25s", "-timeout_error",
                         "-trace_msg", "-message_file", self.msglog],
                        cwd=self.dir, ports=(self.port,))

    def _bound(self, socks):
        ready = any(h == "0.0.0.0" for _, h, _ in socks) and \
            any(h == "127.0.0.1" and p == self.port for _, h, p in socks)
        return self.port if ready else None

    def start(self):
        hdharness.start_bound(self.peer, self._spawn, self._bound)
        return self

    def contact(self, user):
        return "sip:%s@127.0.0.1:%d" % (user, self.port)

    def output(self):
        return self.peer.report()

    def messages(self, direction="received"):
        """Messages in sipp's log: [(start line, {header: [values]}, body)]."""
        try:
            with open(self.msglog, "rb") as f:
                text = f.read().decode("utf-8", "replace").replace("\r\n", "\n")
        except FileNotFoundError:
            return []
        out = []
        for block in re.split(r"^-{20,}.*$", text, flags=re.M):
            lines = block.strip("\n").split("\n")
            if not lines or direction not in lines[0]:
                continue
            msg = "\n".join(lines[1:]).strip("\n")
            head, _, body = msg.partition("\n\n")
            hl = head.split("\n")
            hdrs = {}
            for h in hl[1:]:
                k, _, v = h.partition(":")
                hdrs.setdefault(k.strip().lower(), []).append(v.strip())
            out.append((hl[0].strip(), hdrs, body.strip("\n")))
        return out

    def notifies(self):
        return [m for m in self.messages() if m[0].startswith("NOTIFY ")]

    def distinct_notifies(self):
        """NOTIFY requests, retransmissions (same branch) counted once."""
        seen, out = set(), []
        for m in self.notifies():
            key = m[1].get("via", [""])[0]
            if key not in seen:
                seen.add(key)
                out.append(m)
        return out

    def wait_notifies(self, n, timeout=5.0, distinct=True):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.distinct_notifies() if distinct else self.notifies()
            if len(got) >= n:
                return got
            time.sleep(0.02)
        got = self.distinct_notifies() if distinct else self.notifies()
        raise AssertionError("phone %s: %d NOTIFY(s) after %.0f s, expected %d\n%s"
                             % (self.name, len(got), timeout, n, self.output()))

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("sipp %s did not finish: %s" % (self.name, self.output()))

    def stop(self):
        self.peer.stop(signal.SIGKILL)


@pytest.fixture
def phones(tmp_path):
    started = []

    def make(scenario="resync_phone.xml", name=None, calls=5, port=None, path=None):
        p = SippPhone(tmp_path, path or os.path.join(SIP_DIR, scenario),
                      name or "p%d" % len(started), calls=calls, port=port)
        started.append(p)
        return p.start()

    yield make
    for p in started:
        p.stop()


def register(d, user, contact, call_id=None, ua=None, expires=3600):
    st, ans = d.pbx("/pbx/v1/registrations", sip_user=user, contact=contact,
                    source="127.0.0.1:5060", call_id=call_id, user_agent=ua,
                    expires=str(expires))
    assert st == 200, "registration %s: %s %s" % (user, st, dict(ans))


def sync(d, m):
    return hdharness.dev(d, m)["sync"]


def wait_sync(d, m, pred, timeout=8.0, what=""):
    deadline = time.monotonic() + timeout
    s = None
    while time.monotonic() < deadline:
        s = sync(d, m)
        if pred(s):
            return s
        time.sleep(0.05)
    raise AssertionError("device %s: sync state %r, waited for %s" % (m, s, what))


def fetch(d, number):
    st, _, _ = hdharness.prov_get(d, FILE_OF[number])
    assert st == 200, "fetch %s -> %s" % (FILE_OF[number], st)


def move(d, caller, digits, code):
    return d.star30(caller, digits=digits, code=code, result="accepted")


def uri_of(notify):
    """'sip:user@host:port' of a NOTIFY request line."""
    return notify[0].split()[1]


def auth_scenario(tmp_path, user, pw, realm, algorithm, name="resync_auth.xml"):
    """A copy of resync_auth.xml.in challenging with realm and algorithm."""
    with open(os.path.join(SIP_DIR, "resync_auth.xml.in")) as f:
        scen = f.read()
    for k, v in (("@USER@", user), ("@PASSWORD@", pw), ("@REALM@", realm),
                 ("@ALGORITHM@", algorithm)):
        scen = scen.replace(k, escape(v, {'"': "&quot;"}))
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        f.write(scen)
    return path


# ---------------------------------------------------------------- the move

def test_star30_notifies_each_changed_phone_once_at_its_own_contact(acme, phones):
    d, demo = acme
    # before: 103 visits dev101, and the two changed phones reload
    move(d, "acme-101", "103", demo.code(103))
    fetch(d, "101")
    fetch(d, "103")
    for n in ("101", "103"):
        wait_sync(d, mac(n), lambda s: s["state"] == "synced", what="synced after the fetch")
    assert sync(d, mac(101))["fetched_version"] == sync(d, mac(101))["version"]

    # every phone registered with what it carries now
    p101 = phones(name="dev101")   # polycom, carries 103
    p102 = phones(name="dev102")   # yealink, carries 102
    p103 = phones(name="dev103")   # cisco-mpp, parked
    p104 = phones(name="dev104")   # cisco-enterprise, unchanged by the move
    register(d, "acme-103", p101.contact("acme-103"))
    register(d, "acme-102", p102.contact("acme-102"))
    register(d, "park-" + mac(103), p103.contact("park-" + mac(103)))
    register(d, "acme-104", p104.contact("acme-104"))
    t0 = time.monotonic()

    # 102 moves onto dev101: 103 is displaced home, dev102 parks
    move(d, "acme-103", "102", demo.code(102))
    got = {}
    for name, p in (("101", p101), ("102", p102), ("103", p103)):
        got[name] = p.wait_notifies(1, timeout=5)
    elapsed = time.monotonic() - t0
    time.sleep(1.0)  # room for a duplicate or a stray NOTIFY to show up
    for name, p in (("101", p101), ("102", p102), ("103", p103)):
        assert len(p.notifies()) == 1, "phone %s got %d NOTIFYs: %r" % (
            name, len(p.notifies()), p.notifies())
    assert p104.notifies() == [], "unchanged phone got a NOTIFY: %r" % (p104.notifies(),)

    # addressed to the contact each phone registered before the move: the
    # base phone is reached as acme-103 at its own port, not at 102's AOR
    assert uri_of(got["101"][0]) == "sip:acme-103@127.0.0.1:%d" % p101.port
    assert uri_of(got["102"][0]) == "sip:acme-102@127.0.0.1:%d" % p102.port
    assert uri_of(got["103"][0]) == "sip:park-%s@127.0.0.1:%d" % (mac(103), p103.port)
    # each profile's Event
    assert got["101"][0][1]["event"] == ["check-sync"]
    # the default Yealink common file sets sip.notify_reboot_enable = 0, so
    # a move resyncs the phone without a reboot (Yealink CP969 admin guide)
    assert got["102"][0][1]["event"] == ["check-sync;reboot=false"]
    assert got["103"][0][1]["event"] == ["resync"]
    for name in got:
        assert got[name][0][1]["subscription-state"] == ["terminated"]
        assert "authorization" not in got[name][0][1]
    assert elapsed < 3.0, "NOTIFYs took %.2f s after the move" % elapsed

    # visible state: notified with the phone's 200, the target shown
    for name, p in (("101", p101), ("102", p102), ("103", p103)):
        s = wait_sync(d, mac(name), lambda s: s["last_result"] == "200 OK",
                      what="the 200 recorded")
        assert s["state"] == "notified" and s["attempts"] == 1, s
        assert s["target"]["source"] == "registration", s
        assert s["target"]["uri"].endswith(":%d" % p.port), s
        assert s["version"] > s["fetched_version"], s
    assert sync(d, mac(104))["state"] in ("synced", "none")
    sent = hdharness.events(d, type="resync.sent")
    assert sorted(e["device"] for e in sent[-3:]) == sorted(mac(n) for n in ("101", "102", "103"))

    # the phones reload: fetching the new version confirms each of them
    for n in ("101", "102", "103"):
        fetch(d, n)
    for n in ("101", "102", "103"):
        s = wait_sync(d, mac(n), lambda s: s["state"] == "synced", what="synced")
        assert s["fetched_version"] == s["version"], s
    synced = [e["device"] for e in hdharness.events(d, type="resync.synced")]
    assert all(synced.count(mac(n)) >= 1 for n in ("101", "102", "103")), synced


def test_cisco_enterprise_body_and_digest_challenge(acme, phones, tmp_path):
    d, demo = acme
    user, pw = "acme-101", demo.passwords["acme-101"]
    # device 101 is a Polycom: it challenges with its own realm (VENDORS)
    auth_path = auth_scenario(tmp_path, user, pw, "PolycomSPIP", "MD5")
    p101 = phones(name="dev101-auth", path=auth_path, calls=1)
    p104 = phones(name="dev104", calls=1)
    call_id = "reg-%s@pbx.acme.test" % uuid.uuid4().hex[:12]
    register(d, "acme-101", p101.contact("acme-101"))
    register(d, "acme-104", p104.contact("acme-104"), call_id=call_id)

    # 104 onto dev101: dev101 (challenges) and dev104 (enterprise) change
    move(d, "acme-101", "104", demo.code(104))
    n104 = p104.wait_notifies(1)[0]
    assert n104[1]["event"] == ["service-control"]
    assert n104[1]["content-type"] == ["text/plain"]
    body = n104[2].split("\n")
    assert body[0] == "action=restart", body
    assert "RegisterCallId={%s}" % call_id in body, body
    # zero stamps in the GUID form, Subscription-State active (VENDORS.md:
    # what the usecallmanager patches send)
    zero = "{00000000-0000-0000-0000-000000000000}"
    for stamp in ("ConfigVersionStamp", "DialplanVersionStamp", "SoftkeyVersionStamp"):
        assert "%s=%s" % (stamp, zero) in body, body
    assert n104[1]["subscription-state"] == ["active"], n104[1]

    # 401 first, then the retry with acme-101's credentials: sipp verifies
    # the digest itself and exits 0 only after answering 200
    assert p101.wait_exit() == 0, "auth phone failed:\n%s" % p101.output()
    reqs = p101.distinct_notifies()
    assert len(reqs) == 2, reqs
    assert "authorization" not in reqs[0][1]
    assert 'username="acme-101"' in reqs[1][1]["authorization"][0]
    s = wait_sync(d, mac(101), lambda s: s["last_result"] == "200 OK", what="200 after 401")
    assert s["attempts"] == 1, s
    ev = [e for e in hdharness.events(d, type="resync.sent") if e["device"] == mac(101)]
    assert ev and ev[-1]["detail"]["challenged"] is True, ev
    assert pw not in d.log_text()


# ------------------------------------------------ no answer, confirmation

def test_silent_phone_retransmissions_then_failed(make_daemon, phones):
    d = make_daemon({"sip": dict(FAST, sync_timeout="60")})
    demo = hdharness.build_demo(d)
    silent = phones("resync_silent.xml", name="dev104-silent", calls=1)
    register(d, "acme-104", silent.contact("acme-104"))
    # an administrator asks for a resync of one device
    st, js = d.admin("POST", "/api/v1/devices/%s/resync" % mac(104))
    assert st == 202 and js["devices"] == 1, (st, js)
    s = wait_sync(d, mac(104), lambda s: s["last_result"] == "timeout", timeout=6,
                  what="a timeout")
    assert s["state"] == "notified" and s["attempts"] == 1 and s["last_at"], s
    # T1 = 100 ms doubling, Timer F 1 s: sent at 0, 100, 300, 700 ms
    sent = silent.notifies()
    assert len(sent) >= 3, "retransmissions seen: %d" % len(sent)
    assert len({m[1]["via"][0] for m in sent}) == 1, "retransmissions must be identical"
    failed = [e for e in hdharness.events(d, type="resync.failed") if e["device"] == mac(104)]
    assert failed and failed[-1]["detail"]["result"] == "timeout", failed
    del demo


def test_fetch_confirms_and_unconfirmed_goes_stale(make_daemon, phones):
    d = make_daemon({"sip": dict(FAST, sync_timeout="1", sync_retries="2")})
    demo = hdharness.build_demo(d)
    p101 = phones(name="dev101")
    p102 = phones(name="dev102")
    register(d, "acme-101", p101.contact("acme-101"))
    register(d, "acme-102", p102.contact("acme-102"))
    move(d, "acme-101", "102", demo.code(102))
    p101.wait_notifies(1)
    p102.wait_notifies(1)
    fetch(d, "101")   # dev101 reloads; dev102 never does
    s = wait_sync(d, mac(101), lambda s: s["state"] == "synced", what="synced")
    assert s["fetched_version"] >= s["version"] > 0, s
    # dev102: NOTIFY again after 1 s, then stale after 2 more
    p102.wait_notifies(2, timeout=5)
    s = wait_sync(d, mac(102), lambda s: s["state"] == "stale", timeout=8, what="stale")
    assert s["attempts"] == 2 and s["last_result"] == "200 OK", s
    time.sleep(1.2)
    assert len(p102.distinct_notifies()) == 2, "a stale device is not notified again"
    stale = [e for e in hdharness.events(d, type="resync.stale") if e["device"] == mac(102)]
    assert len(stale) == 1, stale
    assert sync(d, mac(101))["state"] == "synced"
    # a late fetch still confirms a stale device
    fetch(d, "102")
    wait_sync(d, mac(102), lambda s: s["state"] == "synced", what="synced after stale")


def test_org_resync_reaches_every_device(acme, phones):
    d, demo = acme
    ps = {}
    for n, user in (("101", "acme-101"), ("102", "acme-102"), ("103", "acme-103"),
                    ("104", "acme-104")):
        ps[n] = phones(name="dev" + n)
        register(d, user, ps[n].contact(user))
    st, js = d.admin("POST", "/api/v1/orgs/acme/resync")
    assert st == 202 and js["devices"] == 4, (st, js)
    for n, p in ps.items():
        p.wait_notifies(1)
    # globex's phone is not acme's
    assert hdharness.dev(d, hdharness.GLOBEX_MAC)["sync"]["state"] in ("synced", "none")
    st, _ = d.admin("POST", "/api/v1/orgs/nosuch/resync")
    assert st == 404


# ------------------------------------------------------------------ crash

def test_kill9_with_unconfirmed_resyncs_then_restart_sends_them(acme, phones):
    d, demo = acme
    # registered, but nobody answers yet (the harness holds the ports, and
    # reads nothing): the NOTIFYs go nowhere
    r101, r102 = hdharness.UdpReservation(), hdharness.UdpReservation()
    port101, port102 = r101.port, r102.port
    register(d, "acme-101", "sip:acme-101@127.0.0.1:%d" % port101)
    register(d, "acme-102", "sip:acme-102@127.0.0.1:%d" % port102)
    move(d, "acme-101", "102", demo.code(102))
    d.kill9()

    p101 = phones(name="dev101", port=r101)
    p102 = phones(name="dev102", port=r102)
    d.start()
    n101 = p101.wait_notifies(1, timeout=5)
    n102 = p102.wait_notifies(1, timeout=5)
    assert uri_of(n101[0]) == "sip:acme-101@127.0.0.1:%d" % port101
    assert uri_of(n102[0]) == "sip:acme-102@127.0.0.1:%d" % port102
    for n in ("101", "102"):
        s = wait_sync(d, mac(n), lambda s: s["last_result"] == "200 OK", what="sent")
        assert s["state"] == "notified", s
        fetch(d, n)
        wait_sync(d, mac(n), lambda s: s["state"] == "synced", what="synced")


# ---------------------------------------------------------- outbound proxy

def test_through_the_outbound_proxy(make_daemon, phones):
    """A phone behind NAT is reached through the PBX: the NOTIFY goes to
    the proxy, addressed to the phone's registered contact, with a Route."""
    proxy = phones(name="pbx", calls=1)
    d = make_daemon({"sip": dict(FAST, outbound_proxy="127.0.0.1:%d" % proxy.port)})
    hdharness.build_demo(d)
    register(d, "acme-104", "sip:acme-104@192.0.2.44:5062")
    st, js = d.admin("POST", "/api/v1/devices/%s/resync" % mac(104))
    assert st == 202, (st, js)
    n = proxy.wait_notifies(1)[0]
    assert uri_of(n) == "sip:acme-104@192.0.2.44:5062"
    assert n[1]["route"] == ["<sip:127.0.0.1:%d;lr>" % proxy.port], n[1]
    assert n[1]["event"] == ["service-control"]
    s = wait_sync(d, mac(104), lambda s: s["last_result"] == "200 OK", what="200 via the proxy")
    assert s["target"]["uri"] == "sip:acme-104@192.0.2.44:5062", s


# ------------------------------------------ what a NOTIFY may reach, answer

@pytest.mark.parametrize("realm,algorithm", [("pbx.acme.test", "MD5"),
                                             ("PolycomSPIP", "SHA-256")])
def test_challenge_outside_the_familys_policy_is_not_answered(acme, phones, tmp_path,
                                                               realm, algorithm):
    """A Polycom challenges with its realm PolycomSPIP and MD5: a challenge
    naming the PBX's realm (what a relay attack needs) or another
    algorithm gets no digest of the line's password."""
    d, demo = acme
    user, pw = "acme-101", demo.passwords["acme-101"]
    path = auth_scenario(tmp_path, user, pw, realm, algorithm)
    p101 = phones(name="dev101-bad-auth", path=path, calls=1)
    register(d, user, p101.contact(user))
    move(d, "acme-101", "104", demo.code(104))
    s = wait_sync(d, mac(101), lambda s: (s["last_result"] or "").startswith("401"),
                  what="the 401 recorded as the result")
    reqs = p101.distinct_notifies()
    assert len(reqs) == 1, "the challenge was answered: %r" % (reqs,)
    assert "authorization" not in reqs[0][1]
    time.sleep(0.5)                      # nothing more arrives later either
    assert len(p101.distinct_notifies()) == 1
    assert s["last_result"].startswith("401"), s


@pytest.mark.parametrize("contact", ["sip:acme-101@224.0.1.75:5060",
                                     "sip:acme-101@255.255.255.255:5060",
                                     "sip:acme-101@0.0.0.0:5060",
                                     "sip:acme-101@127.0.0.1:22"])
def test_registration_contacts_that_are_no_phone_are_never_targets(acme, contact):
    d, demo = acme
    register(d, "acme-101", contact)
    tgt = sync(d, mac(101))["target"]
    assert tgt is None or tgt["source"] != "registration", tgt


def test_notify_networks_limit_targets(make_daemon, phones):
    d = make_daemon({"sip": dict(FAST, notify_networks="10.0.0.0/8")})
    demo = hdharness.build_demo(d)
    p = phones(name="outside", calls=1)
    register(d, "acme-101", p.contact("acme-101"))
    move(d, "acme-101", "102", demo.code(102))
    s = wait_sync(d, mac(101), lambda s: bool(s["last_result"]),
                  what="a result")
    assert "no target" in s["last_result"] or "refused" in s["last_result"], s
    time.sleep(0.3)
    assert p.distinct_notifies() == []


# ------------------------------------------------------- [notify] overrides

def test_notify_override_of_the_fifth_family_reaches_its_phone(make_daemon, phones):
    """[notify] has a key for every profile of the vendor registry, the
    Grandstream family's included (no list of families in config or
    resync): its override is the Event a Grandstream phone gets, while a
    Polycom phone keeps its profile's default."""
    d = make_daemon({"sip": FAST, "notify": {"grandstream": "check-sync;hd-gs-override"}})
    hdharness.build_demo(d)
    gs = mac(105)
    d.admin_ok("PUT", "/api/v1/devices/" + gs, {
        "org": "acme", "profile": "grandstream", "model": "GXP2170", "home_extension": "105"})
    p105 = phones(name="gs105")
    p101 = phones(name="poly101")
    register(d, "acme-105", p105.contact("acme-105"))
    register(d, "acme-101", p101.contact("acme-101"))
    for m in (gs, mac(101)):
        st, js = d.admin("POST", "/api/v1/devices/%s/resync" % m)
        assert st == 202 and js["devices"] == 1, (m, st, js)
    n105 = p105.wait_notifies(1, timeout=15)
    n101 = p101.wait_notifies(1, timeout=15)
    assert uri_of(n105[0]) == p105.contact("acme-105"), n105[0][0]
    assert n105[0][1]["event"] == ["check-sync;hd-gs-override"], n105[0][1]
    assert n101[0][1]["event"] == ["check-sync"], n101[0][1]
    wait_sync(d, gs, lambda s: s["last_result"] == "200 OK", timeout=15, what="200 OK")

