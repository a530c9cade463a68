#!/usr/bin/python3
"""check-events.py -- every event name written in the code is listed in
src/event.c (event_names) and is noun.verb.

A name is a string literal among the arguments of a call to event,
event_add, svc_event or dev_event (not inside a nested call such as the
detail's json_pack: both sides of a `?:` count), or the
value of a `.type = "..."` initializer (the service's put transactions);
an EVENT_* macro of src/event.h among a call's arguments stands for its
name.  Reads the files given (default: every .c under src/), prints
file:line: name: why for each name that is not in the list or not
^[a-z_]+\\.[a-z_]+$, and (default files only) each listed name that no
file writes; exits 1 if there was any.  Run by `make lint` (and so by
`make test`).
"""
import glob
import re
import sys

CALL = re.compile(r"\b(?:event|event_add|svc_event|dev_event)\s*\(")
INIT = re.compile(r"\.type\s*=\s*\"([^\"\\]*)\"")
LIT = re.compile(r"\"((?:[^\"\\\n]|\\.)*)\"")
STRICT = re.compile(r"[a-z_]+\.[a-z_]+")
MACRO = re.compile(r"\b(EVENT_[A-Z0-9_]+)\b")


def macros(path):
    """{EVENT_X: name} of the #defines of path."""
    return dict(re.findall(r"^#define\s+(EVENT_[A-Z0-9_]+)\s+\"([^\"]*)\"", open(path).read(),
                           re.M))


def listed(path):
    text = open(path).read()
    m = re.search(r"event_names\[\]\s*=\s*\{(.*?)\};", text, re.S)
    if m is None:
        sys.exit("%s: no event_names[] list" % path)
    return set(LIT.findall(m.group(1)))


def call_args(text, start):
    """The text of a call's arguments from just after its '(', with what
    nested parentheses hold blanked out (same length, so offsets hold;
    strings and character constants skipped when counting)."""
    out, depth, i = [], 1, start
    while i < len(text):
        c = text[i]
        j = i + 1
        if c in "\"'":
            while j < len(text) and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                break
        out.append(text[i:j] if depth == 1 and c != ")" else " " * (j - i))
        i = j
    return "".join(out)


TOKEN = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|/\*.*?\*/|//[^\n]*", re.S)


def uncommented(text):
    """text with its comments blanked out (newlines kept: lines hold)."""
    def blank(m):
        t = m.group(0)
        return t if t[0] in "\"'" else re.sub(r"[^\n]", " ", t)
    return TOKEN.sub(blank, text)


def names(text, defs):
    """(offset, name) of every event name written in text."""
    for m in CALL.finditer(text):
        args = call_args(text, m.end())
        for lit in LIT.finditer(args):
            yield m.end() + lit.start(), lit.group(1)
        for mac in MACRO.finditer(args):
            if mac.group(1) in defs:
                yield m.end() + mac.start(), defs[mac.group(1)]
    for m in INIT.finditer(text):
        yield m.start(1), m.group(1)


def main(argv):
    known = listed("src/event.c")
    defs = macros("src/event.h")
    files = argv[1:] or sorted(glob.glob("src/*.c"))
    bad = 0
    written = set()
    for f in files:
        if f.endswith("/event.c"):
            continue
        text = uncommented(open(f).read())
        for off, name in sorted(set(names(text, defs))):
            written.add(name)
            why = None
            if not STRICT.fullmatch(name):
                why = "not noun.verb"
            elif name not in known:
                why = "not in event_names (src/event.c)"
            if why:
                print("%s:%d: %s: %s" % (f, text.count("\n", 0, off) + 1, name, why))
                bad = 1
    for name in sorted(known - written if len(argv) == 1 else ()):
        print("src/event.c: %s: listed, but no file records it" % name)
        bad = 1
    if bad:
        print("check-events.py: event names above (list each in src/event.c, docs/API.md)")
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv))
