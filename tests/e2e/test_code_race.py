"""Secret-code limits under parallel requests (SPEC 2.4).

A burst of 50 *30 requests sent at once must never get more codes checked
than the limits allow: tries per call (one call_id), tries across redials
(one phone and target within [secrets] redial_window) and the cross-call
lockout threshold.  Checked codes are counted by the daemon's own counter
`hotdeskd_code_checks_total` (every verify against a stored hash) and by
the `code.failed` events; a right code in the burst may only be accepted
while the limit was not yet reached, and never after.

The code hash is made slow here (hash_ops / hash_mem_kib) so that verifies
overlap: with the demo's cheap hash a burst would run almost serially.
"""

import threading
import time

import hdharness
from hdharness import carries, events, ext, invariants, mac

SLOW_HASH = {"hash_ops": "2", "hash_mem_kib": "32768"}
BURST = 50


def code_checks(d):
    st, _, body = d.request("GET", "/metrics")
    assert st == 200, st
    for line in body.decode().splitlines():
        if line.startswith("hotdeskd_code_checks_total "):
            return int(float(line.split()[1]))
    raise AssertionError("hotdeskd_code_checks_total missing from /metrics")


def burst(d, reqs):
    """Sends every request of reqs at once; returns the answers in order."""
    results = [None] * len(reqs)
    barrier = threading.Barrier(len(reqs))

    def one(i, r):
        barrier.wait(30)
        t0 = time.monotonic()
        try:
            st, ans = d.pbx("/pbx/v1/star30", **r)
            results[i] = (st, ans)
        except Exception as e:  # said below, with the time it took
            results[i] = (None, "%r after %.1f s" % (e, time.monotonic() - t0))

    threads = [threading.Thread(target=one, args=(i, r)) for i, r in enumerate(reqs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in results), "some requests never ended"
    lost = [(reqs[i]["call_id"], r[1]) for i, r in enumerate(results) if r[0] is None]
    assert not lost, "requests without an answer: %r\n--- log tail ---\n%s" % (
        lost, d.log_tail())
    assert all(st == 200 for st, _ in results), [r for r in results if r[0] != 200]
    return [ans for _, ans in results]


def results_of(answers):
    out = {}
    for a in answers:
        out[a["result"]] = out.get(a["result"], 0) + 1
    return out


def daemon_with(make_daemon, **secrets):
    cfg = dict(SLOW_HASH)
    cfg.update({k: str(v) for k, v in secrets.items()})
    d = make_daemon({"secrets": cfg, "server": {"threads": "16"}})
    return d, hdharness.build_demo(d)


def test_one_call_checks_at_most_tries_per_call(make_daemon):
    d, demo = daemon_with(make_daemon, tries_per_call=3, lockout_threshold=100)
    wrong = "11223344"
    d.secrets.add(wrong)
    before = code_checks(d)
    answers = burst(d, [dict(caller="acme-101", digits="102", code=wrong,
                             call_id="one-call")] * BURST)
    checked = code_checks(d) - before
    assert checked == 3, "codes checked in one call: %d (limit 3)" % checked
    got = results_of(answers)
    assert got == {"retry": 2, "hangup": BURST - 2}, got
    assert sorted(int(a["tries_left"]) for a in answers if a["result"] == "retry") == [1, 2]
    assert len(events(d, type="code.failed", org="acme")) == 3
    # the call is out of tries: the right code is not even checked
    d.star30("acme-101", "102", code=demo.code(102), call_id="one-call", result="hangup")
    assert code_checks(d) - before == 3
    assert carries(d, mac(101)) == ("ext", "101", False)
    invariants(d)


def test_many_calls_check_at_most_the_lockout_threshold(make_daemon):
    # redials are not counted together here: only the cross-call lockout
    d, demo = daemon_with(make_daemon, tries_per_call=3, lockout_threshold=5,
                          redial_window=0, lockout_backoff=600,
                          lockout_backoff_max=600)
    wrong = "55667788"
    d.secrets.add(wrong)
    before = code_checks(d)
    answers = burst(d, [dict(caller="acme-101", digits="102", code=wrong,
                             call_id="call-%d" % i) for i in range(BURST)])
    checked = code_checks(d) - before
    assert checked == 5, "codes checked across calls: %d (threshold 5)" % checked
    got = results_of(answers)
    assert got.get("retry", 0) == 5 and got.get("denied", 0) == BURST - 5, got
    assert all(a.get("reason") == "locked" for a in answers if a["result"] == "denied")
    d.star30("acme-101", "102", code=demo.code(102), result="denied", reason="locked")
    assert code_checks(d) - before == 5
    assert ext(d, 102)["status"] == "home"
    invariants(d)


def test_redials_check_at_most_tries_per_call(make_daemon):
    # every request a new call (a proxy: the code travels in the dial string)
    d, demo = daemon_with(make_daemon, tries_per_call=3, lockout_threshold=100,
                          redial_window=120)
    wrong = "99887766"
    d.secrets.add(wrong)
    before = code_checks(d)
    answers = burst(d, [dict(caller="acme-101", digits="102", code=wrong,
                             call_id="redial-%d" % i) for i in range(BURST)])
    checked = code_checks(d) - before
    assert checked == 3, "codes checked across redials: %d (limit 3)" % checked
    got = results_of(answers)
    assert got == {"retry": 2, "hangup": BURST - 2}, got
    d.star30("acme-101", "102", code=demo.code(102), result="hangup")
    assert code_checks(d) - before == 3
    invariants(d)


def test_right_code_in_a_burst_only_before_the_limit(make_daemon):
    d, demo = daemon_with(make_daemon, tries_per_call=3, lockout_threshold=3,
                          redial_window=0, lockout_backoff=600,
                          lockout_backoff_max=600)
    wrong = "12344321"
    d.secrets.add(wrong)
    reqs = [dict(caller="acme-101", digits="102", code=wrong, call_id="mix-%d" % i)
            for i in range(BURST)]
    reqs[BURST // 2] = dict(caller="acme-101", digits="102", code=demo.code(102),
                            call_id="mix-right")
    before = code_checks(d)
    answers = burst(d, reqs)
    checked = code_checks(d) - before
    got = results_of(answers)
    failed = events(d, type="code.failed", org="acme")
    moved = events(d, type="extension.virtualized", org="acme")
    if got.get("accepted"):
        # accepted only while fewer than 3 failures were recorded before it
        assert got["accepted"] == 1 and len(moved) == 1, (got, moved)
        assert len([e for e in failed if e["id"] < moved[0]["id"]]) < 3, (failed, moved)
        assert carries(d, mac(101)) == ("ext", "102", True)
        # after the move acme-101 no longer dials from that phone
        # (unknown_caller, no code checked)
        assert checked <= 3, checked
        assert all(a.get("reason") in ("locked", "unknown_caller")
                   for a in answers if a["result"] == "denied"), got
    else:
        assert checked == 3, "codes checked: %d (threshold 3)" % checked
        assert len(failed) == 3, failed
        assert carries(d, mac(101)) == ("ext", "101", False)
        d.star30("acme-101", "102", code=demo.code(102), result="denied", reason="locked")
        assert all(a.get("reason") == "locked" for a in answers if a["result"] == "denied"), got
    invariants(d)
