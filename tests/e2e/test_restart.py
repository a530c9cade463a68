"""State survives restarts: virtualizations, parked phones, inactive
extensions and cross-call lockouts are the same after a clean SIGTERM
restart and after kill -9, and the daemon keeps working on that state.
"""

import signal
import time

import hdharness
from hdharness import carries, ext, invariants, mac, park, snapshot

LOCKOUT = {"secrets": {"lockout_threshold": 3, "lockout_backoff": 600,
                       "lockout_backoff_max": 3600}}


def _build_state(d):
    demo = hdharness.build_demo(d)
    wrong = "19283746"
    d.secrets.add(wrong)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    d.star30(park(102), "105", code=demo.code(105), result="accepted", device=mac(102))
    for _ in range(3):   # lock (103's phone, 104)
        d.star30("acme-103", "104", code=wrong)
    d.star30("acme-103", "104", code=demo.code(104), result="denied", reason="locked")
    d.star30("globex-101", "201", code=demo.code(201, "globex"), result="accepted")
    invariants(d)
    return demo


def _check_state(d, demo, snap):
    assert d.alive()
    assert snapshot(d) == snap, "state changed across the restart"
    invariants(d)
    assert carries(d, mac(101)) == ("ext", "102", True)
    assert carries(d, mac(102)) == ("ext", "105", True)
    assert ext(d, 101)["status"] == "inactive"
    # the lockout is still in force, even with the right code
    d.star30("acme-103", "104", code=demo.code(104), result="denied", reason="locked")


def _keeps_working(d, demo):
    # returns and moves work on the restored state
    d.star30("acme-102", None, result="returned", extension="102", device=mac(102))
    assert ext(d, 102)["status"] == "inactive"          # its phone hosts 105
    d.star30("acme-105", None, result="returned", extension="105")
    assert carries(d, mac(102)) == ("ext", "102", False)
    d.star30("acme-101", "103", code=demo.code(103), result="accepted", device=mac(101))
    invariants(d)


def test_state_survives_sigterm_restart(make_daemon):
    d = make_daemon(LOCKOUT)
    demo = _build_state(d)
    snap = snapshot(d)
    d.restart()
    _check_state(d, demo, snap)
    _keeps_working(d, demo)
    snap = snapshot(d)
    d.restart()
    assert snapshot(d) == snap
    invariants(d)


def test_state_survives_kill9(make_daemon):
    d = make_daemon(LOCKOUT)
    demo = _build_state(d)
    snap = snapshot(d)
    d.kill9()
    d.start()
    _check_state(d, demo, snap)
    _keeps_working(d, demo)
    snap = snapshot(d)
    d.kill9()
    d.start()
    assert snapshot(d) == snap
    invariants(d)


def test_secret_codes_survive_restart(make_daemon):
    # the hash is stored, not kept in memory only: the code still verifies
    d = make_daemon()
    demo = hdharness.build_demo(d)
    d.restart()
    d.star30("acme-101", "102", code="55550000", result="retry", tries_left=2)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    d.star30("globex-101", "201", code=demo.code(201, "globex"), result="accepted")
    invariants(d)


def test_sigterm_while_clients_keep_connecting(make_daemon):
    """SIGTERM while many clients open connections and fetch: every time
    the daemon exits 0, without libmicrohttpd's "Failed to remove listen FD
    from epoll set" abort (its quiesce races with its epoll workers, so
    hotdeskd refuses new connections by its accept policy instead)."""
    import socket as _socket
    import threading as _threading

    for round_ in range(6):
        d = make_daemon(name="storm%d" % round_)
        stop = _threading.Event()

        def hammer():
            while not stop.is_set():
                try:
                    s = _socket.create_connection(("127.0.0.1", d.port), timeout=2)
                    s.sendall(b"GET /provision/000000000000.cfg HTTP/1.1\r\nHost: x\r\n\r\n")
                    s.recv(256)
                    s.close()
                except OSError:
                    pass

        workers = [_threading.Thread(target=hammer, daemon=True) for _ in range(8)]
        for w in workers:
            w.start()
        time.sleep(0.3)
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(20)
        stop.set()
        for w in workers:
            w.join(5)
        assert rc == 0, d.log_tail()
        assert "Failed to remove listen FD" not in d.log_text()
        d.start()  # the harness stops it again at teardown
