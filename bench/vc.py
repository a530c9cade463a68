#!/usr/bin/python3
"""vc.py -- concurrent calls to the Virtualization Center (docs/VC.md).

Owns: one load run: sipp places CALLS calls at once, each from its own
phone (a "caller digits" line of gen.py's moves list: *30<digits> from the
caller's line), none keying a code, so each call hears "enter your secret
code", then CODE_TIMEOUT seconds of paced silence, then goodbye and a BYE
from hotdeskd.  Every RTP packet hotdeskd sends is received on one socket
and timestamped by the kernel (SO_TIMESTAMPNS); the pacing jitter of a
stream is |inter-arrival - 20 ms|.  Prints the figures; exits non-zero on a
lost call (one sipp did not complete, or without its own RTP stream).
The peers are those of the end-to-end tests (tests/e2e/vcpeer.py).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import vcpeer  # noqa: E402


def scenario(path):
    """vcpeer's caller, with caller and digits from the injection file."""
    vcpeer.sipp_scenario(path, keys="", wait_ms=100, expect_bye_ms=120000)
    with open(path) as f:
        xml = f.read()
    xml = xml.replace("[caller]", "[field0]").replace("[service]", "*30[field1]")
    with open(path, "w") as f:
        f.write(xml)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--moves", required=True)
    ap.add_argument("--calls", type=int, required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()

    with open(a.moves) as f:
        pairs = [l.split()[:2] for l in f if l.strip()][:a.calls]
    if len(pairs) < a.calls:
        sys.exit("vc.py: only %d callers in %s" % (len(pairs), a.moves))
    inf = os.path.join(a.dir, "vc-callers.csv")
    with open(inf, "w") as f:
        f.write("SEQUENTIAL\n")
        for caller, digits in pairs:
            f.write("%s;%s\n" % (caller, digits))
    scen = os.path.join(a.dir, "vc-caller.xml")
    scenario(scen)
    rtp = vcpeer.RtpReceiver()
    t0 = time.monotonic()
    try:
        rc, out = vcpeer.run_sipp(a.dir, scen, a.port, "*30", "unused", rtp.port, calls=a.calls,
                                  rate=a.calls, limit=a.calls, timeout=300,
                                  extra=["-inf", inf])
    finally:
        time.sleep(0.2)
        rtp.stop()
    wall = time.monotonic() - t0
    streams = rtp.streams()
    jit = []
    for s in streams.values():
        jit += vcpeer.jitter_ms(s)
    ok = rc == 0 and len(streams) == a.calls
    print("%-44s %d (%d answered with a stream of prompts)" % ("calls placed at once", a.calls,
                                                               len(streams)))
    print("%-44s %s" % ("calls lost", "0" if ok else "some (sipp exit %d)" % rc))
    print("%-44s %d in %.1f s" % ("RTP packets received", len(rtp.packets), wall))
    print("%-44s p50 %.2f  p99 %.2f  max %.2f" % (
        "pacing jitter |interval - 20 ms| (ms)", vcpeer.percentile(jit, 50),
        vcpeer.percentile(jit, 99), max(jit) if jit else 0.0))
    if not ok:
        print(out[-3000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
