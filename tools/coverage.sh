#!/bin/sh
# make coverage: lib/'s line and branch coverage over everything make check runs,
# on each backend. Usage: coverage.sh BUILDDIR SRCDIR (a build configured with
# --enable-coverage). Leaves BUILDDIR/coverage/lib.info (tools/coverage-report.sh
# reads it) and prints lcov's summary plus one line per file of lib/.
# COVERAGE_BACKENDS (default "epoll poll select") picks the suite runs;
# COVERAGE_MIN_LINES / COVERAGE_MIN_BRANCHES (percent) fail the run below a floor.
set -e
builddir=$(cd "$1" && pwd)
srcdir=$(cd "$2" && pwd)
out="$builddir/coverage"
rc="--rc lcov_branch_coverage=1"
command -v lcov >/dev/null 2>&1 || { echo "coverage: lcov missing (tools/install-deps.sh lcov)"; exit 1; }
mkdir -p "$out"

# Counters add up across runs, so each measurement starts from zero.
lcov -q --zerocounters --directory "$builddir/lib"

for b in ${COVERAGE_BACKENDS:-epoll poll select}; do
  echo "== coverage: suite on $b"
  RILL_TEST_BACKEND=$b "$builddir/tests/run_tests" >"$out/suite-$b.log" 2>&1 ||
    { tail -n 40 "$out/suite-$b.log"; echo "coverage: suite on $b FAILED"; exit 1; }
  grep -E '^ +(suites|tests|asserts) ' "$out/suite-$b.log" || true
done
echo "== coverage: example checks"
python3 "$srcdir/tests/examples/run.py" "$builddir/examples" >"$out/examples.log" 2>&1 ||
  { tail -n 40 "$out/examples.log"; echo "coverage: example checks FAILED"; exit 1; }
tail -n 1 "$out/examples.log"
echo "== coverage: fuzz replays"
sh "$srcdir/tests/fuzz/replay.sh" "$builddir" "$srcdir"

lcov -q $rc --capture --directory "$builddir/lib" --base-directory "$builddir" \
  --output-file "$out/all.info" 2>"$out/lcov.err"
lcov -q $rc --extract "$out/all.info" '*/lib/*.c' --output-file "$out/lib.info" 2>>"$out/lcov.err"
echo "== coverage of lib/ (per file: lines, branches)"
lcov $rc --list "$out/lib.info" 2>/dev/null | sed -n '1,200p'
echo "== coverage of lib/ (total)"
lcov $rc --summary "$out/lib.info" 2>&1 | tee "$out/summary.txt" | grep -E 'lines|branches'

pct() { sed -n "s/^ *$1\.*: \([0-9.]*\)%.*/\1/p" "$out/summary.txt"; }
below() { awk -v have="$1" -v want="$2" 'BEGIN { exit !(have + 0 < want + 0) }'; }
fail=0
if [ -n "$COVERAGE_MIN_LINES" ] && below "$(pct lines)" "$COVERAGE_MIN_LINES"; then
  echo "coverage: lines $(pct lines)% below the floor of $COVERAGE_MIN_LINES%"; fail=1
fi
if [ -n "$COVERAGE_MIN_BRANCHES" ] && below "$(pct branches)" "$COVERAGE_MIN_BRANCHES"; then
  echo "coverage: branches $(pct branches)% below the floor of $COVERAGE_MIN_BRANCHES%"; fail=1
fi
exit $fail
