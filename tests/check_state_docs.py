#!/usr/bin/env python3
"""docs/state-machines.md must show every state of every machine's enum.

Each Mermaid block in the document names the enum it draws with a line
`%% enum: <file> <enum name>`. For each machine listed in MACHINES the enum is
read from the source and every state (its enumerator without the common
prefix) must appear in the diagram, and the diagram may show no state the enum
lacks. Prints one line per machine and the closing `N passed, N failed`."""
import os
import re
import sys

MACHINES = [
    ("lib/stream/stream.h", "RILL__READ_STATES"),
    ("lib/stream/stream.h", "RILL__CLOSE_STATES"),
    ("lib/net/connect.c", "CONN_STATES"),
    ("lib/net/resolve.c", "RES_STATES"),
    ("lib/stream/stream.h", "RILL__WRITE_STATES"),
    ("lib/net/server.c", "SRV_STATES"),
    ("lib/stream/tls.c", "HS_STATES"),
    ("lib/proc/process.c", "PROC_STATES"),
]
EXTRA = []  # machines being built: checked once their enum exists


def enum_states(text, name):
    # The list the enum is made from: #define NAME(X, LAST) X(MACHINE, A) ... LAST(MACHINE, Z)
    m = re.search(r"#define\s+" + re.escape(name) + r"\(X, LAST\)((?:[^\n]*\\\n)*[^\n]*)", text)
    if m:
        return set(re.findall(r"(?:X|LAST)\(\s*\w+\s*,\s*(\w+)\s*\)", m.group(1)))
    # typedef enum { A, B } name;   or   enum name { A, B };
    m = re.search(r"typedef\s+enum\s*\{([^}]*)\}\s*" + re.escape(name) + r"\s*;", text) or \
        re.search(r"enum\s+" + re.escape(name) + r"\s*\{([^}]*)\}", text)
    if not m:
        return None
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    names = [n.split("=")[0].strip() for n in body.split(",")]
    names = [n for n in names if n]
    prefix = os.path.commonprefix(names)
    prefix = prefix[: prefix.rfind("_") + 1] if "_" in prefix else ""
    return {n[len(prefix):] for n in names}


def diagrams(doc):
    out = {}
    for block in re.findall(r"```mermaid\n(.*?)```", doc, flags=re.S):
        m = re.search(r"%%\s*enum:\s*(\S+)\s+(\S+)", block)
        if not m:
            continue
        states = set()
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("%%") or line.startswith("stateDiagram") or not line:
                continue
            if line.startswith("note") or line.startswith("end note"):
                continue
            for side in re.split(r"-->", line.split(":")[0]):
                tok = side.strip()
                if tok and tok != "[*]" and re.fullmatch(r"[A-Z_0-9]+", tok):
                    states.add(tok)
            m2 = re.match(r"state\s+\"[^\"]*\"\s+as\s+([A-Z_0-9]+)", line)
            if m2:
                states.add(m2.group(1))
        out[(m.group(1), m.group(2))] = states
    return out


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(top, "docs", "state-machines.md")) as f:
        drawn = diagrams(f.read())
    def has_enum(m):
        path = os.path.join(top, m[0])
        return os.path.exists(path) and m[1] in open(path).read()
    machines = MACHINES + [m for m in EXTRA if has_enum(m)]
    passed = failed = 0
    for path, name in machines:
        with open(os.path.join(top, path)) as f:
            want = enum_states(f.read(), name)
        got = drawn.get((path, name))
        problems = []
        if want is None:
            problems.append("enum not found in source")
        elif got is None:
            problems.append("no diagram")
        else:
            if want - got:
                problems.append("missing from diagram: " + ", ".join(sorted(want - got)))
            if got - want:
                problems.append("not in the enum: " + ", ".join(sorted(got - want)))
        if problems:
            failed += 1
            print("FAIL %s %s: %s" % (path, name, "; ".join(problems)))
        else:
            passed += 1
            print("ok   %s %s (%d states)" % (path, name, len(want)))
    print("diagrams: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
