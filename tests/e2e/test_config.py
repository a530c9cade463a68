"""Configuration as the daemon's user meets it (docs/CONFIG.md, SPEC 7):
--check-config, `file:line: message` errors, tokens from the environment,
and SIGHUP reloading the reloadable keys only when the new file parses.
"""

import os
import signal
import subprocess
import time

import hdharness
from hdharness import invariants, mac


def _check(path):
    return subprocess.run([hdharness.binary_path(), "--config", path, "--check-config"],
                          capture_output=True, timeout=10, cwd=hdharness.REPO)


def test_check_config(tmp_path):
    d = hdharness.Daemon(tmp_path)          # writes the config, not started
    p = _check(d.config_path)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert not os.path.exists(d.port_file), "--check-config must not start the server"
    lines = open(d.config_path).read().splitlines()
    bad = tmp_path / "bad.ini"
    n = lines.index("[secrets]") + 2        # 1-based line of the inserted key
    bad.write_text("\n".join(lines[:n - 1] + ["no_such_key = 1"] + lines[n - 1:]) + "\n")
    p = _check(str(bad))
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert ("bad.ini:%d:" % n).encode() in p.stderr, p.stderr
    bad.write_text("\n".join(lines).replace("hash_ops = 1", "hash_ops = many") + "\n")
    p = _check(str(bad))
    assert p.returncode == 1 and b"bad.ini:" in p.stderr, (p.returncode, p.stderr)
    bad.write_text("\n".join(lines) + "\n[nonsense]\nx = 1\n")
    p = _check(str(bad))
    assert p.returncode == 1 and ("bad.ini:%d:" % (len(lines) + 1)).encode() in p.stderr, p.stderr
    # a bad file also stops a real start-up, with a non-zero status
    p = subprocess.run([hdharness.binary_path(), "--config", str(bad)], capture_output=True,
                       timeout=10, cwd=hdharness.REPO)
    assert p.returncode != 0 and b"bad.ini:" in p.stderr, (p.returncode, p.stderr)


def test_tokens_from_environment(make_daemon):
    env_pbx, env_adm = "envpbx-" + "k" * 40, "envadm-" + "j" * 40
    d = make_daemon(env={"HOTDESKD_PBX_TOKEN": env_pbx, "HOTDESKD_ADMIN_TOKEN": env_adm})
    st, out = d.curl("GET", "/pbx/v1/extensions/acme-101",
                     headers=["Authorization: Bearer " + d.pbx_token])
    assert st == 401, "the file's PBX token must be overridden: %s %r" % (st, out)
    st, out = d.curl("GET", "/api/v1/orgs", headers=["Authorization: Bearer " + d.admin_token])
    assert st == 401, "the file's admin token must be overridden: %s %r" % (st, out)
    st, out = d.curl("GET", "/api/v1/orgs", headers=["Authorization: Bearer " + env_adm])
    assert st == 200, (st, out)
    st, out = d.curl("GET", "/pbx/v1/extensions/nobody",
                     headers=["Authorization: Bearer " + env_pbx])
    assert st == 404, (st, out)
    d.pbx_token, d.admin_token = env_pbx, env_adm   # the log must not show these either


def test_sighup_reload(make_daemon):
    # redial_window 0: each call gets its own tries_per_call
    d = make_daemon({"secrets": {"lockout_threshold": 100, "redial_window": 0}})
    demo = hdharness.build_demo(d)
    wrong = "42424242"
    d.secrets.add(wrong)
    d.star30("acme-101", "102", code=wrong, result="retry", tries_left=2)
    # tries_per_call is a reload key: 1 try per call after SIGHUP
    d.write_config({"secrets": {"lockout_threshold": 100, "tries_per_call": 1,
                                "redial_window": 0}})
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        ans = d.star30("acme-101", "102", code=wrong)
        if ans["result"] == "hangup" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ans["result"] == "hangup", "SIGHUP did not apply tries_per_call=1: %r" % ans
    # a file that does not parse is refused and the old configuration stays
    with open(d.config_path, "a") as f:
        f.write("\n[bogus]\nkey = 1\n")
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert d.alive(), "daemon died on a bad SIGHUP reload:\n" + d.log_tail()
    d.star30("acme-101", "102", code=wrong, result="hangup")
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    invariants(d)


def _reload_and_wait(d, nth):
    """SIGHUP, then waits (<= 20 s) for the nth "configuration reloaded"."""
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while d.log_text().count("configuration reloaded from") < nth:
        assert d.alive(), "daemon died on SIGHUP:\n" + d.log_tail()
        assert time.monotonic() < deadline, "no reload after SIGHUP:\n" + d.log_tail()
        time.sleep(0.05)


def test_sighup_keeps_provisioning(prov):
    """Phones keep getting their files after reloads (same file, then a file
    changing reloadable keys): over HTTP and TFTP, before and after, and a
    move made after the reloads is published on both."""
    d, demo, tftp = prov
    before = hdharness.check_published(d, demo, tftp)
    assert before[mac(101)], "no per-device file to fetch"
    _reload_and_wait(d, 1)                  # the same file again
    assert hdharness.check_published(d, demo, tftp) == before
    cfg = {s: dict(kv) for s, kv in d.config.items()}
    cfg["secrets"]["tries_per_call"] = "2"
    cfg["log"]["level"] = "info"
    cfg["provisioning"]["miss_threshold"] = "500"
    d.write_config(cfg)
    _reload_and_wait(d, 2)                  # reloadable keys changed
    assert hdharness.check_published(d, demo, tftp) == before
    for name in before[mac(101)]:
        st, _, body = hdharness.prov_get(d, name)
        assert st == 200 and body == before[mac(101)][name], (name, st)
        assert tftp.get(name) == body, name
    d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
    after = hdharness.check_published(d, demo, tftp)
    assert after[mac(101)] != before[mac(101)], "the move after the reload was not published"
    assert demo.passwords["acme-102"].encode() in b"".join(after[mac(101)].values())
    invariants(d)
