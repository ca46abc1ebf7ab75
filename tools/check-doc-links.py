#!/usr/bin/env python3
"""No document points at a file the project does not have (run by `make check`).

usage: tools/check-doc-links.py [SRCDIR]

In every *.md file: each relative markdown link [text](path); in it and in the
sources, man pages and scripts (lib/, include/, tests/, tools/, examples/, man/,
Makefile.am, configure.ac): every NAME.md mentioned, backticked or not. A
reference resolves against the referring file's directory, the top of the tree
or docs/. Files a program writes (GENERATED) are allowed. Prints one line per missing file and exits 1 if there is any.
"""
import os
import re
import sys

srcdir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
SKIP_DIRS = {".git", "autom4te.cache", ".deps", ".libs", "corpus"}
SOURCE_DIRS = ("lib", "include", "tests", "tools", "examples", "man")
SOURCE_EXT = (".c", ".h", ".py", ".sh", ".3", ".am", ".ac")
LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# What `make bench` writes (tests/bench/run.py), not a file of the tree.
GENERATED = {"table.md", "results/table.md"}
WORD_RE = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.md)\b")


def files():
    for top, dirs, names in os.walk(srcdir):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for n in names:
            yield os.path.join(top, n)


def resolves(ref, where):
    ref = ref.split("#", 1)[0]
    if not ref:
        return True
    return any(os.path.exists(os.path.normpath(os.path.join(base, ref)))
               for base in (os.path.dirname(where), srcdir, os.path.join(srcdir, "docs")))


problems, nrefs = [], 0
for path in sorted(files()):
    rel = os.path.relpath(path, srcdir)
    if rel == os.path.join("tools", "check-doc-links.py"):
        continue   # its own docstring's examples
    if path.endswith(".md"):
        text = open(path, encoding="utf-8").read()
        refs = [r for r in LINK_RE.findall(text)
                if not re.match(r"[a-z][a-z0-9+.-]*:", r)]   # http:, mailto: ...
        refs += WORD_RE.findall(LINK_RE.sub(" ", text))
    elif rel.split(os.sep)[0] in SOURCE_DIRS and path.endswith(SOURCE_EXT) or rel in ("Makefile.am", "configure.ac"):
        refs = WORD_RE.findall(open(path, encoding="utf-8", errors="replace").read())
    else:
        continue
    for ref in refs:
        nrefs += 1
        if ref not in GENERATED and "SRCDIR" not in ref and not resolves(ref, path):
            problems.append("%s: %s is not in the project" % (rel, ref))

for p in sorted(set(problems)):
    print("check-doc-links: " + p)
print("check-doc-links: %d references, %d missing" % (nrefs, len(set(problems))))
sys.exit(1 if problems else 0)
