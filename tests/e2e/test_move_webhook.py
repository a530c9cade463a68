"""The move webhook ([pbx] move_webhook, docs/API.md "Move webhook"):
every SIP user whose location a change moved is posted to the PBX, from
the daemon's own thread, in commit order, retried with backoff while the
receiver is down or refuses, kept across a restart, authenticated by the
shared secret (which never reaches the log), and a move never waits for
it.

The receiver is a real HTTP server on loopback (http.server). "Down" is
its port bound but not listening: connections are refused, and the port
stays ours until the receiver comes up on it.
"""

import http.server
import re
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

import hdharness
from hdharness import carries, mac, metric, park, wait_for

SECRET = "whsec-" + "7f3a9c" * 5


class Receiver:
    """An HTTP receiver of the webhook on a port of its own."""

    def __init__(self, tls=None):
        self.tls = tls  # an ssl.SSLContext: the receiver speaks HTTPS
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.got = []          # (path, headers dict lower-case, fields dict)
        self.statuses = []     # answers to give first (then 200)
        self.hang = False      # accept and never answer
        self.hung = 0          # requests left unanswered
        self.lock = threading.Lock()
        self.server = None

    @property
    def url(self):
        return "%s://127.0.0.1:%d/hotdeskd/moves" % ("https" if self.tls else "http", self.port)

    def up(self):
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n).decode()
                if rcv.hang:
                    with rcv.lock:
                        rcv.hung += 1
                    time.sleep(30)
                    return
                fields = dict(urllib.parse.parse_qsl(body, keep_blank_values=True,
                                                     strict_parsing=True))
                with rcv.lock:
                    status = rcv.statuses.pop(0) if rcv.statuses else 200
                    rcv.got.append((self.path, {k.lower(): v for k, v in self.headers.items()},
                                    fields, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler,
                                              bind_and_activate=False)
        srv.socket.close()
        srv.socket = self.tls.wrap_socket(self.sock, server_side=True) if self.tls else self.sock
        srv.server_activate()  # listen()
        srv.daemon_threads = True
        self.server = srv
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return self

    def close(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        else:
            self.sock.close()

    def accepted(self):
        """Fields of the posts answered 2xx, in arrival order."""
        with self.lock:
            return [f for _, _, f, st in self.got if 200 <= st < 300]

    def all(self):
        with self.lock:
            return list(self.got)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def hooked(make_daemon, rcv, **extra):
    pbx = {"move_webhook": rcv.url, "move_webhook_secret": SECRET,
           "move_webhook_retry_max": "1", "move_webhook_timeout": "3"}
    pbx.update(extra)
    d = make_daemon({"pbx": pbx})
    d.secrets.add(SECRET)  # teardown fails if the log shows it
    return d


def by_user(posts):
    return {p["sip_user"]: p for p in posts}


def test_a_move_posts_each_moved_user_with_its_new_contact(make_daemon, receiver):
    receiver.up()
    d = hooked(make_daemon, receiver)
    demo = hdharness.build_demo(d)
    st, ans = d.pbx("/pbx/v1/registrations", sip_user="acme-101",
                    contact='"Alice" <sip:acme-101@127.0.0.1:5091>', expires="600")
    assert st == 200, (st, ans)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    # 102 is on 101's desk now; 101 has no desk (its desk carries 102);
    # 102's desk is parked (its parking account is located there)
    posts = wait_for(lambda: len(receiver.accepted()) >= 3 and receiver.accepted(),
                     "3 posts")
    time.sleep(0.5)
    posts = receiver.accepted()
    assert len(posts) == 3, posts
    users = by_user(posts)
    assert set(users) == {"acme-102", "acme-101", park(102)}, posts
    assert (users["acme-102"]["device"], users["acme-102"]["contact"]) == \
        (mac(101), "sip:acme-101@127.0.0.1:5091")
    assert (users["acme-101"]["device"], users["acme-101"]["contact"]) == ("", "")
    assert (users[park(102)]["device"], users[park(102)]["contact"]) == (mac(102), "")
    ids = [int(p["id"]) for p in posts]
    assert ids == sorted(ids) and len(set(ids)) == 3, ids  # in commit order, once each
    assert {p["move"] for p in posts} == {str(ids[0])}, posts  # one change, one move id
    for p in posts:
        assert (p["event"], p["cause"]) == ("move", "star30"), p
        assert abs(int(p["at"]) - time.time()) < 60, p
    for path, hdrs, _, _ in receiver.all():
        assert path == "/hotdeskd/moves"
        assert hdrs["authorization"] == "Bearer " + SECRET
        assert hdrs["content-type"] == "application/x-www-form-urlencoded"

    # bare *30 from 101's desk: 102 goes home, 101 is back at its desk,
    # 102's parking account leaves: a new move id, after the first one
    d.star30("acme-102", None, result="returned")
    wait_for(lambda: len(receiver.accepted()) >= 6, "3 more posts")
    second = receiver.accepted()[3:]
    users = by_user(second)
    assert set(users) == {"acme-102", "acme-101", park(102)}, second
    assert (users["acme-102"]["device"], users["acme-101"]["device"],
            users[park(102)]["device"]) == (mac(102), mac(101), "")
    assert users["acme-101"]["contact"] == "sip:acme-101@127.0.0.1:5091"
    assert int(second[0]["move"]) > ids[-1]
    # a delivery counts once its 2xx answer is read, after the receiver has it
    wait_for(lambda: metric(d, "hotdeskd_move_webhook_total", '{result="delivered"}') >= 6,
             "6 deliveries counted")
    assert metric(d, "hotdeskd_move_webhook_total", '{result="delivered"}') == 6
    assert metric(d, "hotdeskd_move_webhook_backlog") == 0


def test_retries_until_the_receiver_is_up_then_delivers_in_order(make_daemon, receiver):
    d = hooked(make_daemon, receiver)  # receiver down: connections refused
    demo = hdharness.build_demo(d)
    t0 = time.monotonic()
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    d.star30("acme-102", None, result="returned")
    d.star30("acme-101", "103", code=demo.code(103), result="accepted")
    # a move never waits for the webhook
    assert time.monotonic() - t0 < 5
    wait_for(lambda: metric(d, "hotdeskd_move_webhook_total", '{result="failed"}') >= 3 and
             metric(d, "hotdeskd_move_webhook_backlog") == 9,
             "3 failed attempts, 9 rows waiting")
    assert re.search(r"move webhook: event \d+ not delivered \(.*\); attempt \d+",
                     d.log_text())
    # up, but refusing at first: 503 then 401 are retried as well
    receiver.statuses = [503, 401]
    receiver.up()
    wait_for(lambda: len(receiver.accepted()) >= 9, "9 posts delivered")
    time.sleep(1)
    posts = receiver.accepted()
    assert len(posts) == 9, posts  # none twice: every refused post was answered
    ids = [int(p["id"]) for p in posts]
    assert ids == sorted(ids) and len(set(ids)) == 9, ids
    moves = [int(p["move"]) for p in posts]
    assert moves == sorted(moves) and len(set(moves)) == 3, moves
    assert [p["sip_user"] for p in posts if p["sip_user"] == "acme-102"] == ["acme-102"] * 2
    statuses = [st for _, _, _, st in receiver.all()]
    assert statuses[:2] == [503, 401] and statuses[2:] == [200] * 9, statuses
    # the first post (refused twice) was the oldest row
    assert int(receiver.all()[0][2]["id"]) == ids[0]
    assert metric(d, "hotdeskd_move_webhook_backlog") == 0


def test_undelivered_moves_survive_a_restart(make_daemon, receiver):
    d = hooked(make_daemon, receiver)
    demo = hdharness.build_demo(d)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    wait_for(lambda: metric(d, "hotdeskd_move_webhook_total", '{result="failed"}') >= 1,
             "a failed attempt")
    d.kill9()  # no chance to do anything more
    receiver.up()
    d.start()
    wait_for(lambda: len(receiver.accepted()) >= 3, "the 3 posts after the restart")
    time.sleep(0.5)
    assert sorted(p["sip_user"] for p in receiver.accepted()) == \
        sorted(["acme-101", "acme-102", park(102)])


def test_a_hanging_receiver_does_not_hold_moves_or_shutdown(make_daemon, receiver):
    receiver.hang = True
    receiver.up()
    d = hooked(make_daemon, receiver, move_webhook_timeout="20")
    demo = hdharness.build_demo(d)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    wait_for(lambda: receiver.hung == 1, "the first post to hang")
    # the webhook thread is stuck in that post: moves go on regardless
    t0 = time.monotonic()
    d.star30("acme-102", None, result="returned")
    d.star30("acme-101", "103", code=demo.code(103), result="accepted")
    assert time.monotonic() - t0 < 3
    assert carries(d, mac(101)) == ("ext", "103", True)
    assert receiver.all() == [] and receiver.hung == 1
    # SIGTERM aborts the attempt in flight: the daemon exits at once
    t0 = time.monotonic()
    d.stop()
    assert time.monotonic() - t0 < 8


def test_webhook_settings_are_checked(make_daemon, receiver):
    d = hooked(make_daemon, receiver)
    d.stop()
    bad = [({"move_webhook": receiver.url}, "[pbx] move_webhook_secret is required"),
           ({"move_webhook": receiver.url, "move_webhook_secret": "short"},
            "[pbx] move_webhook_secret must be at least 16 characters"),
           ({"move_webhook": "ftp://127.0.0.1/x", "move_webhook_secret": SECRET},
            "expected an http:// or https:// URL"),
           ({"move_webhook": "http://", "move_webhook_secret": SECRET},
            "expected an http:// or https:// URL"),
           ({"move_webhook": receiver.url, "move_webhook_secret": SECRET,
             "move_webhook_timeout": "0"}, "move_webhook_timeout")]
    for pbx, msg in bad:
        d.write_config({"pbx": pbx})
        r = subprocess.run([d.binary, "--config", d.config_path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and msg in r.stderr, (pbx, r.returncode, r.stderr)
        assert SECRET not in r.stderr + r.stdout
    # the secret may come from the environment instead of the file
    d.write_config({"pbx": {"move_webhook": receiver.url}})
    d.env["HOTDESKD_MOVE_WEBHOOK_SECRET"] = SECRET
    d.start()
    receiver.up()
    demo = hdharness.build_demo(d)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    wait_for(lambda: len(receiver.accepted()) >= 3, "3 posts")
    assert {h["authorization"] for _, h, _, _ in receiver.all()} == {"Bearer " + SECRET}


def test_without_a_webhook_no_outbox_is_kept(make_daemon, receiver):
    d = hooked(make_daemon, receiver)  # receiver down
    demo = hdharness.build_demo(d)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    wait_for(lambda: metric(d, "hotdeskd_move_webhook_backlog") == 3, "3 rows waiting")
    d.stop()
    d.write_config({})  # no move_webhook
    d.start()
    assert "move webhook off: 3 undelivered move event(s) dropped" in d.log_text()
    d.star30("acme-102", None, result="returned")  # recorded for nobody
    d.stop()
    d.write_config({"pbx": {"move_webhook": receiver.url, "move_webhook_secret": SECRET}})
    receiver.up()
    d.start()
    d.star30("acme-101", "103", code=demo.code(103), result="accepted")
    wait_for(lambda: len(receiver.accepted()) >= 3, "the posts of the last move")
    time.sleep(1)
    assert sorted(p["sip_user"] for p in receiver.accepted()) == \
        sorted(["acme-101", "acme-103", park(103)]), receiver.accepted()


def test_https_webhook_trusts_the_configured_ca_only(make_daemon, tmp_path):
    import ssl
    import tlsutil
    ca = tlsutil.CA(tmp_path / "pki", "hook")
    cert, key = tlsutil.server_cert(ca)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    receiver = Receiver(tls=ctx).up()
    try:
        # the system's CAs do not know this one: refused, retried, not posted
        d = hooked(make_daemon, receiver)
        demo = hdharness.build_demo(d)
        d.star30("acme-101", "102", code=demo.code(102), result="accepted")
        wait_for(lambda: metric(d, "hotdeskd_move_webhook_total", '{result="failed"}') >= 2,
                 "2 failed attempts")
        assert receiver.all() == []
        assert re.search(r"move webhook: event \d+ not delivered \(.*(certificate|SSL).*\)",
                         d.log_text()), d.log_tail()
        d.stop()
        # with [pbx] move_webhook_ca naming it: delivered
        d.write_config({"pbx": {"move_webhook": receiver.url, "move_webhook_secret": SECRET,
                                "move_webhook_ca": ca.cert, "move_webhook_retry_max": "1"}})
        d.start()
        wait_for(lambda: len(receiver.accepted()) >= 3, "3 posts over HTTPS")
        assert {h["authorization"] for _, h, _, _ in receiver.all()} == {"Bearer " + SECRET}
    finally:
        receiver.close()
