"""hotdeskctl against the real daemon: tables, --json, the documented exit
codes, imports and exports, templates, events, tokens; the token is taken
from the environment or a file and never appears in the output."""

import json
import os
import subprocess

import hdharness

CTL = os.environ.get("HOTDESKCTL", os.path.join(hdharness.REPO, "build", "hotdeskctl"))


def ctl(d, *args, token=True, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESKD_")}
    env["HOTDESKD_URL"] = "http://127.0.0.1:%d" % d.port
    if token:
        env["HOTDESKD_TOKEN"] = d.admin_token if token is True else token
    p = subprocess.run([CTL] + list(args), capture_output=True, env=env, input=stdin,
                       timeout=60)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert d.admin_token not in out + err
    for s in d.secrets:
        if "--reveal" not in args:
            assert s not in out + err, "hotdeskctl shows a secret"
    return p.returncode, out, err


def test_tables_json_and_exit_codes(acme):
    d, demo = acme
    rc, out, _ = ctl(d, "orgs")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["name", "display_name"]
    assert any(l.startswith("acme ") for l in lines) and any(l.startswith("globex") for l in lines)
    rc, out, _ = ctl(d, "--json", "extensions", "acme")
    assert rc == 0 and len(json.loads(out)["extensions"]) == 6
    d.star30("acme-101", digits="102", code=demo.code("102"), result="accepted")
    rc, out, _ = ctl(d, "where", "acme", "102")
    assert rc == 0 and "virtualized" in out and hdharness.mac(101) in out
    rc, out, _ = ctl(d, "return", "acme", "102")
    assert rc == 0 and json.loads(out)["result"] == "returned"
    assert hdharness.ext(d, "102")["status"] == "home"
    rc, out, _ = ctl(d, "devices", "acme")
    assert rc == 0 and len(out.splitlines()) == 5 and "sync.state" in out.splitlines()[0]
    # exit codes
    assert ctl(d, "where", "acme", "999")[0] == 4
    rc, _, err = ctl(d, "orgs", token="wrong-token-123")
    assert rc == 3 and "401" in err
    assert ctl(d, "frobnicate")[0] == 2
    assert ctl(d, "orgs", token=False)[0] == 2
    env = {"HOTDESKD_TOKEN": "x", "PATH": os.environ["PATH"]}
    p = subprocess.run([CTL, "--url", "http://127.0.0.1:1", "orgs"], capture_output=True,
                       env=env, timeout=60)
    assert p.returncode == 5
    # a token from a file
    tf = os.path.join(d.dir, "token")
    with open(tf, "w") as f:
        f.write(d.admin_token + "\n")
    rc, out, _ = ctl(d, "--token-file", tf, "orgs", token=False)
    assert rc == 0 and "acme" in out


def test_table_cells_are_cut_and_markup_is_plain_text(acme):
    d, _ = acme
    d.admin_ok("PATCH", "/api/v1/orgs/acme", {"display_name": "<b>" + "x" * 60 + "</b>"})
    rc, out, _ = ctl(d, "orgs")
    row = [l for l in out.splitlines() if l.startswith("acme ")][0]
    assert "<b>" + "x" * 37 in row and "x" * 38 not in row


def test_import_export_templates_events_tokens(acme, tmp_path):
    d, _ = acme
    f = tmp_path / "people.csv"
    d.secrets.add("cli-pw-800")
    f.write_text("extension,display_name,sip_user,sip_password\n800,Cli User,acme-800,cli-pw-800\n")
    rc, out, _ = ctl(d, "import", "acme", str(f), "--dry-run")
    assert rc == 0 and json.loads(out)["extensions"]["created"] == ["800"]
    assert d.admin("GET", "/api/v1/orgs/acme/extensions/800")[0] == 404
    rc, out, _ = ctl(d, "import", "acme", str(f))
    assert rc == 0 and hdharness.ext(d, "800")["display_name"] == "Cli User"
    f.write_text("extension,sip_user\nabc,x\n")
    rc, _, err = ctl(d, "import", "acme", str(f))
    assert rc == 1 and "line 2, column 1" in err
    rc, out, _ = ctl(d, "export", "acme")
    assert rc == 0 and out.startswith("extension,") and "acme-800" in out
    assert "cli-pw-800" not in out
    rc, out, _ = ctl(d, "export", "acme", "--reveal")
    assert rc == 0 and "cli-pw-800" in out
    # templates
    rc, out, _ = ctl(d, "templates")
    assert rc == 0 and "yealink" in out
    rc, text, _ = ctl(d, "template", "get", "yealink", "device.cfg")
    assert rc == 0 and text.startswith("#!version")
    bad = text.replace("\n", "\nx = {{ line.sip_usr }}\n", 1)
    rc, _, err = ctl(d, "template", "dry-run", "yealink", "device.cfg", "-",
                     stdin=bad.encode())
    assert rc == 1 and "line 2" in err and "sip_usr" in err
    good = text.replace("\n", "\n# from the cli\n", 1)
    rc, out, _ = ctl(d, "template", "dry-run", "yealink", "device.cfg", "-", stdin=good.encode())
    assert rc == 0 and hdharness.mac(102) in json.loads(out)["changed"]
    rc, out, _ = ctl(d, "template", "put", "yealink", "device.cfg", "-", stdin=good.encode())
    assert rc == 0 and json.loads(out)["version"] == 1
    rc, out, _ = ctl(d, "template", "history", "yealink", "device.cfg")
    assert rc == 0 and len(out.splitlines()) == 2
    # events, filtered, as JSON lines
    rc, out, _ = ctl(d, "--json", "events", "--type", "template.put")
    evs = [json.loads(l) for l in out.splitlines()]
    assert rc == 0 and len(evs) == 1 and evs[0]["type"] == "template.put"
    rc, out, _ = ctl(d, "events", "--org", "acme", "--extension", "800")
    assert rc == 0 and "extension.put" in out
    # tokens: made, listed without their secret, revoked
    rc, out, _ = ctl(d, "token", "new", "org", "acme", "cli test")
    tok = json.loads(out)
    d.secrets.add(tok["token"])
    assert rc == 0
    rc, out, _ = ctl(d, "tokens")
    assert rc == 0 and "cli test" in out and tok["token"] not in out
    assert ctl(d, "orgs", token=tok["token"])[0] == 0
    rc, out, _ = ctl(d, "token", "revoke", str(tok["id"]))
    assert rc == 0
    assert ctl(d, "orgs", token=tok["token"])[0] == 3


def test_where_is_resync_rollback_rotate_follow(acme):
    """The rest of the commands against the daemon: where-is, resync,
    template rollback, token rotate, events --follow (a change made while
    it runs is printed), and an organization token refused the tokens."""
    import queue
    import threading
    import time
    d, demo = acme
    rc, out, _ = ctl(d, "where-is", "acme", "102")
    assert rc == 0 and "home" in out and hdharness.mac(102) in out
    assert ctl(d, "where-is", "globex", "999")[0] == 4
    rc, out, _ = ctl(d, "resync", hdharness.mac(102))
    assert rc == 0 and json.loads(out)["resync"] == "queued"
    assert [e for e in hdharness.events(d, type="resync.requested")]
    assert ctl(d, "resync", "00000000abcd")[0] == 4
    # two versions, back to the first
    rc, text, _ = ctl(d, "template", "get", "yealink", "device.cfg")
    for mark in ("# first", "# second"):
        body = text.replace("\n", "\n%s\n" % mark, 1).encode()
        assert ctl(d, "template", "put", "yealink", "device.cfg", "-", stdin=body)[0] == 0
    rc, out, _ = ctl(d, "template", "rollback", "yealink", "device.cfg", "1")
    assert rc == 0 and json.loads(out)["version"] == 1
    f = hdharness.device_files(d, hdharness.mac(102))[hdharness.mac(102) + ".cfg"]
    assert b"# first" in f and b"# second" not in f
    assert ctl(d, "template", "rollback", "yealink", "device.cfg", "9")[0] == 4
    # rotate: a new secret once, the old one dead; configuration tokens refused
    rc, out, _ = ctl(d, "token", "new", "org", "globex", "rotated")
    tok = json.loads(out)
    d.secrets.add(tok["token"])
    rc, out, _ = ctl(d, "token", "rotate", str(tok["id"]))
    new = json.loads(out)
    d.secrets.add(new["token"])
    assert rc == 0 and new["id"] == tok["id"] and new["token"] != tok["token"]
    assert ctl(d, "orgs", token=tok["token"])[0] == 3
    rc, out, _ = ctl(d, "orgs", token=new["token"])
    assert rc == 0 and "globex" in out and "acme" not in out
    assert ctl(d, "tokens", token=new["token"])[0] == 3
    rc, out, _ = ctl(d, "--json", "tokens")
    conf = [t["id"] for t in json.loads(out)["tokens"] if t["config"]]
    assert conf and ctl(d, "token", "rotate", str(conf[0]))[0] == 1
    assert ctl(d, "token", "rotate", "9999")[0] == 4
    # events --follow prints what happens while it runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESKD_")}
    env.update(HOTDESKD_URL="http://127.0.0.1:%d" % d.port, HOTDESKD_TOKEN=d.admin_token)
    p = subprocess.Popen([CTL, "--json", "events", "--type", "extension.put", "--follow"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in p.stdout], daemon=True).start()
    try:
        def next_event(what):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    return json.loads(lines.get(timeout=1))
                except queue.Empty:
                    assert p.poll() is None, "hotdeskctl --follow exited: %r" % p.stderr.read()
            raise AssertionError("no event printed: " + what)
        first = next_event("the existing ones")
        assert first["type"] == "extension.put"
        seen = [first]
        while not lines.empty():
            seen.append(json.loads(lines.get()))
        d.admin_ok("PATCH", "/api/v1/orgs/acme/extensions/106", {"display_name": "Followed"})
        ev = next_event("the new change")
        while ev["id"] <= seen[-1]["id"] or ev.get("extension") != "106":
            ev = next_event("the new change")
        assert ev["type"] == "extension.put" and ev["org"] == "acme"
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_man_page_lists_every_command_and_exit_code():
    """Every command an operator needs (orgs, extensions, devices, where-is,
    return, templates, events, import/export, tokens) is in the usage text
    and has its entry in hotdeskctl(1), and the exit statuses are there."""
    import re
    p = subprocess.run([CTL, "--help"], capture_output=True, timeout=30)
    usage = p.stderr.decode()
    man = open(os.path.join(hdharness.REPO, "man", "hotdeskctl.1")).read()
    cmds = ["orgs", "extensions", "devices", "where", "return", "resync", "templates",
            "template get", "template put", "template dry-run", "template history",
            "template rollback", "events", "import", "export", "tokens", "token new",
            "token rotate", "token revoke"]
    for c in cmds:
        first, _, sub = c.partition(" ")
        assert re.search(r"\b%s\b" % re.escape(first), usage), c
        assert not sub or re.search(r"\b%s\b" % re.escape(sub), usage), c
        assert re.search(r"^\.It Cm %s\b" % re.escape(c), man, re.M), \
            "no entry for %r in hotdeskctl(1)" % c
    assert "where[-is]" in usage and ".Cm where-is" in man
    assert "--follow" in usage and "Fl \\-follow" in man
    status = man.split(".Sh EXIT STATUS", 1)[1].split(".Sh", 1)[0]
    for code in range(6):
        assert ".It %d\n" % code in status, code
