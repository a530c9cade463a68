"""A secret hashed with other Argon2id limits than the settings' is hashed
again at its next right use.

An operator who changes [secrets] hash_ops or hash_mem_kib (or upgrades
from a release with another default) restarts the daemon; every secret
code and web password stored before keeps the limits it was made with
until it is used. The next *30 with the right code, and the next sign-in
with the right password, store a new hash made with the settings' limits,
so the memory and time a check takes become what the settings say. A
wrong code or password changes nothing; a hash already made with the
settings' limits is left as it is.
"""

import re
import sqlite3

from test_web_api import me_login, set_web_password

OLD = {"hash_ops": "1", "hash_mem_kib": "8"}      # the harness's default
NEW = {"hash_ops": "2", "hash_mem_kib": "16"}


def stored(d, sql, *args):
    db = sqlite3.connect("file:%s?mode=ro" % d.db_path, uri=True)
    try:
        row = db.execute(sql, args).fetchone()
    finally:
        db.close()
    assert row is not None, sql
    return row[0]


def code_hash(d, number="102"):
    return stored(d, "SELECT e.secret_hash FROM extensions e JOIN orgs o "
                     "ON o.id = e.org_id WHERE o.name = 'acme' AND e.number = ?", number)


def webpw_hash(d, number="102"):
    return stored(d, "SELECT w.hash FROM web_passwords w JOIN extensions e ON e.id = w.ext_id "
                     "JOIN orgs o ON o.id = e.org_id "
                     "WHERE o.name = 'acme' AND e.number = ?", number)


def limits(h):
    m = re.match(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=1\$", h)
    assert m, "not an Argon2id string"
    return int(m.group(1)), int(m.group(2))


def test_old_limits_are_replaced_at_the_next_right_use(acme):
    d, demo = acme
    set_web_password(d, "102", "bob-web-pass-1")
    code_before, pw_before = code_hash(d), webpw_hash(d)
    assert limits(code_before) == (8, 1) and limits(pw_before) == (8, 1)

    d.write_config({"secrets": NEW})
    d.restart()

    # wrong secrets prove nothing: nothing is hashed again
    d.star30("acme-101", digits="102", code="99999999", result="retry")
    assert me_login(d, "102", "not-the-password")[0] == 401
    assert code_hash(d) == code_before and webpw_hash(d) == pw_before

    # the right code moves Bob and leaves a hash with the new limits
    d.star30("acme-101", digits="102", code=demo.code("102"), result="accepted")
    code_after = code_hash(d)
    assert limits(code_after) == (16, 2) and code_after != code_before
    # ... which verifies: back home, then onto the phone again
    d.star30("acme-102", result="returned")
    d.star30("acme-101", digits="102", code=demo.code("102"), result="accepted")
    assert code_hash(d) == code_after, "a hash with the settings' limits was made again"

    # the right password signs in and leaves a hash with the new limits
    assert me_login(d, "102", "bob-web-pass-1")[0] == 200
    pw_after = webpw_hash(d)
    assert limits(pw_after) == (16, 2) and pw_after != pw_before
    assert me_login(d, "102", "bob-web-pass-1")[0] == 200
    assert webpw_hash(d) == pw_after

    # other extensions keep theirs until they are used
    assert limits(code_hash(d, "103")) == (8, 1)
    log = open(d.log_path, encoding="utf-8", errors="replace").read()
    assert log.count("of acme/102 hashed again with the configured limits") == 2, log[-2000:]
