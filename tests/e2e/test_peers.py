"""The harness's peers (sipp, tftpd-hpa): started without racing other
processes for their ports, and reported with their own error when they
cannot start.

A port taken by someone else between the harness's choice and the peer's
bind is simulated by handing the peer a port that a socket of this test
holds: the peer must end up on another port it holds itself (checked in
/proc by its pid), and when it never can, the failure must say why in the
peer's own words and name who holds the port.
"""

import os
import socket

import pytest

import hdharness
from test_resync import SIP_DIR, SippPhone


def _held_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


class _Taken:
    """Stands for a UdpReservation whose port another process took after
    the harness chose it."""

    def __init__(self, port):
        self.port = port

    def release(self):
        pass


def _own_ports(proc):
    return {p for _, _, p in hdharness.udp_sockets(proc.pid)}


def test_sipp_retries_a_port_taken_before_it_binds(tmp_path, monkeypatch):
    thief = _held_port()
    taken = thief.getsockname()[1]
    real = hdharness.UdpReservation
    handed = []

    def reservation():
        r = _Taken(taken) if not handed else real()
        handed.append(r.port)
        return r

    monkeypatch.setattr(hdharness, "UdpReservation", reservation)
    phone = SippPhone(tmp_path, os.path.join(SIP_DIR, "resync_phone.xml"), "racer", calls=1)
    try:
        phone.start()
        assert handed[0] == taken and len(handed) >= 2, handed
        assert phone.port != taken
        assert phone.port in _own_ports(phone.proc), "sipp does not hold its SIP port"
        log = open(phone.outlog, encoding="utf-8", errors="replace").read()
        assert "Address already in use" in log, "the first attempt's failure is not logged"
    finally:
        phone.stop()
        thief.close()


def test_sipp_that_cannot_bind_reports_its_own_error(tmp_path):
    thief = _held_port()
    taken = thief.getsockname()[1]
    phone = SippPhone(tmp_path, os.path.join(SIP_DIR, "resync_phone.xml"), "blocked",
                      calls=1, port=_Taken(taken))
    try:
        with pytest.raises(hdharness.PeerExited) as e:
            phone.start()
        msg = str(e.value)
        assert "exit status 254" in msg, msg
        assert "Unable to bind main socket" in msg and "Address already in use" in msg, msg
        assert "UDP port %d now held by: %d " % (taken, os.getpid()) in msg, msg
    finally:
        phone.stop()
        thief.close()


def test_tftpd_retries_a_port_taken_before_it_binds(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    (root / "probe.cfg").write_bytes(b"served by the right tftpd\n")
    thief = _held_port()
    taken = thief.getsockname()[1]
    real = hdharness.free_udp_port
    handed = []

    def pick():
        p = taken if not handed else real()
        handed.append(p)
        return p

    monkeypatch.setattr(hdharness, "free_udp_port", pick)
    t = hdharness.Tftpd(root, str(tmp_path / "tftpd.log"))
    try:
        t.start(probe="probe.cfg")
        assert handed[0] == taken and t.port != taken, handed
        assert t.port in _own_ports(t.proc), "in.tftpd does not hold its port"
        assert t.get("probe.cfg") == b"served by the right tftpd\n"
    finally:
        t.stop()
        thief.close()


def test_tftpd_that_cannot_bind_says_why(tmp_path, monkeypatch):
    thief = _held_port()
    taken = thief.getsockname()[1]
    monkeypatch.setattr(hdharness, "free_udp_port", lambda: taken)
    t = hdharness.Tftpd(tmp_path, str(tmp_path / "tftpd.log"))
    try:
        with pytest.raises(hdharness.PeerExited) as e:
            t.start()
        msg = str(e.value)
        assert "exit status 71 EX_OSERR" in msg, msg
        assert "UDP port %d now held by: %d " % (taken, os.getpid()) in msg, msg
    finally:
        t.stop()
        thief.close()
