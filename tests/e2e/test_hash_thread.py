"""A *30 that checks a secret code does not hold up the phones.

The Argon2id hash of a code check takes tens of milliseconds (here, made
slow on purpose, hundreds).  libmicrohttpd serves each connection on one
polling thread; a hash on that thread would keep every phone polled by it
waiting.  The daemon runs such a call on a thread of its own
(api_pbx_may_hash), so with a single HTTP worker thread a phone fetching
its file in a loop while the *30 runs gets answer after answer.
"""

import threading
import time

import hdharness
from hdharness import carries, mac, prov_get

SLOW_HASH = {"hash_ops": "3", "hash_mem_kib": "131072"}


def test_phones_are_served_while_a_code_is_checked(make_daemon):
    d = make_daemon({"secrets": dict(SLOW_HASH), "server": {"threads": "1"}})
    demo = hdharness.build_demo(d)
    name = sorted(hdharness.device_files(d, mac(103)))[0]
    assert prov_get(d, name)[0] == 200, name

    move = {}
    fetches = []          # (sent, answered, status)

    def do_move():
        move["start"] = time.monotonic()
        move["st"], move["ans"] = d.pbx("/pbx/v1/star30", caller="acme-101", digits="102",
                                        code=demo.code(102), call_id="slow-hash")
        move["end"] = time.monotonic()

    mover = threading.Thread(target=do_move)
    mover.start()
    while mover.is_alive():
        t0 = time.monotonic()
        st, _, _ = prov_get(d, name)
        fetches.append((t0, time.monotonic(), st))
    mover.join()

    assert move["st"] == 200 and move["ans"]["result"] == "accepted", move
    assert all(st == 200 for _, _, st in fetches), fetches
    during = [f for f in fetches if f[0] >= move["start"] and f[1] <= move["end"]]
    # a fetch takes milliseconds and the hash hundreds: served on the
    # worker thread, the fetches would wait for the hash (one or two at
    # most would fall inside the call)
    assert len(during) >= 5, (
        "%d fetches answered during a %.2f s code check: %s" % (
            len(during), move["end"] - move["start"],
            ["%.3f" % (b - a) for a, b, _ in fetches[:10]]))
    assert carries(d, mac(101)) == ("ext", "102", True)
