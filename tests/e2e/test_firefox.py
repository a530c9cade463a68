"""The console and the self-service page in Firefox: Debian's firefox-esr,
headless, driven over WebDriver BiDi (built into Firefox; Debian 12 ships
no geckodriver) with python3-websocket, against the daemon on loopback.

Checks that the pages' JavaScript modules load and run in Firefox (no
error in the browser's log), and the main steps: sign in, who-is-where
with hostile names shown as text, a user setting refused at its field,
a template error at its line, the tokens view; on /me/ sign in and see
the extension's state.  Screenshots under $HOTDESKD_ARTIFACTS (default
build/artifacts/browser), named firefox-*.
"""

import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import time

import pytest
import websocket

import hdharness
from test_browser import ART, HOSTILE, hostile_data

WAIT = 30


class Firefox:
    """One headless firefox-esr with a fresh profile, and a BiDi session."""

    def __init__(self, tmp):
        assert shutil.which("firefox-esr"), "firefox-esr is required (scripts/deps.sh test)"
        self.ids = itertools.count(1)
        self.logs = []
        self.out = open(os.path.join(tmp, "firefox.log"), "w+")
        prof = os.path.join(tmp, "ff-profile")
        os.makedirs(prof, exist_ok=True)
        for _ in range(5):
            port = _free_port()
            self.proc = subprocess.Popen(
                ["firefox-esr", "--headless", "--no-remote", "--profile", prof,
                 "--remote-debugging-port", str(port), "about:blank"],
                stdout=self.out, stderr=subprocess.STDOUT)
            if self._listening(port):
                break
            self.proc.kill()
            self.proc.wait()
        else:
            raise AssertionError("firefox-esr did not start its BiDi server: " + self._output())
        # a loaded machine can take long to open the first session
        self.ws = websocket.create_connection("ws://127.0.0.1:%d/session" % port,
                                              timeout=4 * WAIT, suppress_origin=True)
        self.cmd("session.new", {"capabilities": {}})
        self.ws.settimeout(WAIT)
        self.cmd("session.subscribe", {"events": ["log.entryAdded"]})
        self.context = self.cmd("browsingContext.getTree", {})["contexts"][0]["context"]

    def _output(self):
        self.out.flush()
        self.out.seek(0)
        return self.out.read()[-2000:]

    def _listening(self, port):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if "WebDriver BiDi listening on ws://127.0.0.1:%d" % port in self._output():
                return True
            time.sleep(0.2)
        return False

    def cmd(self, method, params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("type") == "event":
                if msg["method"] == "log.entryAdded":
                    self.logs.append(msg["params"])
                continue
            if msg.get("id") != i:
                continue
            if msg.get("type") == "error":
                raise AssertionError("%s: %s %s" % (method, msg.get("error"), msg.get("message")))
            return msg["result"]

    def navigate(self, url):
        self.cmd("browsingContext.navigate", {"context": self.context, "url": url,
                                              "wait": "complete"})

    def js(self, expr):
        """The value of a JavaScript expression (promises awaited) in the page."""
        r = self.cmd("script.evaluate", {"expression": expr, "awaitPromise": True,
                                         "target": {"context": self.context}})
        if r.get("type") == "exception":
            raise AssertionError("%s: %s" % (expr, r["exceptionDetails"].get("text")))
        v = r["result"]
        return v.get("value") if v.get("type") not in ("undefined", "null") else None

    def wait(self, expr, what):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.js(expr):
                return
            time.sleep(0.1)
        self.shot("failed-" + what.replace(" ", "-"))
        raise AssertionError("timed out waiting for: " + what)

    def shot(self, name):
        r = self.cmd("browsingContext.captureScreenshot", {"context": self.context})
        with open(os.path.join(ART, "firefox-" + name + ".png"), "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def errors(self):
        return [e for e in self.logs if e.get("level") == "error"]

    def close(self):
        try:
            self.cmd("browser.close", {})
        except Exception:
            pass
        try:
            self.ws.close()
        except Exception:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def firefox(tmp_path):
    os.makedirs(ART, exist_ok=True)
    ff = Firefox(str(tmp_path))
    yield ff
    ff.close()


def q(s):
    return json.dumps(s)


def text(css):
    return "(document.querySelector(%s) || {textContent: ''}).textContent" % q(css)


def no_xss(ff):
    assert ff.js("window.__xss === undefined"), "a hostile name ran"
    assert ff.js("document.querySelectorAll('main img, main script:not([src])').length") == 0


def test_console_and_me_in_firefox(acme, firefox):
    d, demo = acme
    ff = firefox
    hostile_data(d)
    base = "http://127.0.0.1:%d" % d.port
    ff.navigate(base + "/console/")
    # only the module shows the sign-in form: it ran
    ff.wait("!document.getElementById('login').hidden", "sign-in form")
    assert ff.js("getComputedStyle(document.getElementById('tabs')).display") == "none"
    ff.js("document.querySelector('#login [name=token]').value = %s;"
          "document.querySelector('#login button').click()" % q(d.admin_token))
    ff.wait("!!document.querySelector('#where-table tr[data-ext=\"acme/102\"]')", "who-is-where")
    assert HOSTILE in ff.js(text("#where-table"))
    assert ff.js("document.cookie") == ""
    assert ff.js("getComputedStyle(document.getElementById('tab-tokens')).display") != "none"
    no_xss(ff)
    ff.shot("console-where")

    # a move made by the PBX, returned from the page
    d.star30("acme-101", digits="102", code=demo.code("102"), result="accepted")
    row = '#where-table tr[data-ext="acme/102"]'
    ff.js("document.getElementById('where-refresh').click()")
    ff.wait("%s.includes('virtualized')" % text(row), "102 virtualized")
    ff.js("document.querySelector(%s).click()" % q(row + " button"))
    ff.wait("%s.includes('home')" % text(row), "102 home")
    assert hdharness.ext(d, "102")["status"] == "home"

    # user settings: a refused voicemail number is shown at its field
    ff.js("Array.from(document.querySelectorAll(%s)).find(b => b.textContent === 'Settings')"
          ".click()" % q(row + " button"))
    ff.wait("!document.getElementById('settings').hidden", "settings form")
    ff.js("const f = document.getElementById('settings'); f.elements.voicemail.value = '12a';"
          "f.querySelector('button[type=submit]').click()")
    ff.wait("document.querySelector('#settings [name=voicemail]')"
            ".getAttribute('aria-invalid') === 'true'", "voicemail marked")
    assert "voicemail" in ff.js(text('#settings .field-error[data-for="voicemail"]'))
    ff.shot("console-settings-error")

    # a template error marked at its line
    ff.js("document.querySelector('#tabs button[data-view=templates]').click()")
    ff.wait("document.querySelectorAll('#tmpl-select option').length > 3", "template list")
    ff.js("document.getElementById('tmpl-select').value = 'yealink/device.cfg';"
          "document.getElementById('tmpl-load').click()")
    ff.wait("document.getElementById('tmpl-text').value.startsWith('#!version')", "template")
    ff.js("const a = document.getElementById('tmpl-text'); const l = a.value.split('\\n');"
          "l.splice(1, 0, 'bad.key = {{ line.sip_usr }}'); a.value = l.join('\\n');"
          "document.getElementById('tmpl-dry').click()")
    ff.wait("%s.includes('line 2')" % text("#tmpl-error"), "error at line 2")
    assert "line.sip_usr" in ff.js(text("#tmpl-lines li.error-line"))
    ff.shot("console-template-error")

    # tokens view lists the configuration's token without its secret
    ff.js("document.getElementById('tab-tokens').click()")
    ff.wait("%s.includes('configuration file')" % text("#tok-table tbody"), "tokens")
    assert d.admin_token not in ff.js("document.documentElement.outerHTML")
    ff.js("document.getElementById('logout').click()")
    ff.wait("!document.getElementById('login').hidden", "signed out")

    # /me/
    d.secrets.add("carol-web-pass")
    d.admin_ok("PUT", "/api/v1/orgs/acme/extensions/103/web-password",
               {"password": "carol-web-pass"})
    ff.navigate(base + "/me/")
    ff.wait("!document.getElementById('login').hidden", "me sign-in form")
    ff.js("const f = document.getElementById('login'); f.elements.org.value = 'acme';"
          "f.elements.extension.value = '103'; f.elements.password.value = 'carol-web-pass';"
          "f.querySelector('button').click()")
    ff.wait("!document.getElementById('home').hidden", "me signed in")
    assert ff.js(text("#status")) == "home"
    assert HOSTILE in ff.js(text("#who"))
    no_xss(ff)
    ff.shot("me-home")

    assert ff.errors() == [], "errors in Firefox's log: %r" % ff.errors()
