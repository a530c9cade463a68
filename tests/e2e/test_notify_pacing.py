"""Pacing of bulk resyncs (docs/RESYNC.md, "Pacing"): a change of many
devices (an organization's resync, a template save, an import) keeps at
most [sip] notify_max_pending NOTIFY transactions in flight, and a *30
move's NOTIFYs never wait behind them.

The phones are UDP sockets of the test that never answer, so every NOTIFY
runs to Timer F (300 ms here): with a limit of 2, 40 devices need 20 of
those rounds.
"""

import re
import signal
import socket
import threading
import time

import hdharness
from hdharness import mac, wait_for

BULK = 40
SIP = {"t1_ms": "100", "timer_f_ms": "300", "sync_timeout": "600"}


class Silent:
    """A UDP socket that records every NOTIFY it receives and never answers:
    [(monotonic time, branch, Request-URI user)]."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.lock = threading.Lock()
        self.stop = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        while not self.stop:
            try:
                pkt = self.sock.recv(65535).decode("utf-8", "replace")
            except socket.timeout:
                continue
            except OSError:
                return
            if not pkt.startswith("NOTIFY "):
                continue
            br = re.search(r"^Via:.*branch=([^;\s]+)", pkt, re.M | re.I)
            user = re.match(r"NOTIFY sip:([^@\s]+)@", pkt)
            with self.lock:
                self.got.append((time.monotonic(), br.group(1) if br else "",
                                 user.group(1) if user else ""))

    def close(self):
        self.stop = True
        self.th.join()
        self.sock.close()

    def spans(self):
        """{branch: (first, last datagram time, user)}"""
        out = {}
        with self.lock:
            for t, b, u in self.got:
                f, _, _ = out.get(b, (t, t, u))
                out[b] = (f, t, u)
        return out

    def users(self):
        return {u for _, _, u in self.spans().values()}


def most_at_once(spans):
    """The most transactions whose datagrams overlap in time."""
    edges = sorted([(f, 1) for f, _, _ in spans] + [(l, -1) for _, l, _ in spans],
                   key=lambda e: (e[0], -e[1]))
    cur = best = 0
    for _, step in edges:
        cur += step
        best = max(best, cur)
    return best


def in_flight(d):
    return hdharness.metric(d, "hotdeskd_notify_in_flight")


def bulk_org(d, phone):
    """Organization bulk: BULK extensions, each with a device whose static
    contact is `phone`."""
    d.admin_ok("PUT", "/api/v1/orgs/bulk", {
        "name": "bulk", "display_name": "Bulk Inc.",
        "sip_server": {"host": "pbx.bulk.test", "port": 5060, "transport": "udp"}})
    for i in range(BULK):
        number = str(1000 + i)
        pw = "bpw%d%s" % (i, "x" * 12)
        d.secrets.add(pw)
        st, js = d.admin("PUT", "/api/v1/orgs/bulk/extensions/" + number, {
            "sip_user": "bulk-" + number, "sip_password": pw, "display_name": "B " + number,
            "label": number})
        assert st == 201, (st, js)
        m = "00bb00%06x" % i
        st, js = d.admin("PUT", "/api/v1/devices/" + m, {
            "org": "bulk", "profile": "yealink", "model": "T54W", "home_extension": number,
            "static_contact": "sip:bulk-%s@127.0.0.1:%d" % (number, phone.port)})
        assert st in (200, 201), (st, js)


def test_bulk_resync_is_paced_and_a_move_does_not_wait(make_daemon):
    d = make_daemon({"sip": dict(SIP, notify_max_pending="2")})
    demo = hdharness.build_demo(d)
    bulk, desk = Silent(), Silent()
    try:
        bulk_org(d, bulk)
        # the two acme phones a move changes, registered at their own socket
        for n in (101, 102):
            st, ans = d.pbx("/pbx/v1/registrations", sip_user="acme-%d" % n,
                            contact="sip:acme-%d@127.0.0.1:%d" % (n, desk.port),
                            source="127.0.0.1:5060", expires="3600")
            assert st == 200, (st, ans)
        # the devices' own creation queued nothing to send: no contact then
        time.sleep(0.5)
        bulk.got.clear()
        st, js = d.admin("POST", "/api/v1/orgs/bulk/resync")
        assert st == 202 and js["devices"] == BULK, (st, js)
        asked = time.monotonic()
        wait_for(lambda: len(bulk.spans()) >= 4, "the first bulk NOTIFYs", 5)
        assert in_flight(d) <= 2
        # the outbox is in order of due time (seconds): a row queued in a
        # later second than the bulk's comes after all of it, unless a
        # small change's rows are looked at first
        time.sleep(max(0.0, asked + 1.1 - time.monotonic()))
        # a move now: the displaced phone (102, registered) hears at once,
        # not after the bulk's 20 rounds (101's registration was its old
        # identity's: it has no target until it registers again)
        t0 = time.monotonic()
        d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
        wait_for(lambda: "acme-102" in desk.users(),
                 "the move's NOTIFY while the bulk resync waits for slots", 2)
        assert time.monotonic() - t0 < 2
        sent = len(bulk.spans())
        assert sent < BULK - 10, "the bulk resync was not paced: %d of %d sent" % (sent, BULK)
        # SIGHUP with a larger limit: the rest go out at once
        d.write_config({"sip": dict(SIP, notify_max_pending="100")})
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(bulk.users()) == BULK, "every bulk device's NOTIFY after the reload",
                 5)
        time.sleep(0.25)  # their retransmissions (T1 100 ms): each span's end
        spans = list(bulk.spans().values())
        first = [s for s in spans if s[0] < t0]
        assert most_at_once(first) <= 2, "more than 2 bulk NOTIFYs at once before the reload"
        assert most_at_once(spans) > 2, "the reload did not raise the limit"
        wait_for(lambda: in_flight(d) == 0, "every NOTIFY to end", 5)
    finally:
        bulk.close()
        desk.close()


def test_a_template_save_is_paced(make_daemon):
    # the re-render hands its devices to the engine in steps: each step is
    # bulk, even one of a few devices (the last of a large re-render)
    d = make_daemon({"sip": dict(SIP, notify_max_pending="2")})
    hdharness.build_demo(d)
    bulk = Silent()
    try:
        bulk_org(d, bulk)
        time.sleep(0.5)   # the creations' own NOTIFYs end (Timer F 300 ms)
        bulk.got.clear()
        t = "/api/v1/templates/yealink/device.cfg"
        tmpl = d.admin_ok("GET", t)["content"]
        first = tmpl.index("\n") + 1   # after Yealink's version line
        st, _, body = d.request("PUT", t, (tmpl[:first] + "# paced\n" + tmpl[first:]).encode(),
                                {"Authorization": "Bearer " + d.admin_token,
                                 "Content-Type": "text/plain"})
        assert st == 200, (st, body)
        wait_for(lambda: len(bulk.spans()) >= 4, "the first NOTIFYs of the re-render", 5)
        time.sleep(1.0)
        spans = list(bulk.spans().values())
        assert len(spans) < BULK - 10, "not paced: %d of %d sent" % (len(spans), BULK)
        assert most_at_once(spans) <= 2, "more than 2 NOTIFYs of the re-render at once"
        assert in_flight(d) <= 2
    finally:
        bulk.close()
