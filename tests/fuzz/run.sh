#!/bin/sh
# make fuzz (configured with --enable-fuzz): each libFuzzer target for SECONDS.
# Usage: run.sh BUILDDIR SRCDIR SECONDS [TARGET...]   (targets: read write dns tls connect)
#
# New inputs go to BUILDDIR/tests/fuzz/work/<target>/ (the committed seed corpus in
# SRCDIR/tests/fuzz/corpus/<target>/ is only read); a crash, leak or hang is written to
# BUILDDIR/tests/fuzz/artifacts/ and fails the run. Keep an interesting input by copying
# it into the seed corpus as found-<what>.
set -e
builddir=$1
srcdir=$2
seconds=${3:-60}
shift 3 || shift $#
targets=${*:-read write dns tls connect}
# c-ares 1.18's own hosts-file leak (see tests/lsan.supp) is not ours.
LSAN_OPTIONS="suppressions=$srcdir/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
# A smaller quarantine than ASan's 256 MB: every run allocates and frees 64 KiB buffers,
# and fresh pages for each would halve the speed; use-after-free within a run is still seen.
ASAN_OPTIONS="quarantine_size_mb=16${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export ASAN_OPTIONS
status=0
for t in $targets; do
  case $t in
    read) maxlen=4096 ;;
    write) maxlen=512 ;;
    dns) maxlen=4096 ;;
    tls) maxlen=4096 ;;
    connect) maxlen=256 ;;
    *) echo "run.sh: unknown target $t" >&2; exit 2 ;;
  esac
  work="$builddir/tests/fuzz/work/$t"
  art="$builddir/tests/fuzz/artifacts"
  mkdir -p "$work" "$art"
  echo "== fuzz_$t: $seconds s (new inputs: $work)"
  if "$builddir/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=30 -max_len="$maxlen" \
       -print_final_stats=1 -artifact_prefix="$art/$t-" "$work" "$srcdir/tests/fuzz/corpus/$t" \
       >"$builddir/tests/fuzz/fuzz-$t.log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
      "$builddir/tests/fuzz/fuzz-$t.log" || true
  else
    echo "fuzz_$t FAILED: the input is in $art/; the end of tests/fuzz/fuzz-$t.log:"
    tail -n 40 "$builddir/tests/fuzz/fuzz-$t.log"
    status=1
  fi
done
exit $status
