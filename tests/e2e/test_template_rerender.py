"""End to end: a template save that re-renders thousands of devices leaves
the service lock between its steps, so a `*30` move and phone fetches made
while it runs are answered (and the move published) before it ends.

The daemon gets a few thousand Polycom phones (written into its database
while it is stopped), then line.cfg of polycom is replaced.  While that
save runs: one thread fetches the bulk phones' files over HTTP, the test
waits for the new version to be committed (the template's history shows
it), makes a `*30` move onto a Polycom phone and checks that phone's files
over HTTP and in the TFTP root -- all before the save's answer arrives.
At the end every changed phone serves the new template's file over HTTP
and TFTP, and owes a resync for exactly the version it serves.
"""

import os
import sqlite3
import threading
import time

import hdharness
from hdharness import mac, prov_get

T = "/api/v1/templates/"
DEVICES = 6000
MARKER = "<!-- re-rendered in steps -->"


def _bulk_mac(i):
    return "0004f21%05x" % i


def _fill(db_path):
    """DEVICES Polycom phones of acme, each homed on its own extension."""
    db = sqlite3.connect(db_path)
    with db:
        org = db.execute("SELECT id FROM orgs WHERE name = 'acme'").fetchone()[0]
        ext0 = db.execute("SELECT MAX(id) FROM extensions").fetchone()[0] + 1
        dev0 = db.execute("SELECT MAX(id) FROM devices").fetchone()[0] + 1
        db.executemany(
            "INSERT INTO extensions (id, org_id, number, sip_user, sip_password, display_name)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ((ext0 + i, org, str(50000 + i), "bulk-%d" % i, "bulk-pw-%06d" % i, "Bulk %d" % i)
             for i in range(DEVICES)))
        db.executemany(
            "INSERT INTO devices (id, mac, org_id, profile, model, home_ext_id)"
            " VALUES (?, ?, ?, 'polycom', 'VVX_500', ?)",
            ((dev0 + i, _bulk_mac(i), org, ext0 + i) for i in range(DEVICES)))
    db.close()


def _line(m):
    return "%s-line.cfg" % m


def _rows(db_path, sql, args=()):
    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _with_bulk(prov, monkeypatch):
    """prov's daemon restarted with the DEVICES bulk phones; their MACs."""
    # start-up renders thousands of phones, a stop syncs their files: a
    # generous deadline for both (liveness)
    monkeypatch.setattr(hdharness, "START_TIMEOUT", 120.0)
    monkeypatch.setattr(hdharness, "STOP_TIMEOUT", 120.0)
    d = prov[0]
    d.stop()
    _fill(d.db_path)
    d.secrets.update("bulk-pw-%06d" % i for i in range(0, DEVICES, 101))
    d.start()
    return [_bulk_mac(i) for i in range(DEVICES)]


def _marked(d):
    """polycom/line.cfg with MARKER added: a change to every phone's file."""
    tmpl = d.admin_ok("GET", T + "polycom/line.cfg")["content"]
    cand = tmpl.replace("<polycomConfig>", "<polycomConfig>\n  " + MARKER, 1)
    assert cand != tmpl
    return cand


def _saver(d, cand, save):
    """A thread's target that saves cand as polycom/line.cfg, noting in
    save when it started and ended, and the answer."""
    def do_save():
        save["start"] = time.monotonic()
        st, _, body = d.request("PUT", T + "polycom/line.cfg", cand.encode(),
                                {"Authorization": "Bearer " + d.admin_token,
                                 "Content-Type": "text/plain"}, timeout=600)
        save["end"] = time.monotonic()
        save["status"], save["body"] = st, body
    return do_save


def test_save_in_steps_leaves_room_for_moves_and_fetches(prov, monkeypatch):
    d, demo, tftp = prov
    root = tftp.root
    bulk = _with_bulk(prov, monkeypatch)
    before = {}
    for m in bulk[::97]:
        st, _, body = prov_get(d, _line(m))
        assert st == 200 and MARKER.encode() not in body
        before[m] = body

    save = {}
    do_save = _saver(d, _marked(d), save)
    fetches = []      # (sent, answered, mac, status, body)
    stop = threading.Event()

    def do_fetch():
        k = 0
        while not stop.is_set():
            m = bulk[(k * 97) % len(bulk)]
            k += 1
            t0 = time.monotonic()
            try:
                st, _, body = prov_get(d, _line(m))
            except OSError as e:   # reported by the status check below
                st, body = None, repr(e).encode()
            fetches.append((t0, time.monotonic(), m, st, body))

    saver = threading.Thread(target=do_save)
    fetcher = threading.Thread(target=do_fetch)
    fetcher.start()
    saver.start()
    try:
        # the new version is committed (the re-render runs from now on):
        # reading the history needs the service lock, as the move does.
        # The save runs on a thread of its own, not on an HTTP worker
        # thread, so every poll is answered while it runs.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "end" not in save:
            st, _, body = d.request("GET", T + "polycom/line.cfg/history", None,
                                    {"Authorization": "Bearer " + d.admin_token},
                                    timeout=60)
            assert st == 200, (st, body[:200])
            if hdharness.json.loads(body)["active"] == 1:
                break
            time.sleep(0.01)
        assert "end" not in save, "the save ended before its commit was seen: %s" % save
        # 102 logs in on 101's Polycom phone
        d.star30("acme-101", "102", code=demo.code(102), result="accepted",
                 device=mac(101))
        moved = time.monotonic()
        # the re-render goes by device id: the last bulk phone is the last
        # one; its old file still served shows the move did not wait for it
        last_old = MARKER.encode() not in prov_get(d, _line(bulk[-1]))[2]
        # published: HTTP and the TFTP root hold 102 on that phone, with
        # the new template (a change renders its devices with it)
        st, _, body = prov_get(d, _line(mac(101)))
        assert st == 200 and b"acme-102" in body and MARKER.encode() in body
        path = os.path.join(root, _line(mac(101)))
        for _ in range(500):
            with open(path, "rb") as f:
                disk = f.read()
            if disk == body:
                break
            time.sleep(0.01)
        assert disk == body, "the moved phone's TFTP file is not the one served"
        published = time.monotonic()
        running = "end" not in save
    finally:
        saver.join(600)
        stop.set()
        fetcher.join(60)
    assert save["status"] == 200, save
    assert last_old and running and published < save["end"], (
        "the move was answered %.2f s and published %.2f s after the save began (the last "
        "phone %s re-rendered then); the save took %.2f s" % (
            moved - save["start"], published - save["start"], "not yet" if last_old else "was",
                         save["end"] - save["start"]))
    js = hdharness.json.loads(save["body"])
    assert js["version"] == 1 and js["unchanged"] == 0, {k: v for k, v in js.items()
                                                          if k != "changed"}
    polycoms = {r[0] for r in _rows(d.db_path, "SELECT mac FROM devices WHERE profile = 'polycom'")}
    assert set(bulk) | {mac(101)} <= polycoms
    assert set(js["changed"]) == polycoms, (len(js["changed"]), len(polycoms),
                                            sorted(set(js["changed"]) ^ polycoms)[:5])

    # fetches during the save: each answered, with the old file or the new
    during = [f for f in fetches if save["start"] <= f[0] < save["end"]]
    assert during, "no fetch was made while the save ran"
    for t0, t1, m, st, body in fetches:
        assert st == 200, (m, st, t1 - t0, body[:200])
    # every changed phone serves the new template's file, over HTTP and
    # from the TFTP root, and owes a resync for the version it serves
    versions = dict(_rows(d.db_path, "SELECT d.mac, c.version FROM devices d JOIN "
                          "device_config c ON c.device_id = d.id"))
    resync = {r[0]: r[1:] for r in _rows(
        d.db_path, "SELECT d.mac, r.state, r.version, r.next_at FROM devices d JOIN resync r "
        "ON r.device_id = d.id")}
    now = time.time()
    for m in sorted(polycoms):
        st, _, body = prov_get(d, _line(m))
        assert st == 200 and MARKER.encode() in body, m
        path = os.path.join(root, _line(m))
        for _ in range(3000):   # the TFTP writer runs behind the answer
            with open(path, "rb") as f:
                disk = f.read()
            if disk == body:
                break
            time.sleep(0.01)
        assert disk == body, "%s: the TFTP root does not hold what HTTP serves" % m
        assert m in resync, "%s: no resync row" % m
        state, version, next_at = resync[m]
        assert state in ("pending", "notified", "synced"), (m, state)
        assert version == versions[m] and version > 0, (m, version, versions[m])
        assert next_at < now + 3600, "%s: its resync is still held" % m
    for m in bulk[::97]:
        with_new = prov_get(d, _line(m))[2]
        for t0, t1, fm, st, body in fetches:
            if fm == m:
                assert body in (before[m], with_new), "%s: served neither file" % m
    # the same files as a fresh render, and through the real tftpd
    for m in (mac(101), bulk[0], bulk[-1]):
        want = hdharness.device_files(d, m)[_line(m)]
        assert prov_get(d, _line(m))[2] == want
        assert tftp.get(_line(m)) == want
    # the list of the devices whose rows the steps write went with the last
    assert _rows(d.db_path, "SELECT key FROM meta WHERE key LIKE 'template_save_%'") == []
    hdharness.invariants(d)
    d.stop()   # here, with the deadline above: a clean exit (status 0)


def test_rows_a_cut_short_rerender_left_are_written_at_start(acme):
    """A crash after a save's commit, before its last step: the devices it
    listed that have no resync row yet (after the first HOLD_DONE) get one
    at the next start, due then; a device deleted meanwhile is skipped;
    the list goes."""
    d, demo = acme
    d.stop()
    ids = [r[0] for r in _rows(d.db_path, "SELECT id FROM devices ORDER BY id")][:4]
    assert len(ids) == 4
    db = sqlite3.connect(d.db_path)
    with db:
        db.execute("DELETE FROM resync")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES "
                   "('template_save_devices', ?)", (" ".join(str(i) for i in ids + [987654]),))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES "
                   "('template_save_done', '1 5')")
    db.close()
    d.start()
    rows = {r[0]: r[1:] for r in _rows(d.db_path, "SELECT device_id, state, next_at FROM resync")}
    assert set(rows) == set(ids[1:]), rows
    now = time.time()
    for dev, (state, next_at) in rows.items():
        assert state in ("pending", "notified", "synced", "stale"), (dev, state)
        assert next_at < now + 3600, "%d: its resync is still held" % dev
    assert _rows(d.db_path, "SELECT key FROM meta WHERE key LIKE 'template_save_%'") == []
    assert "re-render cut short" in d.log_text()
    hdharness.invariants(d)


def _new_mac(i):
    return "0004f22%05x" % i


def test_devices_created_and_deleted_during_a_save_end_with_its_template(prov, monkeypatch):
    """The save lists the profile's devices in steps, dry-runs them in steps
    and checks again in its last hold the devices changed meanwhile: while
    it runs, an administrator deletes bulk phones and creates new ones on
    their extensions.  At the end every Polycom phone there is serves the
    new template, none deleted is served, and the answer names only
    phones that were there."""
    d, demo, tftp = prov
    bulk = _with_bulk(prov, monkeypatch)
    first = {r[0] for r in _rows(d.db_path, "SELECT mac FROM devices WHERE profile = 'polycom'")}
    assert set(bulk) < first
    save = {}
    do_save = _saver(d, _marked(d), save)

    deleted, created = [], []   # (mac, when)
    errors = []

    def churn():
        # from the last bulk phone down: the re-render goes by id, so
        # these meet the listing, the dry run and the re-render alike
        k = DEVICES - 1
        while "end" not in save and k > DEVICES // 2:
            m, new = bulk[k], _new_mac(k)
            st, js = d.admin("DELETE", "/api/v1/devices/" + m)
            if st not in (200, 204):
                errors.append(("DELETE", m, st, js))
                return
            deleted.append((m, time.monotonic()))
            st, js = d.admin("PUT", "/api/v1/devices/" + new, {
                "org": "acme", "profile": "polycom", "model": "VVX_500",
                "home_extension": str(50000 + k)})
            if st not in (200, 201):
                errors.append(("PUT", new, st, js))
                return
            created.append((new, time.monotonic()))
            k -= 7

    saver = threading.Thread(target=do_save)
    churner = threading.Thread(target=churn)
    saver.start()
    churner.start()
    saver.join(600)
    churner.join(60)
    assert not errors, errors
    assert save["status"] == 200, save
    during = [m for m, t in deleted + created if save["start"] <= t < save["end"]]
    assert len(during) >= 4, "only %d changes were made while the save ran" % len(during)

    js = hdharness.json.loads(save["body"])
    polycoms = {r[0] for r in _rows(d.db_path, "SELECT mac FROM devices WHERE profile = 'polycom'")}
    gone = {m for m, _ in deleted}
    assert not gone & polycoms
    named = js["changed"]
    assert len(named) == len(set(named)), "a phone named twice"
    assert set(named) <= first | {m for m, _ in created}, sorted(set(named) - first)[:5]
    # what was deleted before the save began is not in its answer
    early = {m for m, t in deleted if t < save["start"]}
    assert not early & set(named), sorted(early & set(named))[:5]
    # every phone there serves the new template, from HTTP and the TFTP root
    for m in sorted(polycoms):
        st, _, body = prov_get(d, _line(m))
        assert st == 200 and MARKER.encode() in body, (m, st)
    for m in sorted(gone):
        assert prov_get(d, _line(m))[0] in (403, 404), m   # an unknown phone
    for m, _ in created[-3:] + [(bulk[0], 0)]:
        want = hdharness.device_files(d, m)[_line(m)]
        path = os.path.join(tftp.root, _line(m))
        for _ in range(3000):   # the TFTP writer runs behind the answer
            if os.path.exists(path) and open(path, "rb").read() == want:
                break
            time.sleep(0.01)
        assert tftp.get(_line(m)) == want, m
    assert _rows(d.db_path, "SELECT key FROM meta WHERE key LIKE 'template_save_%'") == []
    hdharness.invariants(d)
    d.stop()
