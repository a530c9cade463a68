"""The container image (docker/): built with podman from a minimal Debian 12
and run; phones get their files over HTTP and TFTP from it and the PBX's
phones get its NOTIFYs.

Run with `make container` (CI stage "container"), as root, with podman,
buildah, runc and mmdebstrap installed (scripts/deps.sh container):
  * the base image is a minimal bookworm (mmdebstrap --variant=minbase)
    imported with `podman import` as localhost/hotdeskd-base:bookworm; the
    tarball is kept in $HOTDESKD_CACHE (default /var/cache/hotdeskd-ci);
  * the image is built with `--isolation chroot --network host --layers`,
    so a second run reuses the package layers and only rebuilds hotdeskd;
  * the container runs with `--runtime runc --network host`, its ports
    taken from the environment (loopback targets only).
"""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import hdharness  # noqa: E402
from test_resync import SIP_DIR, SippPhone  # noqa: E402

REPO = hdharness.REPO
CACHE = os.environ.get("HOTDESKD_CACHE", "/var/cache/hotdeskd-ci")
BASE = "localhost/hotdeskd-base:bookworm"
IMAGE = "localhost/hotdeskd:test"
MAC = "0004f2000777"


def run(cmd, timeout=900, check=True):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        shown = [a.split("=")[0] + "=<set>" if "TOKEN=" in a else a for a in cmd]
        raise AssertionError("%s -> %d\n%s\n%s" % (" ".join(shown), p.returncode,
                             p.stdout.decode(errors="replace")[-3000:],
                             p.stderr.decode(errors="replace")[-3000:]))
    return p


@pytest.fixture(scope="module")
def image():
    if run(["podman", "image", "exists", BASE], check=False).returncode != 0:
        tar = os.path.join(CACHE, "bookworm-minbase.tar")
        if not os.path.exists(tar):
            os.makedirs(CACHE, exist_ok=True)
            run(["mmdebstrap", "--quiet", "--format=tar", "--variant=minbase", "bookworm",
                 tar + ".tmp"], timeout=1800)
            os.rename(tar + ".tmp", tar)
        run(["podman", "import", tar, BASE])
    t0 = time.monotonic()
    run(["podman", "build", "--isolation", "chroot", "--network", "host", "--layers",
         "--build-arg", "BASE=" + BASE, "-f", "docker/Dockerfile", "-t", IMAGE, REPO],
        timeout=1800)
    print("image built in %.0f s" % (time.monotonic() - t0))
    return IMAGE


class Container:
    def __init__(self, env):
        self.name = "hotdeskd-test-" + uuid.uuid4().hex[:8]
        self.env = env

    def args(self, *extra):
        # limits below this host's: podman's defaults are above what a
        # process here may set
        cmd = ["podman", "run", "--runtime", "runc", "--network", "host", "--name", self.name,
               "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
        for k, v in self.env.items():
            cmd += ["-e", "%s=%s" % (k, v)]
        return cmd + list(extra)

    def logs(self):
        p = run(["podman", "logs", self.name], check=False)
        return (p.stdout + p.stderr).decode(errors="replace")[-4000:]

    def running(self):
        p = run(["podman", "inspect", "-f", "{{.State.Running}}", self.name], check=False)
        return p.stdout.strip() == b"true"

    def remove(self):
        run(["podman", "rm", "-f", "-t", "10", self.name], check=False)


def test_shipped_configuration_checks(image):
    """The image's own configuration, as the entrypoint completes it,
    passes --check-config (the wildcard SIP bind has its contact host)."""
    c = Container({"HOTDESKD_PBX_TOKEN": "pbx-" + "p" * 30})
    try:
        p = run(c.args("--rm", image, "--check-config"), check=False, timeout=120)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert b"configuration OK" in p.stdout, p.stdout
    finally:
        c.remove()


def _start(image, tokens):
    """Runs the container on ports held until it starts; again on fresh ports
    if it cannot bind them.  Returns (container, http port, tftp port)."""
    last = None
    for _ in range(3):
        http = hdharness.UdpReservation()   # a TCP port is free where the UDP one is not
        sip, tftp = hdharness.UdpReservation(), hdharness.UdpReservation()
        env = dict(tokens, HOTDESKD_CONTACT_HOST="127.0.0.1", HOTDESKD_HTTP_PORT=str(http.port),
                   HOTDESKD_SIP_PORT=str(sip.port), HOTDESKD_TFTP_PORT=str(tftp.port))
        c = Container(env)
        for r in (http, sip, tftp):
            r.release()
        run(c.args("-d", image), timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and c.running():
            p = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                     "http://127.0.0.1:%d/provision/000000000000.cfg" % http.port],
                    check=False, timeout=20)
            if p.stdout == b"200":
                return c, http.port, tftp.port
            time.sleep(0.3)
        last = c.logs()
        c.remove()
    raise AssertionError("the container did not serve HTTP:\n" + (last or ""))


def test_container_serves_phones_and_notifies(image, tmp_path):
    tokens = {"HOTDESKD_PBX_TOKEN": "pbx-" + uuid.uuid4().hex,
              "HOTDESKD_ADMIN_TOKEN": "adm-" + uuid.uuid4().hex}
    c, port, tftp_port = _start(image, tokens)
    phone = None
    try:
        d = hdharness.Daemon(tmp_path)        # only its HTTP helpers: not started
        d.port, d.pbx_token, d.admin_token = port, tokens["HOTDESKD_PBX_TOKEN"], \
            tokens["HOTDESKD_ADMIN_TOKEN"]
        d.admin_ok("PUT", "/api/v1/orgs/acme", {
            "name": "acme", "display_name": "Acme",
            "sip_server": {"host": "pbx.acme.test", "port": 5060, "transport": "udp"}})
        pw = "pw" + uuid.uuid4().hex[:12]
        d.admin_ok("PUT", "/api/v1/orgs/acme/extensions/101", {
            "sip_user": "acme-101", "sip_password": pw, "display_name": "Alice",
            "label": "101", "allow_virtualization": True})
        d.admin_ok("PUT", "/api/v1/devices/" + MAC, {
            "org": "acme", "profile": "yealink", "model": "T46S", "home_extension": "101"})
        name = MAC + ".cfg"
        deadline = time.monotonic() + 30
        while True:
            st, _, body = d.request("GET", "/provision/" + name)
            got = run(["curl", "-sf", "--max-time", "10",
                       "tftp://127.0.0.1:%d/%s" % (tftp_port, name)], check=False, timeout=30)
            if (st == 200 and got.returncode == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert st == 200 and b"acme-101" in body and pw.encode() in body, (st, body[:300])
        assert got.returncode == 0 and got.stdout == body, "TFTP: %s\n%s" % (
            got.returncode, c.logs())
        # the administrators' console and the users' page ship in the image
        for page in ("/console/", "/me/"):
            st, hdrs, html = d.request("GET", page)
            assert st == 200 and b"<script type=\"module\"" in html, (page, st, html[:200])
        st, hdrs, js = d.request("GET", "/console/console.js")
        assert st == 200 and "javascript" in hdrs.get("content-type", ""), (st, hdrs)
        # a phone registered on loopback gets the resync NOTIFY from the container
        phone = SippPhone(tmp_path, os.path.join(SIP_DIR, "resync_phone.xml"), "phone",
                          calls=2).start()
        st, ans = d.pbx("/pbx/v1/registrations", sip_user="acme-101",
                        contact=phone.contact("acme-101"), source="127.0.0.1:5060",
                        call_id="reg-" + uuid.uuid4().hex, expires="3600")
        assert st == 200, (st, ans)
        st, js = d.admin("POST", "/api/v1/devices/%s/resync" % MAC)
        assert st == 202, (st, js)
        n = phone.wait_notifies(1, timeout=30)[0]
        assert n[0].startswith("NOTIFY sip:acme-101@127.0.0.1:%d" % phone.port), n[0]
        assert any("127.0.0.1" in v for v in n[1]["via"]), n[1]
    finally:
        if phone is not None:
            phone.stop()
        c.remove()
