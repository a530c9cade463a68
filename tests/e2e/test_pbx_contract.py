"""The PBX contract of docs/API.md (SPEC 3): forms of `caller`, `call_id`
and the dial string, tries across redials, the SIP meaning of each result,
the registration feed and the move stream.  Kamailio itself runs in
test_kamailio.py."""

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
    assert len(events(d, type="code_failed", org="acme")) == 3
