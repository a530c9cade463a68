"""Seed scenarios (shared/seed, SPEC 2.2) driven over POST /pbx/v1/star30.

Demo (hdharness.build_demo): acme 101-106; devices homed on 101-104
(parking accounts on 101-103's phones); virtualization allowed on 101,
102, 103; codes on 102-105; 105 is a softphone user without a device; 106
has neither code nor device.  globex has its own 101 (code) and 201.

The caller of a *30 is the SIP identity the calling phone carries *now*:
after 102 moved onto 101's phone, that phone dials as acme-102, and a
parked phone dials as its parking account park-<mac>.
"""

from hdharness import ABSENT, GLOBEX_MAC, carries, events, ext, invariants, mac, park


def test_virtualize_with_right_code(acme):
    d, demo = acme
    # *30102 without a code: the dialplan must prompt for it.
    d.star30("acme-101", "102", result="need_code", extension="102")
    assert carries(d, mac(101)) == ("ext", "101", False), "need_code must not move anything"
    invariants(d)
    d.star30("acme-101", "102", code=demo.code(102),
             result="accepted", extension="102", device=mac(101))
    assert carries(d, mac(101)) == ("ext", "102", True)
    dv = d.admin_ok("GET", "/api/v1/devices/" + mac(101))
    assert dv["carries"]["sip_user"] == "acme-102", dv
    # the home phone of 102 is parked on its parking account
    dv = d.admin_ok("GET", "/api/v1/devices/" + mac(102))
    assert dv["carries"]["kind"] == "parked", dv
    assert dv["carries"]["parking_user"] == park(102), dv
    e = ext(d, 102)
    assert (e["status"], e["virtual_on"], e["home_device"]) == ("virtualized", mac(101), mac(102)), e
    assert ext(d, 101)["status"] == "inactive"
    ev = events(d, type="extension.virtualized", org="acme")
    assert [(str(x["extension"]), x["device"]) for x in ev] == [("102", mac(101))], ev
    invariants(d)


def test_wrong_code_three_times(acme):
    d, demo = acme
    before_state = invariants(d)
    call = "call-wrong-three"
    wrong = "97531864"
    d.secrets.add(wrong)
    d.star30("acme-101", "102", code=wrong, call_id=call,
             result="retry", tries_left=2, extension="102")
    d.star30("acme-101", "102", code=wrong, call_id=call,
             result="retry", tries_left=1, extension="102")
    d.star30("acme-101", "102", code=wrong, call_id=call, result="hangup", extension="102")
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert ext(d, 102)["status"] == "home"
    # the call is out of tries: even the right code is refused
    d.star30("acme-101", "102", code=demo.code(102), call_id=call, result="hangup")
    after_state = invariants(d)
    assert [e["status"] for e in after_state[0].values()] == \
        [e["status"] for e in before_state[0].values()]
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert len(events(d, type="code.failed", org="acme")) >= 3
    # a redial from the same phone to the same target shares the call's
    # tries ([secrets] redial_window): still out of tries, nothing checked
    d.star30("acme-101", "102", code=demo.code(102), result="hangup")
    d.star30("acme-101", "102", result="hangup")
    assert carries(d, mac(101)) == ("ext", "101", False)
    # another phone has its own tries (3 failures are far below the lockout)
    d.star30("acme-103", "102", code=demo.code(102), result="accepted", device=mac(103))
    invariants(d)


def test_base_not_allowed(acme):
    d, demo = acme
    # 104 does not allow virtualization: its phone cannot be a base
    d.star30("acme-104", "102", result="denied", reason="base_not_allowed")
    d.star30("acme-104", "102", code=demo.code(102), result="denied", reason="base_not_allowed")
    assert carries(d, mac(104)) == ("ext", "104", False)
    assert ext(d, 102)["status"] == "home"
    invariants(d)


def test_extension_without_code(acme):
    d, demo = acme
    # 106 has no secret code: it cannot be virtualized, with or without a code
    d.star30("acme-101", "106", result="denied", reason="no_secret")
    d.star30("acme-101", "106", code="12345678", result="denied", reason="no_secret")
    # 101 has no code either
    d.star30("acme-102", "101", result="denied", reason="no_secret")
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert ext(d, 106)["status"] == "unplaced"
    invariants(d)


def test_unknown_extension(acme):
    d, demo = acme
    d.star30("acme-101", "999", result="denied", reason="unknown_extension")
    d.star30("acme-101", "999", code=demo.code(102), result="denied", reason="unknown_extension")
    d.star30("acme-101", "1020", code=demo.code(102), result="denied", reason="unknown_extension")
    assert carries(d, mac(101)) == ("ext", "101", False)
    invariants(d)


def test_other_organization_number(acme):
    d, demo = acme
    # 201 exists only in globex: from an acme phone it is unknown, even with its code
    d.star30("acme-101", "201", result="denied", reason="unknown_extension")
    d.star30("acme-101", "201", code=demo.code(201, "globex"),
             result="denied", reason="unknown_extension")
    # *30101 from acme means acme's 101 (no code), never globex's 101 (has a code)
    d.star30("acme-102", "101", code=demo.code(101, "globex"),
             result="denied", reason="no_secret")
    # and the other way round: acme's 102 is unknown from globex's phone
    d.star30("globex-101", "102", code=demo.code(102),
             result="denied", reason="unknown_extension")
    assert carries(d, GLOBEX_MAC) == ("ext", "101", False)
    assert carries(d, mac(102)) == ("ext", "102", False)
    # within globex, 201 onto globex's 101 phone works
    d.star30("globex-101", "201", code=demo.code(201, "globex"),
             result="accepted", extension="201", device=GLOBEX_MAC)
    assert ext(d, 201, "globex")["virtual_on"] == GLOBEX_MAC
    # globex's virtual 201 cannot be moved to an acme phone
    d.star30("acme-101", "201", code=demo.code(201, "globex"),
             result="denied", reason="unknown_extension")
    assert ext(d, 201, "globex")["virtual_on"] == GLOBEX_MAC
    invariants(d)


def test_unknown_caller(acme):
    d, demo = acme
    d.star30("nobody", "102", code=demo.code(102), result="denied", reason="unknown_caller")
    # 105 (softphone) and 106 are not carried by any phone: not a calling device
    d.star30("acme-105", "102", code=demo.code(102), result="denied", reason="unknown_caller")
    d.star30("acme-106", "102", result="denied", reason="unknown_caller")
    # Assumption: a bare *30 from an identity no device carries is denied too.
    d.star30("nobody", None, result="denied", reason="unknown_caller")
    # caller names are exact: case matters for SIP users
    d.star30("ACME-101", "102", code=demo.code(102), result="denied", reason="unknown_caller")
    assert ext(d, 102)["status"] == "home"
    invariants(d)


def test_two_extensions_on_one_phone(acme):
    d, demo = acme
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    invariants(d)
    # 101's phone now dials as acme-102; 103 virtualizes there: 102 goes home
    d.star30("acme-102", "103", code=demo.code(103),
             result="accepted", extension="103", device=mac(101))
    assert carries(d, mac(101)) == ("ext", "103", True)
    assert carries(d, mac(102)) == ("ext", "102", False)
    assert carries(d, mac(103)) == ("parked", park(103))
    assert ext(d, 102)["status"] == "home"
    assert ext(d, 102)["virtual_on"] is None
    assert ext(d, 101)["status"] == "inactive"
    invariants(d)


def test_move_to_third_phone(acme):
    d, demo = acme
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    d.star30("acme-103", "102", code=demo.code(102),
             result="accepted", extension="102", device=mac(103))
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(103)) == ("ext", "102", True)
    assert carries(d, mac(102)) == ("parked", park(102))
    assert ext(d, 101)["status"] == "home"
    assert ext(d, 103)["status"] == "inactive"
    assert ext(d, 102)["virtual_on"] == mac(103)
    invariants(d)


def test_bare_star30_from_host_phone(acme):
    d, demo = acme
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    d.star30("acme-102", None, result="returned", extension="102", device=mac(102))
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(102)) == ("ext", "102", False)
    invariants(d)


def test_bare_star30_from_parked_home_phone(acme):
    d, demo = acme
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    # the parked phone dials with its parking account; empty digits = bare *30
    d.star30(park(102), "", result="returned", extension="102", device=mac(102))
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(102)) == ("ext", "102", False)
    # once unparked, the parking account no longer identifies a calling device
    d.star30(park(102), None, result="denied", reason="unknown_caller")
    invariants(d)


def test_bare_star30_nothing_to_return(acme):
    d, demo = acme
    d.star30("acme-101", None, result="nothing")
    d.star30("acme-104", "", result="nothing")
    assert ext(d, 101)["status"] == "home"
    invariants(d)


def test_star30_own_number_from_parked_home_phone(acme):
    d, demo = acme
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    # *30102 from 102's own parked phone: returns without asking for a code
    d.star30(park(102), "102", result="returned", extension="102", device=mac(102))
    assert carries(d, mac(102)) == ("ext", "102", False)
    assert carries(d, mac(101)) == ("ext", "101", False)
    invariants(d)


def test_star30_own_number_from_home_phone_hosting_guest(acme):
    # Assumption (SPEC 2.2 rules applied literally): *30101 from 101's phone
    # while it hosts 102 -- the guest returns (Y != X) and 101 "simply
    # returns home"; no code is asked (101 has none), the answer names 101.
    d, demo = acme
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    d.star30("acme-102", "101", result="returned", extension="101", device=mac(101))
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(102)) == ("ext", "102", False)
    ev = events(d, type="extension.returned", org="acme")
    assert [(str(e["extension"]), e["device"]) for e in ev] == [("102", mac(102))], ev
    # at home with no guest: nothing to do
    ans = d.star30("acme-101", "101")
    assert ans["result"] in ("nothing", "returned"), ans
    assert len(events(d, type="extension.returned", org="acme")) == 1
    invariants(d)


def test_return_while_home_hosts_another(acme):
    d, demo = acme
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    # 105 (softphone) virtualizes onto 102's parked phone
    d.star30(park(102), "105", code=demo.code(105),
             result="accepted", extension="105", device=mac(102))
    assert carries(d, mac(102)) == ("ext", "105", True)
    # 102 returns from 101's phone: its home phone keeps 105
    d.star30("acme-102", None, result="returned", extension="102", device=mac(102))
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(102)) == ("ext", "105", True)
    e = ext(d, 102)
    assert (e["status"], e["virtual_on"]) == ("inactive", None), e
    assert ext(d, 105)["virtual_on"] == mac(102)
    invariants(d)
    # when 105 leaves, 102's phone carries 102 again
    d.star30("acme-105", None, result="returned", extension="105", device=ABSENT)
    assert carries(d, mac(102)) == ("ext", "102", False)
    assert ext(d, 102)["status"] == "home"
    assert ext(d, 105)["status"] == "unplaced"
    invariants(d)


def test_chain_virtualized_and_base(acme):
    d, demo = acme
    # B=102 onto C=103's phone, then A=105 onto B's (parked) phone
    d.star30("acme-103", "102", code=demo.code(102), result="accepted", device=mac(103))
    d.star30(park(102), "105", code=demo.code(105), result="accepted", device=mac(102))
    assert carries(d, mac(102)) == ("ext", "105", True)
    assert carries(d, mac(103)) == ("ext", "102", True)
    invariants(d)
    # first bare *30 from B's phone (it dials as A): A returns (no home: unplaced)
    d.star30("acme-105", None, result="returned", extension="105", device=ABSENT)
    assert carries(d, mac(102)) == ("parked", park(102))
    assert ext(d, 105)["status"] == "unplaced"
    invariants(d)
    # second bare *30 from B's phone (now its parking account): B returns
    d.star30(park(102), None, result="returned", extension="102", device=mac(102))
    assert carries(d, mac(102)) == ("ext", "102", False)
    assert carries(d, mac(103)) == ("ext", "103", False)
    invariants(d)


def test_admin_return(acme):
    d, demo = acme
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    d.star30(park(102), "105", code=demo.code(105), result="accepted")
    st, js = d.admin("POST", "/api/v1/orgs/acme/extensions/102/return")
    assert st == 200, (st, js)
    assert js["result"] == "returned" and str(js["extension"]) == "102", js
    assert js["device"] == mac(102), js
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(102)) == ("ext", "105", True)   # 105 is not affected
    assert ext(d, 102)["status"] == "inactive"
    invariants(d)
    st, js = d.admin("POST", "/api/v1/orgs/acme/extensions/102/return")
    assert st == 200 and js["result"] == "nothing", (st, js)
    st, js = d.admin("POST", "/api/v1/orgs/acme/extensions/105/return")
    assert st == 200 and js["result"] == "returned", (st, js)
    assert js.get("device") is None, js       # 105 has no home device
    assert carries(d, mac(102)) == ("ext", "102", False)
    st, js = d.admin("POST", "/api/v1/orgs/acme/extensions/999/return")
    assert st == 404, (st, js)
    # acme's numbers through globex's path are globex's: 102 does not exist there
    st, js = d.admin("POST", "/api/v1/orgs/globex/extensions/102/return")
    assert st == 404, (st, js)
    assert [str(e["extension"]) for e in events(d, type="extension.returned", org="acme")][-2:] == \
        ["102", "105"]
    invariants(d)
