"""Online backup (hotdeskd --config FILE --backup OUT): a copy of the
database taken while the daemon runs under load holds every committed
change (the WAL included), is created mode 0600, and a daemon started from
it has the same data."""

import os
import sqlite3
import stat
import subprocess
import threading

from hdharness import events, invariants, mac, snapshot


def backup(d, out):
    return subprocess.run([d.binary, "--config", d.config_path, "--backup", str(out)],
                          capture_output=True, text=True, timeout=60)


def restore_into(d2, path):
    """Stops d2, puts the backup in place of its database, starts it."""
    d2.stop()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(d2.db_path + suffix):
            os.unlink(d2.db_path + suffix)
    with open(path, "rb") as src, open(d2.db_path, "wb") as dst:
        dst.write(src.read())
    os.chmod(d2.db_path, 0o600)
    d2.start()


def _all_events(d):
    return [(e["id"], e["type"], e["org"], e.get("extension"), e.get("device"))
            for e in events(d)]


def test_backup_under_load_restores_equal(acme, make_daemon, tmp_path):
    d, demo = acme
    stop = threading.Event()
    errors = []

    def mover():
        i = 0
        while not stop.is_set():
            try:
                if i % 2 == 0:
                    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
                else:
                    d.star30("acme-102", result="returned")  # 101's phone carries 102
                d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/103",
                           {"label": "desk %d" % i})
            except AssertionError as e:  # reported below
                errors.append(str(e))
                return
            i += 1

    t = threading.Thread(target=mover)
    t.start()
    copies = []
    try:
        for k in range(3):
            out = tmp_path / ("mid-%d.db" % k)
            p = backup(d, out)
            assert p.returncode == 0, p.stderr
            assert "backup of" in p.stdout
            copies.append(out)
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors[0]
    # every copy: mode 0600 from the start, a consistent database
    for out in copies:
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        db = sqlite3.connect(str(out))
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("SELECT count(*) FROM extensions").fetchone()[0] == 8
        finally:
            db.close()
    # an existing file is never overwritten
    p = backup(d, copies[0])
    assert p.returncode == 1 and "exists" in p.stderr, p.stderr
    assert stat.S_IMODE(os.stat(copies[0]).st_mode) == 0o600

    # the daemon still running, the last copy holds everything committed
    final = tmp_path / "final.db"
    before = _all_events(d)
    p = backup(d, final)
    assert p.returncode == 0, p.stderr
    # (the resync engine may record events meanwhile: no admin or PBX change)
    want_state, after = snapshot(d), _all_events(d)
    want_files = {m: d.request("GET", "/provision/" + f, None, {})[2]
                  for m, f in ((mac(101), "%s-line.cfg" % mac(101)),
                               (mac(102), "%s.cfg" % mac(102)))}

    d2 = make_daemon(name="restored")
    restore_into(d2, final)
    assert snapshot(d2) == want_state
    # the copy holds every event up to its moment, each as the live one has it
    db = sqlite3.connect(str(final))
    try:
        n = db.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        db.close()
    got = _all_events(d2)
    assert len(before) <= n <= len(after), (len(before), n, len(after))
    assert got[:n] == after[:n]
    for m, f in ((mac(101), "%s-line.cfg" % mac(101)), (mac(102), "%s.cfg" % mac(102))):
        assert d2.request("GET", "/provision/" + f, None, {})[2] == want_files[m]
    invariants(d2)
    # and a copy taken in the middle of the load starts too, consistent
    restore_into(d2, copies[1])
    invariants(d2)


def test_backup_refuses_an_in_memory_database(make_daemon, tmp_path):
    d = make_daemon()
    d.stop()
    d.config["database"]["path"] = ":memory:"
    d.write_config(d.config)
    p = backup(d, tmp_path / "x.db")
    assert p.returncode == 1 and "memory" in p.stderr
    assert not os.path.exists(tmp_path / "x.db")
    d.config["database"]["path"] = d.db_path
    d.write_config(d.config)
    d.start()
