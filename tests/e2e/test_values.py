"""Values phones cannot render (issue: a value that cannot be rendered still
moved the extension).

The admin API refuses, naming the field, every value some vendor profile
cannot write into a phone's configuration (characters outside XML 1.0,
Unicode noncharacters such as U+FFFF, control characters, each profile's
length limits), and changes nothing.  And a move whose files would not
render (a value stored before these checks existed) is refused: the store
and what HTTP and TFTP serve never disagree.
"""

import sqlite3

from hdharness import check_published, events, invariants, mac, snapshot

from test_provisioning import both, line_file

BAD = {
    "U+FFFF": "Bob \uffff",
    "U+FFFE": "\ufffe",
    "U+FDD0": "Bob \ufdd0",
    "U+1FFFF": "Bob \U0001ffff",
    "U+10FFFE": "\U0010fffe",
    "C1 control": "Bob \u0085",
    "C0 control": "Bob \u0001",
    "DEL": "Bob \u007f",
}


def test_api_refuses_values_no_phone_can_render(acme):
    d, demo = acme
    before = snapshot(d)
    n_events = len(events(d))
    path = "/api/v1/orgs/acme/extensions/102"
    for what, value in BAD.items():
        for field in ("display_name", "label", "sip_password"):
            st, js = d.admin("PATCH", path, {field: value})
            assert st == 400, "%s in %s: %s %s" % (what, field, st, js)
            assert js["field"] == field, (what, js)
            assert value not in js["error"], js
        # a PUT (creating) is refused the same way, and creates nothing
        st, js = d.admin("PUT", "/api/v1/orgs/acme/extensions/190",
                         {"sip_user": "acme-190", "sip_password": "pw-190-x",
                          "display_name": value})
        assert st == 400 and js["field"] == "display_name", (what, st, js)
        assert d.admin("GET", "/api/v1/orgs/acme/extensions/190")[0] == 404
        # a device's parking account renders on its own profile
        st, js = d.admin("PATCH", "/api/v1/devices/" + mac(101),
                         {"parking": {"sip_user": "park-x", "sip_password": value}})
        assert st == 400 and js["field"] == "parking.sip_password", (what, st, js)
    assert snapshot(d) == before
    assert len(events(d)) == n_events, "a refused change recorded an event"
    # what phones can take passes: escaping is the renderer's business
    for value in ("Zo\u00eb & <Bob> \"'$", "\u260e \U0001f600", "\ufdcf\ufdf0", "\ufffd"):
        d.admin_ok("PATCH", path, {"display_name": value})
        assert d.admin_ok("GET", path)["display_name"] == value
    invariants(d)


def _set_display_name_behind_the_api(d, org, number, value):
    """Writes a value straight into the database, as an older hotdeskd
    that did not check values would have stored it (daemon stopped)."""
    d.stop()
    db = sqlite3.connect(d.db_path)
    try:
        n = db.execute("UPDATE extensions SET display_name = ? WHERE number = ? AND "
                       "org_id = (SELECT id FROM orgs WHERE name = ?)",
                       (value, number, org)).rowcount
        db.commit()
    finally:
        db.close()
    assert n == 1
    d.start()


def test_move_whose_render_fails_changes_nothing(prov):
    d, demo, tftp = prov
    _set_display_name_behind_the_api(d, "acme", "102", "Bob \uffff")
    # 102's own yealink (key = value) renders it, a polycom (XML) cannot
    before = snapshot(d)
    base = both(d, tftp, line_file(mac(101)))
    home = both(d, tftp, line_file(mac(102)))
    st, ans = d.pbx("/pbx/v1/star30", caller="acme-101", digits="102",
                    code=demo.code(102), call_id="render-1")
    assert st == 409 and ans == {"result": "error", "reason": "render_failed"}, (st, ans)
    # nothing moved: not in the store, not on HTTP, not on TFTP
    assert snapshot(d) == before
    assert both(d, tftp, line_file(mac(101))) == base
    assert both(d, tftp, line_file(mac(102))) == home
    ev = events(d, type="move.refused")
    assert len(ev) == 1 and ev[0]["device"] == mac(101) and ev[0]["extension"] == "102", ev
    assert ev[0]["detail"]["reason"] == "render_failed"
    assert events(d, type="extension.virtualized") == []
    # the PBX status agrees: 102 is still home
    assert d.pbx_get("/pbx/v1/extensions/acme-102") == (
        200, {"status": "home", "device": mac(102)})
    invariants(d)
    check_published(d, demo, tftp)
    # once the value is fixed through the API, the same move goes through
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/102", {"display_name": "Bob"})
    d.star30("acme-101", "102", code=demo.code(102), call_id="render-2",
             result="accepted", device=mac(101))
    assert b'reg.1.displayName="Bob"' in both(d, tftp, line_file(mac(101)))
    invariants(d)
    check_published(d, demo, tftp)


def test_admin_change_whose_render_fails_changes_nothing(prov):
    # a template saved while every polycom device has a model, that breaks
    # without one: taking the model away is refused, naming the device
    d, demo, tftp = prov
    m = mac(101)
    name = line_file(m)
    tmpl = d.admin_ok("GET", "/api/v1/templates/polycom/line.cfg")["content"]
    broken = tmpl.replace("<polycomConfig>", "<polycomConfig>{{^model}}<oops>{{/model}}")
    d.admin_ok("PUT", "/api/v1/templates/polycom/line.cfg", {"content": broken})
    good = both(d, tftp, name)
    st, js = d.admin("PATCH", "/api/v1/devices/" + m, {"model": None})
    assert st == 409 and m in js["error"] and "render" in js["error"], (st, js)
    assert d.admin_ok("GET", "/api/v1/devices/" + m)["model"] == "VVX_500"
    assert both(d, tftp, name) == good
    check_published(d, demo, tftp)
