#!/usr/bin/env python3
"""Fails when a file of lib/ calls up a layer or when files of lib/ call each other in a
circle (docs/architecture.md). Reads what each object file of the built library defines
and uses (nm), so it sees calls through macros and inline helpers as the linker does.

Usage: check-layers.py BUILDDIR [SRCDIR]   (make check runs it)
       check-layers.py BUILDDIR SRCDIR --graph   (prints every file -> file edge)

SRCDIR/tools/layers-known.txt lists the circles not yet taken apart, one per line as
their files; each is reported but tolerated, and a listed circle that is gone fails
the check until its line is removed, so the list can only shrink.

Layers, lowest first: core < io < loop < stream < net < proc < embed. A file may use what its own
layer and the layers below define; anything else is an upward call. Two files of one
layer may call each other only if the calls do not close a circle.
"""
import os
import subprocess
import sys

LAYERS = ["core", "io", "loop", "stream", "net", "proc", "embed"]


def objects(builddir):
    """(source path relative to lib/, object path) for each object of librill."""
    found = {}
    for folder in LAYERS:
        d = os.path.join(builddir, "lib", folder)
        for sub in (os.path.join(d, ".libs"), d):
            if not os.path.isdir(sub):
                continue
            for name in sorted(os.listdir(sub)):
                if name.startswith("librill_la-") and name.endswith(".o"):
                    src = folder + "/" + name[len("librill_la-"):-2] + ".c"
                    found.setdefault(src, os.path.join(sub, name))
    return found


def symbols(obj):
    """(defined, used) global symbol names of one object file."""
    out = subprocess.run(["nm", "-P", obj], check=True, capture_output=True, text=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            used.add(name)
        elif kind in "TDBRCVWG":
            defined.add(name)
    return defined, used


def edges(builddir):
    objs = objects(builddir)
    if not objs:
        sys.exit("check-layers: no lib/*/librill_la-*.o under %s (build the library first)" % builddir)
    defs, uses = {}, {}
    for src, obj in objs.items():
        d, u = symbols(obj)
        uses[src] = u
        for name in d:
            defs[name] = src
    graph = {src: {} for src in objs}
    for src, used in uses.items():
        for name in used:
            dst = defs.get(name)
            if dst is not None and dst != src:
                graph[src].setdefault(dst, set()).add(name)
    return graph


def layer(src):
    return LAYERS.index(src.split("/")[0])


def circles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    builddir = sys.argv[1] if len(sys.argv) > 1 else "."
    graph = edges(builddir)
    if "--graph" in sys.argv:
        for src in sorted(graph):
            for dst in sorted(graph[src]):
                print("%s -> %s: %s" % (src, dst, " ".join(sorted(graph[src][dst]))))
        return 0
    srcdir = sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("-") else \
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    known = set()
    known_path = os.path.join(srcdir, "tools", "layers-known.txt")
    if os.path.exists(known_path):
        for line in open(known_path):
            if line.strip() and not line.startswith("#"):
                known.add(tuple(sorted(line.split())))
    bad = 0
    for src in sorted(graph):
        for dst in sorted(graph[src]):
            if layer(dst) > layer(src):
                print("check-layers: upward call lib/%s -> lib/%s (%s)"
                      % (src, dst, " ".join(sorted(graph[src][dst]))))
                bad += 1
    seen = set()
    for comp in circles(graph):
        seen.add(tuple(comp))
        if tuple(comp) in known:
            print("check-layers: known circle (tools/layers-known.txt) between %s"
                  % ", ".join("lib/" + c for c in comp))
            continue
        print("check-layers: circle between %s" % ", ".join("lib/" + c for c in comp))
        for a in comp:
            for b in comp:
                if b in graph[a]:
                    print("    lib/%s -> lib/%s: %s" % (a, b, " ".join(sorted(graph[a][b]))))
        bad += 1
    for gone in sorted(known - seen):
        print("check-layers: the circle %s is gone: remove its line from tools/layers-known.txt"
              % " ".join(gone))
        bad += 1
    n = sum(len(v) for v in graph.values())
    if bad:
        print("check-layers: %d problem(s) in %d file-to-file edges" % (bad, n))
        return 1
    print("check-layers: %d files, %d file-to-file edges, none upward, %s"
          % (len(graph), n, "%d known circle(s)" % len(known) if known else "no circle"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
