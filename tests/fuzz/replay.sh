#!/bin/sh
# make check: every fuzz target once over each file of its seed corpus.
# Usage: replay.sh BUILDDIR SRCDIR. Works for the replay build and for libFuzzer
# binaries (--enable-fuzz), which run each file named on the command line once.
# A target that exits 77 skipped itself (fuzz_tls without the openssl command).
builddir=$1
srcdir=$2
for t in read write dns tls connect; do
  dir="$srcdir/tests/fuzz/corpus/$t"
  log="$builddir/tests/fuzz/replay-$t.log"
  # shellcheck disable=SC2046
  "$builddir/tests/fuzz/fuzz_$t" $(ls -d "$dir"/* | LC_ALL=C sort) >"$log" 2>&1
  rc=$?
  if [ $rc -eq 77 ]; then
    echo "fuzz replay: $t: skipped ($(tail -n 1 "$log"))"
  elif [ $rc -ne 0 ]; then
    echo "fuzz replay of $t FAILED (exit $rc); the last input named is the one; end of $log:"
    tail -n 30 "$log"
    exit 1
  else
    echo "fuzz replay: $t: $(ls "$dir" | wc -l) seeds passed"
  fi
done
