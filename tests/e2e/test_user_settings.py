"""The phone follows its user: per-extension settings (voicemail, language,
line keys) and per-organization site settings (time zone, daylight saving,
NTP, language) travel onto whatever phone carries the extension, over
HTTP and TFTP, for every family; a parked phone keeps nothing of anyone.

Per family (sources named in the templates and in test_vendor.c):
  polycom           attendant.resourceList.N.*, msg.mwi.1.callBack,
                    lcl.ml.lang, tcpIpApp.sntp.* (UC software admin guide)
  yealink           linekey.N.* (16 BLF, 13 speed dial), voice_mail.number.1,
                    lang.gui, local_time.* (Yealink admin guide)
  cisco-mpp         Extended_Function_N_ (fnc=blf+sd / fnc=sd),
                    Voice_Mail_Number, Language_Selection, Time_Zone (MPP
                    admin guide)
  cisco-enterprise  featureID 21 lines, messagesNumber, userLocale
                    (wazo-provd cisco-sip base.tpl)
"""

import pytest

import hdharness
from hdharness import check_published, invariants, mac

from test_phones import both

FILE = {"polycom": "%s-line.cfg", "yealink": "%s.cfg", "cisco-mpp": "%s.xml",
        "cisco-enterprise": "SEP%s.cnf.xml"}
PROFILE = {"101": "polycom", "102": "yealink", "103": "cisco-mpp", "104": "cisco-enterprise"}


def dev_file(n):
    m = mac(n)
    p = PROFILE[n]
    return FILE[p] % (m.upper() if p == "cisco-enterprise" else m)


def settings(n, lang):
    """Distinctive settings of extension n: two keys, a voicemail number."""
    return {"voicemail": "*9%s" % n, "language": lang,
            "keys": [{"type": "blf", "value": "71%s" % n, "label": "K%sa" % n},
                     {"type": "speed_dial", "value": "72%s" % n, "label": "K%sb" % n}]}


def markers(n):
    return ["71%s" % n, "72%s" % n, "K%sa" % n, "K%sb" % n, "*9%s" % n]


def found(d, n, body):
    """Extension n's markers in body, outside the SIP passwords: those are
    random hex, which spells a marker such as "72104" by chance (about one
    file in ten thousand), so they are blanked first.  Whose password a file
    carries is checked apart, on the whole body."""
    for s in d.secrets:
        body = body.replace(s, "<secret>")
    return [m for m in markers(n) if m in body]


def has_user(profile, body, n, lang_spelling):
    """Whether body carries extension n's settings the way `profile` spells them."""
    v, vm = "71%s" % n, "*9%s" % n
    want = {
        "polycom": ['attendant.resourceList.1.address="%s"' % v,
                    'attendant.resourceList.1.label="K%sa"' % n,
                    'attendant.resourceList.2.address="72%s"' % n,
                    'msg.mwi.1.callBackMode="contact" msg.mwi.1.callBack="%s"' % vm,
                    'lcl.ml.lang="%s"' % lang_spelling],
        "yealink": ["linekey.2.type = 16\nlinekey.2.line = 1\nlinekey.2.value = %s\n"
                    "linekey.2.label = K%sa\n" % (v, n),
                    "linekey.3.type = 13\nlinekey.3.line = 1\nlinekey.3.value = 72%s\n" % n,
                    "voice_mail.number.1 = %s\n" % vm, "lang.gui = %s\n" % lang_spelling],
        "cisco-mpp": ['<Extended_Function_2_ ua="na">fnc=blf+sd;sub=%s@pbx.acme.test<' % v,
                      '<Short_Name_2_ ua="na">K%sa<' % n,
                      '<Extended_Function_3_ ua="na">fnc=sd;ext=72%s@pbx.acme.test<' % n,
                      '<Voice_Mail_Number ua="na">%s<' % vm,
                      '<Language_Selection ua="na">%s<' % lang_spelling],
        "cisco-enterprise": ["<featureLabel>K%sa</featureLabel>\n    <speedDialNumber>%s<" % (n, v),
                             "<speedDialNumber>72%s<" % n,
                             "<messagesNumber>%s<" % vm, "<name>%s</name>" % lang_spelling],
    }[profile]
    missing = [w for w in want if w not in body]
    return not missing, missing


def has_nobody(profile, body):
    """A parked phone: no key, no voicemail (the site's language is checked apart)."""
    return {
        "polycom": "attendant.resourceList" not in body and 'msg.mwi.1.callBackMode="disabled"' in body,
        "yealink": "linekey." not in body and "voice_mail.number.1 = %NULL%\n" in body,
        "cisco-mpp": "Extended_Function" not in body and '<Voice_Mail_Number ua="na"></' in body,
        "cisco-enterprise": "<featureID>21<" not in body and "<messagesNumber></" in body,
    }[profile]


LANG = {  # fr_FR, de_DE per family
    "polycom": ("French_France", "German_Germany"),
    "yealink": ("French", "German"),
    "cisco-mpp": ("French", "German"),
    "cisco-enterprise": ("French_France", "German_Germany"),
}


def set_up(d):
    d.admin_ok("PATCH", "/api/v1/orgs/acme", {"site": {
        "utc_offset": "+01:00", "dst": "eu", "ntp_server": "ntp.acme.test", "language": "de_DE"}})
    for n in ("101", "103", "104"):
        d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/" + n, settings(n, None))
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/102", settings("102", "fr_FR"))
    # 104's phone may host a visitor too
    d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/104", {"allow_virtualization": True})


def check_desk(d, tftp, desk, user, home_of_desk):
    """desk's phone carries `user`'s settings and nothing of its own home
    user (nor of anyone else), over HTTP and TFTP."""
    prof = PROFILE[desk]
    body = both(d, tftp, dev_file(desk)).decode()
    ok, missing = has_user(prof, body, user, LANG[prof][0 if user == "102" else 1])
    assert ok, "%s (desk %s) lacks %s's settings: %r" % (prof, desk, user, missing)
    for other in ("101", "102", "103", "104"):
        if other != user:
            leaked = found(d, other, body)
            assert not leaked, "%s (desk %s, user %s) carries %s's %r" % (
                prof, desk, user, other, leaked)
    return body


def test_user_with_keys_and_voicemail_moves_desk_to_desk(prov):
    d, demo, tftp = prov
    set_up(d)
    # at home, everyone has their own settings on their own phone
    for n in ("101", "102", "103", "104"):
        check_desk(d, tftp, n, n, n)
    # 102 (French, keys, voicemail) visits every other family's phone
    previous = "102"
    for desk in ("101", "103", "104"):
        d.star30("acme-%s" % desk, "102", code=demo.code(102), result="accepted",
                 device=mac(desk))
        check_desk(d, tftp, desk, "102", desk)
        # the desk 102 left is back to its own user (or parked) with
        # nothing of 102
        left = both(d, tftp, dev_file(previous)).decode()
        assert not found(d, "102", left), (previous, left)
        if previous != "102":
            check_desk(d, tftp, previous, previous, previous)
        else:
            # 102's own yealink is parked: nobody's keys, the site's language
            assert has_nobody("yealink", left), left
            assert "lang.gui = German\n" in left and "local_time.time_zone = +1\n" in left
        # the displaced home user of this desk is on no phone: its markers
        # appear nowhere
        for n in ("101", "102", "103", "104"):
            body = both(d, tftp, dev_file(n)).decode()
            if n != desk:
                assert not found(d, desk, body), (desk, n)
        invariants(d)
        check_published(d, demo, tftp)
        previous = desk
    # back home: every phone carries its own user again
    d.star30("acme-102", result="returned", extension="102")
    for n in ("101", "102", "103", "104"):
        check_desk(d, tftp, n, n, n)


def test_parked_phones_show_the_login_label_and_no_user(prov):
    d, demo, tftp = prov
    set_up(d)
    # 102 visits 101's desk: 102's yealink parks on its parking account
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    body = both(d, tftp, dev_file("102")).decode()
    assert has_nobody("yealink", body), body
    assert "account.1.label = Dial *30 to log in\n" in body
    for n in ("101", "102", "103", "104"):
        assert not found(d, n, body), n
    # a phone that hosts nobody and has no parking account (104's, once 104
    # is elsewhere) keeps its one line with the label and nothing else
    d.star30("acme-103", "104", code=demo.code(104), result="accepted", device=mac(103))
    sep = both(d, tftp, dev_file("104")).decode()
    assert has_nobody("cisco-enterprise", sep), sep
    assert "<featureLabel>Dial *30 to log in</featureLabel>" in sep
    assert "<langCode>de_DE</langCode>" in sep
    for n in ("101", "102", "103", "104"):
        assert not found(d, n, sep), n


def test_site_settings_reach_every_family(prov):
    d, demo, tftp = prov
    set_up(d)
    want = {"101": ['tcpIpApp.sntp.gmtOffset="3600"', 'tcpIpApp.sntp.address="ntp.acme.test"',
                    'daylightSavings.enable="1"', 'daylightSavings.stop.month="10"'],
            "102": ["local_time.time_zone = +1\n", "local_time.ntp_server1 = ntp.acme.test\n",
                    "local_time.summer_time = 1\n", "local_time.start_time = 3/5/7/2\n"],
            "103": ['<Time_Zone ua="na">GMT+01:00<', '<Primary_NTP_Server ua="na">ntp.acme.test<',
                    "start=3/-1/7/2;end=10/-1/7/3;save=1"],
            "104": ["<name>ntp.acme.test</name>"]}
    for n, parts in want.items():
        body = both(d, tftp, dev_file(n)).decode()
        assert all(p in body for p in parts), (n, [p for p in parts if p not in body])
    d.admin_ok("PATCH", "/api/v1/orgs/acme", {"site": {"utc_offset": "-05:30", "dst": "us"}})
    assert 'tcpIpApp.sntp.gmtOffset="-19800"' in both(d, tftp, dev_file("101")).decode()
    y = both(d, tftp, dev_file("102")).decode()
    assert "local_time.time_zone = -5:30\n" in y and "local_time.start_time = 3/2/7/2\n" in y
    site = d.admin_ok("GET", "/api/v1/orgs/acme")["site"]
    assert site == {"utc_offset": "-05:30", "dst": "us", "ntp_server": "ntp.acme.test",
                    "language": "de_DE"}, site


def test_bad_settings_are_refused_and_change_nothing(acme):
    d, demo = acme
    set_up(d)
    before = hdharness.snapshot(d)
    files = hdharness.device_files(d, mac(102))
    path = "/api/v1/orgs/acme/extensions/102"
    bad = {
        "voicemail": {"voicemail": "12a"},
        "language": {"language": "xx_XX"},
        "keys": {"keys": [{"type": "blf", "value": "1"}] * 11},
        "keys ": {"keys": [{"type": "park", "value": "1"}]},
        "keys  ": {"keys": [{"type": "blf", "value": "12;3"}]},
        "keys.label": {"keys": [{"type": "blf", "value": "1", "label": "a\r\nb"}]},
        "keys.label ": {"keys": [{"type": "blf", "value": "1", "label": "x" * 31}]},
    }
    for field, body in bad.items():
        st, js = d.admin("PATCH", path, body)
        assert st == 400 and js["field"] == field.strip(), (field, st, js)
        # which key is at fault (1-based), when one is
        assert js.get("item") == (None if field in ("voicemail", "language", "keys") else 1), js
    ok = {"type": "blf", "value": "1"}
    for k2, field in (({"type": "blf", "value": "1;2"}, "keys"),
                      ({"type": "blf", "value": "2", "label": "a\tb"}, "keys.label"),
                      ({"type": "blf", "value": "2", "label": "y" * 31}, "keys.label")):
        st, js = d.admin("PATCH", path, {"keys": [ok, ok, k2]})
        assert st == 400 and js["field"] == field and js["item"] == 3, (k2, st, js)
    for body, field in (({"utc_offset": "+25:00"}, "site.utc_offset"),
                        ({"dst": "mars"}, "site.dst"), ({"language": "klingon"}, "site.language"),
                        ({"ntp_server": "a b"}, "site.ntp_server"), ({"tz": 1}, "site")):
        st, js = d.admin("PATCH", "/api/v1/orgs/acme", {"site": body})
        assert st == 400 and js["field"] == field, (body, st, js)
    assert hdharness.snapshot(d) == before
    assert hdharness.device_files(d, mac(102)) == files
    # the settings survive a restart
    d.restart()
    ext = d.admin_ok("GET", path)
    assert ext["voicemail"] == "*9102" and ext["language"] == "fr_FR"
    assert ext["keys"] == settings("102", "fr_FR")["keys"], ext["keys"]
    assert hdharness.device_files(d, mac(102)) == files


GS_MAC = "000b82000107"


def test_grandstream_user_moves_desk_to_desk(prov):
    """The fifth family (one vendor file, one template): a Grandstream phone
    homed on 107 gets 102 (keys, voicemail, French) when 102 logs in there,
    over HTTP and TFTP, and gets 107 back with nothing of 102 when 102
    moves on.  P-values: src/vendor_grandstream.c (Grandstream admin guide)."""
    d, demo, tftp = prov
    set_up(d)
    code = hdharness.fresh_code(set(demo.codes.values()))
    d.secrets.add(code)
    d.admin_ok("PUT", "/api/v1/orgs/acme/extensions/107", dict(
        settings("107", None), sip_user="acme-107", sip_password="pw107-gs-secret",
        display_name="Gina Grand", allow_virtualization=True, secret_code=code))
    d.secrets.add("pw107-gs-secret")
    d.admin_ok("PUT", "/api/v1/devices/" + GS_MAC, {
        "org": "acme", "profile": "grandstream", "model": "GXP2170", "home_extension": "107",
        "parking": {"sip_user": "park-gs107", "sip_password": "ppw-gs-107-x"}})
    d.secrets.add("ppw-gs-107-x")
    name = "cfg%s.xml" % GS_MAC
    home = both(d, tftp, name).decode()
    assert "<P35>acme-107</P35>" in home and "<P33>*9107</P33>" in home
    assert "<P1362>de</P1362>" in home and "<P30>ntp.acme.test</P30>" in home
    # 102 logs in at the Grandstream desk
    d.star30("acme-107", "102", code=demo.code(102), result="accepted", device=GS_MAC)
    body = both(d, tftp, name).decode()
    for want in ("<P271>1</P271>", "<P35>acme-102</P35>", "<P33>*9102</P33>",
                 "<P1362>fr</P1362>", "<P47>pbx.acme.test:5060</P47>",
                 demo.passwords["acme-102"]):
        assert want in body, (want, body)
    assert not found(d, "107", body)
    assert not [m for m in ("acme-107", "pw107-gs-secret") if m in body]
    # 102 moves on to 101's polycom: the Grandstream is 107's again
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    back = both(d, tftp, name).decode()
    assert "<P35>acme-107</P35>" in back and "<P33>*9107</P33>" in back
    assert not found(d, "102", back), back
    assert not [m for m in ("acme-102", demo.passwords["acme-102"]) if m in back], back
    check_desk(d, tftp, "101", "102", "101")
    invariants(d)
