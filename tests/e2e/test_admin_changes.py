"""Admin changes keep the virtualization rules true (SPEC 2.2, last bullet):
turning allow_virtualization off, clearing a secret code, deleting an
extension or a device, and changing a device's home extension each return
or re-render whatever they affect, and never break I1-I4.
"""

from hdharness import ABSENT, carries, events, ext, invariants, mac, park


def _virtualize_102_on_101(d, demo):
    d.star30("acme-101", "102", code=demo.code(102),
             result="accepted", extension="102", device=mac(101))
    assert carries(d, mac(102)) == ("parked", park(102))


def test_allow_virtualization_turned_off_returns_guest(acme):
    d, demo = acme
    _virtualize_102_on_101(d, demo)
    js = d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/101", {"allow_virtualization": False})
    assert js is None or js.get("allow_virtualization") is False, js
    assert ext(d, 101)["allow_virtualization"] is False
    assert ext(d, 102)["virtual_on"] is None
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(102)) == ("ext", "102", False)
    invariants(d)
    d.star30("acme-101", "102", code=demo.code(102), result="denied", reason="base_not_allowed")
    invariants(d)


def test_secret_cleared_returns_extension(acme):
    # Assumption (SPEC 2.2 "clearing a secret ... returns ... whatever it
    # affects", and I3 as stated in src/virt.h): an extension whose code is
    # cleared while virtualized returns to base.
    d, demo = acme
    _virtualize_102_on_101(d, demo)
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/102", {"secret_code": None})
    e = ext(d, 102)
    assert e["has_secret_code"] is False, e
    assert e["virtual_on"] is None and e["status"] == "home", e
    assert carries(d, mac(101)) == ("ext", "101", False)
    invariants(d)
    d.star30("acme-101", "102", result="denied", reason="no_secret")
    # "" clears too
    d.star30("acme-101", "103", code=demo.code(103), result="accepted")
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/103", {"secret_code": ""})
    assert ext(d, 103)["has_secret_code"] is False
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert carries(d, mac(103)) == ("ext", "103", False)
    invariants(d)
    # a new code works again, the old one does not
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/102", {"secret_code": "24681357"})
    d.secrets.add("24681357")
    assert ext(d, 102)["has_secret_code"] is True
    d.star30("acme-101", "102", code=demo.code(102), result="retry", tries_left=2)
    d.star30("acme-101", "102", code="24681357", result="accepted", device=mac(101))
    invariants(d)


def test_delete_virtualized_extension(acme):
    d, demo = acme
    d.star30("acme-101", "105", code=demo.code(105), result="accepted", device=mac(101))
    st, js = d.admin("DELETE", "/api/v1/orgs/acme/extensions/105")
    assert st in (200, 204), (st, js)
    st, js = d.admin("GET", "/api/v1/orgs/acme/extensions/105")
    assert st == 404, (st, js)
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert len(events(d, type="extension.delete", org="acme")) == 1
    invariants(d)
    st, ans = d.pbx_get("/pbx/v1/extensions/acme-105")
    assert st == 404 and ans.get("reason") == "unknown_extension", (st, ans)
    d.star30("acme-101", "105", code=demo.code(105), result="denied", reason="unknown_extension")


def test_delete_host_home_extension(acme):
    d, demo = acme
    _virtualize_102_on_101(d, demo)
    st, js = d.admin("DELETE", "/api/v1/orgs/acme/extensions/101")
    assert st in (200, 204), (st, js)
    # the base lost its home extension: no base any more, 102 returns home
    e = ext(d, 102)
    assert (e["virtual_on"], e["status"]) == (None, "home"), e
    dv = d.admin_ok("GET", "/api/v1/devices/" + mac(101))
    assert dv.get("home_extension") in (None, ""), dv
    assert dv["carries"]["kind"] == "parked", dv
    assert dv["carries"]["parking_user"] == park(101), dv
    invariants(d)
    # the device with no home is no base: park-... may still dial but is denied
    d.star30(park(101), "102", code=demo.code(102), result="denied", reason="base_not_allowed")
    d.star30(park(101), None, result="nothing")
    invariants(d)


def test_delete_host_device(acme):
    d, demo = acme
    _virtualize_102_on_101(d, demo)
    st, js = d.admin("DELETE", "/api/v1/devices/" + mac(101))
    assert st in (200, 204), (st, js)
    st, js = d.admin("GET", "/api/v1/devices/" + mac(101))
    assert st == 404, (st, js)
    assert ext(d, 102)["status"] == "home"
    assert carries(d, mac(102)) == ("ext", "102", False)
    e = ext(d, 101)
    assert (e["status"], e["home_device"]) == ("unplaced", None), e
    d.star30("acme-102", None, result="nothing")
    invariants(d)
    # the deleted device's version is never recorded after its row is gone
    # (that logged "cannot record version N: FOREIGN KEY constraint failed")
    log = d.log_text()
    assert "FOREIGN KEY" not in log and "cannot record" not in log, d.log_tail()


def test_delete_parked_home_device(acme):
    d, demo = acme
    _virtualize_102_on_101(d, demo)
    st, js = d.admin("DELETE", "/api/v1/devices/" + mac(102))
    assert st in (200, 204), (st, js)
    # 102 stays virtualized on 101's phone (no rule broken); it has no home now
    e = ext(d, 102)
    assert (e["status"], e["virtual_on"], e["home_device"]) == \
        ("virtualized", mac(101), None), e
    invariants(d)
    d.star30(park(102), None, result="denied", reason="unknown_caller")
    # returning it leaves it unplaced
    d.star30("acme-102", None, result="returned", extension="102", device=ABSENT)
    assert ext(d, 102)["status"] == "unplaced"
    assert carries(d, mac(101)) == ("ext", "101", False)
    invariants(d)


def test_home_extension_of_host_changed(acme):
    d, demo = acme
    _virtualize_102_on_101(d, demo)
    # 101's phone gets home 106, which does not allow virtualization: 102 returns
    d.admin_ok("PATCH", "/api/v1/devices/" + mac(101), {"home_extension": "106"})
    assert carries(d, mac(101)) == ("ext", "106", False)
    assert carries(d, mac(102)) == ("ext", "102", False)
    e101, e106 = ext(d, 101), ext(d, 106)
    assert (e101["status"], e101["home_device"]) == ("unplaced", None), e101
    assert (e106["status"], e106["home_device"]) == ("home", mac(101)), e106
    invariants(d)


def test_home_extension_of_parked_device_changed(acme):
    d, demo = acme
    _virtualize_102_on_101(d, demo)
    # 102's parked phone gets home 106: it carries 106, 102 stays on 101's phone
    d.admin_ok("PATCH", "/api/v1/devices/" + mac(102), {"home_extension": "106"})
    assert carries(d, mac(102)) == ("ext", "106", False)
    e = ext(d, 102)
    assert (e["status"], e["virtual_on"], e["home_device"]) == \
        ("virtualized", mac(101), None), e
    invariants(d)


def test_home_extension_changed_to_guest(acme):
    d, demo = acme
    d.star30("acme-101", "105", code=demo.code(105), result="accepted", device=mac(101))
    # 101's phone gets home 105 -- the extension virtualized on it: it may not
    # stay virtualized on its own home device (I2), it simply is home there
    d.admin_ok("PATCH", "/api/v1/devices/" + mac(101), {"home_extension": "105"})
    e = ext(d, 105)
    assert (e["status"], e["virtual_on"], e["home_device"]) == ("home", None, mac(101)), e
    assert carries(d, mac(101)) == ("ext", "105", False)
    assert ext(d, 101)["status"] == "unplaced"
    invariants(d)


def test_home_extension_conflict(acme):
    d, demo = acme
    snap = invariants(d)
    # 103 is already home on its own phone: one extension, one home device
    st, js = d.admin("PATCH", "/api/v1/devices/" + mac(101), {"home_extension": "103"})
    assert st == 409, (st, js)
    # a home extension of another organization is refused
    st, js = d.admin("PATCH", "/api/v1/devices/" + mac(101), {"home_extension": "201"})
    assert st in (400, 404, 409), (st, js)
    assert carries(d, mac(101)) == ("ext", "101", False)
    assert invariants(d)[0].keys() == snap[0].keys()


def test_changes_without_secret_code_keep_the_code(acme):
    # The code is write-only: a PATCH or PUT that does not name it keeps it
    # (the hash stays in the store; the daemon keeps none in memory), and
    # the kept code still works after a restart.
    d, demo = acme
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/102", {"display_name": "Bea"})
    e = ext(d, 102)
    d.admin_ok("PUT", "/api/v1/orgs/acme/extensions/102",
               {"sip_user": e["sip_user"], "sip_password": "new-pass-102",
                "display_name": "Bea B.", "allow_virtualization": True})
    assert ext(d, 102)["has_secret_code"] is True
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    d.restart()
    d.star30("acme-102", "", result="returned", extension="102")
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    invariants(d)
