"""Operating hotdeskd, end to end: what an administrator watches and acts on.

  * refused authentications: one line each in the documented format, and
    the shipped fail2ban filter (contrib/fail2ban) run by Debian's
    fail2ban-regex over the daemon's real log matches exactly those lines,
    none of the normal ones (forged text in a User-Agent included);
  * /metrics of a live daemon passes `promtool check metrics` and shows
    trouble: refused authentications by kind, throttle misses and blocks,
    downloads by status class, NOTIFYs sent/answered/failed, devices by
    sync state (a stale one), build info;
  * the sample alert rules pass `promtool check rules` and their unit tests;
  * GET /healthz: 200 when the store, the TFTP root and the resync thread
    work, 503 naming the check when one does not;
  * log level and access log follow the configuration on SIGHUP.
"""

import http.client
import os
import re
import signal
import sqlite3
import shutil
import subprocess
import time

import hdharness
from hdharness import mac
from test_resync import FAST, FILE_OF, phones, register, wait_sync  # noqa: F401 (fixture)

CONTRIB = os.path.join(hdharness.REPO, "contrib")
F2B_FILTER = os.path.join(CONTRIB, "fail2ban", "filter.d", "hotdeskd.conf")
RULES_DIR = os.path.join(CONTRIB, "prometheus")
LINE_RE = re.compile(r"auth refused: src=(\S+) kind=(\S+) reason=(\S+)$")


def request_from(d, source, method, path, body=None, headers=None):
    """One request from loopback address `source`: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=hdharness.HTTP_TIMEOUT,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def curl_digest(d, name, user, password, source="127.0.0.1"):
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
                        "10", "--interface", source, "--digest", "-u",
                        "%s:%s" % (user, password),
                        "http://127.0.0.1:%d/provision/%s" % (d.port, name)],
                       capture_output=True, timeout=20)
    return int(p.stdout)


def metrics(d, token=None):
    hdrs = {"Authorization": "Bearer " + token} if token else {}
    st, _, body = d.request("GET", "/metrics", headers=hdrs)
    assert st == 200, (st, body[:200])
    return body.decode()


def sample(text, name, **labels):
    """The value of one sample of a Prometheus text, or None."""
    want = name
    if labels:
        want += "{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def wait_metric(d, pred, what, timeout=15.0, token=None):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = metrics(d, token)
        if pred(text):
            return text
        time.sleep(0.2)
    raise AssertionError("metrics never showed %s:\n%s" % (what, text))


def refused_lines(d):
    """The log lines whose message is a refused authentication."""
    return [ln for ln in d.log_text().splitlines()
            if re.match(r"^\S+Z hotdeskd\[\d+\]: \w+: auth refused: ", ln)]


# ------------------------------------------------------- refused authentications

def test_refused_auth_lines_match_the_fail2ban_filter(make_daemon):
    token = "metrics-" + "m" * 24
    d = make_daemon({"pbx": {"networks": "127.0.0.1/32, 127.0.0.2/32"},
                     "log": {"access": "true"},
                     "provisioning": {"miss_threshold": "3", "miss_window": "60",
                                      "miss_block": "300"}},
                    env={"HOTDESKD_METRICS_TOKEN": token})
    d.secrets.add(token)
    pbx_ok = {"Authorization": "Bearer " + d.pbx_token,
              "Content-Type": "application/x-www-form-urlencoded"}
    demo = hdharness.build_demo(d)
    expected = []   # (src, kind, reason) in order

    # ---- normal traffic, which must not match
    st, body = request_from(d, "127.0.0.2", "POST", "/pbx/v1/star30",
                            "caller=acme-101&digits=102&code=%s" % demo.code(102), pbx_ok)
    assert st == 200 and b"accepted" in body, body
    for number in ("101", "102", "103"):
        assert hdharness.prov_get(d, FILE_OF[number])[0] == 200
    forged = ('x" hotdeskd[1]: warn: auth refused: src=192.0.2.66 kind=digest '
              'reason=wrong-credentials')
    assert hdharness.prov_get(d, "common.cfg", headers={"User-Agent": forged})[0] in (200, 404)
    assert d.admin("GET", "/api/v1/orgs")[0] == 200
    assert metrics(d, token)
    assert d.request("GET", "/healthz")[0] == 200
    # a digest challenge (no credentials yet) is the protocol, not a refusal
    d.admin_ok("PATCH", "/api/v1/orgs/globex",
               {"provisioning": {"auth": "shared", "username": "phones",
                                 "password": "dl-Globex-4d1e88"}})
    d.secrets.add("dl-Globex-4d1e88")
    globex_file = "%s.cfg" % hdharness.GLOBEX_MAC
    assert hdharness.prov_get(d, globex_file)[0] == 401
    assert curl_digest(d, globex_file, "phones", "dl-Globex-4d1e88") == 200
    assert refused_lines(d) == [], refused_lines(d)

    # ---- every kind of refusal
    bearer = lambda t: {"Authorization": "Bearer " + t}  # noqa: E731
    for src, method, path, body, hdrs, status, kind, reason in (
            ("127.0.0.2", "POST", "/pbx/v1/star30", "caller=acme-101",
             bearer("not-the-pbx-token-000"), 401, "pbx-token", "invalid"),
            ("127.0.0.2", "POST", "/pbx/v1/star30", "caller=acme-101", {}, 401,
             "pbx-token", "missing"),
            ("127.0.0.4", "POST", "/pbx/v1/star30", "caller=acme-101", pbx_ok, 403,
             "pbx-network", "not-allowed"),
            ("127.0.0.5", "GET", "/api/v1/orgs", None, bearer("wrong-admin-token-0000"), 401,
             "admin-token", "invalid"),
            ("127.0.0.5", "GET", "/api/v1/orgs", None, {}, 401, "admin-token", "missing"),
            ("127.0.0.6", "GET", "/metrics", None, bearer("wrong-metrics-token-00"), 401,
             "metrics-token", "invalid")):
        st, _ = request_from(d, src, method, path, body, hdrs)
        assert st == status, (src, path, st)
        expected.append((src, kind, reason))
    assert curl_digest(d, globex_file, "phones", "guessed-password", "127.0.0.7") == 401
    expected.append(("127.0.0.7", "digest", "wrong-credentials"))
    d.admin_ok("PATCH", "/api/v1/orgs/acme", {"provisioning": {"networks": "10.0.0.0/8"}})
    st, _ = request_from(d, "127.0.0.8", "GET", "/provision/" + FILE_OF["103"])
    assert st == 403
    expected.append(("127.0.0.8", "prov-network", "not-allowed"))
    # a scanner: misses (not refusals) until blocked, then every request refused
    codes = [request_from(d, "127.0.0.9", "GET", "/provision/0004f2ff%04x.cfg" % i)[0]
             for i in range(3)]
    assert codes == [404, 404, 404], codes
    for _ in range(2):
        st, _ = request_from(d, "127.0.0.9", "GET", "/provision/common.cfg")
        assert st == 403
        expected.append(("127.0.0.9", "throttled", "blocked"))

    # ---- the log has exactly those lines, in the documented format
    lines = refused_lines(d)
    got = []
    for ln in lines:
        m = LINE_RE.search(ln)
        assert m and ": warn: auth refused: " in ln, ln
        got.append(m.groups())
    assert got == expected, "\n".join(lines)

    # ---- fail2ban-regex over the whole real log
    p = subprocess.run(["fail2ban-regex", "--print-all-matched", "--print-all-missed", "-o",
                        "ip", d.log_path, F2B_FILTER],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    banned = p.stdout.split()
    assert banned == [e[0] for e in expected], p.stdout
    assert "192.0.2.66" not in p.stdout
    p = subprocess.run(["fail2ban-regex", "--print-all-matched", d.log_path, F2B_FILTER],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", p.stdout)
    assert m, p.stdout
    total, _, matched, missed = map(int, m.groups())
    assert matched == len(expected), p.stdout
    # the normal lines the filter left alone: start-up, moves, the forged
    # User-Agent in the access log, ...
    assert missed == total - matched and missed >= 10, p.stdout
    log = d.log_text()
    assert "access: src=127.0.0.1 method=GET path=/provision/common.cfg" in log
    assert "192.0.2.66" in log  # the forged text was logged, escaped, and not matched

    # ---- one counter per kind
    text = metrics(d, token)
    for kind in ("pbx-token", "pbx-network", "admin-token", "metrics-token", "digest",
                 "prov-network", "throttled"):
        n = sum(1 for e in expected if e[1] == kind)
        assert sample(text, "hotdeskd_auth_refused_total", kind=kind) == n, kind


# ------------------------------------------------------------------ metrics

def test_live_metrics_pass_promtool_and_show_trouble(make_daemon, phones):
    d = make_daemon({"sip": dict(FAST, sync_timeout="1", sync_retries="2"),
                     "provisioning": {"miss_threshold": "2", "miss_window": "60",
                                      "miss_block": "300"}})
    demo = hdharness.build_demo(d)
    p101 = phones(name="dev101")
    p102 = phones(name="dev102")
    silent = phones("resync_silent.xml", name="dev104-silent", calls=1)
    register(d, "acme-101", p101.contact("acme-101"))
    register(d, "acme-102", p102.contact("acme-102"))
    register(d, "acme-104", silent.contact("acme-104"))
    wait_metric(d, lambda t: sample(t, "hotdeskd_devices", sync="none") == 5,
                "5 devices never queued")
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    p101.wait_notifies(1)
    p102.wait_notifies(1)
    assert hdharness.prov_get(d, FILE_OF["101"])[0] == 200  # dev101 reloads, dev102 never
    wait_sync(d, mac(102), lambda s: s["state"] == "stale", timeout=10, what="stale")
    st, _ = d.admin("POST", "/api/v1/devices/%s/resync" % mac(104))
    assert st == 202
    wait_sync(d, mac(104), lambda s: s["last_result"] == "timeout", timeout=10,
              what="a timeout")
    # downloads of every class a phone meets: 200, 304, 404, 403 (blocked)
    st, h, _ = hdharness.prov_get(d, FILE_OF["101"])
    assert st == 200
    assert hdharness.prov_get(d, FILE_OF["101"], headers={"If-None-Match": h["etag"]})[0] == 304
    assert [hdharness.prov_get(d, "0004f2ff%04x.cfg" % i)[0] for i in range(3)] == [404, 404, 403]

    text = wait_metric(d, lambda t: sample(t, "hotdeskd_devices", sync="stale") == 1 and
                       sample(t, "hotdeskd_notify_failed_total") >= 1, "a stale device and "
                       "a failed NOTIFY")
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "" and p.stderr.strip() == "", \
        p.stdout + p.stderr
    v = lambda name, **lb: sample(text, name, **lb)  # noqa: E731
    assert v("hotdeskd_devices", sync="synced") >= 1
    assert sum(v("hotdeskd_devices", sync=s) for s in
               ("none", "pending", "notified", "synced", "stale")) == 5
    # dev101 and dev102 answered (dev102 twice), the silent phone did not
    assert v("hotdeskd_notify_sent_total") >= 4
    assert v("hotdeskd_notify_answered_total") >= 3
    assert v("hotdeskd_notify_failed_total") >= 1
    assert v("hotdeskd_notify_answered_total") + v("hotdeskd_notify_failed_total") <= \
        v("hotdeskd_notify_sent_total")
    assert v("hotdeskd_downloads_total", **{"class": "2xx"}) == 2
    assert v("hotdeskd_downloads_total", **{"class": "3xx"}) == 1
    assert v("hotdeskd_downloads_total", **{"class": "4xx"}) == 3
    assert v("hotdeskd_downloads_total", **{"class": "5xx"}) == 0
    assert v("hotdeskd_throttle_misses_total") == 2
    assert v("hotdeskd_throttle_blocks_total") == 1
    assert v("hotdeskd_auth_refused_total", kind="throttled") == 1
    assert v("hotdeskd_store_errors_total") == 0
    assert v("hotdeskd_code_lockouts_total") == 0
    version = subprocess.run([d.binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    assert v("hotdeskd_build_info", version=version) == 1


def test_code_lockouts_are_counted(make_daemon):
    # each request its own call (redial_window 0): three failures lock the pair
    d = make_daemon({"secrets": {"tries_per_call": "3", "lockout_threshold": "3",
                                 "redial_window": "0"}})
    demo = hdharness.build_demo(d)
    wrong = "1" + demo.code(102)[1:] if demo.code(102)[0] != "1" else "2" + demo.code(102)[1:]
    assert sample(metrics(d), "hotdeskd_code_lockouts_total") == 0
    for _ in range(3):
        d.star30("acme-101", "102", code=wrong)
    d.star30("acme-101", "102", code=demo.code(102), result="denied", reason="locked")
    text = metrics(d)
    assert sample(text, "hotdeskd_code_lockouts_total") == 1, text


def test_alert_rules_pass_promtool():
    p = subprocess.run(["promtool", "check", "rules", "hotdeskd-alerts.yml"], cwd=RULES_DIR,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "SUCCESS: 9 rules found" in p.stdout, p.stdout + p.stderr
    p = subprocess.run(["promtool", "test", "rules", "hotdeskd-alerts.test.yml"],
                       cwd=RULES_DIR, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


# ------------------------------------------------------------------ /healthz

def healthz(d):
    import json
    st, h, body = d.request("GET", "/healthz")
    return st, json.loads(body)


def test_healthz_reports_each_check(make_daemon, tmp_path):
    root = tmp_path / "tftp"
    d = make_daemon({"provisioning": {"tftp_root": str(root)}})
    hdharness.build_demo(d)
    assert healthz(d) == (200, {"status": "ok", "checks": {
        "store": "ok", "tftp_root": "ok", "resync": "ok"}})
    assert not [n for n in os.listdir(root) if n.startswith(".healthz")]
    assert d.request("POST", "/healthz")[0] == 405

    # the TFTP root disappears (a tmpfs unmounted, a directory removed)
    shutil.rmtree(root)
    st, js = healthz(d)
    assert st == 503 and js["status"] == "fail" and js["checks"]["tftp_root"] == "fail", js
    assert js["checks"]["store"] == "ok" and js["checks"]["resync"] == "ok", js
    assert "healthz: the TFTP root is not writable" in d.log_text()
    root.mkdir()
    assert healthz(d)[0] == 200

    # another process holds the database's write lock past the busy timeout
    db = sqlite3.connect(d.db_path, timeout=1, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        st, js = healthz(d)
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert st == 503 and js["checks"]["store"] == "fail", js
    assert js["checks"]["tftp_root"] == "ok", js
    assert healthz(d)[0] == 200


def test_healthz_without_tftp_root(daemon):
    assert healthz(daemon) == (200, {"status": "ok", "checks": {
        "store": "ok", "tftp_root": "off", "resync": "ok"}})


# ------------------------------------------------------- SIGHUP: level, access log

def reloads(d):
    return sample(metrics(d), "hotdeskd_config_reloads_total", result="applied") or 0


def sighup(d, overrides):
    before = reloads(d)
    d.write_config(overrides)
    d.proc.send_signal(signal.SIGHUP)
    wait_metric(d, lambda t: sample(t, "hotdeskd_config_reloads_total",
                                    result="applied") == before + 1, "the reload applied")


def test_log_level_and_access_log_follow_sighup(make_daemon):
    d = make_daemon({"log": {"level": "warn"}})
    demo = hdharness.build_demo(d)
    name = FILE_OF["102"]

    def lines_since(mark, word):
        return [ln for ln in d.log_text()[mark:].splitlines() if (": %s: " % word) in ln]

    # warn: start-up's info lines (listening on ...) are not written
    assert lines_since(0, "info") == [] and "listening on" not in d.log_text()
    d.star30("acme-101", "102", code=demo.code(102), result="accepted")
    assert hdharness.prov_get(d, name)[0] == 200
    assert lines_since(0, "info") == [] and lines_since(0, "debug") == []

    mark = len(d.log_text())
    sighup(d, {"log": {"level": "debug", "access": "true"}})
    assert [ln for ln in lines_since(mark, "info") if "configuration reloaded from" in ln]
    mark = len(d.log_text())
    assert hdharness.prov_get(d, name, headers={"User-Agent": "Yealink SIP-T46S\t\xe9vil"})[0] == 200
    access = [ln for ln in lines_since(mark, "info") if "access:" in ln]
    assert len(access) == 1, d.log_tail()
    assert re.search(r"access: src=127\.0\.0\.1 method=GET path=/provision/%s status=200 "
                     r"bytes=\d+ ua=\"Yealink SIP-T46S\\x09\\xe9vil\"$" % name, access[0]), access

    # error only, no access log: a move and a fetch write nothing
    sighup(d, {"log": {"level": "error", "access": "false"}})
    mark = len(d.log_text())
    d.star30("acme-103", "102", code=demo.code(102), result="accepted")
    assert hdharness.prov_get(d, name)[0] == 200
    assert d.log_text()[mark:].strip() == "", d.log_text()[mark:]

    # a refused reload is counted and keeps the running level
    with open(d.config_path, "a") as f:
        f.write("[log]\nlevel = loud\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_metric(d, lambda t: sample(t, "hotdeskd_config_reloads_total", result="refused") == 1,
                "the refused reload")
    assert "reload refused" in d.log_text()[mark:]
