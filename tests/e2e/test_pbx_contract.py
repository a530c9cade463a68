"""The PBX contract of docs/API.md (SPEC 3): forms of `caller`, `call_id`
and the dial string, tries across redials, the SIP meaning of each result,
the registration feed and the move stream.  Kamailio itself runs in
test_kamailio.py."""

import re
import sqlite3
import time

import hdharness
from hdharness import carries, events, mac


def test_call_id_with_spaces_is_one_call(acme):
    # docs/API.md: call_id is printable text, spaces allowed
    d, demo = acme
    wrong = "24681357"
    d.secrets.add(wrong)
    call = "1700000000.42 asterisk-1"
    d.star30("acme-101", "102", code=wrong, call_id=call, result="retry", tries_left=2)
    d.star30("acme-101", "102", code=wrong, call_id=call, result="retry", tries_left=1)
    d.star30("acme-101", "102", code=wrong, call_id=call, result="hangup")
    # control characters are still refused
    st, ans = d.pbx("/pbx/v1/star30", caller="acme-101", digits="102", call_id="a\tb")
    assert st == 400 and ans["reason"] == "invalid call_id", (st, ans)


def test_redials_share_tries_then_the_window_ends(make_daemon):
    d = make_daemon({"secrets": {"redial_window": "2", "lockout_threshold": "100"}})
    demo = hdharness.build_demo(d)
    wrong = "31415926"
    d.secrets.add(wrong)
    # every redial is a new call (a proxy): tries_left still counts down
    d.star30("acme-101", "102", result="need_code", tries_left=3)
    d.star30("acme-101", "102", code=wrong, result="retry", tries_left=2)
    d.star30("acme-101", "102", result="need_code", tries_left=2)
    d.star30("acme-101", "102", code=wrong, result="retry", tries_left=1)
    d.star30("acme-101", "102", code=wrong, result="hangup")
    d.star30("acme-101", "102", code=demo.code(102), result="hangup")
    # another target from the same phone has its own tries
    d.star30("acme-101", "103", result="need_code", tries_left=3)
    time.sleep(2.5)
    d.star30("acme-101", "102", result="need_code", tries_left=3)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    assert carries(d, mac(101)) == ("ext", "102", True)
    assert len(events(d, type="code.failed", org="acme")) == 3


def test_caller_forms(acme):
    d, demo = acme
    # a SIP URI (what a proxy has in From) names its user
    d.star30("sip:acme-101@pbx.acme.test", "102", result="need_code")
    d.star30("<sips:acme-101@pbx.acme.test;transport=tls>", "102", result="need_code")
    # the extension number with its organization (a dialplan's CALLERID(num))
    def with_org(number, org, code=None, **expect):
        st, ans = d.pbx("/pbx/v1/star30", caller=number, org=org, digits="102", code=code,
                        call_id="org-call")
        assert st == 200, (st, ans)
        hdharness.check_fields(ans, expect, "caller=%s org=%s" % (number, org))

    with_org("101", "acme", result="need_code", tries_left=3)
    with_org("101", "acme", code=demo.code(102), result="accepted", device=mac(101))
    with_org("999", "acme", result="denied", reason="unknown_caller")
    with_org("101", "nosuchorg", result="denied", reason="unknown_caller")
    # a bare number without its organization is no SIP user
    d.star30("101", "102", result="denied", reason="unknown_caller")
    st, ans = d.pbx("/pbx/v1/star30", caller="acme-101", org="acme", digits="102")
    assert st == 400 and "invalid caller" in ans["reason"], (st, ans)


def test_dial_string_carries_the_code(acme):
    d, demo = acme
    wrong = "70707070"
    d.secrets.add(wrong)
    d.star30("acme-101", "102*" + wrong, result="retry", tries_left=2, extension="102")
    d.star30("acme-101", "102*" + demo.code(102), result="accepted", device=mac(101))
    for digits, code in (("102*", None), ("*1234", None), ("102*12a4", None),
                         ("102*1234", "1234"), ("102**1234", None)):
        st, ans = d.pbx("/pbx/v1/star30", caller="acme-103", digits=digits, code=code,
                        call_id="bad-dial")
        assert st == 400, (digits, st, ans)
        assert ans["reason"] == ("code given twice" if code else "invalid digits"), ans
    assert carries(d, mac(103)) == ("ext", "103", False)


SIP = {
    "need_code": ("484", "Code needed"),
    "retry": ("484", "Wrong code, 2 tries left"),
    "accepted": ("200", "Extension moved"),
    "returned": ("200", "Extension returned"),
    "nothing": ("200", "Nothing to return"),
    "hangup": ("603", "Too many wrong codes"),
}


def test_every_result_has_its_sip_meaning(make_daemon):
    d = make_daemon({"secrets": {"tries_per_call": "2"}})
    demo = hdharness.build_demo(d)
    wrong = "80808080"
    d.secrets.add(wrong)

    def both(result, caller, digits=None, code=None, reason=None, **kw):
        ans = d.star30(caller, digits, code=code, call_id="sip-%s" % caller, result=result, **kw)
        code_, phrase = SIP[result] if reason is None else ("403", reason)
        if result == "retry":
            phrase = "Wrong code, 1 try left"
        assert (ans["sip_code"], ans["sip_reason"]) == (code_, phrase), ans
        return ans

    both("need_code", "acme-101", "102")
    both("retry", "acme-101", "102", code=wrong)
    both("hangup", "acme-101", "102", code=wrong)
    both("accepted", "acme-103", "102", code=demo.code(102))
    both("nothing", "acme-104", None)
    ans = d.star30("acme-104", "102", result="denied", reason="base_not_allowed")
    assert (ans["sip_code"], ans["sip_reason"]) == ("403", "Base not allowed"), ans
    # the form a proxy uses without parsing: one SIP status line
    st, hdrs, body = d.pbx_raw("/pbx/v1/star30", headers={"Accept": "message/sipfrag"},
                               caller="acme-102", call_id="frag-1")
    assert st == 200 and hdrs["content-type"].startswith("message/sipfrag"), (st, hdrs)
    assert body == b"SIP/2.0 200 Extension returned\r\n", body
    st, hdrs, body = d.pbx_raw("/pbx/v1/star30", headers={"Accept": "message/sipfrag"},
                               caller="acme-104", digits="102", call_id="frag-2")
    assert body == b"SIP/2.0 403 Base not allowed\r\n", body
    st, hdrs, body = d.pbx_raw("/pbx/v1/star30", headers={"Accept": "message/sipfrag"},
                               caller="acme-101", digits="103*" + wrong, call_id="frag-3")
    assert body == b"SIP/2.0 484 Wrong code, 1 try left\r\n", body


def reg(d, **fields):
    return d.pbx("/pbx/v1/registrations", **fields)


def target_after_resync(d, m, expect):
    st, js = d.admin("POST", "/api/v1/devices/%s/resync" % m)
    assert st == 202, (st, js)
    deadline = time.monotonic() + 8
    uri = None
    while time.monotonic() < deadline:
        s = hdharness.dev(d, m)["sync"]
        uri = (s.get("target") or {}).get("uri")
        if uri == expect:
            return
        time.sleep(0.05)
    raise AssertionError("device %s: NOTIFY target %r, expected %r" % (m, uri, expect))


def test_registration_feed_takes_what_registrars_produce(acme):
    d, demo = acme
    ok = {"result": "ok"}
    # name-addr with a display name and the contact's own expires
    st, ans = reg(d, sip_user="acme-104", contact='"Dave, desk 4" <sip:acme-104@127.0.0.1:5072>;expires=600;q=0.5',
                  source="127.0.0.1:5072", call_id="reg 1@host", q="0.5", aor="sip:acme-104@pbx.acme.test")
    assert (st, dict(ans)) == (200, ok), (st, ans)
    target_after_resync(d, mac(104), "sip:acme-104@127.0.0.1:5072")
    # several contacts: the first that is not being removed is kept
    st, ans = reg(d, sip_user="acme-104",
                  contact="<sip:acme-104@127.0.0.1:5073>;expires=0, <sip:acme-104@127.0.0.1:5074>")
    assert (st, dict(ans)) == (200, ok), (st, ans)
    target_after_resync(d, mac(104), "sip:acme-104@127.0.0.1:5074")
    # behind NAT: `received` (what the registrar saw) is what reaches the phone
    st, ans = reg(d, sip_user="acme-104", contact="sip:acme-104@10.1.2.3:5060",
                  received="sip:127.0.0.1:5075", expires="60")
    assert (st, dict(ans)) == (200, ok), (st, ans)
    target_after_resync(d, mac(104), "sip:acme-104@127.0.0.1:5075")
    # what is really wrong is still refused, and changes nothing
    for fields, why in (
            (dict(contact="*"), "contact * needs expires=0"),
            (dict(contact="*", expires="60"), "contact * needs expires=0"),
            (dict(contact="http://127.0.0.1/"), "invalid contact"),
            (dict(contact="<sip:acme-104@127.0.0.1:5076"), "invalid contact"),
            (dict(contact="sip:acme-104@127.0.0.1:5076", received="here"), "invalid received"),
            (dict(contact="sip:acme-104@127.0.0.1:5076", bogus="1"), "unknown field bogus")):
        st, ans = reg(d, sip_user="acme-104", **fields)
        assert st == 400 and ans["reason"] == why, (fields, st, ans)
    target_after_resync(d, mac(104), "sip:acme-104@127.0.0.1:5075")
    # "*" with expires=0: every binding of the user goes
    st, ans = reg(d, sip_user="acme-104", contact="*", expires="0")
    assert (st, dict(ans)) == (200, ok), (st, ans)


def test_move_stream_names_users_and_their_new_contact(acme):
    d, demo = acme
    st, ans = d.pbx_get("/pbx/v1/moves")
    assert st == 200 and ans["result"] == "none", (st, ans)
    cursor = ans["id"]
    st, ans = reg(d, sip_user="acme-101", contact="<sip:acme-101@127.0.0.1:5091>")
    assert st == 200, (st, ans)
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    st, ans = d.pbx_get("/pbx/v1/moves?after=%s" % cursor)
    assert st == 200, (st, ans)
    assert (ans["result"], ans["sip_user"], ans["device"], ans["contact"]) == \
        ("move", "acme-102", mac(101), "sip:acme-101@127.0.0.1:5091"), ans
    st, nxt = d.pbx_get("/pbx/v1/moves?after=%s" % ans["id"])
    assert nxt["result"] == "none" and int(nxt["id"]) >= int(ans["id"]), nxt
    # bare *30: 102 goes home (a device with no registration: no contact)
    d.star30("acme-102", None, result="returned")
    st, ans = d.pbx_get("/pbx/v1/moves?after=%s" % nxt["id"])
    assert (ans["result"], ans["sip_user"], ans["device"], ans["contact"]) == \
        ("move", "acme-102", mac(102), ""), ans
    st, ans = d.pbx_get("/pbx/v1/moves?after=x")
    assert st == 400, (st, ans)
    st, _, _ = d.request("GET", "/pbx/v1/moves")
    assert st == 401


# the names events had before noun.verb, and theirs now (docs/API.md, Events)
OLDER = {"virtualized": "extension.virtualized", "returned": "extension.returned",
         "denied": "move.denied", "code_failed": "code.failed", "locked": "code.locked",
         "import": "import.applied", "render_failed": "render.failed"}


def test_event_names_noun_verb_older_names_filter_and_upgrade(make_daemon):
    """Every event recorded is noun.verb; `type=` takes an older name as an
    alias of its name now; a store written before the rename (its rows under
    the older names, migration 016 not applied) is renamed at start-up, ids
    kept, and the move stream reads the renamed moves."""
    d = make_daemon({"secrets": {"lockout_threshold": "2"}})
    demo = hdharness.build_demo(d)
    wrong = "27182818"
    d.secrets.add(wrong)
    cursor = d.pbx_get("/pbx/v1/moves")[1]["id"]
    d.star30("acme-101", "103", code=wrong, result="retry")
    d.star30("acme-101", "103", code=wrong)  # the pair reaches the threshold
    d.star30("acme-101", "103", code=demo.code(103), result="denied", reason="locked")
    d.star30("acme-999", "102", result="denied", reason="unknown_caller")
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    d.star30("acme-102", None, result="returned", extension="102")
    evs = events(d)
    assert evs and all(re.fullmatch(r"[a-z_]+\.[a-z_]+", e["type"]) for e in evs), \
        sorted({e["type"] for e in evs})
    # every renamed kind but the import and render.failed happened above
    for old, now in OLDER.items():
        want = [e["id"] for e in evs if e["type"] == now]
        if old not in ("import", "render_failed"):
            assert want, "no %s event" % now
        got = [e["id"] for e in events(d, type=old)]
        assert got == want, (old, got, want)
    assert events(d, type="virtualized_x") == []
    first = [(e["id"], e["type"], e.get("extension"), e.get("device")) for e in evs]

    # the store as the version before the rename left it
    d.stop()
    db = sqlite3.connect(d.db_path)
    for old, now in OLDER.items():
        db.execute("UPDATE events SET type = ? WHERE type = ?", (old, now))
    db.execute("DELETE FROM schema_migrations WHERE version = 16")
    db.commit()
    n_old = db.execute("SELECT count(*) FROM events WHERE type IN (%s)"
                       % ",".join("?" * len(OLDER)), list(OLDER)).fetchone()[0]
    db.close()
    assert n_old >= 6
    d.start()
    # the same rows under the names now (the resync engine may add more)
    assert [(e["id"], e["type"], e.get("extension"), e.get("device")) for e in events(d)
            if e["id"] <= first[-1][0]] == first
    st, ans = d.pbx_get("/pbx/v1/moves?after=%s" % cursor)
    assert (st, ans["result"], ans["sip_user"], ans["device"]) == \
        (200, "move", "acme-102", mac(101)), (st, ans)
