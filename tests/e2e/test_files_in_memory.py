"""Which device files hotdeskd keeps in memory, end to end: once the TFTP
writer has put a device's files in the root, their bytes leave memory
(the entry keeps its version, hash, each file's sum and names); the next
HTTP fetch of a file reads that file from the root, checked against its
sum, without keeping it, and so does the second; a third fetch of it
loads the device's files back into memory, each checked against its sum; a
template save renders each device of the profile once, the dry run
comparing the candidate with the hash of what was published instead of
rendering the files in use again.  Each file's sum is stored with the
device, so all this holds after a restart, and a database of an older
release (no sums stored) keeps working.
The counters are those of /metrics.
"""

import os
import sqlite3
import time

import hdharness
from hdharness import GLOBEX_MAC, check_published, invariants, mac, prov_get

T = "/api/v1/templates/"


def line_file(m):
    """Name of the per-device file of a demo device (its only one)."""
    return {mac(101): "%s-line.cfg" % m, mac(102): "%s.cfg" % m, mac(103): "%s.xml" % m,
            mac(104): "SEP%s.cnf.xml" % m.upper(), GLOBEX_MAC: "%s.cfg" % m}[m]


def counter(d, name):
    st, _, body = d.request("GET", "/metrics")
    assert st == 200, (st, body[:200])
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[-1]))
    raise AssertionError("no %s in /metrics" % name)


def wait_counter(d, name, at_least, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        v = counter(d, name)
        if v >= at_least or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def test_a_file_dropped_from_memory_is_served_whole_from_the_root(prov):
    d, demo, tftp = prov
    check_published(d, demo, tftp)
    dropped = counter(d, "hotdeskd_files_dropped_total")
    # 102 onto 101's polycom: both phones are published, then written
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    assert wait_counter(d, "hotdeskd_files_dropped_total", dropped + 2) >= dropped + 2, \
        "the files of the two devices written stayed in memory"
    name = line_file(mac(101))
    path = os.path.join(tftp.root, name)
    want = open(path, "rb").read()
    assert b'reg.1.address="acme-102"' in want
    loaded = counter(d, "hotdeskd_files_loaded_total")
    # the first two fetches read the file from the root without keeping it
    for k in (1, 2):
        st, _, body = prov_get(d, name)
        assert st == 200 and body == want
        assert counter(d, "hotdeskd_files_loaded_total") == loaded, "kept after %d fetches" % k
    # fetched a third time: loaded from the root, and it stays: a fourth
    # fetch reads no file
    st, _, body = prov_get(d, name)
    assert st == 200 and body == want
    assert counter(d, "hotdeskd_files_loaded_total") == loaded + 1, "not loaded from the root"
    st, _, body = prov_get(d, name)
    assert st == 200 and body == want
    assert counter(d, "hotdeskd_files_loaded_total") == loaded + 1

    # 102 moves on to 103's phone: 101 and 103 are written and dropped
    # again; then 101's file is changed in place behind hotdeskd's back
    # (same size): a fetch never gets those bytes but the published file
    dropped = counter(d, "hotdeskd_files_dropped_total")
    d.star30("acme-103", "102", code=demo.code(102), result="accepted", device=mac(103))
    assert wait_counter(d, "hotdeskd_files_dropped_total", dropped + 2) >= dropped + 2
    want = open(path, "rb").read()
    assert b'reg.1.address="acme-101"' in want
    with open(path, "r+b") as f:
        f.write(b"#" * 16)
    assert open(path, "rb").read() != want
    hdharness.served_fresh_and_rewritten(d, name, path, want)
    check_published(d, demo, tftp)
    invariants(d)


def test_a_template_save_renders_each_device_of_the_profile_once(prov):
    """After a clean restart (every file in the root, none in memory) a
    template save of the yealink device file dry-runs both yealinks
    against the hash of their files and renders each once, to publish
    it."""
    d, demo, tftp = prov
    check_published(d, demo, tftp)
    d.stop()
    d.start()
    renders = counter(d, "hotdeskd_device_renders_total")
    tmpl = d.admin_ok("GET", T + "yealink/device.cfg")["content"]
    first = tmpl.index("\n") + 1   # after Yealink's version line
    text = tmpl[:first] + "# saved once\n" + tmpl[first:]
    st, _, body = d.request("PUT", T + "yealink/device.cfg?comment=once", text,
                            {"Authorization": "Bearer " + d.admin_token,
                             "Content-Type": "text/plain"})
    assert st == 200, body
    import json
    answer = json.loads(body)
    assert sorted(answer["changed"]) == sorted([mac(102), GLOBEX_MAC])
    assert counter(d, "hotdeskd_device_renders_total") - renders == 2
    published = check_published(d, demo, tftp)
    for m in (mac(102), GLOBEX_MAC):
        assert b"# saved once" in published[m][line_file(m)]
        assert tftp.get(line_file(m)) == published[m][line_file(m)]
    invariants(d)


def test_a_move_renders_each_device_it_changes_once(prov):
    """A *30 move renders what each phone it changes would get once, to
    check it before the commit, and publishes that render: 102 onto 101's
    phone changes that phone and parks 102's own, two renders; the bare
    *30 that sends it home changes both back, two more."""
    d, demo, tftp = prov
    check_published(d, demo, tftp)
    renders = counter(d, "hotdeskd_device_renders_total")
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    assert counter(d, "hotdeskd_device_renders_total") - renders == 2
    d.star30("acme-102", result="returned")  # 101's phone carries 102
    assert counter(d, "hotdeskd_device_renders_total") - renders == 4
    published = check_published(d, demo, tftp)
    assert tftp.get(line_file(mac(101))) == published[mac(101)][line_file(mac(101))]
    invariants(d)


def test_a_dry_run_tells_changed_from_unchanged_by_hash_after_a_restart(prov):
    """After a clean restart no device file is in memory.  A candidate's
    files of a device (with the device's other files as they are:
    Polycom's line file and two override files come from two templates)
    are compared with the hash of what was published: the template in
    use changes none, an edited one every device of the profile, and a
    candidate that changes one device changes that one."""
    d, demo, tftp = prov
    check_published(d, demo, tftp)
    d.stop()
    d.start()
    yealinks = sorted([mac(102), GLOBEX_MAC])
    for path, macs in (("yealink/device.cfg", yealinks), ("cisco-mpp/device.xml", [mac(103)]),
                       ("polycom/line.cfg", [mac(101)])):
        tmpl = d.admin_ok("GET", T + path)["content"]
        dry = d.admin_ok("POST", T + path + "/dry-run", {"content": tmpl})
        assert dry["changed"] == [] and dry["unchanged"] == len(macs), (path, dry)
        edited = tmpl.replace("{{line.sip_user}}", "{{line.sip_user}}{{#parked}}-away{{/parked}}", 1)
        assert edited != tmpl, path
        # no device is parked: the edit changes no file
        dry = d.admin_ok("POST", T + path + "/dry-run", {"content": edited})
        assert dry["changed"] == [] and dry["unchanged"] == len(macs), (path, dry)
        edited = tmpl.replace("{{line.sip_user}}", "{{line.sip_user}}-x", 1)
        dry = d.admin_ok("POST", T + path + "/dry-run", {"content": edited})
        assert sorted(dry["changed"]) == macs and dry["failed"] == [], (path, dry)
    # Polycom's two override files (one template) beside its line file
    tmpl = d.admin_ok("GET", T + "polycom/override.cfg")["content"]
    dry = d.admin_ok("POST", T + "polycom/override.cfg/dry-run", {"content": tmpl})
    assert dry["changed"] == [] and dry["unchanged"] == 1, dry
    edited = tmpl.replace("<OVERRIDES/>", "<OVERRIDES/><!-- {{line.sip_user}} -->")
    dry = d.admin_ok("POST", T + "polycom/override.cfg/dry-run", {"content": edited})
    assert dry["changed"] == [mac(101)], dry
    # 102 onto 101's phone parks 102's yealink: the parked-only edit now
    # changes that phone alone
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    d.stop()
    d.start()
    tmpl = d.admin_ok("GET", T + "yealink/device.cfg")["content"]
    edited = tmpl.replace("{{line.sip_user}}", "{{line.sip_user}}{{#parked}}-away{{/parked}}", 1)
    dry = d.admin_ok("POST", T + "yealink/device.cfg/dry-run", {"content": edited})
    assert dry["changed"] == [mac(102)] and dry["unchanged"] == 1, dry


def test_a_change_writes_only_the_files_it_changes(prov):
    """A device's files that a change leaves as they were are not written
    to the TFTP root again, even once their bytes left memory (each file's
    sum tells): a Polycom's two override files keep their inodes through a
    move and through a save of its line template, while its line file is
    replaced.  Each file's sum is stored with the device: after a restart
    the next change still writes only the file it alters."""
    d, demo, tftp = prov
    check_published(d, demo, tftp)
    m = mac(101)
    names = ["%s-line.cfg" % m, "%s-phone.cfg" % m, "%s-web.cfg" % m]

    def inodes():
        return [os.stat(os.path.join(tftp.root, n)).st_ino for n in names]

    def save(marker):
        tmpl = d.admin_ok("GET", T + "polycom/line.cfg")["content"]
        cand = tmpl.replace("<polycomConfig>", "<polycomConfig>\n  <!-- %s -->" % marker, 1)
        assert cand != tmpl
        js = d.admin_ok("PUT", T + "polycom/line.cfg", {"content": cand})
        assert js["changed"] == [m], js

    dropped = counter(d, "hotdeskd_files_dropped_total")
    before = inodes()
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=m)
    after = inodes()
    assert after[0] != before[0] and after[1:] == before[1:], (before, after)
    # the files left memory once written: the save compares sums
    assert wait_counter(d, "hotdeskd_files_dropped_total", dropped + 2) >= dropped + 2
    save("saved once")
    again = inodes()
    assert again[0] != after[0] and again[1:] == after[1:], (after, again)
    assert b"saved once" in tftp.get(names[0])
    check_published(d, demo, tftp)
    d.stop()
    d.start()
    save("saved after a restart")
    last = inodes()
    assert last[0] != again[0] and last[1:] == again[1:], (again, last)
    assert b"saved after a restart" in tftp.get(names[0])
    check_published(d, demo, tftp)
    invariants(d)


def test_a_database_without_the_files_sums_keeps_working(prov):
    """A database of an older release: no file_sums column (sql/018) and
    no sum key.  hotdeskd adds the column at start-up, takes the files as
    they are in the root (sums unknown), serves every file as published,
    and a file changed behind its back is still never served.  The next
    change and restart store the sums: a change after that writes only
    the file it alters."""
    d, demo, tftp = prov
    check_published(d, demo, tftp)
    m = mac(101)
    names = ["%s-line.cfg" % m, "%s-phone.cfg" % m, "%s-web.cfg" % m]
    d.stop()
    db = sqlite3.connect(d.db_path)
    with db:
        db.execute("ALTER TABLE device_config DROP COLUMN file_sums")
        db.execute("DELETE FROM schema_migrations WHERE version = 18")
        db.execute("DELETE FROM meta WHERE key = 'file_sum_key'")
    db.close()
    d.start()
    db = sqlite3.connect(d.db_path)
    cols = [r[1] for r in db.execute("PRAGMA table_info(device_config)")]
    db.close()
    assert "file_sums" in cols, cols
    for n in names + [line_file(mac(102)), line_file(mac(103))]:
        st, _, body = prov_get(d, n)
        assert st == 200 and body == tftp.get(n), n
    # a file changed behind hotdeskd's back (not fetched since the start)
    name = line_file(mac(104))
    path = os.path.join(tftp.root, name)
    want = open(path, "rb").read()
    with open(path, "r+b") as f:
        f.write(b"#" * 16)
    hdharness.served_fresh_and_rewritten(d, name, path, want)

    def inodes():
        return [os.stat(os.path.join(tftp.root, n)).st_ino for n in names]

    # a move renders 101 (its sums stored); after a restart the next move
    # (102 on to 103's phone: 101's phone gets its own user back) writes
    # only its line file
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=m)
    check_published(d, demo, tftp)
    d.stop()
    d.start()
    db = sqlite3.connect(d.db_path)
    sums = db.execute("SELECT file_sums FROM device_config JOIN devices d ON d.id = device_id"
                      " WHERE d.mac = ?", (m,)).fetchone()
    db.close()
    assert sums is not None and sums[0] is not None and len(sums[0]) == 64, sums
    before = inodes()
    d.star30("acme-103", "102", code=demo.code(102), result="accepted", device=mac(103))
    after = inodes()
    assert after[0] != before[0] and after[1:] == before[1:], (before, after)
    check_published(d, demo, tftp)
    invariants(d)
