"""Slow clients cannot take the server from everyone else (issue 8.5).

One source address (127.0.0.2: loopback has many) opens as many
connections as the whole server accepts and keeps each one busy the
slowloris way, one header line every half second, never finishing its
request.  The per-source connection limit keeps most of the server free,
and the absolute request deadline closes a connection that keeps sending
without ever completing a request, however steadily bytes arrive.
"""

import socket
import threading
import time

from hdharness import mac, prov_get

LIMITS = {"max_connections": "64", "max_connections_per_source": "16",
          "request_timeout": "3"}


class Slowloris:
    """Connections from `source` that send a request line and then one
    header line every `every` seconds, never ending the headers."""

    def __init__(self, port, source, count, every=0.5):
        self.port, self.source, self.count, self.every = port, source, count, every
        self.socks = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        for _ in range(self.count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((self.source, 0))
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", self.port))
                s.sendall(b"GET /provision/000000000000.cfg HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                s.close()
                continue
            self.socks.append(s)
        self.thread.start()
        return self

    def _run(self):
        n = 0
        while not self.stop.wait(self.every):
            n += 1
            for s in list(self.socks):
                try:
                    s.sendall(b"X-Slow-%d: %d\r\n" % (n, n))
                except OSError:
                    self.socks.remove(s)
                    s.close()

    def alive(self):
        """How many connections the server still keeps open."""
        n = 0
        for s in list(self.socks):
            s.setblocking(False)
            try:
                data = s.recv(1)
                alive = data != b""
            except BlockingIOError:
                alive = True
            except OSError:
                alive = False
            s.setblocking(True)
            n += alive
        return n

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


def _timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def test_one_source_at_its_limit_leaves_room_for_phones_and_pbx(make_daemon):
    import hdharness
    d = make_daemon({"server": LIMITS})
    demo = hdharness.build_demo(d)
    code = demo.code(102)
    name = sorted(hdharness.device_files(d, mac(101)))[0]
    attack = Slowloris(d.port, "127.0.0.2", 64).start()
    try:
        time.sleep(1.2)   # a few header lines in: every connection busy
        # the server keeps at most the per-source limit of them
        held = attack.alive()
        assert held <= 16, "one source holds %d connections (limit 16)" % held
        assert held >= 8, "the attack did not get its connections (%d): test is void" % held
        (st, _, body), dt = _timed(lambda: prov_get(d, name))
        assert st == 200 and body, (st, body[:200])
        assert dt < 1.0, "phone fetch took %.2f s during the attack" % dt
        ans, dt = _timed(lambda: d.star30("acme-101", "102", code=code, result="accepted"))
        assert dt < 1.0, "*30 took %.2f s during the attack" % dt
        # another source gets its own share too
        c = socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                     source_address=("127.0.0.3", 0))
        c.sendall(b"GET /provision/000000000000.cfg HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
        c.close()
        assert got.startswith(b"HTTP/1.1 "), got[:100]
    finally:
        attack.close()


def test_request_deadline_is_absolute_not_idle(make_daemon):
    """A connection trickling header lines is closed at the request deadline
    (3 s) even though it is never idle for more than half a second."""
    d = make_daemon({"server": LIMITS})
    attack = Slowloris(d.port, "127.0.0.2", 4).start()
    try:
        time.sleep(1.5)
        assert attack.alive() == 4, "connections closed before their deadline"
        deadline = time.monotonic() + 10
        while attack.alive() > 0 and time.monotonic() < deadline:
            time.sleep(0.25)
        left = attack.alive()
        assert left == 0, "%d trickling connections still open %.1f s after the deadline" % (
            left, 10 - 3)
    finally:
        attack.close()
    # a keep-alive connection that sends each request whole is not cut,
    # though it lives longer than the deadline: the wait starts again
    # after each answer
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        for _ in range(6):
            conn.request("GET", "/provision/000000000000.cfg")
            r = conn.getresponse()
            r.read()
            assert r.status in (200, 404), r.status
            time.sleep(1.0)
        sock = conn.sock
        assert sock is not None, "the server closed the keep-alive connection"
    finally:
        conn.close()
