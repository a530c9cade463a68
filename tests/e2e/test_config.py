"""Configuration as the daemon's user meets it (docs/CONFIG.md, SPEC 7):
--check-config, `file:line: message` errors, tokens from the environment,
and SIGHUP reloading the reloadable keys only when the new file parses.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest

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


# What start-up refuses, --check-config refuses too, with the same message.
# Each case: overrides of the harness's good configuration ({tmp}: a fresh
# directory), and the key the message must name.
REFUSED_AT_START = [
    ("wildcard SIP bind without a contact host", {"sip": {"bind": "0.0.0.0:0"}},
     "[sip] contact_host"),
    ("IPv6 contact host on an IPv4 bind", {"sip": {"contact_host": "::1"}},
     "[sip] contact_host"),
    ("wildcard contact host", {"sip": {"bind": "0.0.0.0:0", "contact_host": "0.0.0.0"}},
     "[sip] contact_host"),
    ("outbound proxy by name", {"sip": {"outbound_proxy": "pbx.example.test:5060"}},
     "[sip] outbound_proxy"),
    ("templates missing", {"provisioning": {"templates": "{tmp}/none"}},
     "[provisioning] templates"),
    ("static files missing", {"provisioning": {"static": "{tmp}/none"}},
     "[provisioning] static"),
    ("migrations missing", {"database": {"migrations": "{tmp}/none"}},
     "[database] migrations"),
    ("database in a missing directory", {"database": {"path": "{tmp}/no/h.db"}},
     "[database] path"),
    ("TFTP root two levels down", {"provisioning": {"tftp_root": "{tmp}/a/b"}},
     "[provisioning] tftp_root"),
    ("TFTP root is a file", {"provisioning": {"tftp_root": "{tmp}/file"}},
     "[provisioning] tftp_root"),
    ("phone logs two levels down", {"provisioning": {"phone_logs": "{tmp}/a/b"}},
     "[provisioning] phone_logs"),
    ("port file in a missing directory", {"server": {"port_file": "{tmp}/no/port"}},
     "[server] port_file"),
    ("a template that does not compile", {"provisioning": {"templates": "{tmp}/tmpl"}},
     "[provisioning] templates"),
    ("VC prompts missing", {"vc": {"bind": "127.0.0.1:0", "networks": "127.0.0.1/32",
                                   "prompts": "{tmp}/none"}}, "[vc] prompts"),
    ("VC default language without its prompts",
     {"vc": {"bind": "127.0.0.1:0", "networks": "127.0.0.1/32", "language": "xx",
             "prompts": os.path.join(os.path.dirname(hdharness.binary_path()), "prompts")}},
     "[vc] prompts"),
    ("VC without networks", {"vc": {"bind": "127.0.0.1:0"}}, "[vc] networks"),
    ("VC port file in a missing directory",
     {"vc": {"bind": "127.0.0.1:0", "networks": "127.0.0.1/32", "port_file": "{tmp}/no/p",
             "prompts": os.path.join(os.path.dirname(hdharness.binary_path()), "prompts")}},
     "[vc] port_file"),
]


@pytest.mark.parametrize("what,overrides,key", REFUSED_AT_START,
                         ids=[c[0] for c in REFUSED_AT_START])
def test_check_config_refuses_what_start_up_refuses(tmp_path, what, overrides, key):
    (tmp_path / "file").write_text("not a directory\n")
    tmpl = tmp_path / "tmpl"
    shutil.copytree(os.path.join(hdharness.REPO, "templates"), tmpl)
    bad = sorted(p for p in tmpl.rglob("*") if p.is_file())[0]
    bad.write_text(bad.read_text() + "\n{{#never_closed}}\n")
    ov = {s: {k: v.replace("{tmp}", str(tmp_path)) for k, v in kv.items()}
          for s, kv in overrides.items()}
    d = hdharness.Daemon(tmp_path, ov)      # writes the config, not started
    p = _check(d.config_path)
    assert p.returncode == 1, "--check-config accepted it (%s): %r" % (what, p.stdout)
    assert key.encode() in p.stderr, p.stderr
    start = subprocess.Popen([hdharness.binary_path(), "--config", d.config_path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=hdharness.REPO)
    try:
        out, err = start.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        start.kill()
        start.communicate()
        raise AssertionError("start-up accepted what --check-config refused (%s)" % what)
    assert start.returncode != 0 and key.encode() in err, (start.returncode, err[-2000:])
    assert not os.path.exists(d.port_file)


def test_wildcard_sip_bind_with_contact_host(make_daemon):
    """[sip] bind on 0.0.0.0 with contact_host: accepted by --check-config,
    and the daemon starts (the container's configuration)."""
    d = make_daemon({"sip": {"bind": "0.0.0.0:0", "contact_host": "127.0.0.1"}})
    p = _check(d.config_path)
    assert p.returncode == 0, p.stderr
    hdharness.build_demo(d)
    invariants(d)
