"""The shipped pbx/kamailio/kamailio.cfg, run by the real Kamailio 5.6 on
loopback in front of the real daemon, with sipp phones registering and
dialing through it (Debian packages kamailio, kamailio-utils-modules).

hotdeskd sends its SIP from 127.0.0.2 (the address the configuration
trusts for NOTIFY relaying) through Kamailio as [sip] outbound_proxy.
Phones are sipp UASs (tests/sip/kam_phone.xml) whose lines are registered
through Kamailio by kam_register.xml; calls and *30 are kam_dial.xml.
Checked: *30 with the code in the dialed string moves the extension; the
moved phone's file carries the new credentials; exactly one NOTIFY reaches
each changed phone through the proxy and none any other phone; a call to
the moved user reaches only the new desk; bare *30 returns; wrong codes
are limited across redials (each a new call); a NOTIFY from anyone but
hotdeskd is not relayed; hotdeskd's move webhook (Kamailio's xhttp on a
TCP port) replaces the moved user's binding before any phone registers
again, and the webhook is refused from another address or with a wrong
secret.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import weakref

import pytest

import hdharness
from hdharness import carries, mac, park, prov_get, wait_for

SIP_DIR = os.path.join(hdharness.REPO, "tests", "sip")
CFG = os.path.join(hdharness.REPO, "pbx", "kamailio", "kamailio.cfg")
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
HOTDESKD_SIP_IP = "127.0.0.2"
HOOK_SECRET = "hook-" + "5ecret-" * 4


def free_tcp_port():
    """A TCP port free now; the peer that binds it is started again on
    another one if something takes it first (see rig)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tcp_listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False

def udp_port_free(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Peer:
    """A process started on a port it binds itself; started again on
    another port when the port was taken before it bound it (the real
    error is shown if it fails otherwise)."""

    def __init__(self, name, logdir):
        self.name = name
        self.log = os.path.join(logdir, name + ".log")
        self.proc = None
        self.port = None

    def output(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except FileNotFoundError:
            return ""

    def start(self, argv_for_port, bound, tries=5, cwd=None, port=None):
        for _ in range(tries):
            self.port = port or hdharness.free_udp_port()
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(argv_for_port(self.port), stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=out, cwd=cwd)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if bound(self):
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.stop()
                raise AssertionError("%s did not bind port %d:\n%s"
                                     % (self.name, self.port, self.output()))
            if "Address already in use" not in self.output():
                raise AssertionError("%s exited with %s:\n%s"
                                     % (self.name, self.proc.returncode, self.output()))
        raise AssertionError("%s: no free port after %d tries" % (self.name, tries))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sipp_cmd(scenario, port, msglog, extra, calls, remote=None):
    cmd = ["sipp", "-sf", os.path.join(SIP_DIR, scenario), "-i", "127.0.0.1",
           "-p", str(port), "-m", str(calls), "-nostdin", "-timeout", "30s",
           "-timeout_error", "-trace_msg", "-message_file", msglog, "-mp",
           str(hdharness.free_udp_port()), "-cp", str(hdharness.free_udp_port())] + extra
    if remote:
        cmd.append(remote)
    return cmd


def messages(path):
    """[(start line, headers text)] of the messages sipp received."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace").replace("\r\n", "\n")
    except FileNotFoundError:
        return []
    out = []
    for block in re.split(r"^-{20,}.*$", text, flags=re.M):
        lines = block.strip("\n").split("\n")
        if len(lines) < 2 or "received" not in lines[0]:
            continue
        rest = [ln for ln in lines[1:]]
        while rest and not rest[0].strip():
            rest.pop(0)
        if rest:
            out.append((rest[0].strip(), "\n".join(rest[1:])))
    return out


class Phone:
    def __init__(self, tmp, name):
        self.tmp = str(tmp)
        self.msglog = os.path.join(self.tmp, "phone-%s-messages.log" % name)
        self.peer = Peer("sipp-phone-" + name, self.tmp)

    def start(self):
        self.peer.start(lambda port: sipp_cmd("kam_phone.xml", port, self.msglog, [], 100),
                        lambda p: not udp_port_free(p.port), cwd=self.tmp)
        return self

    @property
    def port(self):
        return self.peer.port

    def requests(self, method):
        """Distinct requests (retransmissions counted once, by Via branch)."""
        seen, out = set(), []
        for start, hdrs in messages(self.msglog):
            if not start.startswith(method + " "):
                continue
            via = re.search(r"^Via:.*$", hdrs, flags=re.M | re.I)
            key = via.group(0) if via else start
            if key not in seen:
                seen.add(key)
                out.append((start, hdrs))
        return out


class Pbx:
    """Kamailio from the shipped file, in front of the daemon d."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.peer = Peer("kamailio", self.tmp)
        self.n = 0
        # its control sockets live in the run directory: a short path of its
        # own, since a Unix socket path is limited to 107 bytes and pytest's
        # (per worker, per test) can be longer
        self.rundir = tempfile.mkdtemp(prefix="hdkam-", dir="/tmp")
        weakref.finalize(self, shutil.rmtree, self.rundir, True)

    def start(self, d, port, defines=(), hook_port=None):
        """defines: further -A NAME=value of the shipped file; hook_port:
        the TCP port of the move webhook (hotdeskd's secret HOOK_SECRET)."""
        rundir = self.rundir
        self.started = (d, port, defines, hook_port)
        hook = [] if hook_port is None else \
            ["-l", "tcp:127.0.0.1:%d" % hook_port,
             "-A", 'HOTDESKD_MOVES_SECRET="%s"' % HOOK_SECRET]

        def argv(port):
            return ["kamailio", "-f", CFG, "-L", MODULES, "-DD", "-E", "-m", "64", "-M", "8",
                    "-Y", rundir, "-w", rundir, "-l", "udp:127.0.0.1:%d" % port,
                    "-A", 'HOTDESKD_URL="http://127.0.0.1:%d"' % d.port,
                    "-A", 'HOTDESKD_TOKEN="%s"' % d.pbx_token,
                    "-A", 'HOTDESKD_SIP_IP="%s"' % HOTDESKD_SIP_IP] + hook + \
                [a for kv in defines for a in ("-A", kv)]

        # ready when its SIP port answers an OPTIONS-less probe: a
        # malformed datagram is dropped, so watch the port instead
        self.peer.start(argv, lambda p: not udp_port_free(p.port) and
                        (hook_port is None or tcp_listening(hook_port)) and
                        "ERROR" not in p.output(), cwd=self.tmp, tries=1, port=port)
        time.sleep(0.5)  # children forked after the bind
        assert self.peer.proc.poll() is None, self.peer.output()
        return self

    @property
    def remote(self):
        return "127.0.0.1:%d" % self.peer.port

    def run(self, scenario, service, keys, name):
        """One sipp UAC call through Kamailio; returns the final response line."""
        self.n += 1
        msglog = os.path.join(self.tmp, "uac-%d-%s.log" % (self.n, name))
        extra = ["-s", service]
        for k, v in keys.items():
            extra += ["-key", k, str(v)]
        peer = Peer("sipp-uac-%d-%s" % (self.n, name), self.tmp)
        for _ in range(5):
            port = hdharness.free_udp_port()
            with open(peer.log, "ab") as out:
                start = out.tell()
                proc = subprocess.run(sipp_cmd(scenario, port, msglog, extra, 1, self.remote),
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                      cwd=self.tmp, timeout=60)
            # this attempt's whole output: sipp says it could not bind one
            # of its ports (SIP, or media at -mp + 2) at the top
            with open(peer.log, "rb") as f:
                f.seek(start)
                if b"Address already in use" not in f.read():
                    break
        finals = [s for s, _ in messages(msglog)
                  if s.startswith("SIP/2.0 ") and not s.startswith("SIP/2.0 1")]
        assert proc.returncode == 0 and finals, "sipp %s exited %s:\n%s\n%s" % (
            name, proc.returncode, peer.output(), self.peer.output()[-1500:])
        return finals[-1]

    def restart(self):
        """Stops Kamailio (its location table is lost: usrloc in memory)
        and starts it again on the same ports, as a new peer."""
        self.peer.stop()
        self.n += 1
        self.peer = Peer("kamailio-%d" % self.n, self.tmp)
        return self.start(*self.started)

    def bindings(self):
        """{AoR: [contact addresses]} of Kamailio's location table (kamcmd
        ul.dump through the ctl socket in the run directory)."""
        out = subprocess.run(["kamcmd", "-s", "unix:" + os.path.join(self.rundir, "kamailio_ctl"),
                              "ul.dump"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        table, aor = {}, None
        for line in out.stdout.splitlines():
            m = re.match(r"\s*AoR: (\S+)$", line)
            if m:
                aor = table.setdefault(m.group(1), [])
            m = re.match(r"\s*Address: (\S+)$", line)
            if m:
                aor.append(m.group(1))
        return table

    def register(self, user, phone):
        self.run("kam_register.xml", user, {"contact_port": phone.port}, "reg-" + user)

    def dial(self, caller, target):
        return self.run("kam_dial.xml", target, {"caller": caller}, "dial-" + caller)


@pytest.fixture
def rig(make_daemon, tmp_path):
    # hotdeskd needs the proxy's port and Kamailio the daemon's: the
    # proxy's port is chosen first, and everything is started again on
    # another one if something took it before Kamailio bound it
    for attempt in range(3):
        pbx = Pbx(tmp_path / ("try%d" % attempt))
        os.makedirs(pbx.tmp)
        proxy_port = hdharness.free_udp_port()
        hook_port = free_tcp_port()
        d = make_daemon({"sip": {"bind": HOTDESKD_SIP_IP + ":0",
                                 "outbound_proxy": "127.0.0.1:%d" % proxy_port,
                                 "t1_ms": "100", "timer_f_ms": "2000"},
                         "pbx": {"move_webhook":
                                 "http://127.0.0.1:%d/hotdeskd/moves" % hook_port,
                                 "move_webhook_secret": HOOK_SECRET,
                                 "move_webhook_retry_max": "1"}})
        d.secrets.add(HOOK_SECRET)
        demo = hdharness.build_demo(d)
        try:
            pbx.start(d, proxy_port, hook_port=hook_port)
            pbx.hook_port = hook_port
            break
        except AssertionError as e:
            if "no free port" not in str(e):
                raise
    phones = {n: Phone(tmp_path, str(n)).start() for n in (101, 102, 103)}
    yield d, demo, pbx, phones
    for p in phones.values():
        p.peer.stop()
    pbx.peer.stop()


def test_star30_through_kamailio(rig):
    d, demo, pbx, phones = rig
    for n, p in phones.items():
        pbx.register("acme-%d" % n, p)
    # the registration feed reached hotdeskd (name-addr contact, via the
    # async worker): each line is registered at its phone
    for n, p in phones.items():
        want = "sip:acme-%d@127.0.0.1:%d" % (n, p.port)
        wait_for(lambda: ((hdharness.dev(d, mac(n)).get("sync") or {}).get("target") or {})
                 .get("uri") == want, "device %d registered at %s" % (n, want))

    # *30 with the code in the dialed string, from 101's phone: 102 moves
    code = demo.code(102)
    assert pbx.dial("acme-101", "*30102*" + code) == "SIP/2.0 200 Extension moved"
    assert carries(d, mac(101)) == ("ext", "102", True)
    st, _, body = prov_get(d, "%s-line.cfg" % mac(101))
    assert st == 200 and b"acme-102" in body and b"acme-101" not in body, body[:300]

    # exactly one NOTIFY reaches each changed phone through the proxy, at
    # its registered contact; none reaches the phone that did not change
    wait_for(lambda: len(phones[101].requests("NOTIFY")) >= 1 and
             len(phones[102].requests("NOTIFY")) >= 1, "NOTIFYs to 101 and 102")
    time.sleep(1.5)  # time for a wrong extra one to show
    for n in (101, 102):
        got = phones[n].requests("NOTIFY")
        assert len(got) == 1, (n, got)
        start, hdrs = got[0]
        assert start == "NOTIFY sip:acme-%d@127.0.0.1:%d SIP/2.0" % (n, phones[n].port), start
        assert re.search(r"^Via: SIP/2.0/UDP 127\.0\.0\.1:%d" % pbx.peer.port, hdrs,
                         flags=re.M), hdrs  # relayed by the proxy
    assert phones[103].requests("NOTIFY") == []

    # 101's phone reloads and registers as acme-102: the old binding of
    # acme-102 (102's phone) is replaced, a call reaches only the new desk
    pbx.register("acme-102", phones[101])
    assert pbx.dial("acme-103", "acme-102") == "SIP/2.0 486 Busy Here"
    assert len(phones[101].requests("INVITE")) == 1
    assert phones[102].requests("INVITE") == [] and phones[103].requests("INVITE") == []

    # wrong codes, every redial a new call: the tries count down, then 603
    wrong = "13572468"
    d.secrets.add(wrong)
    assert pbx.dial("acme-102", "*30103*" + wrong) == "SIP/2.0 484 Wrong code, 2 tries left"
    assert pbx.dial("acme-102", "*30103*" + wrong) == "SIP/2.0 484 Wrong code, 1 try left"
    assert pbx.dial("acme-102", "*30103*" + wrong) == "SIP/2.0 603 Too many wrong codes"
    assert pbx.dial("acme-102", "*30103*" + demo.code(103)) == \
        "SIP/2.0 603 Too many wrong codes"
    assert pbx.dial("acme-102", "*30103") == "SIP/2.0 603 Too many wrong codes"

    # bare *30 from the visited phone: 102 goes home
    assert pbx.dial("acme-102", "*30") == "SIP/2.0 200 Extension returned"
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(102)) == ("ext", "102", False)


def test_proxy_relays_notify_only_from_hotdeskd(rig):
    d, demo, pbx, phones = rig
    pbx.register("acme-103", phones[103])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    port = s.getsockname()[1]
    msg = ("NOTIFY sip:acme-103@127.0.0.1:%d SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-attack-1;rport\r\n"
           "Route: <sip:%s;lr>\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:x@127.0.0.1>;tag=a1\r\n"
           "To: <sip:acme-103@127.0.0.1>\r\n"
           "Call-ID: attack-1\r\nCSeq: 1 NOTIFY\r\n"
           "Event: check-sync;reboot=true\r\nSubscription-State: terminated\r\n"
           "Content-Length: 0\r\n\r\n" % (phones[103].port, port, pbx.remote))
    s.sendto(msg.encode(), ("127.0.0.1", pbx.peer.port))
    data, _ = s.recvfrom(4096)
    s.close()
    assert data.startswith(b"SIP/2.0 403 Relay Denied"), data[:200]
    time.sleep(0.5)
    assert phones[103].requests("NOTIFY") == []


def webhook_metric(d, result):
    st, _, body = d.request("GET", "/metrics")
    assert st == 200
    m = re.search(r'^hotdeskd_move_webhook_total\{result="%s"\} (\S+)$' % result,
                  body.decode(), flags=re.M)
    return float(m.group(1))


def test_move_drops_the_stale_binding_before_any_phone_registers(rig):
    d, demo, pbx, phones = rig
    for n, p in phones.items():
        pbx.register("acme-%d" % n, p)
    contact = {n: "sip:acme-%d@127.0.0.1:%d" % (n, p.port) for n, p in phones.items()}
    for n in phones:
        wait_for(lambda: ((hdharness.dev(d, mac(n)).get("sync") or {}).get("target") or {})
                 .get("uri") == contact[n], "device %d registered" % n)
    assert pbx.bindings()["acme-102"] == [contact[102]]
    # before the move a call to 102 rings its own desk
    assert pbx.dial("acme-103", "acme-102") == "SIP/2.0 486 Busy Here"
    assert len(phones[102].requests("INVITE")) == 1
    delivered = webhook_metric(d, "delivered")

    # *30 from 101's desk moves 102 there; nobody registers afterwards
    assert pbx.dial("acme-101", "*30102*" + demo.code(102)) == "SIP/2.0 200 Extension moved"
    # 3 users moved: acme-102 (to 101's desk), acme-101 (nowhere), 102's
    # parking account (at 102's desk): each posted and answered 200
    wait_for(lambda: webhook_metric(d, "delivered") >= delivered + 3, "3 webhook posts")
    table = pbx.bindings()
    # 102's binding at its old desk is gone; its one binding is 101's
    # desk, at the contact that desk registered
    assert table.get("acme-102") == [contact[101]], table
    assert "acme-101" not in table, table
    assert table.get(park(102)) == [contact[102]], table
    assert table.get("acme-103") == [contact[103]], table

    # a call to 102 rings only the new desk, without any re-registration
    assert pbx.dial("acme-103", "acme-102") == "SIP/2.0 486 Busy Here"
    assert len(phones[101].requests("INVITE")) == 1
    assert len(phones[102].requests("INVITE")) == 1  # the call before the move only
    assert phones[103].requests("INVITE") == []
    # 101 is at no desk: nothing rings
    assert pbx.dial("acme-103", "acme-101") == "SIP/2.0 404 Not Found"
    assert len(phones[101].requests("INVITE")) == 1

    # the phone reloads and registers its new line: still one binding
    pbx.register("acme-102", phones[101])
    assert pbx.bindings()["acme-102"] == [contact[101].replace("acme-101", "acme-102")]
    assert webhook_metric(d, "failed") == 0


def test_webhook_is_refused_from_elsewhere_or_with_a_wrong_secret(rig):
    d, demo, pbx, phones = rig
    pbx.register("acme-103", phones[103])
    url = "http://127.0.0.1:%d/hotdeskd/moves" % pbx.hook_port
    body = "event=move&id=1&move=1&at=0&sip_user=acme-103&device=&contact=&cause=star30"

    def post(secret, source="127.0.0.1", data=body):
        cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
               "--interface", source, "-X", "POST", "--data", data, url]
        if secret is not None:
            cmd[1:1] = ["-H", "Authorization: Bearer " + secret]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout

    assert post("wrong-secret-wrong-secret") == "401"
    assert post(None) == "401"
    assert post(HOOK_SECRET, source="127.0.0.3") == "403"
    assert post(HOOK_SECRET, data=body.replace("acme-103", 'acme-103"],"x":["')) == "400"
    # none of these touched the location table
    assert pbx.bindings().get("acme-103") == \
        ["sip:acme-103@127.0.0.1:%d" % phones[103].port]
    # the right secret from hotdeskd's address is obeyed
    assert post(HOOK_SECRET) == "200"
    assert "acme-103" not in pbx.bindings()


def test_webhook_retries_while_the_proxy_is_down_and_keeps_the_order(rig):
    d, demo, pbx, phones = rig
    contact = {}
    for n in (101, 102):
        pbx.register("acme-%d" % n, phones[n])
        contact[n] = "sip:acme-%d@127.0.0.1:%d" % (n, phones[n].port)
        wait_for(lambda: ((hdharness.dev(d, mac(n)).get("sync") or {}).get("target") or {})
                 .get("uri") == contact[n], "device %d registered" % n)
    pbx.peer.stop()  # the proxy is down: hotdeskd's posts are refused
    failed = webhook_metric(d, "failed")
    delivered = webhook_metric(d, "delivered")
    # a move, then the return, by the PBX API (no proxy needed)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    d.star30("acme-102", None, result="returned")
    wait_for(lambda: webhook_metric(d, "failed") >= failed + 2, "2 failed attempts")
    assert webhook_metric(d, "delivered") == delivered
    pbx.restart()  # up again, with an empty location table
    wait_for(lambda: webhook_metric(d, "delivered") >= delivered + 6, "6 posts delivered")
    time.sleep(1)
    with open(pbx.peer.log, "rb") as f:
        moved = [ln.split("move webhook: ", 1)[1] for ln in
                 f.read().decode("utf-8", "replace").splitlines() if "move webhook: " in ln]
    assert len(moved) == 6, moved  # each event once
    # applied in commit order: the return last, so each user is back at
    # its own desk and the parking account of 102's desk is nowhere (in
    # the reverse order 102 would ring at 101's desk)
    assert pbx.bindings() == {"acme-101": [contact[101]], "acme-102": [contact[102]]}, \
        (pbx.bindings(), moved)
    assert pbx.dial("acme-101", "acme-102") == "SIP/2.0 486 Busy Here"
    assert len(phones[102].requests("INVITE")) == 1 and phones[101].requests("INVITE") == []
