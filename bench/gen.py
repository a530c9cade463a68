#!/usr/bin/python3
"""gen.py -- fills a hotdeskd database with benchmark data, directly.

Owns: the rows of a benchmark database (organizations, extensions,
devices, resync rows), written with the sqlite3 module into a file whose schema hotdeskd
already created (it applies sql/ at start), plus two lists for the load
generators:
  --paths  one per-device file name per line (what each phone fetches),
  --moves  "caller digits moved_sip_user" per line: a *30 from the device
           of `caller` (its home extension) for extension `digits` of the
           same organization, on distinct devices.

Invariants: rows follow sql/*.sql (natural keys unique, one home device
per extension, parking users distinct from every sip_user); every device
has a synced resync row, as a real site has once its phones confirmed a
change (a move then reopens rows, as it does there); devices are
spread round-robin over the four vendor profiles; every extension allows
virtualization and has the secret code hash of the seed extension (one
real Argon2id hash, made by hotdeskd with its default settings), so *30
verifies cost what they cost in production.  The seed organization and
extension are removed.  Standard library only.
"""

import argparse
import sqlite3
import sys

PROFILES = [
    # profile, OUI, model, per-device file name pattern
    ("polycom", "0004f2", "VVX_500", "{mac}-line.cfg"),
    ("yealink", "001565", "T46S", "{mac}.cfg"),
    ("cisco-mpp", "00562b", "CP-8841-3PCC", "{mac}.xml"),
    ("cisco-enterprise", "00082f", "CP-8845", "SEP{MAC}.cnf.xml"),
]
SYNCED_AT = 1764547200  # 2025-12-01: when every phone last confirmed a change
PROV_USER = "phone"
PROV_PASSWORD = "bench-prov-password"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--orgs", type=int, required=True)
    ap.add_argument("--prov-auth", choices=["none", "shared"], default="none")
    ap.add_argument("--paths", required=True)
    ap.add_argument("--moves", required=True)
    a = ap.parse_args()
    n, norgs = a.devices, max(1, min(a.orgs, a.devices))
    if n < 2 or n > 0xffffff:
        sys.exit("gen.py: --devices must be in 2..16777215")

    db = sqlite3.connect(a.db)
    db.execute("PRAGMA foreign_keys = ON")
    row = db.execute("SELECT secret_hash FROM extensions WHERE sip_user = 'seed-1'").fetchone()
    if row is None or not row[0] or not row[0].startswith("$argon2id$"):
        sys.exit("gen.py: no seed extension with an Argon2id hash")
    code_hash = row[0]
    if db.execute("SELECT count(*) FROM devices").fetchone()[0] != 0:
        sys.exit("gen.py: the database already has devices")

    per_org = (n + norgs - 1) // norgs
    with db:
        db.execute("DELETE FROM extensions WHERE sip_user = 'seed-1'")
        db.execute("DELETE FROM events")
        db.execute("DELETE FROM orgs WHERE name = 'seed'")
        shared = a.prov_auth == "shared"
        db.executemany(
            "INSERT INTO orgs (id, name, display_name, sip_host, sip_port, sip_transport,"
            " prov_auth, prov_user, prov_password) VALUES (?, ?, ?, ?, 5060, 'udp', ?, ?, ?)",
            ((j + 1, "org%03d" % j, "Organization %d" % j, "pbx%d.bench.test" % j,
              a.prov_auth, PROV_USER if shared else None, PROV_PASSWORD if shared else None)
             for j in range(norgs)))

        def ext_rows():
            for i in range(n):
                j, k = divmod(i, per_org)
                yield (i + 1, j + 1, str(10000 + k), "o%d-%d" % (j, 10000 + k),
                       "sip-pass-%08d" % i, "User %d" % i, str(10000 + k), code_hash)

        db.executemany(
            "INSERT INTO extensions (id, org_id, number, sip_user, sip_password, display_name,"
            " label, allow_virtualization, secret_hash) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
            ext_rows())

        def dev_rows():
            for i in range(n):
                prof, oui, model, _ = PROFILES[i % len(PROFILES)]
                mac = "%s%06x" % (oui, i)
                park = ("park-" + mac, "park-pass-%08d" % i) if i % 2 else (None, None)
                yield (i + 1, mac, i // per_org + 1, prof, model, i + 1, park[0], park[1])

        db.executemany(
            "INSERT INTO devices (id, mac, org_id, profile, model, home_ext_id, parking_user,"
            " parking_password) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", dev_rows())
        # every phone once had a change it confirmed (as after the first
        # template change of a real site): its resync row is synced
        db.execute(
            "INSERT INTO resync (device_id, state, version, attempts, next_at, last_result,"
            " last_at, created_at) SELECT id, 'synced', 1, 1, 0, 'fetched', ?, ? FROM devices",
            (SYNCED_AT, SYNCED_AT))

    with open(a.paths, "w") as f:
        for i in range(n):
            _, oui, _, pat = PROFILES[i % len(PROFILES)]
            mac = "%s%06x" % (oui, i)
            f.write(pat.format(mac=mac, MAC=mac.upper()) + "\n")
    with open(a.moves, "w") as f:
        # device i (caller: its home extension) takes extension i+1 of the
        # same organization; pairs are disjoint
        for i in range(0, n - 1, 2):
            if i // per_org != (i + 1) // per_org:
                continue
            j, k = divmod(i, per_org)
            f.write("o%d-%d %d o%d-%d\n" % (j, 10000 + k, 10000 + k + 1, j, 10000 + k + 1))
    db.close()
    print("gen.py: %d organizations, %d extensions, %d devices" % (norgs, n, n))


if __name__ == "__main__":
    main()
