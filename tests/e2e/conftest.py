"""pytest fixtures for the hotdeskd end-to-end suite.

Owns: one fresh daemon per test (`daemon`, or `make_daemon(overrides)` for a
test that needs its own configuration, e.g. a small lockout threshold), and
the demo organizations (`acme`).  Every daemon is stopped with SIGTERM on
teardown and must exit 0; a daemon that died during the test, or that wrote
a secret to its log, fails the test (see hdharness.Daemon.teardown).
"""

import pytest

import hdharness

# The files that take longest (`pytest --durations=0`, summed per file, on a
# 2-core machine: each about 60-75 s, most of it waiting), collected first:
# with --dist loadfile, pytest-xdist hands files to its workers in collection
# order, so these start at once, side by side, instead of one of them
# starting last and running alone at the end.  The others keep their order.
LONGEST_FIRST = ("test_vc.py", "test_browser_session.py", "test_browser.py",
                 "test_browser_admin.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(it.path.name, len(rank)))


@pytest.fixture
def make_daemon(tmp_path):
    started = []

    def make(overrides=None, name=None, env=None, binary=None):
        sub = tmp_path / (name or "d%d" % len(started))
        sub.mkdir()
        d = hdharness.Daemon(sub, overrides)
        d.env.update(env or {})
        if binary is not None:  # e.g. an installed copy
            d.binary = binary
        started.append(d)
        d.start()
        return d

    yield make
    errors = []
    for d in started:
        try:
            d.teardown()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n\n".join(errors)


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


@pytest.fixture
def acme(daemon):
    """(daemon, Demo) with the demo organizations acme and globex."""
    return daemon, hdharness.build_demo(daemon)


@pytest.fixture
def prov(make_daemon, tmp_path):
    """(daemon, Demo, Tftpd): the demo organizations, the daemon writing its
    TFTP root under tmp_path, and a real tftpd-hpa serving that root."""
    root = tmp_path / "tftp"
    d = make_daemon({"provisioning": {"tftp_root": str(root),
                                      "phone_logs": str(tmp_path / "phone-logs")}})
    demo = hdharness.build_demo(d)
    t = hdharness.Tftpd(root, str(tmp_path / "tftpd.log")).start()
    yield d, demo, t
    t.stop()
