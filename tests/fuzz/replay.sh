#!/bin/sh
# make check: every fuzz target once over each file of its seed corpus.
# Usage: replay.sh BUILDDIR SRCDIR. Works for the replay build and for libFuzzer
# binaries (--enable-fuzz), which run each file named on the command line once.
set -e
builddir=$1
srcdir=$2
for t in read write dns tls; do
  dir="$srcdir/tests/fuzz/corpus/$t"
  # shellcheck disable=SC2046
  "$builddir/tests/fuzz/fuzz_$t" $(ls -d "$dir"/* | LC_ALL=C sort) 2>"$builddir/tests/fuzz/replay-$t.log" || {
    echo "fuzz replay of $t failed; its log (tests/fuzz/replay-$t.log):"
    tail -n 30 "$builddir/tests/fuzz/replay-$t.log"
    exit 1
  }
  echo "fuzz replay: $t: $(ls "$dir" | wc -l) seeds passed"
done
