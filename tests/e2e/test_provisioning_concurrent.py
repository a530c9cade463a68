"""Phones fetching over HTTP and TFTP while moves happen (SPEC 4, I5).

Every file a phone gets must be complete (XML parses, Yealink files have
their version line and end with a newline) and be one of the versions that
was published: the main thread makes the moves one after the other and
records, after each, the fresh render of every device (the revealed
preview) -- between two moves that is exactly what is published.  Each
fetched file must also carry the credentials of exactly one identity.
"""

import http.client
import threading
import time
import xml.etree.ElementTree as ET

from hdharness import EtagBook, check_published, device_files, invariants, mac

DEVS = [mac(101), mac(102), mac(103)]


def complete(name, body):
    if name.endswith(".cfg") and not name.endswith("-line.cfg"):
        return body.startswith(b"#!version:1.0.0.1\n") and body.endswith(b"\n")
    try:
        ET.fromstring(body)
        return True
    except ET.ParseError:
        return False


def test_fetches_during_moves_are_whole_published_versions(prov):
    d, demo, tftp = prov
    names = {}
    published = {}

    def record():
        for m in DEVS:
            for name, content in device_files(d, m).items():
                if name.endswith(("-phone.cfg", "-web.cfg")):
                    continue  # Polycom's override files: always empty
                names[m] = name
                published.setdefault(name, set()).add(content)

    record()
    stop = threading.Event()
    got_http, got_tftp, errors = [], [], []

    def http_fetcher(k):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        i = k
        try:
            while not stop.is_set():
                name = names[DEVS[i % len(DEVS)]]
                i += 1
                conn.request("GET", "/provision/" + name)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    errors.append("HTTP %s -> %s" % (name, r.status))
                    continue
                got_http.append((name, body, r.getheader("ETag")))
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append("HTTP fetcher: %r" % (e,))
        finally:
            conn.close()

    def tftp_fetcher(k):
        i = k
        while not stop.is_set():
            name = names[DEVS[i % len(DEVS)]]
            i += 1
            body = tftp.get(name)
            if body is None:
                errors.append("TFTP %s failed" % name)
                continue
            got_tftp.append((name, body))

    threads = [threading.Thread(target=http_fetcher, args=(k,)) for k in range(3)]
    threads += [threading.Thread(target=tftp_fetcher, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    try:
        # at least 6 rounds, and more (for at most 120 s) until the slower
        # TFTP fetchers have seen enough files on a loaded machine
        rounds, deadline = 0, time.monotonic() + 120
        while rounds < 6 or (len(got_tftp) <= 10 and time.monotonic() < deadline):
            rounds += 1
            d.star30("acme-101", "102", code=demo.code(102), result="accepted", device=mac(101))
            record()
            d.star30("acme-103", "102", code=demo.code(102), result="accepted", device=mac(103))
            record()
            d.star30("acme-102", result="returned", extension="102")
            record()
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert not errors, errors[:10]
    assert len(got_http) > 50 and len(got_tftp) > 10, (len(got_http), len(got_tftp))

    pws = {ident: pw.encode() for ident, pw in demo.passwords.items()}
    bad = []
    etags = EtagBook()  # one ETag per content, whichever way it was served
    for via, name, body, etag in ([("HTTP",) + x for x in got_http] +
                                  [("TFTP", n, b, None) for n, b in got_tftp]):
        if not complete(name, body):
            bad.append("%s %s: incomplete file %r" % (via, name, body[-80:]))
        elif body not in published[name]:
            bad.append("%s %s: never published" % (via, name))
        elif etag is not None and etags.problem(body, etag) is not None:
            bad.append("%s %s: %s" % (via, name, etags.problem(body, etag)))
        idents = [i for i, pw in pws.items() if pw in body]
        if len(idents) != 1:
            bad.append("%s %s: credentials of %r" % (via, name, idents))
    assert not bad, "%d bad fetches, e.g.:\n  %s" % (len(bad), "\n  ".join(bad[:10]))
    # the fetchers did see the moves
    for m in DEVS:
        seen = {b for n, b, _ in got_http if n == names[m]} | \
               {b for n, b in got_tftp if n == names[m]}
        assert len(seen) >= 2, "%s: only %d version(s) fetched" % (names[m], len(seen))
    invariants(d)
    check_published(d, demo, tftp)
