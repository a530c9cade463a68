"""Installing hotdeskd the way a Debian administrator does, checked file by file.

  * `make install DESTDIR=… PREFIX=/usr/local` puts exactly the expected
    files, with their modes, at FHS paths; the configuration is installed
    only when absent; `make uninstall` removes all but the configuration;
  * the installed daemon runs from the installed data (migrations,
    templates, static files) and serves a phone;
  * the systemd unit passes `systemd-analyze verify` (its man pages found)
    and `systemd-analyze security` rates it OK with the hardening asked for;
  * the sysusers file creates the hotdeskd system account;
  * every man page under man/ passes `mandoc -T lint`, and hotdeskd.ini(5)
    describes every key the configuration parser knows.
"""

import glob
import json
import os
import re
import subprocess

import pytest

import hdharness

REPO = hdharness.REPO


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, "%s: %s%s" % (cmd, p.stdout, p.stderr)
    return p


def tree(root):
    """{relative path: mode} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = oct(os.stat(p).st_mode & 0o7777)
    return out


def source_files(top):
    return sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, top, "**"),
                                                               recursive=True)
                  if os.path.isfile(p))


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    dest = str(tmp_path_factory.mktemp("destdir"))
    run(["make", "-s", "install", "DESTDIR=" + dest, "PREFIX=/usr/local"], cwd=REPO)
    return dest


def expected_files():
    exp = {"usr/local/sbin/hotdeskd": "0o755", "usr/local/bin/hotdeskctl": "0o755",
           "usr/local/lib/systemd/system/hotdeskd.service": "0o644",
           "usr/local/lib/sysusers.d/hotdeskd.conf": "0o644",
           "usr/local/lib/tmpfiles.d/hotdeskd.conf": "0o644",
           "etc/hotdeskd/hotdeskd.ini": "0o640"}
    for top in ("sql", "templates", "provisioning", "web", "contrib"):
        for f in source_files(top):
            exp["usr/local/share/hotdeskd/" + f] = "0o644"
    built = os.path.join(REPO, "build")
    for d, _, files in os.walk(os.path.join(built, "prompts")):
        for f in files:
            if f != ".made":
                rel = os.path.relpath(os.path.join(d, f), built)
                exp["usr/local/share/hotdeskd/" + rel] = "0o644"
    for m in glob.glob(os.path.join(REPO, "man", "*.[1-8]")):
        name = os.path.basename(m)
        exp["usr/local/share/man/man%s/%s" % (name.rsplit(".", 1)[1], name)] = "0o644"
    return exp


def test_install_puts_every_file_at_its_fhs_path(staged):
    got = tree(staged)
    exp = expected_files()
    assert sorted(set(got) - set(exp)) == [], "unexpected files"
    assert sorted(set(exp) - set(got)) == [], "missing files"
    assert got == exp
    assert "usr/local/share/man/man8/hotdeskd.8" in got
    assert "usr/local/share/man/man5/hotdeskd.ini.5" in got
    # data files are byte-identical copies (prompts: of the built ones)
    for rel in exp:
        if rel.startswith("usr/local/share/hotdeskd/"):
            src = rel[len("usr/local/share/hotdeskd/"):]
            src = os.path.join(REPO, "build" if src.startswith("prompts/") else "", src)
            with open(src, "rb") as a, open(os.path.join(staged, rel), "rb") as b:
                assert a.read() == b.read(), rel
    # the paths in the generated files are the installed ones
    ini = open(os.path.join(staged, "etc/hotdeskd/hotdeskd.ini")).read()
    unit = open(os.path.join(staged, "usr/local/lib/systemd/system/hotdeskd.service")).read()
    assert not re.search("@[A-Z]+@", ini + unit), "unsubstituted placeholder"
    assert "migrations = /usr/local/share/hotdeskd/sql" in ini
    assert "prompts = /usr/local/share/hotdeskd/prompts" in ini
    assert any(f.startswith("usr/local/share/hotdeskd/prompts/en/") for f in got)
    assert "tftp_root  = /srv/tftp" in ini and "user   = hotdeskd" in ini
    assert "ExecStart=/usr/local/sbin/hotdeskd --config /etc/hotdeskd/hotdeskd.ini\n" in unit
    assert "ReadWritePaths=-/srv/tftp\n" in unit
    tmpfiles = open(os.path.join(staged, "usr/local/lib/tmpfiles.d/hotdeskd.conf")).read()
    assert "d /srv/tftp 0755 hotdeskd hotdeskd -" in tmpfiles


def test_reinstall_keeps_the_configuration_and_uninstall_keeps_only_it(tmp_path):
    dest = str(tmp_path / "root")
    run(["make", "-s", "install", "DESTDIR=" + dest], cwd=REPO)
    ini = os.path.join(dest, "etc/hotdeskd/hotdeskd.ini")
    with open(ini, "a") as f:
        f.write("; edited by the operator\n")
    run(["make", "-s", "install", "DESTDIR=" + dest], cwd=REPO)
    assert open(ini).read().endswith("; edited by the operator\n")
    assert tree(dest) == expected_files()
    run(["make", "-s", "uninstall", "DESTDIR=" + dest], cwd=REPO)
    assert tree(dest) == {"etc/hotdeskd/hotdeskd.ini": "0o640"}


def test_installed_daemon_runs_from_installed_data(staged, make_daemon):
    share = os.path.join(staged, "usr/local/share/hotdeskd")
    d = make_daemon({"database": {"migrations": os.path.join(share, "sql")},
                     "provisioning": {"templates": os.path.join(share, "templates"),
                                      "static": os.path.join(share, "provisioning")}},
                    binary=os.path.join(staged, "usr/local/sbin/hotdeskd"))
    assert d.binary.startswith(staged)
    demo = hdharness.build_demo(d)
    st, _, body = hdharness.prov_get(d, "%s.cfg" % hdharness.mac(102))
    assert st == 200 and demo.passwords["acme-102"].encode() in body
    assert hdharness.prov_get(d, "000000000000.cfg")[0] == 200  # a static file


def test_installed_configuration_is_refused_only_for_the_missing_token(staged, tmp_path):
    """The installed INI is complete but for the PBX token an operator must set
    (its paths moved into the staging root, since --check-config checks them)."""
    text = open(os.path.join(staged, "etc/hotdeskd/hotdeskd.ini")).read()
    text = text.replace("/usr/local/", staged + "/usr/local/")
    text = text.replace("/var/lib/hotdeskd", str(tmp_path / "state"))
    text = text.replace("/srv/tftp", str(tmp_path / "tftp"))
    (tmp_path / "state").mkdir()  # made by systemd-tmpfiles / StateDirectory=
    ini = str(tmp_path / "hotdeskd.ini")
    with open(ini, "w") as f:
        f.write(text)
    binary = os.path.join(staged, "usr/local/sbin/hotdeskd")
    p = subprocess.run([binary, "--config", ini, "--check-config"], capture_output=True,
                       text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 1 and "token" in p.stderr, p.stderr
    p = subprocess.run([binary, "--config", ini, "--check-config"], capture_output=True,
                       text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "HOTDESKD_PBX_TOKEN": "t" * 24})
    assert p.returncode == 0, p.stderr


def unit_for_host(staged, tmp_path):
    """The installed unit with its binary path pointing into the staging root,
    so systemd-analyze finds the executable it names."""
    unit = open(os.path.join(staged, "usr/local/lib/systemd/system/hotdeskd.service")).read()
    out = tmp_path / "hotdeskd.service"
    out.write_text(unit.replace("/usr/local/sbin/hotdeskd",
                                os.path.join(staged, "usr/local/sbin/hotdeskd")))
    return str(out)


def test_unit_passes_systemd_analyze_verify(staged, tmp_path):
    unit = unit_for_host(staged, tmp_path)
    env = dict(os.environ, MANPATH=os.path.join(staged, "usr/local/share/man"))
    p = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0 and p.stdout.strip() == "" and p.stderr.strip() == "", \
        p.stdout + p.stderr
    text = open(unit).read()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=30s",
                 "User=hotdeskd", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "StateDirectory=hotdeskd"):
        assert re.search("^%s$" % re.escape(line), text, re.M), line
    # a unit that does not verify is caught (the check can fail)
    bad = tmp_path / "broken.service"
    bad.write_text(text.replace("Type=notify", "Type=notifyy"))
    p = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert "notifyy" in p.stderr, p.stderr


def test_unit_passes_systemd_analyze_security(staged, tmp_path):
    unit = unit_for_host(staged, tmp_path)
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--json=short", unit],
                       capture_output=True, text=True, timeout=120)
    checks = {c["name"]: c for c in json.loads(p.stdout)}
    for name in ("NoNewPrivileges=", "ProtectSystem=", "PrivateTmp=", "ProtectHome=",
                 "CapabilityBoundingSet=~CAP_SYS_ADMIN",
                 "CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)", "User=/DynamicUser=",
                 "RestrictSUIDSGID=", "MemoryDenyWriteExecute=", "SystemCallFilter=~@mount",
                 "RestrictAddressFamilies=~AF_PACKET", "PrivateDevices="):
        assert checks[name]["set"] is True, checks[name]
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for hotdeskd.service: ([0-9.]+) (\w+)", p.stdout)
    assert m, p.stdout + p.stderr
    assert float(m.group(1)) <= 2.0 and m.group(2) == "OK", p.stdout


def test_sysusers_creates_the_system_account(staged, tmp_path):
    root = tmp_path / "sysroot"
    (root / "etc").mkdir(parents=True)
    conf = os.path.join(staged, "usr/local/lib/sysusers.d/hotdeskd.conf")
    run(["systemd-sysusers", "--root=" + str(root), conf])
    passwd = (root / "etc" / "passwd").read_text()
    m = re.search(r"^hotdeskd:x:(\d+):(\d+):[^:]*:/var/lib/hotdeskd:(\S+)$", passwd, re.M)
    assert m, passwd
    assert int(m.group(1)) < 1000 and m.group(3).endswith("nologin"), m.group(0)
    assert re.search(r"^hotdeskd:x:%s:" % m.group(2), (root / "etc" / "group").read_text(),
                     re.M)


# ---------------------------------------------------------------- man pages

def test_every_man_page_is_lint_clean():
    pages = sorted(glob.glob(os.path.join(REPO, "man", "*.[1-8]")))
    names = [os.path.basename(p) for p in pages]
    assert "hotdeskd.8" in names and "hotdeskd.ini.5" in names, names
    for p in pages:
        # warnings and worse fail; STYLE notes about manuals not installed
        # on this machine do not
        r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", p], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
            "%s:\n%s%s" % (p, r.stdout, r.stderr)
    # the lint can fail
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning"], input=".Dd\n.Sh NAME\n.Xx\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


def test_ini_page_describes_every_configuration_key():
    src = open(os.path.join(REPO, "src", "config.c")).read()
    keys = re.findall(r'\b(?:STR|INT|BOOL|LEVEL|NETS)\("([a-z]+)", "([a-z_-]+)"', src)
    assert len(keys) >= 40, keys
    # sections with one key per vendor profile, named as the profile
    per_profile = re.findall(r'\bPROFILES\("([a-z_]+)"', src)
    assert set(per_profile) == {"notify", "client_ca", "client_crl"}, per_profile
    profiles = []
    for f in sorted(glob.glob(os.path.join(REPO, "src", "vendor_*.c"))):
        profiles += re.findall(r'^\t\.name = "([a-z0-9-]+)",$', open(f).read(), re.M)
    assert len(profiles) >= 5 and "grandstream" in profiles, profiles
    keys += [(s, p) for s in per_profile for p in profiles]
    page = subprocess.run(["mandoc", "-T", "ascii", os.path.join(REPO, "man", "hotdeskd.ini.5")],
                          capture_output=True, text=True, timeout=60).stdout
    page = re.sub(r".\x08", "", page)  # overstrike (bold) removed
    sections = {}
    current = None
    for line in page.splitlines():
        m = re.match(r"^   \[(\w+)\]$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^     ([a-z_-]+)(?: \([^)]*\))?(?:\s{2,}.*)?$", line)
        if m and current:
            sections.setdefault(current, set()).add(m.group(1))
    missing = ["[%s] %s" % (s, k) for s, k in keys if k not in sections.get(s, set())]
    assert missing == [], "keys missing from hotdeskd.ini(5): %s" % missing
