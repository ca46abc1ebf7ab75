#!/usr/bin/env python3
"""The man pages never disagree with the header (run by `make check`).

usage: tools/check-man.py [SRCDIR]

Checks, for include/rill.h against man/*.3:
  - every public function declared in the header appears in exactly one man
    page's SYNOPSIS, with the same prototype (whitespace aside), and every
    function in a SYNOPSIS is declared in the header;
  - a callback typedef shown in a SYNOPSIS is the header's;
  - a page's NAME lists exactly the functions of its SYNOPSIS;
  - every field of every public struct, and every RILL_ macro and enum value,
    is named somewhere in the pages;
  - each page renders without a groff warning (when groff is installed).
Prints one line per problem and exits 1 if there is any.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

srcdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
header = os.path.join(srcdir, "include", "rill.h")
pages = sorted(glob.glob(os.path.join(srcdir, "man", "*.3")))
problems = []


def norm(text):
    """One prototype, comments and layout aside: 'int rill_x(rill_y*s,int n)'."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s*([(),*\[\]])\s*", r"\1", text)


def declarations(text):
    """(functions, typedefs): name -> normalized declaration, from C text."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
    funcs, typedefs = {}, {}
    # Statements end at ';' or at braces (struct bodies and extern "C" blocks).
    for stmt in re.split(r"[;{}]", text):
        stmt = " ".join(stmt.split())
        m = re.match(r"typedef\s+[\w\s\*]+\(\s*\*\s*(rill_\w+)\s*\)\s*\(.*\)$", stmt)
        if m:
            typedefs[m.group(1)] = norm(stmt)
            continue
        paren = stmt.find("(")
        if paren < 0 or stmt.startswith("typedef"):
            continue
        m = re.search(r"(?<![\w(*])\**\s*(rill_\w+)\s*$", stmt[:paren])
        if m and not re.search(r"\(\s*\*\s*$", stmt[:m.start()]):
            funcs[m.group(1)] = norm(stmt)
    return funcs, typedefs


def roff_text(s):
    s = re.sub(r"\\f[BIRP]", "", s)
    s = s.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")
    return s


with open(header) as f:
    htext = f.read()
hfuncs, htypedefs = declarations(htext)
if len(hfuncs) < 10:
    problems.append("%s: only %d functions found: the parser is broken" % (header, len(hfuncs)))

seen = {}
alltext = ""
for page in pages:
    with open(page) as f:
        lines = f.read().split("\n")
    alltext += roff_text("\n".join(lines)) + "\n"
    # The SYNOPSIS: its .nf/.fi blocks, macros dropped; the NAME section's names.
    syn, names, in_syn, in_nf, in_name = [], "", False, False, False
    for line in lines:
        if line.startswith(".SH"):
            in_syn = line.split(None, 1)[1:] == ["SYNOPSIS"]
            in_name = line.split(None, 1)[1:] == ["NAME"]
            continue
        if in_name and not line.startswith("."):
            names += " " + line
        if not in_syn:
            continue
        if line.startswith(".nf"):
            in_nf = True
        elif line.startswith(".fi"):
            in_nf = False
        elif in_nf and not line.startswith("."):
            syn.append(roff_text(line))
    mfuncs, mtypedefs = declarations("\n".join(syn))
    name = os.path.basename(page)
    for fn, decl in mfuncs.items():
        if fn not in hfuncs:
            problems.append("%s: SYNOPSIS has %s, which include/rill.h does not declare" % (name, fn))
        elif decl != hfuncs[fn]:
            problems.append("%s: %s differs from the header:\n    man:    %s\n    header: %s"
                            % (name, fn, decl, hfuncs[fn]))
        if fn in seen:
            problems.append("%s: %s is already in %s's SYNOPSIS" % (name, fn, seen[fn]))
        seen[fn] = name
    listed = {n.strip() for n in roff_text(names).split(" - ")[0].split(",")}
    listed.discard("rill")   # rill(3) is also the overview
    if listed != set(mfuncs):
        problems.append("%s: NAME and SYNOPSIS differ: %s" % (
            name, ", ".join(sorted(listed ^ set(mfuncs)))))
    for td, decl in mtypedefs.items():
        if htypedefs.get(td) != decl:
            problems.append("%s: typedef %s differs from the header (or is not in it)" % (name, td))

for fn in sorted(set(hfuncs) - set(seen)):
    problems.append("include/rill.h declares %s, which no man page's SYNOPSIS has" % fn)

# Struct fields, RILL_ macros and enum values: each named somewhere in the pages.
words = set(re.findall(r"\w+", alltext))
body_re = re.compile(r"typedef\s+struct\s+(rill_\w+)\s*\{(.*?)\}\s*\1\s*;", re.S)
for struct, body in body_re.findall(re.sub(r"/\*.*?\*/", " ", htext, flags=re.S)):
    for decl in body.split(";"):
        decl = re.sub(r"\(\s*\*\s*(\w+)\s*\)\s*\(.*", r" \1", decl.strip(), flags=re.S)
        for field in re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*(?:,|$)", decl):
            if field not in words:
                problems.append("no man page names %s's field %s" % (struct, field))
for macro in sorted(set(re.findall(r"\bRILL_[A-Z0-9_]+\b", htext)) - {"RILL_H"}):
    if macro not in words:
        problems.append("no man page names %s" % macro)

if shutil.which("groff"):
    for page in pages:
        r = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            problems.append("%s: groff: %s" % (os.path.basename(page), r.stderr.strip()))

for p in problems:
    print("check-man: " + p)
print("check-man: %d functions, %d pages, %d problems" % (len(hfuncs), len(pages), len(problems)))
sys.exit(1 if problems or not pages else 0)
