"""hotdeskd as a system service: privileges and the systemd protocol.

  * started as root with [server] user, it binds privileged ports (HTTP and
    SIP below 1024), then runs with every uid and gid the user's, no
    capability, its files owned by the user, and still works (moves, fetches,
    health, reload);
  * a user it cannot switch to stops it at start with a clear message;
    root without a user is warned about;
  * sd_notify: READY=1 once listening, WATCHDOG=1 pings when asked,
    RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM.
These tests start the daemon as root, as an administrator does.
"""

import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import hdharness

NOBODY = pwd.getpwnam("nobody")


def free_privileged_port(kind):
    """A port below 1024 free now for `kind` (SOCK_STREAM or SOCK_DGRAM);
    the caller retries with another one if the daemon cannot bind it."""
    for _ in range(200):
        port = random.randint(600, 1023)
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free privileged port")


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


@pytest.fixture
def nobody_dir():
    """A directory the user nobody owns and can reach (pytest's own
    temporary directories are private to root)."""
    path = tempfile.mkdtemp(prefix="hotdeskd-nobody-")
    os.chmod(path, 0o755)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def readable_copy(top):
    """Copies what the daemon reads after it became nobody (its binary,
    sql/, templates/, provisioning/) under `top`: a clone under /root is
    not readable by nobody.  Returns (binary, overrides)."""
    share = os.path.join(top, "share")
    for name in ("sql", "templates", "provisioning"):
        shutil.copytree(os.path.join(hdharness.REPO, name), os.path.join(share, name))
    binary = os.path.join(share, "hotdeskd")
    shutil.copy2(hdharness.binary_path(), binary)
    for dirpath, dirs, files in os.walk(share):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o755 if f == "hotdeskd" else 0o644)
    return binary, {"database": {"migrations": os.path.join(share, "sql")},
                    "provisioning": {"templates": os.path.join(share, "templates"),
                                     "static": os.path.join(share, "provisioning")}}


def test_root_switches_to_the_user_after_binding_privileged_ports(nobody_dir):
    assert os.geteuid() == 0, "this test starts hotdeskd as root, as an administrator does"
    d = None
    binary, ov = readable_copy(nobody_dir)
    for attempt in range(5):
        http_port = free_privileged_port(socket.SOCK_STREAM)
        sip_port = free_privileged_port(socket.SOCK_DGRAM)
        d = hdharness.Daemon(nobody_dir, {"server": {"port": http_port, "user": "nobody"},
                                          "sip": {"bind": "127.0.0.1:%d" % sip_port},
                                          "database": ov["database"],
                                          "provisioning": dict(
                                              ov["provisioning"],
                                              tftp_root=os.path.join(nobody_dir, "tftp"))})
        d.binary = binary
        try:
            d.start()
            break
        except AssertionError as e:
            if "Address already in use" not in str(e):
                raise
    else:
        raise AssertionError("no privileged ports could be bound in 5 attempts")
    try:
        check_switched(d, nobody_dir, http_port, sip_port)
    finally:
        d.teardown()


def check_switched(d, top, http_port, sip_port):
    tftp = os.path.join(top, "tftp")
    assert d.port == http_port < 1024
    st = proc_status(d.proc.pid)
    uid, gid = str(NOBODY.pw_uid), str(NOBODY.pw_gid)
    assert st["Uid"] == [uid] * 4 and st["Gid"] == [gid] * 4, (st["Uid"], st["Gid"])
    assert st["Groups"] in ([gid], []), st["Groups"]
    assert st["CapEff"] == ["0000000000000000"] and st["CapPrm"] == ["0000000000000000"], st
    # the SIP socket is the daemon's, on the privileged port
    ss = subprocess.run(["ss", "-lnup"], capture_output=True, text=True, timeout=30).stdout
    assert any(":%d " % sip_port in ln and "pid=%d," % d.proc.pid in ln
               for ln in ss.splitlines()), ss
    # everything it created belongs to the user
    for p in (d.db_path, d.db_path + "-wal", tftp, d.port_file):
        assert os.stat(p).st_uid == NOBODY.pw_uid, p
    demo = hdharness.build_demo(d)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    names = os.listdir(tftp)
    assert names and all(os.stat(os.path.join(tftp, n)).st_uid == NOBODY.pw_uid
                         for n in names)
    assert hdharness.prov_get(d, "%s.cfg" % hdharness.mac(102))[0] == 200
    assert d.request("GET", "/healthz")[0] == 200
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while "configuration reloaded" not in d.log_text():
        assert time.monotonic() < deadline, d.log_tail()
        time.sleep(0.1)
    assert "running as root" not in d.log_text()


def start_raw(tmp_path, overrides, binary=None, cwd=hdharness.REPO, **popen):
    """Starts the daemon outside the harness; returns (exit status, log)."""
    d = hdharness.Daemon(tmp_path, overrides)
    p = subprocess.run([binary or d.binary, "--config", d.config_path], capture_output=True,
                       text=True, timeout=60, cwd=cwd, **popen)
    return p.returncode, p.stderr


def test_a_user_that_cannot_be_taken_stops_the_start(tmp_path, nobody_dir):
    rc, log = start_raw(tmp_path, {"server": {"user": "no-such-user-hd"}})
    assert rc == 1 and "[server] user no-such-user-hd: no such user" in log, log
    # not root: the configured user must be the current one
    binary, ov = readable_copy(nobody_dir)
    rc, log = start_raw(nobody_dir, dict(ov, server={"user": "daemon"}), binary=binary,
                        cwd=nobody_dir, user=NOBODY.pw_uid, group=NOBODY.pw_gid,
                        extra_groups=[])
    assert rc == 1 and "[server] user daemon: not started as root, cannot switch" in log, log
    assert not os.path.exists(os.path.join(nobody_dir, "hotdeskd.db")), "nothing is created"


def test_root_without_a_user_is_warned_about(daemon):
    assert "warn: running as root: set [server] user" in daemon.log_text()


# ------------------------------------------------------------------ sd_notify

class NotifySocket:
    """The systemd side: an AF_UNIX datagram socket collecting messages."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.got = []

    def wait(self, msg, after=0, count=1, timeout=15.0):
        """Index of the count-th `msg` received at index >= after."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [i for i, m in enumerate(self.got) if m == msg and i >= after]
            if len(hits) >= count:
                return hits[count - 1]
            left = deadline - time.monotonic()
            assert left > 0, "no %r (x%d) from the daemon; got %r" % (msg, count, self.got)
            self.sock.settimeout(left)
            try:
                self.got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def drain(self):
        self.sock.setblocking(False)
        try:
            while True:
                self.got.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass

    def close(self):
        self.sock.close()


def test_sd_notify_ready_watchdog_reload_stopping(make_daemon, tmp_path):
    ns = NotifySocket(tmp_path / "notify")
    try:
        d = make_daemon(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"})
        # READY=1 comes once it listens, before any other message
        assert ns.wait("READY=1") == 0
        assert d.request("GET", "/healthz")[0] == 200
        ns.wait("WATCHDOG=1", count=3)  # pings go on
        n = len(ns.got)
        d.proc.send_signal(signal.SIGHUP)
        i = ns.wait("RELOADING=1", after=n)
        ns.wait("READY=1", after=i + 1)
        d.stop()
        ns.wait("STOPPING=1", after=i + 1)
    finally:
        ns.close()


def test_sd_notify_watchdog_for_another_pid_is_not_ours(make_daemon, tmp_path):
    ns = NotifySocket(tmp_path / "notify")
    try:
        make_daemon(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000",
                         "WATCHDOG_PID": "1"})
        ns.wait("READY=1")
        time.sleep(2.5)
        ns.drain()
        assert "WATCHDOG=1" not in ns.got, ns.got
    finally:
        ns.close()
