"""End to end: a MAC scan spread over many source addresses, each under
the per-source threshold, trips the global limit on unknown-MAC misses.

Sources are loopback addresses 127.0.0.2.. (curl --interface), so the
daemon sees distinct peers.  After the trip: every source that missed is
refused everything (403), a new source is refused after its first miss,
an event prov.tripped records it, and a phone that never missed still
gets its file.
"""

import subprocess

import hdharness
from hdharness import events, mac


def get(d, name, src):
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
                        "5", "--interface", src,
                        "http://127.0.0.1:%d/provision/%s" % (d.port, name)],
                       capture_output=True, timeout=10)
    return int(p.stdout)


def test_scan_from_many_sources_trips_the_global_limit(make_daemon):
    d = make_daemon({"provisioning": {"miss_threshold": "5", "miss_window": "60",
                                      "miss_block": "300", "miss_global_threshold": "12"}})
    hdharness.build_demo(d)
    good = "%s-line.cfg" % mac(101)
    scanners = ["127.0.0.%d" % i for i in range(2, 8)]      # 6 sources
    guesses = iter("0004f2ee%04x-line.cfg" % i for i in range(100))
    codes = []
    for _ in range(2):                                        # 2 guesses each: 12
        for s in scanners:
            codes.append(get(d, next(guesses), s))
    assert codes == [404] * 12, codes                         # each stays under 5
    ev = events(d, type="prov.tripped")
    assert len(ev) == 1 and ev[0]["detail"]["blocked_sources"] == 6, ev
    # every scanner is refused now, even a real file
    for s in scanners:
        assert get(d, good, s) == 403, s
    # a new source: one miss and it is blocked
    assert get(d, next(guesses), "127.0.0.20") == 404
    assert get(d, good, "127.0.0.20") == 403
    # the phone, which never missed, is served
    assert get(d, good, "127.0.0.1") == 200
    assert get(d, good, "127.0.0.30") == 200
    # the admin interface is not affected
    assert d.admin("GET", "/api/v1/orgs")[0] == 200


def test_global_limit_off(make_daemon):
    d = make_daemon({"provisioning": {"miss_threshold": "5", "miss_global_threshold": "0"}})
    hdharness.build_demo(d)
    for i in range(12):
        assert get(d, "0004f2ee%04x-line.cfg" % i, "127.0.0.%d" % (2 + i % 6)) == 404
    assert events(d, type="prov.tripped") == []
    assert get(d, "%s-line.cfg" % mac(101), "127.0.0.2") == 200
