"""docker/compose.yaml: hotdeskd and tftpd-hpa (the image's entrypoint) with
a health check.

The file is read as compose reads it and its health-check command is run
for real against a daemon on loopback (no container runtime needed): it
passes against a healthy hotdeskd and fails when /healthz fails (TFTP root
gone) or hotdeskd is down.  (The image itself is built and run by
tests/container.)
"""

import os
import shutil
import subprocess

import yaml

import hdharness

COMPOSE = os.path.join(hdharness.REPO, "docker", "compose.yaml")


def compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def healthcheck_cmd():
    test = compose()["services"]["hotdeskd"]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return [a.replace("$$", "$") for a in test[1:]]  # what compose hands the container


def run_check(port):
    env = {"PATH": "/usr/bin:/bin", "HOTDESKD_HTTP_PORT": str(port)}
    return subprocess.run(healthcheck_cmd(), capture_output=True, text=True, timeout=30,
                          env=env).returncode


def test_service_and_volume():
    c = compose()
    hd = c["services"]["hotdeskd"]
    assert hd["build"]["dockerfile"] == "docker/Dockerfile"
    assert "entrypoint" not in hd  # the image's: tftpd-hpa, then hotdeskd
    assert "state:/var/lib/hotdeskd" in hd["volumes"]
    assert set(hd["environment"]) >= {"HOTDESKD_PBX_TOKEN", "HOTDESKD_CONTACT_HOST"}
    hc = hd["healthcheck"]
    assert hc["interval"] and hc["retries"] >= 1 and hc["start_period"]
    ini = open(os.path.join(hdharness.REPO, "docker", "hotdeskd.ini")).read()
    assert "tftp_root = /var/lib/hotdeskd/tftp" in ini


def test_healthcheck_command_follows_healthz(make_daemon, tmp_path):
    root = tmp_path / "tftp"
    d = make_daemon({"provisioning": {"tftp_root": str(root)}})
    assert run_check(d.port) == 0
    shutil.rmtree(root)
    assert d.request("GET", "/healthz")[0] == 503
    assert run_check(d.port) == 1
    root.mkdir()
    assert run_check(d.port) == 0
    d.stop()
    assert run_check(d.port) == 1
