"""End to end: kill -9 while the TFTP root is being published leaves no
file tftpd-hpa can serve other than the published ones, and the next
start removes what the crash left.

The daemon publishes every device at start-up through one batch of
temporaries (written, synced once, renamed).  With a few thousand devices
that batch takes long enough to be caught: the test starts the daemon,
watches the TFTP root, and kills it with SIGKILL as soon as temporaries
appear.  Then a real tftpd-hpa (which drops to user nobody) serves the
root and every leftover temporary is asked for by its path: none may be
served, since each holds SIP passwords.  A restart must leave no
temporary anywhere under the root and serve the published files.
"""

import os
import signal
import sqlite3
import subprocess
import time

import hdharness

DEVICES = 2500
PROFILES = [("polycom", "0004f2", "VVX_500", "{mac}-line.cfg"),
            ("yealink", "001565", "T46S", "{mac}.cfg"),
            ("cisco-mpp", "00562b", "CP-8841-3PCC", "{mac}.xml"),
            ("cisco-enterprise", "00082f", "CP-8845", "SEP{MAC}.cnf.xml")]


def _fill(db_path):
    """DEVICES devices, each with its home extension and a SIP password."""
    db = sqlite3.connect(db_path)
    with db:
        db.execute("INSERT INTO orgs (id, name, sip_host, sip_port, sip_transport)"
                   " VALUES (1, 'crash', 'pbx.crash.test', 5060, 'udp')")
        db.executemany(
            "INSERT INTO extensions (id, org_id, number, sip_user, sip_password, display_name)"
            " VALUES (?, 1, ?, ?, ?, ?)",
            ((i + 1, str(10000 + i), "crash-%d" % i, "crash-pw-%06d" % i, "User %d" % i)
             for i in range(DEVICES)))
        db.executemany(
            "INSERT INTO devices (id, mac, org_id, profile, model, home_ext_id)"
            " VALUES (?, ?, 1, ?, ?, ?)",
            ((i + 1, "%s%06x" % (PROFILES[i % 4][1], i), PROFILES[i % 4][0],
              PROFILES[i % 4][2], i + 1) for i in range(DEVICES)))
    db.close()


def _published_names():
    out = set()
    for i in range(DEVICES):
        _, oui, _, pat = PROFILES[i % 4]
        m = "%s%06x" % (oui, i)
        out.add(pat.format(mac=m, MAC=m.upper()))
    return out


def _leftovers(root, published=None, holding=False):
    """Paths (relative to root) of every file that is not published under
    its own name: any file whose path has a component starting with '.'
    (a temporary, whatever the layout), which is what a crash leaves.
    holding: only those that hold data (not the writer's empty spares)."""
    out = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            if any(part.startswith(".") for part in rel.split(os.sep)) and \
                    (not holding or os.stat(path).st_size > 0):
                out.append(rel)
    return sorted(out)


def _start_and_kill_mid_publish(d, root, published):
    """Starts the daemon and SIGKILLs it once temporaries are in root.
    Returns the leftovers, [] when the kill came too late."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESKD_")}
    with open(d.log_path, "ab") as log:
        proc = subprocess.Popen([d.binary, "--config", d.config_path],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=hdharness.REPO, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if _leftovers(root, published):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return _leftovers(root, published)


def _clear_published(root, published):
    for name in published:
        try:
            os.unlink(os.path.join(root, name))
        except FileNotFoundError:
            pass


def test_kill9_during_publishing_leaves_nothing_servable(make_daemon, tmp_path, monkeypatch):
    # publishing thousands of devices at start-up takes seconds on a loaded
    # machine: a generous start-up deadline (liveness only)
    monkeypatch.setattr(hdharness, "START_TIMEOUT", 90.0)
    root = str(tmp_path / "tftp")
    d = make_daemon({"provisioning": {"tftp_root": root}})
    d.stop()                      # the schema exists now; fill it directly
    _fill(d.db_path)
    published = _published_names()
    with open(os.path.join(root, "probe.txt"), "w") as f:
        f.write("probe\n")
    os.chmod(os.path.join(root, "probe.txt"), 0o644)

    left = []
    for _ in range(8):            # the batch is long, but the machine may be slow
        _clear_published(root, published)
        left = _start_and_kill_mid_publish(d, root, published)
        if left:
            break
    assert left, "no kill -9 landed while temporaries existed (8 tries)"

    # the real server, as phones reach it: no temporary is served
    t = hdharness.Tftpd(root, str(tmp_path / "tftpd.log")).start(probe="probe.txt")
    try:
        served = [rel for rel in sorted(set(left[:50] + left[-50:])) if t.get(rel) is not None]
    finally:
        t.stop()
    assert not served, "tftpd serves %d temporaries left by kill -9, e.g. %s" % (
        len(served), served[:3])
    # temporaries live in a directory only their owner may enter (0700,
    # ours), which the writer checks before each batch; in it they are
    # created with their final mode (fsutil.h: struct fs_tmpdir)
    dirs = {os.path.dirname(rel) for rel in left}
    for rel_dir in dirs:
        st = os.stat(os.path.join(root, rel_dir))
        assert rel_dir != "", "a temporary outside the private directory"
        assert st.st_mode & 0o777 == 0o700, "%s is mode %o" % (rel_dir, st.st_mode & 0o777)
        assert st.st_uid == os.geteuid(), "%s is not the daemon's" % rel_dir
    for rel in left:
        mode = os.stat(os.path.join(root, rel)).st_mode & 0o777
        assert mode in (0o600, 0o644), "%s is mode %o" % (rel, mode)

    # the next start removes every temporary and publishes everything
    d.start()
    # none survives; files replaced since are emptied into spares (at most
    # 64, holding nothing)
    assert _leftovers(root, published, holding=True) == [], "temporaries survived the restart"
    assert len(_leftovers(root, published)) <= 64
    assert "temporaries left by an interrupted run" in d.log_text()
    name = sorted(published)[0]
    t = hdharness.Tftpd(root, str(tmp_path / "tftpd2.log")).start(probe=name)
    try:
        got = t.get(name)
    finally:
        t.stop()
    assert got is not None and b"crash-pw-" in got
    d.secrets.update("crash-pw-%06d" % i for i in range(0, DEVICES, 97))
