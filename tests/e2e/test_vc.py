"""The Virtualization Center over SIP (docs/VC.md), end to end.

A phone (sipp, or a raw UDP client where sipp cannot say it) calls
*30<extension> at hotdeskd's SIP address; hotdeskd answers, plays prompts
in G.711 every 20 ms, reads the secret code as RFC 4733 key presses (the
RFC 2833 captures Debian's sip-tester ships) or SIP INFO, and applies the
same decision as POST /pbx/v1/star30.  Demo data: hdharness.build_demo.
"""

import os
import socket
import time

import pytest

import hdharness
from hdharness import carries, events, ext, invariants, mac, prov_get
from test_resync import phones, register  # noqa: F401 (a fixture)
from vcpeer import (Baresip, RtpReceiver, SipClient, answer_media, dtmf_packets, headers,
                    sdp_offer, sipp_call, status_of, vc_overrides, vc_port)


@pytest.fixture
def vc(make_daemon, tmp_path):
    d = make_daemon(vc_overrides(tmp_path))
    demo = hdharness.build_demo(d)
    return d, demo, vc_port(d)


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_move_with_code_keyed_as_rfc4733(vc, tmp_path):
    """sipp dials *30102 from 101's phone, keys 102's code from the RFC 2833
    captures, hears the prompts and hangs up when hotdeskd says goodbye."""
    d, demo, port = vc
    code = demo.code(102)
    rc, out, rtp = sipp_call(tmp_path, port, "*30102", "acme-101", keys=code + "#")
    assert rc == 0, out
    # the move happened, through the same engine as the webhook
    assert carries(d, mac(101)) == ("ext", "102", True)
    assert ext(d, 102)["status"] == "virtualized"
    ev = events(d, type="extension.virtualized", org="acme")
    assert [(str(x["extension"]), x["device"]) for x in ev] == [("102", mac(101))], ev
    invariants(d)
    # prompts: one stream of PCMU, 160-byte frames, consecutive sequence
    # numbers and timestamps, paced every 20 ms
    streams = rtp.streams()
    assert len(streams) == 1, streams.keys()
    (s,) = streams.values()
    assert len(s) > 100, "expected several seconds of prompts, got %d packets" % len(s)
    assert {p[1] for p in s} == {0}, "payload types %s" % {p[1] for p in s}
    assert {p[6] for p in s} == {160}
    assert s[0][5], "the first packet carries the marker bit"
    for a, b in zip(s, s[1:]):
        assert (b[2] - a[2]) & 0xffff == 1, "sequence gap"
        assert (b[3] - a[3]) & 0xffffffff == 160, "timestamp step"
    # paced, not burst: the mean interval is 20 ms (an absolute schedule does
    # not drift); jitter is a figure of bench/vc.sh, not a test
    span = s[-1][0] - s[0][0]
    assert 0.018 < span / (len(s) - 1) < 0.022, "%d packets in %.3f s" % (len(s), span)


def test_bare_star30_returns_without_a_code(vc, tmp_path):
    d, demo, port = vc
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    # 101's phone now dials as acme-102: a bare *30 sends 102 home
    rc, out, rtp = sipp_call(tmp_path, port, "*30", "acme-102")
    assert rc == 0, out
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert ext(d, 102)["status"] == "home"
    assert len(rtp.packets) > 20, "a welcome-back prompt was played"
    invariants(d)


def test_wrong_codes_by_info_end_the_call(vc, tmp_path):
    """Three wrong codes keyed as SIP INFO: retry, retry, then goodbye and a
    BYE from hotdeskd; nothing moved, three failures recorded."""
    d, demo, port = vc
    c = SipClient(port)
    rtp = RtpReceiver()
    try:
        c.invite("*30102", "acme-101", sdp_offer(rtp.port))
        ok = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        assert status_of(ok) == 200, ok
        h = c.ack_and_keep(ok)
        bye = None
        for attempt in range(3):
            for key in "9999#":
                body = "Signal=%s\r\nDuration=160\r\n" % key
                c.send("INFO sip:vc@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;"
                       "branch=z9hG4bKinfo%d%s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\n"
                       "CSeq: %d INFO\r\nContent-Type: application/dtmf-relay\r\n"
                       "Content-Length: %d\r\n\r\n%s"
                       % (port, c.port, attempt, ord(key), h["from"], h["to"], h["call-id"],
                          10 + attempt * 10 + "9999#".index(key), len(body), body))
                r = c.recv(want=lambda m: "INFO" in headers(m).get("cseq", ""))
                assert status_of(r) == 200, r
            if attempt < 2:
                # hotdeskd decides, says "wrong code" and asks again
                wait_for(lambda: len(events(d, type="code.failed", org="acme")) >= attempt + 1,
                         what="failure %d" % (attempt + 1))
                time.sleep(0.3)
        bye = c.recv(timeout=15, want=lambda m: m.startswith("BYE "))
        assert bye is not None, "hotdeskd must hang up after the third wrong code"
        c.answer_bye(bye)
    finally:
        c.close()
        rtp.stop()
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert len(events(d, type="code.failed", org="acme")) == 3
    invariants(d)


def test_no_common_codec_is_488(vc):
    d, demo, port = vc
    c = SipClient(port)
    try:
        c.invite("*30102", "acme-101", sdp_offer(40000, pts=(18, 101)))
        r = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        assert status_of(r) == 488, r
        # no SDP at all (a delayed offer) is refused the same way
        c.invite("*30102", "acme-101", None)
        r = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        assert status_of(r) == 488, r
    finally:
        c.close()
    assert ext(d, 102)["status"] == "home"


def test_only_configured_networks_may_call(make_daemon, tmp_path):
    d = make_daemon(vc_overrides(tmp_path, networks="127.0.0.2/32"))
    hdharness.build_demo(d)
    c = SipClient(vc_port(d), host="127.0.0.1")
    try:
        c.invite("*30", "acme-101", sdp_offer(40000))
        r = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        assert status_of(r) == 403, r
    finally:
        c.close()
    allowed = SipClient(vc_port(d), host="127.0.0.2")
    try:
        allowed.send("OPTIONS sip:vc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:%d;"
                     "branch=z9hG4bKopt1\r\nFrom: <sip:p@127.0.0.2>;tag=1\r\nTo: <sip:vc@127.0.0.1>"
                     "\r\nCall-ID: opt1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                     % allowed.port)
        assert status_of(allowed.recv()) == 200
    finally:
        allowed.close()


def test_garbage_and_unknown_numbers(vc):
    d, demo, port = vc
    c = SipClient(port)
    try:
        for junk in (b"", b"\x00\xff" * 300, b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n",
                     b"INVITE sip:x SIP/2.0\r\nVia: x\r\nContent-Length: 99999\r\n\r\n"):
            c.send(junk)
        # not *30...: 404; and the daemon still answers
        c.invite("5551234", "acme-101", sdp_offer(40000))
        r = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        assert status_of(r) == 404, r
        c.invite("*30abc", "acme-101", sdp_offer(40000))
        r = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        assert status_of(r) == 404, r
    finally:
        c.close()
    assert d.alive()


def test_silence_times_out_and_wrong_address_keys_are_ignored(vc):
    """Keys sent from another address than the offer's are not heard; a
    caller who keys nothing hears goodbye and gets a BYE."""
    d, demo, port = vc
    c = SipClient(port)
    rtp = RtpReceiver()
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    intruder.bind(("127.0.0.2", 0))
    try:
        c.invite("*30102", "acme-101", sdp_offer(rtp.port))
        ok = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        assert status_of(ok) == 200, ok
        c.ack_and_keep(ok)
        ip, mport, pt = answer_media(ok)
        assert (ip, pt) == ("127.0.0.1", 0)
        seq, ts = 100, 5000
        for key in demo.code(102) + "#":
            for pkt in dtmf_packets(key, ts, seq=seq):
                intruder.sendto(pkt, (ip, mport))
            seq += 6
            ts += 800
        bye = c.recv(timeout=20, want=lambda m: m.startswith("BYE "))
        assert bye is not None, "no BYE after the code timeout"
        c.answer_bye(bye)
    finally:
        c.close()
        rtp.stop()
        intruder.close()
    assert carries(d, mac(101)) == ("ext", "101", False), "keys from a wrong address moved 102"
    assert ext(d, 102)["status"] == "home"


def test_re_invite_refused_and_caller_bye(vc):
    d, demo, port = vc
    c = SipClient(port)
    rtp = RtpReceiver()
    try:
        cid = c.invite("*30102", "acme-101", sdp_offer(rtp.port))
        ok = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        h = c.ack_and_keep(ok)
        c.send("INVITE sip:vc@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKre1"
               "\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 INVITE\r\nContact: <sip:a@127.0.0.1:%d>"
               "\r\nContent-Length: 0\r\n\r\n" % (port, c.port, h["from"], h["to"], cid, c.port))
        r = c.recv(want=lambda m: "2 INVITE" in headers(m).get("cseq", ""))
        assert status_of(r) == 488, r
        c.send("BYE sip:vc@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKbye1"
               "\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"
               % (port, c.port, h["from"], h["to"], cid))
        r = c.recv(want=lambda m: "BYE" in headers(m).get("cseq", ""))
        assert status_of(r) == 200, r
        n = len(rtp.packets)
        time.sleep(0.3)
        assert len(rtp.packets) - n <= 2, "media must stop after BYE"
    finally:
        c.close()
        rtp.stop()


def test_200_parallel_calls(make_daemon, tmp_path):
    """200 callers at once (unknown callers: "not allowed", then BYE):
    every call completes and the daemon stays up."""
    d = make_daemon(vc_overrides(tmp_path))
    hdharness.build_demo(d)
    rc, out, rtp = sipp_call(tmp_path, vc_port(d), "*30102", "nobody", calls=200, wait_ms=100)
    assert rc == 0, out
    assert "Successful call" in out and len(rtp.streams()) == 200, (len(rtp.streams()), out[-3000:])
    assert d.alive()


def test_baresip_keys_the_code(vc, tmp_path):
    """baresip, an independent SIP phone, dials *30103 from 101's line and
    keys 103's code from its console (sent as RFC 4733 events)."""
    d, demo, port = vc
    phone = Baresip(tmp_path, "acme-101")
    try:
        phone.command("/dial sip:*30103@127.0.0.1:%d" % port)
        phone.wait_for("Call established", 15)
        time.sleep(0.5)
        phone.command("/sndcode %s#" % demo.code(103))
        # hotdeskd says the outcome and hangs up
        phone.wait_for("terminated", 30)
    finally:
        phone.quit()
    assert carries(d, mac(101)) == ("ext", "103", True), phone.output()[-2000:]
    assert ext(d, 103)["status"] == "virtualized"
    invariants(d)


def test_prompts_in_the_organizations_language(vc):
    """acme's site language is fr_FR: its callers hear the French prompts
    (build/prompts/fr, made from prompts/fr.txt), byte for byte."""
    d, demo, port = vc
    d.admin_ok("PATCH", "/api/v1/orgs/acme", {"site": {"language": "fr_FR"}})
    prompts = d.config["vc"]["prompts"]
    c = SipClient(port)
    rtp = RtpReceiver()
    try:
        c.invite("*30", "acme-101", sdp_offer(rtp.port))   # bare *30 at home: "nothing"
        ok = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
        assert status_of(ok) == 200, ok
        c.ack_and_keep(ok)
        bye = c.recv(timeout=20, want=lambda m: m.startswith("BYE "))
        assert bye is not None
        c.answer_bye(bye)
    finally:
        c.close()
        rtp.stop()
    (s,) = rtp.streams().values()
    with open(os.path.join(prompts, "fr", "nothing.ul"), "rb") as f:
        french = f.read()
    with open(os.path.join(prompts, "en", "nothing.ul"), "rb") as f:
        english = f.read()
    assert french[:1600] != english[:1600]
    # the payloads, in sequence order, start with the French prompt
    played = b"".join(rtp.payloads(s[0][4]))
    assert played[:1600] == french[:1600], "not the French prompt"


def test_through_kamailio(make_daemon, tmp_path):
    """The shipped pbx/kamailio/kamailio.cfg with HOTDESKD_VC routes *30
    calls to the Virtualization Center: sipp as 101's phone dials *30102
    through Kamailio, keys 102's code as RFC 4733 events, hears the prompts
    and is hung up on through the proxy; a code in the dialed string is
    refused by the proxy (484)."""
    from test_kamailio import Pbx

    d = make_daemon(vc_overrides(tmp_path))
    demo = hdharness.build_demo(d)
    pbx = Pbx(tmp_path / "kam")
    os.makedirs(pbx.tmp)
    pbx.start(d, hdharness.free_udp_port(),
              defines=['HOTDESKD_VC="sip:127.0.0.1:%d"' % vc_port(d)])
    kam_port = pbx.peer.port
    try:
        rc, out, rtp = sipp_call(tmp_path, kam_port, "*30102", "acme-101",
                                 keys=demo.code(102) + "#")
        assert rc == 0, out + pbx.peer.output()
        # the dialed string carries no code
        c = SipClient(kam_port)
        try:
            c.invite("*30102*" + demo.code(102), "acme-101", sdp_offer(40000))
            r = c.recv(want=lambda m: (status_of(m) or 0) >= 200)
            assert status_of(r) == 484, r
        finally:
            c.close()
    finally:
        pbx.peer.stop()
    assert carries(d, mac(101)) == ("ext", "102", True)
    assert ext(d, 102)["status"] == "virtualized"
    (s,) = rtp.streams().values()
    assert len(s) > 100 and {p[1] for p in s} == {0}
    invariants(d)


def test_refused_caller_is_logged_for_fail2ban(make_daemon, tmp_path):
    """A SIP request from outside [vc] networks gets 403 and one
    refused-authentication line (docs/OPERATIONS.md) naming its address."""
    d = make_daemon(vc_overrides(tmp_path, networks="127.0.0.2/32"))
    c = SipClient(vc_port(d), host="127.0.0.3")
    try:
        c.invite("*30", "acme-101", sdp_offer(40000))
        assert status_of(c.recv(want=lambda m: (status_of(m) or 0) >= 200)) == 403
    finally:
        c.close()
    wait_for(lambda: "auth refused: src=127.0.0.3 kind=vc-network reason=not-allowed"
             in d.log_text(), what="the refused-authentication line")


def test_move_by_call_publishes_and_notifies_like_the_webhook(vc, tmp_path, phones):
    """A move made by a call has the webhook's effects: the visited phone's
    file carries the visitor, and exactly one NOTIFY reaches each changed
    phone at its registered contact (sipp phones, as in test_resync)."""
    d, demo, port = vc
    p101 = phones(name="dev101")
    p102 = phones(name="dev102")
    register(d, "acme-101", p101.contact("acme-101"))
    register(d, "acme-102", p102.contact("acme-102"))
    rc, out, _ = sipp_call(tmp_path, port, "*30102", "acme-101", keys=demo.code(102) + "#")
    assert rc == 0, out
    st, _, body = prov_get(d, "%s-line.cfg" % mac(101))
    assert st == 200 and b"acme-102" in body and b"acme-101" not in body, body[:300]
    for p in (p101, p102):
        p.wait_notifies(1, timeout=10)
    time.sleep(1.0)  # room for a duplicate to show
    assert len(p101.notifies()) == 1 and len(p102.notifies()) == 1, (
        p101.notifies(), p102.notifies())
