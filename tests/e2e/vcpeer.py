"""Peers of the Virtualization Center (docs/VC.md) for end-to-end tests.

Owns: a daemon configuration with the Virtualization Center on a loopback
port; an RTP receiver that timestamps every packet in the kernel
(SO_TIMESTAMPNS), so the pacing measured is hotdeskd's, not Python's; a
minimal SIP user agent client over UDP for the cases sipp cannot express
(bad offers, garbage, key presses from the wrong address); and sipp caller
scenarios made per test, which press keys by playing the RFC 2833 captures
Debian's sip-tester ships.
Standard library only.
"""

import os
import re
import secrets
import socket
import struct
import subprocess
import threading
import time

import hdharness

DTMF_DIR = "/usr/share/sip-tester"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def vc_overrides(tmp, extra=None, networks="127.0.0.1/32"):
    """[vc] settings for a daemon answering calls on 127.0.0.1: 600 even RTP
    ports, room for 200 calls at once even when other processes hold some
    (a call that finds no free port is refused with 503); 8 s of silence
    before goodbye, so that a loaded machine's slow keying is not taken for
    silence."""
    base = 20000 + 2 * secrets.randbelow(10000)
    prompts = os.path.join(os.path.dirname(hdharness.binary_path()), "prompts")
    vc = {"bind": "127.0.0.1:0", "port_file": os.path.join(str(tmp), "vc-port"),
          "networks": networks, "prompts": prompts,
          "rtp_ports": "%d-%d" % (base, base + 1199), "code_timeout": "8"}
    vc.update(extra or {})
    return {"vc": vc}


def vc_port(d):
    path = d.config["vc"]["port_file"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                t = f.read().strip()
            if t.isdigit():
                return int(t)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError("no [vc] port file")


class RtpReceiver:
    """Receives RTP on 127.0.0.1:port; records (kernel time, pt, seq, ts, ssrc,
    marker, payload length) per packet."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets = []
        self.raw = []
        self.sources = set()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError:
                return
            t = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    t = sec + nsec / 1e9
            if t is None:
                t = time.time()
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            self.sources.add(addr)
            self.raw.append(data)
            pt = data[1] & 0x7f
            seq, ts, ssrc = struct.unpack("!HII", data[2:12])
            self.packets.append((t, pt, seq, ts, ssrc, bool(data[1] & 0x80), len(data) - 12))

    def stop(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()

    def payloads(self, ssrc):
        """The payloads of one stream, in sequence order."""
        pk = [p for p in self.raw if struct.unpack("!I", p[8:12])[0] == ssrc]
        first = struct.unpack("!H", pk[0][2:4])[0] if pk else 0
        pk.sort(key=lambda p: (struct.unpack("!H", p[2:4])[0] - first) & 0xffff)
        return [p[12:] for p in pk]

    def streams(self):
        by = {}
        for p in self.packets:
            by.setdefault(p[4], []).append(p)
        return by


def jitter_ms(stream):
    """|inter-arrival - 20 ms| for each consecutive pair of a stream, in ms."""
    return [abs((b[0] - a[0]) * 1000.0 - 20.0) for a, b in zip(stream, stream[1:])]


def percentile(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


# ---- a minimal SIP UAC ----------------------------------------------------

class SipClient:
    """One UDP socket on `host` speaking raw SIP to the Virtualization Center."""

    def __init__(self, vc_port, host="127.0.0.1"):
        self.vc = ("127.0.0.1", vc_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()
        self.sock.settimeout(0.3)

    def close(self):
        self.sock.close()

    def send(self, text):
        if isinstance(text, str):
            text = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        self.sock.sendto(text, self.vc)

    def recv(self, timeout=5.0, want=None):
        """Next message (text); `want(msg)` filters.  None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            msg = data.decode("utf-8", "replace")
            if want is None or want(msg):
                return msg
        return None

    def invite(self, ruri_user, caller, sdp, call_id=None, cseq=1, extra=""):
        call_id = call_id or "vc-%s" % secrets.token_hex(6)
        body = sdp.replace("\r\n", "\n").replace("\n", "\r\n") if sdp else ""
        ctype = "Content-Type: application/sdp\r\n" if sdp else ""
        self.send(
            "INVITE sip:%s@127.0.0.1:%d SIP/2.0\r\n"
            "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:%s@%s>;tag=%s\r\n"
            "To: <sip:%s@127.0.0.1>\r\n"
            "Call-ID: %s\r\nCSeq: %d INVITE\r\n"
            "Contact: <sip:%s@%s:%d>\r\n%s%s"
            "Content-Length: %d\r\n\r\n%s"
            % (ruri_user, self.vc[1], self.host, self.port, secrets.token_hex(6), caller,
               self.host, secrets.token_hex(4), ruri_user, call_id, cseq, caller, self.host,
               self.port, extra, ctype, len(body.encode()), body))
        return call_id

    def ack_and_keep(self, ok):
        """ACKs a 200 OK; returns the dialog (call_id, from, to)."""
        h = headers(ok)
        self.send("ACK sip:vc@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s\r\n"
                  "Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\n"
                  "Content-Length: 0\r\n\r\n"
                  % (self.vc[1], self.host, self.port, secrets.token_hex(6), h["from"], h["to"],
                     h["call-id"]))
        return h

    def answer_bye(self, bye):
        h = headers(bye)
        self.send("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n"
                  "Content-Length: 0\r\n\r\n"
                  % (h["via"], h["from"], h["to"], h["call-id"], h["cseq"]))


def status_of(msg):
    m = re.match(r"SIP/2.0 (\d{3})", msg or "")
    return int(m.group(1)) if m else None


def headers(msg):
    head = msg.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    out = {}
    for line in head:
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip().lower(), v.strip())
    return out


def body_of(msg):
    return msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""


def sdp_offer(media_port, pts=(0, 101), host="127.0.0.1"):
    lines = ["v=0", "o=test 1 1 IN IP4 %s" % host, "s=-", "c=IN IP4 %s" % host, "t=0 0",
             "m=audio %d RTP/AVP %s" % (media_port, " ".join(str(p) for p in pts))]
    for p in pts:
        if p == 0:
            lines.append("a=rtpmap:0 PCMU/8000")
        elif p == 8:
            lines.append("a=rtpmap:8 PCMA/8000")
        elif p == 101:
            lines.append("a=rtpmap:101 telephone-event/8000")
        elif p == 18:
            lines.append("a=rtpmap:18 G729/8000")
    return "\r\n".join(lines) + "\r\n"


def answer_media(ok):
    """(ip, port, pt) of the answer's audio stream."""
    b = body_of(ok)
    ip = re.search(r"^c=IN IP4 (\S+)", b, re.M).group(1)
    m = re.search(r"^m=audio (\d+) RTP/AVP (\d+)", b, re.M)
    return ip, int(m.group(1)), int(m.group(2))


def dtmf_packets(key, ts, ssrc=0x1234, seq=1000, pt=101):
    """RFC 4733 packets of one key press: 3 updates, 3 end packets."""
    ev = "0123456789*#".index(key)
    out = []
    for i, dur in enumerate((160, 320, 480, 640, 640, 640)):
        end = 0x80 if i >= 3 else 0
        payload = struct.pack("!BBH", ev, end | 10, dur)
        hdr = struct.pack("!BBHII", 0x80, pt | (0x80 if i == 0 else 0), seq + i, ts, ssrc)
        out.append(hdr + payload)
    return out


# ---- sipp as the calling phone ---------------------------------------------

def sipp_scenario(path, keys="", wait_ms=1200, gap_ms=300, expect_bye_ms=30000):
    """A caller: INVITE (SDP pointing at [rtp_port]), ACK, keys pressed by
    playing RFC 2833 captures, then waits for hotdeskd's BYE and answers it.
    A 100 or 180 may come at any point ("global", without moving the
    scenario on): through Kamailio, whose UDP workers relay each message on
    its own, a 180 sent just before the 200 can arrive after it; a phone
    drops it, and so does this caller."""
    plays = []
    for k in keys:
        name = {"#": "pound", "*": "star"}.get(k, k)
        plays.append('  <nop><action><exec play_pcap_audio="%s/dtmf_2833_%s.pcap"/></action></nop>\n'
                     '  <pause milliseconds="%d"/>\n' % (DTMF_DIR, name, gap_ms))
    xml = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="hotdeskd Virtualization Center caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[caller]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=phone 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtp_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]>
  </send>
  <recv response="100" optional="global" advance_state="false"/>
  <recv response="180" optional="global" advance_state="false"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="%(wait)d"/>
%(plays)s  <recv request="BYE" timeout="%(bye)d"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
""" % {"wait": wait_ms, "plays": "".join(plays), "bye": expect_bye_ms}
    with open(path, "w") as f:
        f.write(xml)
    return path


def run_sipp(tmp, scenario, vc_port, service, caller, rtp_port, calls=1, rate=10, limit=None,
             timeout=90, extra=()):
    """Runs sipp as the caller(s) to completion; returns (exit code, output).

    sipp binds a SIP port (-p: one the harness held until now, not 5060,
    where other daemons' NOTIFYs arrive) and a media port (-mp) even when it
    only replays captures; a port taken meanwhile makes it exit at once,
    before any call: then it is started again on other ports, up to five
    times."""
    for attempt in range(5):
        out = os.path.join(str(tmp), "sipp-%s.out" % secrets.token_hex(3))
        media = 40000 + 2 * secrets.randbelow(10000)
        held = hdharness.UdpReservation()
        sip_port = held.port
        held.release()
        cmd = ["sipp", "127.0.0.1:%d" % vc_port, "-sf", scenario, "-i", "127.0.0.1",
               "-p", str(sip_port), "-mp", str(media), "-s", service, "-key", "caller", caller,
               "-key", "rtp_port", str(rtp_port), "-m", str(calls), "-r", str(rate),
               "-l", str(limit or calls), "-timeout", "%ds" % timeout, "-timeout_error",
               "-nostdin", "-trace_err", "-error_file", out + ".err"] + list(extra)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout + 30, cwd=str(tmp))
        text = p.stdout.decode("utf-8", "replace")
        if os.path.exists(out + ".err"):
            with open(out + ".err") as f:
                text += "\n--- sipp errors ---\n" + f.read()[-4000:]
        if p.returncode == 0 or not ("Unable to bind" in text or "already in use" in text):
            return p.returncode, text
    return p.returncode, text


# ---- baresip as a second, independent caller ------------------------------

class Baresip:
    """Debian's baresip as a phone on 127.0.0.1: dials, keys digits (RFC 4733
    telephone-events, its default), quits.  Commands go to its console on
    stdin; its output is kept in `log`."""

    def __init__(self, tmp, user):
        self.dir = os.path.join(str(tmp), "baresip")
        os.makedirs(self.dir, exist_ok=True)
        wav = os.path.join(self.dir, "silence.wav")
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", wav, "trim", "0", "60"],
                       check=True)
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("poll_method epoll\nnet_interface 127.0.0.1\nsip_listen 127.0.0.1:0\n"
                    "audio_player aubridge,nil\naudio_alert aubridge,nil\n"
                    "audio_source aufile,%s\nmodule_path /usr/lib/baresip/modules\n"
                    "module stdio.so\nmodule g711.so\nmodule aufile.so\nmodule aubridge.so\n"
                    "module_app account.so\nmodule_app menu.so\n" % wav)
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write("<sip:%s@127.0.0.1>;regint=0\n" % user)
        self.log = os.path.join(self.dir, "baresip.log")
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(["baresip", "-f", self.dir], stdin=subprocess.PIPE,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        self.wait_for("baresip is ready", 10)

    def output(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                raise AssertionError("baresip exited %s:\n%s" % (self.proc.returncode,
                                                                 self.output()[-2000:]))
            time.sleep(0.05)
        raise AssertionError("baresip: no %r within %d s:\n%s" % (text, timeout,
                                                                self.output()[-2000:]))

    def command(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def quit(self):
        try:
            self.command("/quit")
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def sipp_call(tmp, target_port, service, caller, keys="", calls=1, **scenario):
    """One run of sipp callers against target_port (hotdeskd or a proxy),
    pressing `keys`, with an RtpReceiver as the phones' media address.
    Returns (exit code, output, the stopped receiver)."""
    rtp = RtpReceiver()
    scen = sipp_scenario(os.path.join(str(tmp), "caller-%s.xml" % secrets.token_hex(3)),
                         keys=keys, **scenario)
    try:
        rc, out = run_sipp(tmp, scen, target_port, service, caller, rtp.port, calls=calls,
                           rate=calls if calls > 1 else 10, limit=calls)
    finally:
        rtp.stop()
    return rc, out, rtp
