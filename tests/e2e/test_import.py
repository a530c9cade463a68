"""CSV import and export of an organization (POST .../import, GET .../export).

Checks: a file creates extensions and phones in one transaction; a dry run
reports created/changed/unchanged and changes nothing; any bad row (form,
key used elsewhere, duplicate) refuses the whole file with the line and
column named; export round-trips, hides passwords unless an admin asks for
them (event export.reveal); an org token sees only its organization.
"""

import json

import hdharness
from hdharness import ABSENT  # noqa: F401

HEADER = ("extension,display_name,label,sip_user,sip_password,secret_code,"
          "allow_virtualization,mac,profile,model,parking_user,parking_password\r\n")


def post_csv(d, org, text, dry=False, token=True, ctype="text/csv"):
    h = {"Content-Type": ctype, "Accept": "application/json"}
    h["Authorization"] = "Bearer " + (d.admin_token if token is True else token)
    path = "/api/v1/orgs/%s/import%s" % (org, "?dry_run=1" if dry else "")
    st, _, body = d.request("POST", path, text.encode("utf-8"), h)
    text_body = body.decode()
    leaked = [s for s in d.secrets if s in text_body]
    assert not leaked, "import answer shows secrets %r: %s" % (leaked, text_body)
    return st, json.loads(body)


def get_export(d, org, reveal=False, token=True):
    h = {"Authorization": "Bearer " + (d.admin_token if token is True else token)}
    st, hdrs, body = d.request("GET", "/api/v1/orgs/%s/export%s"
                               % (org, "?reveal=1" if reveal else ""), None, h)
    return st, hdrs, body.decode()


def people_csv(d, n0=500, n=3, codes=True):
    rows = []
    for i in range(n):
        num = str(n0 + i)
        pw = "imp-pw-%s-%s" % (num, hdharness._secrets.token_hex(6))
        d.secrets.add(pw)
        code = "8%06d" % (n0 + i) if codes else ""
        if code:
            d.secrets.add(code)
        m = "00:04:f2:%02x:%02x:%02x" % (0xaa, (n0 + i) >> 8, (n0 + i) & 0xff)
        rows.append('%s,"Imp, User %s",L%s,acme-imp-%s,%s,%s,yes,%s,yealink,T46S,,\r\n'
                    % (num, num, num, num, pw, code, m))
    return HEADER + "".join(rows)


def test_import_creates_everything_in_one_go(acme):
    d, demo = acme
    text = people_csv(d, 500, 3)
    st, js = post_csv(d, "acme", text)
    assert st == 201, js
    assert js["dry_run"] is False
    assert sorted(js["extensions"]["created"]) == ["500", "501", "502"]
    assert len(js["devices"]["created"]) == 3
    e = hdharness.ext(d, "501")
    assert e["display_name"] == "Imp, User 501"
    assert e["has_secret_code"] is True and e["allow_virtualization"] is True
    assert e["home_device"] == "0004f2aa01f5"
    dv = hdharness.dev(d, "0004f2aa01f5")
    assert dv["carries"]["extension"] == "501" and dv["profile"] == "yealink"
    # the phone gets its configuration with the imported password
    files = hdharness.device_files(d, "0004f2aa01f5")
    assert any(b"acme-imp-501" in c for c in files.values()), files
    # the imported code works for *30 from a phone that allows virtualization
    d.star30("acme-101", digits="501", code="8000501", result="accepted")
    ev = hdharness.events(d, type="import.applied")
    assert len(ev) == 1 and ev[0]["detail"]["extensions_created"] == 3, ev
    hdharness.invariants(d)


def test_dry_run_reports_and_changes_nothing(acme):
    d, _ = acme
    before = hdharness.snapshot(d)
    text = HEADER + ("101,Alice Anders,,,,,,,,,,\r\n"       # unchanged
                     "102,Robert Brown,,,,,,,,,,\r\n"        # changed name
                     "777,New Person,,acme-777,pw-777-x,,no,,,,,\r\n")
    d.secrets.add("pw-777-x")
    st, js = post_csv(d, "acme", text, dry=True)
    assert st == 200, js
    assert js["dry_run"] is True
    assert js["extensions"]["created"] == ["777"]
    assert js["extensions"]["changed"] == ["102"]
    assert js["extensions"]["unchanged"] == 1
    assert hdharness.snapshot(d) == before
    st, _ = d.admin("GET", "/api/v1/orgs/acme/extensions/777")
    assert st == 404
    assert hdharness.events(d, type="import.applied") == []


def test_bad_row_refuses_the_whole_file_with_line_and_column(acme):
    d, _ = acme
    before = hdharness.snapshot(d)
    good = people_csv(d, 600, 2, codes=False)
    cases = [
        # (extra line, expected line, expected column, status, words in error)
        ("abc,X,,acme-x,pw,,,,,,,\r\n", 4, 1, 400, "digits"),
        ("603,X,,acme-603,pw,,maybe,,,,,\r\n", 4, 7, 400, "yes or no"),
        ("604,X,,acme-604,pw,,,zz:zz,yealink,,,\r\n", 4, 8, 400, "MAC"),
        ("605,X,,acme-605,pw,,,00aa00aa00aa,nokia,,,\r\n", 4, 9, 400, "profile"),
        ("606,X,,acme-101,pw,,,,,,,\r\n", 4, 4, 409, "sip_user"),      # key of another ext
        ("607,X,,acme-607,pw,12,,,,,,\r\n", 4, 6, 400, "secret_code"),  # too short
        ("608,X,,,,,,,,,,\r\n", 4, 4, 400, "required"),                 # new without sip_user
        ("600,Again,,,,,,,,,,\r\n", 4, 1, 400, "twice"),
        ('609,"open quote,,,,,,,,,,\r\n', 4, 2, 400, "quote"),
        ("610,X,,acme-610,pw,,,,,,\r\n", 4, 12, 400, "fields"),
        (",,,,,,,0004f2000201,yealink,,,\r\n", 4, 8, 409, "MAC"),       # globex's phone
        ("611,A\uffffB,,acme-611,pw,,,,,,,\r\n", 4, 2, 400, "character"),  # phones cannot render
        ("612,X,,acme-612,pw,,,0004f2aa0264,yealink,,park-612,\r\n", 4, 12, 400, "together"),
    ]
    for extra, line, col, status, words in cases:
        st, js = post_csv(d, "acme", good + extra)
        assert st == status, (extra, st, js)
        assert js["line"] == line, (extra, js)
        assert js.get("column") == col, (extra, js)
        assert words.lower() in js["error"].lower(), (extra, js)
        assert js["error"].startswith("line %d" % line), js
        assert hdharness.snapshot(d) == before, extra
    st, _ = d.admin("GET", "/api/v1/orgs/acme/extensions/600")
    assert st == 404
    # unknown column: named by position in the header
    st, js = post_csv(d, "acme", "extension,colour\r\n101,red\r\n")
    assert st == 400 and js["line"] == 1 and js["column"] == 2, js


def test_import_returns_a_virtualization_it_breaks(acme):
    d, demo = acme
    d.star30("acme-101", digits="102", code=demo.code("102"), result="accepted")
    assert hdharness.ext(d, "102")["status"] == "virtualized"
    st, js = post_csv(d, "acme", HEADER + "101,,,,,,no,,,,,\r\n")
    assert st == 201, js
    assert js["extensions"]["changed"] == ["101"] and js["returned"] == 1
    assert hdharness.ext(d, "102")["status"] == "home"
    hdharness.invariants(d)


def test_export_round_trip_and_reveal_rules(acme):
    d, demo = acme
    st, hdrs, text = get_export(d, "acme")
    assert st == 200 and hdrs["content-type"].startswith("text/csv")
    lines = text.split("\r\n")
    assert lines[0] == HEADER.strip()
    assert lines[1].startswith("101,Alice Anders,101,acme-101,,,yes,0004f2000101,polycom,VVX_500,"
                               "park-0004f2000101,")
    assert "globex" not in text and "Gina" not in text
    for s in d.secrets:
        assert s not in text, "export shows a secret without reveal"
    # re-importing the export changes nothing
    st, js = post_csv(d, "acme", text, dry=True)
    assert st == 200, js
    assert js["extensions"]["created"] == [] and js["extensions"]["changed"] == []
    assert js["devices"]["created"] == [] and js["devices"]["changed"] == []
    assert js["extensions"]["unchanged"] == 6 and js["devices"]["unchanged"] == 4
    # an org token may export but not reveal, and sees only its org
    st, js = d.admin("POST", "/api/v1/tokens", {"role": "org", "org": "acme", "name": "t"})
    tok = js["token"]
    st, _, _ = get_export(d, "acme", reveal=True, token=tok)
    assert st == 403
    st, _, _ = get_export(d, "globex", token=tok)
    assert st == 404
    st, js = post_csv(d, "globex", HEADER + "101,Hacked,,,,,,,,,,\r\n", token=tok)
    assert st == 404
    assert hdharness.ext(d, "101", org="globex")["display_name"] == "Gina Gold"
    st, _, text = get_export(d, "acme", token=tok)
    assert st == 200 and "acme-101" in text
    # an admin reveal shows the passwords and records it
    st, _, text = get_export(d, "acme", reveal=True)
    assert st == 200
    assert demo.passwords["acme-101"] in text
    assert demo.passwords["park-0004f2000101"] in text
    assert len(hdharness.events(d, type="export.reveal")) == 1
