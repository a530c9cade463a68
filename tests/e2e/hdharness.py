"""End-to-end harness for hotdeskd: the real daemon on loopback.

Owns: starting/stopping one daemon process per test (temporary directory,
INI config, SQLite file, stderr log), the HTTP helpers a PBX and an
administrator use (http.client, plus curl for a real client), the demo
organizations, and invariants() -- I1-I4 of SPEC 2.1 checked through the
admin API after every operation.

Invariants of the harness itself:
  * every admin API answer is checked to contain none of the secrets the
    test registered (secret codes, SIP and parking passwords);
  * on teardown the daemon must still be running, must exit 0 on SIGTERM
    within 10 s, and its stderr log must contain none of the registered
    secrets nor the bearer tokens.
Standard library only (plus pytest in the test files).
"""

import collections
import http.client
import json
import os
import re
import secrets as _secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 20.0

ABSENT = object()  # expected value meaning "the field must not be there"


def binary_path():
    """The daemon under test: $HOTDESKD, default build/hotdeskd of the repo."""
    p = os.environ.get("HOTDESKD", os.path.join(REPO, "build", "hotdeskd"))
    if not os.path.isabs(p):
        p = os.path.join(REPO, p)
    return p


def parse_line(body):
    """Parses a one-line form-encoded answer into an ordered dict.

    Raises AssertionError when the answer is not a single line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip("\r\n")
    assert "\n" not in text, "answer is not one line: %r" % (text,)
    return collections.OrderedDict(
        urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=False))


class Daemon:
    """One hotdeskd process and its private temporary directory.

    `overrides` is {section: {key: value}} merged into the default config.
    """

    def __init__(self, tmpdir, overrides=None):
        self.dir = str(tmpdir)
        self.binary = binary_path()
        self.pbx_token = "pbx-" + _secrets.token_hex(24)
        self.admin_token = "adm-" + _secrets.token_hex(24)
        self.config_path = os.path.join(self.dir, "hotdeskd.ini")
        self.port_file = os.path.join(self.dir, "port")
        self.db_path = os.path.join(self.dir, "hotdeskd.db")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.secrets = set()   # strings that must never be shown or logged
        self.proc = None
        self.port = None
        self.history = collections.deque(maxlen=30)  # recent requests, for messages
        self.env = {}          # extra environment for the daemon (e.g. HOTDESKD_*)
        self._lock = threading.Lock()
        self._write_config(overrides or {})

    # ---------------------------------------------------------------- process

    def write_config(self, overrides):
        """Rewrites the INI file from the defaults plus `overrides` (for SIGHUP)."""
        self._write_config(overrides)

    def _write_config(self, overrides):
        cfg = collections.OrderedDict()
        cfg["server"] = collections.OrderedDict(
            listen="127.0.0.1", port="0", port_file=self.port_file,
            threads="8", max_body="65536",
            # the daemon verifies I1-I4 after every change and dies if one
            # breaks, which fails the test that caused it
            check_invariants="true")
        cfg["database"] = collections.OrderedDict(
            path=self.db_path, migrations=os.path.join(REPO, "sql"))
        cfg["log"] = collections.OrderedDict(level="debug")
        cfg["pbx"] = collections.OrderedDict(token=self.pbx_token)
        cfg["admin"] = collections.OrderedDict(token=self.admin_token)
        cfg["secrets"] = collections.OrderedDict(hash_ops="1", hash_mem_kib="8")
        cfg["provisioning"] = collections.OrderedDict(
            templates=os.path.join(REPO, "templates"),
            static=os.path.join(REPO, "provisioning"))
        cfg["sip"] = collections.OrderedDict(bind="127.0.0.1:0")
        for sect, kv in overrides.items():
            cfg.setdefault(sect, collections.OrderedDict()).update(
                {k: str(v) for k, v in kv.items()})
        self.config = cfg
        with open(self.config_path, "w") as f:
            for sect, kv in cfg.items():
                f.write("[%s]\n" % sect)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    def start(self):
        """Starts the daemon and waits (<= 10 s) for its port file."""
        assert os.path.exists(self.binary), "daemon binary missing: %s" % self.binary
        self.etag_book = EtagBook()  # the ETag key may change with a start
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESKD_")}
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            log.write(b"\n==== harness: starting daemon ====\n")
            log.flush()
            self.proc = subprocess.Popen(
                [self.binary, "--config", self.config_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=REPO, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("daemon exited with %s during start-up:\n%s"
                                     % (rc, self.log_tail()))
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text.isdigit() and 0 < int(text) < 65536:
                    self.port = int(text)
                    return self
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait()
        raise AssertionError("no port file after %.0f s:\n%s" % (START_TIMEOUT, self.log_tail()))

    def stop(self):
        """SIGTERM; asserts a clean exit (status 0) within 10 s."""
        assert self.proc is not None
        rc = self.proc.poll()
        assert rc is None, "daemon died (exit status %s) before SIGTERM:\n%s" % (
            rc, self.log_tail())
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError("daemon still running %.0f s after SIGTERM:\n%s"
                                 % (STOP_TIMEOUT, self.log_tail()))
        self.proc = None
        assert rc == 0, "daemon exit status %s after SIGTERM:\n%s" % (rc, self.log_tail())

    def restart(self):
        """SIGTERM, then start again on the same database."""
        self.stop()
        return self.start()

    def kill9(self):
        """SIGKILL without warning (the caller usually start()s again)."""
        assert self.proc is not None and self.proc.poll() is None, "daemon not running"
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def leaked_in_log(self):
        """The registered secrets and tokens found in the stderr log."""
        text = self.log_text()
        found = [s for s in sorted(self.secrets) if s in text]
        for t in (self.pbx_token, self.admin_token):
            if t in text:
                found.append("<bearer token>")
        return found

    def teardown(self):
        """Fixture teardown: daemon must be alive, exit 0, log no secret."""
        problems = []
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is not None:
                problems.append("daemon died during the test (exit status %s)" % rc)
                self.proc = None
            else:
                try:
                    self.stop()
                except AssertionError as e:
                    problems.append(str(e))
        leaked = self.leaked_in_log()
        if leaked:
            problems.append("secrets found in the daemon's stderr log: %r" % leaked)
        if problems:
            raise AssertionError("\n".join(problems) + "\n--- log tail ---\n" + self.log_tail())

    # ------------------------------------------------------------------- HTTP

    def request(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
        """One request on a fresh connection. Returns (status, headers, body)."""
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            status = r.status
        finally:
            conn.close()
        with self._lock:
            self.history.append("%s %s %r -> %s %r" % (method, path, body, status, data[:300]))
        return status, hdrs, data

    def pbx(self, path, token=True, **fields):
        """POST form-encoded fields (None values left out) with the PBX token.

        Returns (status, ordered dict of the one-line answer)."""
        st, _, body = self.pbx_raw(path, token=token, **fields)
        return st, parse_line(body)

    def pbx_raw(self, path, token=True, headers=None, **fields):
        data = urllib.parse.urlencode([(k, v) for k, v in fields.items() if v is not None])
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        if token is True:
            h["Authorization"] = "Bearer " + self.pbx_token
        elif token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        return self.request("POST", path, data, h)

    def pbx_json(self, path, json_body=False, **fields):
        """Like pbx() but with Accept: application/json (and a JSON body when
        json_body). Returns (status, headers, parsed JSON)."""
        fields = {k: v for k, v in fields.items() if v is not None}
        h = {"Authorization": "Bearer " + self.pbx_token, "Accept": "application/json"}
        if json_body:
            h["Content-Type"] = "application/json"
            data = json.dumps(fields)
        else:
            h["Content-Type"] = "application/x-www-form-urlencoded"
            data = urllib.parse.urlencode(fields)
        st, hdrs, body = self.request("POST", path, data, h)
        try:
            parsed = json.loads(body)
        except ValueError:
            raise AssertionError("POST %s: answer is not JSON: %r" % (path, body))
        return st, hdrs, parsed

    def pbx_get(self, path, accept_json=False):
        h = {"Authorization": "Bearer " + self.pbx_token}
        if accept_json:
            h["Accept"] = "application/json"
        st, _, body = self.request("GET", path, None, h)
        if accept_json:
            return st, json.loads(body)
        return st, parse_line(body)

    def admin(self, method, path, json_body=None, token=True):
        """Admin API call. Returns (status, parsed JSON or None for no body).

        Every answer is checked not to contain a registered secret."""
        h = {"Accept": "application/json"}
        if token is True:
            h["Authorization"] = "Bearer " + self.admin_token
        elif token:
            h["Authorization"] = "Bearer " + token
        data = None
        if json_body is not None:
            h["Content-Type"] = "application/json"
            data = json.dumps(json_body)
        st, _, body = self.request(method, path, data, h)
        text = body.decode("utf-8", "replace")
        leaked = [s for s in self.secrets if s in text]
        assert not leaked, "%s %s: answer shows secrets %r: %s" % (method, path, leaked, text)
        if not body.strip():
            return st, None
        try:
            return st, json.loads(body)
        except ValueError:
            raise AssertionError("%s %s -> %s: answer is not JSON: %r" % (method, path, st, body))

    def admin_ok(self, method, path, json_body=None, ok=(200, 201, 204)):
        st, js = self.admin(method, path, json_body)
        assert st in ok, "%s %s %s -> %s %s" % (method, path, json_body, st, js)
        return js

    def curl(self, method, path, data=None, headers=(), data_file=None):
        """A real client: curl -s -w '%{http_code}'. Returns (status, body bytes)."""
        cmd = ["curl", "-s", "-S", "--max-time", "20", "-X", method,
               "-o", "-", "-w", "\n%{http_code}"]
        for h in headers:
            cmd += ["-H", h]
        if data is not None:
            cmd += ["--data-binary", data]
        if data_file is not None:
            cmd += ["--data-binary", "@" + data_file]
        cmd.append("http://127.0.0.1:%d%s" % (self.port, path))
        p = subprocess.run(cmd, capture_output=True, timeout=30)
        out = p.stdout
        body, _, code = out.rpartition(b"\n")
        self.history.append("curl %s %s %r -> %s %r" % (method, path, data, code, body[:300]))
        assert code.strip().isdigit(), "curl failed: rc=%s out=%r err=%r" % (
            p.returncode, out, p.stderr)
        return int(code), body

    def recent(self):
        return "\n  ".join(self.history)

    # --------------------------------------------------------------- PBX calls

    def star30(self, caller, digits=None, code=None, call_id=None, status=200, **expect):
        """POST /pbx/v1/star30 (a fresh call_id unless given) and checks the
        answer against `expect` (value ABSENT: field must be missing)."""
        if call_id is None:
            call_id = "call-" + uuid.uuid4().hex
        st, ans = self.pbx("/pbx/v1/star30", caller=caller, digits=digits,
                           code=code, call_id=call_id)
        ctx = "POST /pbx/v1/star30 caller=%r digits=%r code=%s call_id=%r -> %s %s" % (
            caller, digits, "<set>" if code else None, call_id, st, dict(ans))
        assert st == status, "status: expected %s; %s" % (status, ctx)
        check_fields(ans, expect, ctx)
        return ans


def check_fields(ans, expect, ctx):
    for k, v in expect.items():
        if v is ABSENT:
            assert k not in ans, "%s: expected absent; %s" % (k, ctx)
        else:
            got = ans.get(k)
            assert got is not None and str(got) == str(v), \
                "%s: expected %r, got %r; %s" % (k, v, got, ctx)


# ---------------------------------------------------------------- demo data

def mac(n):
    """Demo MAC of the device whose home is extension n (101 -> 0004f2000101)."""
    return "0004f2000%03d" % int(n)


def park(n):
    return "park-" + mac(n)


class Demo:
    """What build_demo() created, with the secrets it used."""

    def __init__(self):
        self.codes = {}        # (org, number) -> secret code
        self.passwords = {}    # sip_user -> password

    def code(self, number, org="acme"):
        return self.codes[(org, str(number))]


ACME_EXTS = {
    # number: (allow_virtualization, has code, display name)
    "101": (True, False, "Alice Anders"),
    "102": (True, True, "Bob Brown"),
    "103": (True, True, "Carol Chen"),
    "104": (False, True, "Dave Diaz"),
    "105": (False, True, "Erin Evans (softphone)"),
    "106": (False, False, "Frank Fox"),
}
ACME_DEVS = {
    # home number: (profile, model, parking?)
    "101": ("polycom", "VVX_500", True),
    "102": ("yealink", "T46S", True),
    "103": ("cisco-mpp", "CP-8841-3PCC", True),
    "104": ("cisco-enterprise", "CP-8845", False),
}
GLOBEX_MAC = "0004f2000201"


def fresh_code(used):
    """A distinctive 8-digit code (never a substring of another one)."""
    while True:
        c = "%d" % _secrets.randbelow(10 ** 8)
        c = c.rjust(8, "7")
        if c[0] != "0" and all(c not in u and u not in c for u in used):
            used.add(c)
            return c


def build_demo(d):
    """Creates orgs acme (extensions 101-106, devices for 101-104) and globex
    (extensions 101 and 201, a device homed on 101). Returns a Demo."""
    demo = Demo()
    used = set()
    for org, host in (("acme", "pbx.acme.test"), ("globex", "pbx.globex.test")):
        d.admin_ok("PUT", "/api/v1/orgs/" + org, {
            "name": org, "display_name": org.capitalize() + " Inc.",
            "sip_server": {"host": host, "port": 5060, "transport": "udp"}})

    def put_ext(org, number, allow, has_code, name):
        sip_user = "%s-%s" % (org, number)
        pw = "pw%s%s" % (number, _secrets.token_hex(10))
        demo.passwords[sip_user] = pw
        d.secrets.add(pw)
        body = {"sip_user": sip_user, "sip_password": pw, "display_name": name,
                "label": number, "allow_virtualization": allow}
        if has_code:
            c = fresh_code(used)
            demo.codes[(org, number)] = c
            d.secrets.add(c)
            body["secret_code"] = c
        st, js = d.admin("PUT", "/api/v1/orgs/%s/extensions/%s" % (org, number), body)
        assert st == 201, "PUT extension %s/%s: expected 201 (created), got %s %s" % (
            org, number, st, js)

    def put_dev(org, m, home, profile, model, parking):
        body = {"org": org, "profile": profile, "model": model, "home_extension": home}
        if parking:
            pw = "ppw" + _secrets.token_hex(10)
            demo.passwords["park-" + m] = pw
            d.secrets.add(pw)
            body["parking"] = {"sip_user": "park-" + m, "sip_password": pw}
        st, js = d.admin("PUT", "/api/v1/devices/" + m, body)
        assert st in (200, 201), "PUT device %s: %s %s" % (m, st, js)

    for n, (allow, has_code, name) in ACME_EXTS.items():
        put_ext("acme", n, allow, has_code, name)
    put_ext("globex", "101", True, True, "Gina Gold")
    put_ext("globex", "201", False, True, "Hank Hill")
    for n, (profile, model, parking) in ACME_DEVS.items():
        put_dev("acme", mac(n), n, profile, model, parking)
    put_dev("globex", GLOBEX_MAC, "101", "yealink", "T54W", True)
    invariants(d)
    return demo


# ---------------------------------------------------------- reading state

def wait_for(pred, what, timeout=15):
    """Polls pred every 50 ms until it returns something true (returned),
    or fails after timeout seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("waited %.0f s for %s" % (timeout, what))


def metric(d, name, labels=""):
    """The value of one sample of /metrics (labels as written there)."""
    st, _, body = d.request("GET", "/metrics")
    assert st == 200
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), body.decode(),
                  flags=re.M)
    assert m, "no %s%s in /metrics" % (name, labels)
    return float(m.group(1))


def list_orgs(d):
    js = d.admin_ok("GET", "/api/v1/orgs")
    return [o["name"] for o in js["orgs"]]


def all_extensions(d):
    out = {}
    for org in list_orgs(d):
        js = d.admin_ok("GET", "/api/v1/orgs/%s/extensions" % org)
        for e in js["extensions"]:
            assert e.get("org", org) == org, e
            out[(org, str(e["number"]))] = e
    return out


def all_devices(d):
    js = d.admin_ok("GET", "/api/v1/devices")
    return {dv["mac"]: dv for dv in js["devices"]}


def ext(d, number, org="acme"):
    return d.admin_ok("GET", "/api/v1/orgs/%s/extensions/%s" % (org, number))


def dev(d, m):
    return d.admin_ok("GET", "/api/v1/devices/" + m)


def carries(d, m):
    """Short form of a device's carried identity: ('ext', number, virtual)
    or ('parked', parking_user)."""
    c = dev(d, m)["carries"]
    if c["kind"] == "extension":
        return ("ext", str(c["extension"]), bool(c["virtual"]))
    assert c["kind"] == "parked", c
    return ("parked", c.get("parking_user"))


def snapshot(d):
    """The virtualization-relevant state, for "nothing changed" checks."""
    exts = {k: (e.get("status"), e.get("virtual_on"), e.get("home_device"),
                e.get("allow_virtualization"), e.get("has_secret_code"),
                e.get("sip_user"), e.get("display_name"))
            for k, e in all_extensions(d).items()}
    devs = {m: (dv.get("org"), dv.get("home_extension"), json.dumps(dv.get("carries"), sort_keys=True))
            for m, dv in all_devices(d).items()}
    return {"extensions": exts, "devices": devs}


def events(d, **filters):
    """Every event matching filters, oldest first, following `next`."""
    out = []
    after = filters.pop("after", None)
    for _ in range(1000):
        q = dict(filters)
        q.setdefault("limit", 500)
        if after is not None:
            q["after"] = after
        js = d.admin_ok("GET", "/api/v1/events?" + urllib.parse.urlencode(q))
        out.extend(js["events"])
        nxt = js.get("next")
        if nxt is None or not js["events"]:
            break
        after = nxt
    ids = [e["id"] for e in out]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), \
        "events not strictly ascending by id: %r" % ids
    return out


# ---------------------------------------------------------------- invariants

def invariants(d, check_pbx=True):
    """Asserts I1-I4 of SPEC 2.1 and the consistency of the shown state:
    extension status / virtual_on / home_device against device carries and
    home_extension, and (check_pbx) the PBX status endpoint against both."""
    exts = all_extensions(d)
    devs = all_devices(d)
    by_sip = {e["sip_user"]: k for k, e in exts.items()}
    problems = []

    def bad(msg):
        problems.append(msg)

    hosted = collections.defaultdict(list)   # mac -> [ext keys virtualized there]
    for k, e in exts.items():
        for f in ("sip_password", "secret_code"):
            if f in e:
                bad("extension %s shows write-only field %s" % (k, f))
        v = e.get("virtual_on")
        if v:
            hosted[v].append(k)
    carried_by = collections.defaultdict(list)  # sip identity -> [macs]

    for m, dv in devs.items():
        org = dv["org"]
        home = dv.get("home_extension")
        home_key = (org, str(home)) if home not in (None, "") else None
        if home_key and home_key not in exts:
            bad("device %s: home_extension %s does not exist" % (m, home_key))
            home_key = None
        if home_key and exts[home_key].get("home_device") != m:
            bad("device %s home %s but extension home_device=%r"
                % (m, home_key, exts[home_key].get("home_device")))
        parking = dv.get("parking") or {}
        if "sip_password" in parking:
            bad("device %s shows parking.sip_password" % m)
        # I1
        if len(hosted[m]) > 1:
            bad("I1: device %s hosts several virtual extensions %s" % (m, hosted[m]))
        c = dv.get("carries") or {}
        kind = c.get("kind")
        if kind == "extension":
            k = (org, str(c.get("extension")))
            if k not in exts:
                bad("device %s carries unknown extension %s" % (m, k))
                continue
            e = exts[k]
            carried_by[e["sip_user"]].append(m)
            if c.get("sip_user") != e["sip_user"]:
                bad("device %s carries %s with sip_user %r, extension has %r"
                    % (m, k, c.get("sip_user"), e["sip_user"]))
            if c.get("virtual"):
                if e.get("virtual_on") != m:
                    bad("device %s carries %s virtually but its virtual_on=%r"
                        % (m, k, e.get("virtual_on")))
                if e.get("home_device") == m:  # I2
                    bad("I2: %s virtualized on its own home device %s" % (k, m))
                if not home_key:  # I3
                    bad("I3: device %s hosts %s but has no home extension" % (m, k))
                elif not exts[home_key].get("allow_virtualization"):
                    bad("I3: device %s hosts %s but home %s does not allow virtualization"
                        % (m, k, home_key))
                if not e.get("has_secret_code"):
                    bad("device %s hosts %s which has no secret code" % (m, k))
                if e.get("status") != "virtualized":
                    bad("%s carried virtually by %s but status=%r" % (k, m, e.get("status")))
            else:
                if k != home_key:
                    bad("device %s carries %s non-virtually but its home is %s" % (m, k, home_key))
                if e.get("virtual_on"):
                    bad("device %s carries home %s which is virtual_on %r"
                        % (m, k, e.get("virtual_on")))
                if hosted[m]:
                    bad("device %s carries its home although %s is virtualized on it"
                        % (m, hosted[m]))
                if e.get("status") != "home":
                    bad("%s carried at home by %s but status=%r" % (k, m, e.get("status")))
        elif kind == "parked":
            if hosted[m]:
                bad("device %s parked although %s is virtualized on it" % (m, hosted[m]))
            if home_key and not exts[home_key].get("virtual_on"):
                bad("device %s parked although its home %s is not away" % (m, home_key))
            pu = c.get("parking_user")
            if pu != (parking.get("sip_user") or None):
                bad("device %s parked with parking_user %r, device parking is %r"
                    % (m, pu, parking.get("sip_user")))
            if pu:
                carried_by[pu].append(m)
        else:
            bad("device %s: carries.kind %r" % (m, kind))

    for k, e in exts.items():
        v = e.get("virtual_on")
        st = e.get("status")
        hd = e.get("home_device")
        if hd and (hd not in devs or devs[hd]["org"] != k[0] or
                   str(devs[hd].get("home_extension")) != k[1]):
            bad("%s home_device %r does not have it as home_extension" % (k, hd))
        if v:
            if v not in devs:
                bad("%s virtual_on unknown device %s" % (k, v))
                continue
            if devs[v]["org"] != k[0]:  # I3
                bad("I3: %s virtualized on %s of org %s" % (k, v, devs[v]["org"]))
            if v == hd:
                bad("I2: %s virtual_on its home device %s" % (k, v))
            c = devs[v].get("carries") or {}
            if not (c.get("kind") == "extension" and str(c.get("extension")) == k[1]
                    and c.get("virtual")):
                bad("%s virtual_on %s but that device carries %r" % (k, v, c))
            if st != "virtualized":
                bad("%s virtual_on %s but status %r" % (k, v, st))
        elif not hd:
            if st != "unplaced":
                bad("%s has no device but status %r" % (k, st))
        else:
            c = devs[hd].get("carries") or {}
            if c.get("kind") == "extension" and str(c.get("extension")) == k[1]:
                want = "home"
            else:
                want = "inactive"
                if not (c.get("kind") == "extension" and c.get("virtual")):
                    bad("%s not virtualized, home %s carries %r (expected it, or a guest)"
                        % (k, hd, c))
            if st != want:
                bad("%s status %r, expected %r (home device carries %r)" % (k, st, want, c))

    # I4: every SIP identity carried by at most one device
    for sip, macs in carried_by.items():
        if len(macs) > 1:
            bad("I4: %s carried by several devices %s" % (sip, macs))

    if check_pbx and not problems:
        for k, e in exts.items():
            st, ans = d.pbx_get("/pbx/v1/extensions/" + urllib.parse.quote(e["sip_user"]))
            if st != 200 or ans.get("status") != e["status"]:
                bad("GET /pbx/v1/extensions/%s -> %s %s, admin API says status %r"
                    % (e["sip_user"], st, dict(ans), e["status"]))
                continue
            want_dev = {"home": e.get("home_device"), "virtualized": e.get("virtual_on"),
                        "unplaced": ""}.get(e["status"])
            got_dev = ans.get("device", "")
            if e["status"] == "inactive":
                # Assumption: "carrying or hosting it" -- an inactive extension is
                # neither, so either empty or its home device is acceptable.
                ok = got_dev in ("", e.get("home_device"))
            else:
                ok = got_dev == want_dev
            if not ok:
                bad("GET /pbx/v1/extensions/%s: device %r, expected %r"
                    % (e["sip_user"], got_dev, want_dev))

    assert not problems, "invariants broken:\n  " + "\n  ".join(problems) + \
        "\nrecent requests:\n  " + d.recent()
    return exts, devs


# ------------------------------------------------------------- provisioning
#
# Phones' side (SPEC 4): files over HTTP (/provision/) and over TFTP from a
# real tftpd-hpa serving the daemon's TFTP root, and check_published(), I4
# and I5 of SPEC 2.1 on what is actually served.

import hashlib
import socket

TFTPD = "/usr/sbin/in.tftpd"


class EtagBook:
    """The ETags one hotdeskd sent, by content.  Its ETag is a keyed hash
    (of the file's sum, under the daemon's key): not computable here, but
    one per content: quoted, 32 hex digits, the same for the same bytes
    however they were served, another for other bytes."""

    FORM = re.compile(r'^"[0-9a-f]{32}"$')

    def __init__(self):
        self.by_content, self.by_etag = {}, {}

    def problem(self, content, etag):
        """None when etag agrees with every ETag seen so far, else what
        is wrong."""
        if etag is None or not self.FORM.match(etag):
            return "ETag %r is not a quoted 128-bit hex hash" % (etag,)
        key = hashlib.blake2b(content, digest_size=16).digest()
        if self.by_content.setdefault(key, etag) != etag:
            return "ETag %r, the same bytes were sent as %r" % (etag, self.by_content[key])
        if self.by_etag.setdefault(etag, key) != key:
            return "ETag %r was sent for other bytes too" % (etag,)
        return None


def etag_book(d):
    """The EtagBook of daemon d's current run."""
    if getattr(d, "etag_book", None) is None:
        d.etag_book = EtagBook()
    return d.etag_book


def free_udp_port():
    """A UDP port free at the time of the call, for an address nothing is
    meant to listen on.  Never give it to a peer to bind (another process
    can take it first): see start-up of peers below."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------ peers
#
# Peers (tftpd-hpa, sipp, Kamailio, ...) are separate processes the tests
# talk to.  A port is never chosen for them by binding port 0 and closing
# it: another process can take it before the peer binds it.  Either
#   * the peer picks and binds its port itself, and the harness reads which
#     one from /proc (Peer.wait_bound on udp_sockets(pid)): race-free; or
#   * the harness must name the port (the peer cannot pick one, or the test
#     needs it before the peer runs): the port is held by the harness
#     (UdpReservation) until the moment the peer starts, and the peer is
#     started again when it cannot bind (PeerExited).
# Readiness is the peer's own socket on the port (by pid), never "someone
# holds the port".  A peer that exits early is reported with its exit
# status, its command, its own output and the processes holding its port.

SYSEXITS = {64: "EX_USAGE", 65: "EX_DATAERR", 66: "EX_NOINPUT (e.g. address not resolved)",
            69: "EX_UNAVAILABLE", 70: "EX_SOFTWARE",
            71: "EX_OSERR (e.g. cannot bind: port in use)", 73: "EX_CANTCREAT",
            74: "EX_IOERR", 75: "EX_TEMPFAIL", 77: "EX_NOPERM", 78: "EX_CONFIG"}


def _socket_inodes(pid):
    """{inode: fd} of the sockets process pid holds ({} once it is gone)."""
    out = {}
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out[int(link[8:-1])] = int(fd)
    return out


def _proc_addr(hexaddr, family):
    """An address of /proc/net/udp{,6}: 32-bit words in host byte order."""
    raw = bytes.fromhex(hexaddr)
    words = [raw[i:i + 4] for i in range(0, len(raw), 4)]
    if sys.byteorder == "little":
        words = [w[::-1] for w in words]
    return socket.inet_ntop(family, b"".join(words))


def _udp_table():
    """[(inode, host, port)] of every bound UDP socket, IPv4 and IPv6."""
    rows = []
    for path, family in (("/proc/net/udp", socket.AF_INET), ("/proc/net/udp6", socket.AF_INET6)):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            addr, port = f[1].split(":")
            rows.append((int(f[9]), _proc_addr(addr, family), int(port, 16)))
    return rows


def udp_sockets(pid):
    """[(fd, host, port)] of the bound UDP sockets process pid holds, by fd."""
    inodes = _socket_inodes(pid)
    return sorted((inodes[i], h, p) for i, h, p in _udp_table() if i in inodes and p != 0)


def udp_port_holders(port):
    """'pid command' of every process holding a UDP socket on port."""
    inodes = {i for i, _, p in _udp_table() if p == port}
    out = []
    for pid in (int(x) for x in os.listdir("/proc") if x.isdigit()):
        if inodes & set(_socket_inodes(pid)):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except OSError:
                cmd = "?"
            out.append("%d %s" % (pid, cmd[:120]))
    return out


class UdpReservation:
    """A loopback UDP port held open by the harness until release(): nobody
    else can take it meanwhile (datagrams sent to it are never answered)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def release(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class PeerExited(AssertionError):
    """The peer exited before it was ready (report in the message)."""


class Peer:
    """One peer process, its stdout and stderr appended to log_path."""

    def __init__(self, name, log_path):
        self.name = name
        self.log_path = log_path
        self.proc = None
        self.cmd = None
        self.ports = ()        # ports it was told to bind, for reports

    def spawn(self, cmd, cwd=None, ports=()):
        self.cmd, self.ports = list(cmd), tuple(ports)
        with open(self.log_path, "ab") as log:
            log.write(("\n==== harness: %s\n" % " ".join(self.cmd)).encode())
            log.flush()
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, cwd=cwd)
        return self

    def output(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except FileNotFoundError:
            return ""

    def report(self):
        """Why the peer is not running: exit status, command, output, and who
        holds the ports it was told to bind."""
        rc = self.proc.poll() if self.proc is not None else None
        if rc is None:
            why = "still running"
        elif rc < 0:
            why = "killed by signal %d" % -rc
        else:
            why = "exit status %d%s" % (rc, " " + SYSEXITS[rc] if rc in SYSEXITS else "")
        lines = ["%s: %s" % (self.name, why), "command: %s" % " ".join(self.cmd or ())]
        for p in self.ports:
            holders = udp_port_holders(p)
            lines.append("UDP port %d now held by: %s" % (p, "; ".join(holders) or "nobody"))
        out = self.output(1 << 20)
        errors = [l.strip() for l in out.splitlines()
                  if any(w in l.lower() for w in ("error", "unable", "cannot", "fail"))]
        if errors:
            lines.append("its errors:\n  " + "\n  ".join(errors[-10:]))
        lines.append("its output (%s, end):\n%s" % (self.log_path, out[-3000:]))
        return "\n".join(lines)

    def wait_bound(self, ready, timeout=10.0):
        """Polls the peer's own bound UDP sockets until ready(sockets) (a
        list of (fd, host, port)) returns something true, and returns it.
        PeerExited if the peer exits first; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise PeerExited("%s exited early\n%s" % (self.name, self.report()))
            got = ready(udp_sockets(self.proc.pid))
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("%s not bound after %.0f s\n%s"
                                     % (self.name, timeout, self.report()))
            time.sleep(0.01)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_bound(peer, spawn, ready, attempts=5):
    """Calls spawn() (which starts peer) and waits until ready (see
    Peer.wait_bound); starts it again, up to `attempts` times, while it
    exits early (a port it was given was taken meanwhile).  Returns what
    ready returned; the last failure is raised with the peer's report."""
    for i in range(attempts):
        spawn()
        try:
            return peer.wait_bound(ready)
        except PeerExited:
            if i == attempts - 1:
                raise
            time.sleep(0.1 * (i + 1))


class Tftpd:
    """A real tftpd-hpa on loopback, chrooted (-s) into `root`, in the
    foreground (-L) so that the harness owns its pid.  Needs root.

    in.tftpd cannot bind port 0, so it is given a port and started again on
    another one when it cannot bind (start_bound); it is ready when its own
    socket is bound there and it serves a file."""

    def __init__(self, root, log_path):
        self.root = str(root)
        self.port = None
        self.peer = Peer("in.tftpd", log_path)
        self.log_path = log_path

    @property
    def proc(self):
        return self.peer.proc

    def start(self, probe="000000000000.cfg"):
        """Starts it and waits until it serves `probe` (a file hotdeskd
        writes at start-up)."""
        def spawn():
            self.port = free_udp_port()
            self.peer.spawn([TFTPD, "-L", "-a", "127.0.0.1:%d" % self.port, "-s", self.root],
                            ports=(self.port,))

        start_bound(self.peer, spawn,
                    lambda socks: any(p == self.port for _, _, p in socks))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.peer.alive():
            if self.get(probe) is not None:
                return self
            time.sleep(0.05)
        raise AssertionError("in.tftpd does not serve %s\n%s" % (probe, self.peer.report()))

    def stop(self):
        self.peer.stop()

    def get(self, name):
        """curl -sf tftp://...: the file's bytes, or None when it fails."""
        p = subprocess.run(["curl", "-sf", "--path-as-is", "--max-time", "15",
                            "tftp://127.0.0.1:%d/%s" % (self.port, name)],
                           capture_output=True, timeout=30)
        return p.stdout if p.returncode == 0 else None


def prov_get(d, name, method="GET", headers=None):
    """A phone's request for file `name`. Returns (status, headers, body)."""
    return d.request(method, "/provision/" + name, None, headers or {})


def preview(d, m, reveal=True, token=None):
    """GET /api/v1/devices/{m}/preview (reveal=1 by default: the real files,
    credentials included, so read with request(), not admin())."""
    st, _, body = d.request("GET", "/api/v1/devices/%s/preview%s" % (m, "?reveal=1" if reveal else ""),
                            None, {"Authorization": "Bearer " + (token or d.admin_token)})
    assert st == 200, "preview %s -> %s %r" % (m, st, body[:300])
    return json.loads(body)


def device_files(d, m):
    """{name: content bytes} of the per-device files a device gets now."""
    return {f["name"]: f["content"].encode() for f in preview(d, m)["files"] if not f["shared"]}


def served_fresh_and_rewritten(d, name, path, want, what="the TFTP file was not rewritten"):
    """A file of the TFTP root that is not what was published (path, with
    want the published bytes) is never served: an HTTP fetch of name gets
    want, the daemon logs the mismatch, and the root is rewritten with want
    (the writer runs behind the answer: waited for, 30 s at most)."""
    st, _, body = prov_get(d, name)
    assert st == 200 and body == want
    assert "its TFTP files are not what was published" in d.log_text()
    deadline = time.monotonic() + 30
    while open(path, "rb").read() != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open(path, "rb").read() == want, what


def check_published(d, demo, tftp=None):
    """I4 and I5 of SPEC 2.1 on what phones are actually served.

    For every device: each per-device file fetched over HTTP (and TFTP when
    tftp is given) equals a fresh render (the revealed preview), the ETag
    is the content's (EtagBook); the files carry the password of the
    identity the admin API says the device carries, and of no other
    identity demo knows (demo.passwords); a parked device carries nothing
    of its home extension.  Returns {mac: {name: content}}."""
    exts = all_extensions(d)
    devs = all_devices(d)
    problems = []
    carried_pw = collections.defaultdict(list)   # identity -> macs whose files hold its password
    published = {}
    for m, dv in sorted(devs.items()):
        files = device_files(d, m)
        published[m] = files
        if not files:
            problems.append("%s: no per-device file in its preview" % m)
        blob = b""
        for name, want in sorted(files.items()):
            st, hdrs, body = prov_get(d, name)
            if st != 200 or body != want:
                problems.append("I5: HTTP %s -> %s, differs from a fresh render" % (name, st))
            elif etag_book(d).problem(want, hdrs.get("etag")) is not None:
                problems.append("HTTP %s: %s" % (name, etag_book(d).problem(want, hdrs.get("etag"))))
            if tftp is not None:
                got = tftp.get(name)
                if got != want:
                    problems.append("I5: TFTP %s %s" % (name, "missing" if got is None else "differs from a fresh render"))
            blob += want
        for ident, pw in demo.passwords.items():
            if pw.encode() in blob:
                carried_pw[ident].append(m)
        c = dv["carries"]
        want_ident = c["sip_user"] if c["kind"] == "extension" else c.get("parking_user")
        if want_ident is not None:
            if want_ident in demo.passwords and demo.passwords[want_ident].encode() not in blob:
                problems.append("%s carries %s but its files lack that password" % (m, want_ident))
            if want_ident.encode() not in blob:
                problems.append("%s carries %s but its files do not name it" % (m, want_ident))
        home = dv.get("home_extension")
        if c["kind"] == "parked" and home:
            hs = exts[(dv["org"], str(home))]["sip_user"]
            if hs.encode() in blob or demo.passwords.get(hs, "\0").encode() in blob:
                problems.append("%s is parked but its files carry its home extension %s" % (m, hs))
    for ident, macs in carried_pw.items():
        if len(macs) > 1:
            problems.append("I4: password of %s published on several devices %s" % (ident, macs))
    assert not problems, "published files wrong:\n  " + "\n  ".join(problems)
    return published
