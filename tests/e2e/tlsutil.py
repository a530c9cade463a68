"""Certificates made during the test run with openssl, and HTTPS clients.

Owns: a throw-away PKI per test (a server CA and the server certificates
it signs; vendor CAs and the device certificates they sign, with the MAC
where each vendor puts it; revocation lists made with GnuTLS' certtool),
and fetching over HTTPS with curl (a real
client, optionally presenting a client certificate) or Python's ssl.
"""

import hashlib
import os
import socket
import ssl
import subprocess


def _run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=60)
    assert p.returncode == 0, "%s failed: %s" % (" ".join(cmd), p.stderr.decode()[-500:])


class CA:
    """A certificate authority in directory `path` (key and cert PEM)."""

    def __init__(self, path, name):
        self.dir = str(path)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.key = os.path.join(self.dir, name + "-ca.key")
        self.cert = os.path.join(self.dir, name + "-ca.pem")
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out", self.cert,
              "-days", "30", "-subj", "/O=%s/CN=%s Test CA" % (name, name)], self.dir)
        self.serial = 1

    def issue(self, stem, subject, san=None, days=10, not_before=None, not_after=None,
              rsa=False):
        """Signs a new key pair; returns (cert path, key path).  `not_before`
        and `not_after` (YYYYMMDDHHMMSSZ) make certificates that are not yet or
        no longer valid."""
        key = os.path.join(self.dir, stem + ".key")
        csr = os.path.join(self.dir, stem + ".csr")
        cert = os.path.join(self.dir, stem + ".pem")
        ext = os.path.join(self.dir, stem + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if san:
                f.write("subjectAltName=%s\n" % san)
        if rsa:
            newkey = ["-newkey", "rsa:2048"]
        else:
            newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        _run(["openssl", "req", "-new"] + newkey + ["-nodes", "-keyout", key, "-out", csr,
              "-subj", subject], self.dir)
        self.serial += 1
        if not_before or not_after:
            # `openssl ca` is the tool that takes explicit validity dates
            db = os.path.join(self.dir, "index.txt")
            open(db, "a").close()
            conf = os.path.join(self.dir, "ca.cnf")
            with open(conf, "w") as f:
                f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s\nnew_certs_dir=%s\n"
                        "serial=%s\ndefault_md=sha256\npolicy=p\nunique_subject=no\n"
                        "[p]\ncommonName=supplied\n"
                        % (db, self.dir, os.path.join(self.dir, "serial")))
            with open(os.path.join(self.dir, "serial"), "w") as f:
                f.write("%04X\n" % (self.serial + 1000))
            _run(["openssl", "ca", "-batch", "-config", conf, "-cert", self.cert,
                  "-keyfile", self.key, "-in", csr, "-out", cert, "-notext",
                  "-extfile", ext, "-startdate", not_before or "20200101000000Z",
                  "-enddate", not_after or "20991231000000Z"], self.dir)
        else:
            _run(["openssl", "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                  "-set_serial", str(self.serial), "-days", str(days), "-sha256",
                  "-extfile", ext, "-out", cert], self.dir)
        return cert, key


def crl(ca, out, revoked=(), number=1, this_update=None, next_update=None):
    """Writes to `out` a CRL of `ca` (PEM) revoking the certificate files
    `revoked` (none: an empty list), made with GnuTLS' certtool.
    `this_update` and `next_update` ("YYYY-MM-DD HH:MM:SS") date it."""
    tmpl = out + ".tmpl"
    with open(tmpl, "w") as f:
        f.write("crl_number = %d\n" % number)
        if this_update:
            f.write('crl_this_update_date = "%s"\n' % this_update)
        if next_update:
            f.write('crl_next_update_date = "%s"\n' % next_update)
        else:
            f.write("crl_next_update = 30\n")
    cmd = ["certtool", "--generate-crl", "--load-ca-privkey", ca.key,
           "--load-ca-certificate", ca.cert, "--template", tmpl, "--outfile", out + ".tmp"]
    if revoked:
        both = out + ".revoked"
        with open(both, "w") as f:
            for c in revoked:
                f.write(open(c).read())
        cmd += ["--load-certificate", both]
    _run(cmd, ca.dir)
    os.rename(out + ".tmp", out)
    return out


def server_cert(ca, stem="server", rsa=False):
    return ca.issue(stem, "/CN=localhost", san="IP:127.0.0.1,DNS:localhost", rsa=rsa)


def curl(port, path, cacert, cert=None, key=None, extra=()):
    """GET https://127.0.0.1:port/path with curl.  Returns (status, body);
    status 0 when no HTTP answer came (TLS refused, connection closed)."""
    cmd = ["curl", "-s", "--max-time", "20", "--cacert", cacert, "-o", "-",
           "-w", "\n%{http_code}"]
    if cert:
        cmd += ["--cert", cert, "--key", key]
    cmd += list(extra)
    cmd.append("https://127.0.0.1:%d%s" % (port, path))
    p = subprocess.run(cmd, capture_output=True, timeout=30)
    body, _, code = p.stdout.rpartition(b"\n")
    code = code.strip()
    return (int(code) if code.isdigit() else 0), body


def context(cacert, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=cacert)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def peer_fingerprint(port, cacert):
    """SHA-256 of the certificate a new handshake gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with context(cacert).wrap_socket(s, server_hostname="localhost") as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(pem):
    der = ssl.PEM_cert_to_DER_cert(open(pem).read())
    return hashlib.sha256(der).hexdigest()


def read_port(path):
    with open(path) as f:
        return int(f.read().strip())


def get_once(port, path, ctx, session=None):
    """GET path on a new TLS connection (Connection: close), offering
    `session` for resumption.  Returns (status, body, session, reused)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        with ctx.wrap_socket(s, server_hostname="localhost", session=session) as t:
            t.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                       % path).encode())
            data = b""
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
            return status, body, t.session, t.session_reused
