#!/bin/sh
# The shared library exports exactly the public API (run by `make check` and
# `make installcheck`): every dynamic symbol it defines is a rill_ function that
# include/rill.h declares (no internal rill__ name, nothing else), and every
# function the header declares is exported.
#
# usage: tools/check-exports.sh LIBRARY HEADER
#   LIBRARY  the shared library (librill.so); when it does not exist (a build
#            with --disable-shared) the check says so and passes.
#   HEADER   include/rill.h
# CC (default cc) preprocesses the header, so comments do not count.
set -eu
lib=$1
header=$2
if [ ! -f "$lib" ]; then
  echo "check-exports: no shared library at $lib (--disable-shared?): skipped"
  exit 0
fi
tmp=${TMPDIR:-/tmp}/rill-exports.$$
trap 'rm -f "$tmp".*' EXIT INT TERM

# Functions the header declares: a rill_ name directly followed by '('.
${CC:-cc} -E -P -I"$(dirname "$header")" "$header" |
  grep -oE '\brill_[a-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:](]//g' | sort -u > "$tmp.api"
# Symbols the library defines and exports.
nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u > "$tmp.dyn"

status=0
napi=$(wc -l < "$tmp.api")
ndyn=$(wc -l < "$tmp.dyn")
if [ "$napi" -lt 10 ]; then
  echo "check-exports: only $napi functions found in $header: cannot check"
  exit 1
fi
# Exported but not public (internal rill__ helpers, anything else).
for s in $(comm -13 "$tmp.api" "$tmp.dyn"); do
  echo "check-exports: $lib exports $s, which include/rill.h does not declare"
  status=1
done
# Public but not exported (missing, or hidden by the export list).
for s in $(comm -23 "$tmp.api" "$tmp.dyn"); do
  echo "check-exports: include/rill.h declares $s, which $lib does not export"
  status=1
done
echo "check-exports: $napi public functions, $ndyn exported symbols: $([ $status = 0 ] && echo ok || echo FAILED)"
exit $status
