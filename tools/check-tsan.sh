#!/bin/sh
# ThreadSanitizer run of the loop suite (threads calling rill_call_soon_threadsafe
# while the loop runs and frees): `tools/check-tsan.sh [builddir]`, or `make check-tsan`.
# Builds a copy of the tracked sources (so an in-place configured tree is left alone).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-tsan}
rm -rf "$build" && mkdir -p "$build/src"
(cd "$src" && git ls-files -z | xargs -0 cp --parents -t "$build/src")
cd "$build/src"
./autogen.sh >/dev/null 2>&1
./configure -q --disable-shared CC="${CC:-clang}" CFLAGS="-g -O1 -fsanitize=thread -fno-omit-frame-pointer" \
  LDFLAGS="-fsanitize=thread"
make -j"$(nproc 2>/dev/null || echo 2)" tests/run_tests >/dev/null
TSAN_OPTIONS="halt_on_error=1 exitcode=66" ./tests/run_tests loop
