#!/usr/bin/env bash
# The portability matrix (README "Portability"). Each cell builds rill from one
# copy of the source tree, in a directory of its own, with its own compiler and
# configure flags, and runs what matters for it:
#
#   posix2001    gcc, -D_POSIX_C_SOURCE=200112L and every configure fallback forced
#                (no accept4, pipe2, MSG_NOSIGNAL, clock_gettime, SOCK_CLOEXEC, epoll);
#                checks which files see extensions; the whole test suite
#   select-only  gcc, configure --without-poll; the whole test suite
#   c89          gcc's C90 checks rill keeps (declarations, comments, VLAs) on lib/
#                and examples/; include/rill.h as C89 and as C++98
#   tcc          Debian's tcc, static library; the whole test suite
#   musl         musl-gcc against musl's headers and libc, Debian's static c-ares,
#                wolfSSL and CUnit linked in (README says why that is ABI-safe);
#                the whole test suite
#   cppcheck     lib/ in the default and in the all-fallbacks configuration
#   clang-tidy   lib/ with the check set in .clang-tidy
#   scan-build   lib/ under the clang static analyzer
#   distcheck    make distcheck: the tarball builds, passes make check, installs,
#                passes make installcheck (tools/check-install.sh) and uninstalls
#
# The gcc and clang builds with -std=c99 -pedantic -Werror, and the suite on each
# backend, are .ci/run's own steps.
#
# usage: tools/ci-matrix.sh [CELL ...]      (no argument: every cell, in the order above)
# Prints one line per cell, then "matrix: N passed, M failed"; exits 1 if any failed.
# Work and logs go to $RILL_MATRIX_DIR (default: a new temporary directory, removed
# when every cell passed); a failed cell's log ends are printed.
# Needs: tools/install-deps.sh tcc musl-tools clang-tools cppcheck clang-tidy
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.." || exit 2
top=$PWD
all_cells="posix2001 select-only c89 tcc musl cppcheck clang-tidy scan-build distcheck"
cells=${*:-$all_cells}
[ "${1:-}" = --run-cell ] && cells=""
jobs=2
cell_timeout=1200

root=${RILL_MATRIX_DIR:-}
keep=1
if [ -z "$root" ]; then
  root=$(mktemp -d "${TMPDIR:-/tmp}/rill-matrix.XXXXXX") || exit 2
  keep=0
fi
mkdir -p "$root" || exit 2
src=$root/src
gcc_cache=$root/gcc.cache
lib_sources=""

# ------------------------------------------------------------------ helpers

# One copy of the tree as git sees it (committed, staged and new files, without
# ignored build products), with configure generated once.
prepare_source() {
  rm -rf "$src" && mkdir -p "$src" || return 1
  if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$top" && git ls-files -z --others --cached --exclude-standard |
       tar --null -T - -cf - 2>/dev/null) | tar -C "$src" -xf - || return 1
  else
    (cd "$top" && tar -cf - .) | tar -C "$src" -xf - || return 1
    (cd "$src" && { [ ! -f Makefile ] || make distclean >/dev/null 2>&1; }) || true
  fi
  (cd "$src" && ./autogen.sh) || return 1
  lib_sources=$(cd "$src" && ls lib/*/*.c)
}

# The compile flags of a library object in build directory $1 (preprocessing only).
lib_cppflags() {
  echo "-DHAVE_CONFIG_H -I$1 -I$src -I$src/include -I$src/lib/core -I$src/lib/io -I$src/lib/loop -I$src/lib/stream -I$src/lib/net $(pkg-config --cflags libcares wolfssl 2>/dev/null)"
}

# Runs tests/run_tests of build directory $1; its summary goes to $summary.
run_suite() {
  local out rc
  out=$(cd "$1" && ./tests/run_tests 2>&1); rc=$?
  printf '%s\n' "$out"
  summary=$(printf '%s\n' "$out" | awk '$1 == "tests" { print $3 " tests run, " $5 " failed" }')
  return $rc
}

configure_in() {   # configure_in DIR ARGS...: a fresh build directory, configured
  local dir=$1; shift
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" && "$src/configure" -q "$@"
}

# Fails (returns 1) when config.h of build directory $1 defines any of the macros.
config_lacks() {
  local dir=$1 m bad=0; shift
  for m in "$@"; do
    if grep -q "^#define $m " "$dir/config.h"; then
      echo "config.h defines $m"; bad=1
    fi
  done
  return $bad
}

# -------------------------------------------------------------------- cells

cell_posix2001() {
  local d=$root/posix2001 f vis ext=""
  configure_in "$d" --cache-file="$gcc_cache" --disable-shared \
    --disable-accept4 --disable-pipe2 --disable-clock-gettime --disable-msg-nosignal \
    --disable-sock-cloexec --disable-epoll --disable-posix-spawn || return 1
  config_lacks "$d" HAVE_ACCEPT4 HAVE_PIPE2 HAVE_CLOCK_GETTIME HAVE_MSG_NOSIGNAL \
    HAVE_SO_NOSIGPIPE HAVE_SOCK_CLOEXEC RILL_HAVE_EPOLL _GNU_SOURCE _DEFAULT_SOURCE || return 1
  # The library's objects alone get the strict macro (the tests pick their own).
  make -j$jobs librill.la CPPFLAGS=-D_POSIX_C_SOURCE=200112L || return 1
  # What each library file sees: only server.c may see extensions, and only for
  # SO_REUSEPORT (nothing in POSIX); signal.c asks for XSI (SA_RESTART).
  for f in $lib_sources; do
    # shellcheck disable=SC2046
    vis=$(gcc -std=c99 $(lib_cppflags "$d") -D_POSIX_C_SOURCE=200112L -E -dM "$src/$f" |
          awk '$2 ~ /^(__USE_GNU|__USE_MISC|_GNU_SOURCE|_DEFAULT_SOURCE)$/ { print $2 }' | sort | tr '\n' ' ')
    if [ -n "$vis" ]; then
      echo "$f sees: $vis"
      ext="$ext ${f##*/}"
    fi
  done
  if [ "$ext" != " server.c" ]; then
    echo "files seeing GNU/BSD extensions:${ext:- none}; expected: server.c (SO_REUSEPORT) only"
    return 1
  fi
  make -j$jobs tests/run_tests || return 1
  run_suite "$d" || return 1
  note="gcc -D_POSIX_C_SOURCE=200112L, all fallbacks (accept+fcntl, pipe+fcntl, SIGPIPE mask, gettimeofday, socket+fcntl, poll); extensions only in server.c; $summary"
}

cell_select_only() {
  local d=$root/select-only
  configure_in "$d" --cache-file="$gcc_cache" --disable-shared --without-poll || return 1
  config_lacks "$d" RILL_HAVE_POLL RILL_HAVE_EPOLL || return 1
  make -j$jobs librill.la tests/run_tests || return 1
  run_suite "$d" || return 1
  note="--without-poll: select backend only; $summary"
}

cell_c89() {
  local d=$root/default f out bad=0 kept
  # The default configuration; cppcheck, clang-tidy and scan-build use it too.
  [ -f "$d/config.h" ] || configure_in "$d" --cache-file="$gcc_cache" --disable-shared || return 1
  cd "$d" || return 1
  # gcc's C90 compatibility warnings, less the C99 features rill keeps on purpose
  # (README "Portability"): long long (uint64_t), a variadic macro (RILL__TRACE) and
  # a flexible array member (resolve.c); gcc cannot turn the last two off alone.
  for f in $lib_sources $(cd "$src" && ls examples/*.c); do
    # shellcheck disable=SC2046
    out=$(gcc -std=c99 -pedantic -Wall -Wextra -Wdeclaration-after-statement -Wc90-c99-compat \
            -Wno-long-long -fsyntax-only $(lib_cppflags "$d") "$src/$f" 2>&1 |
          grep -E ': (warning|error): ' |
          grep -v -e 'ISO C90 does not support flexible array members' \
                  -e 'anonymous variadic macros were introduced in C99')
    if [ -n "$out" ]; then
      printf '%s\n' "$out"; bad=1
    fi
  done
  # shellcheck disable=SC2086
  kept=$(printf '%s\n' $lib_sources | wc -l)
  printf '#include <rill.h>\nint main(void) { return rill_version() == 0; }\n' > c89-header.c
  gcc -std=c89 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$src/include" c89-header.c || bad=1
  g++ -std=c++98 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c++ -I"$src/include" c89-header.c || bad=1
  [ $bad = 0 ] || return 1
  note="no mixed declarations, // comments or VLAs in $kept lib files and examples/; rill.h compiles as C89 and C++98"
}

cell_tcc() {
  local d=$root/tcc epoll
  # wolfSSL's headers make their helpers plain "static" (not inline) for a compiler
  # that is not GCC; tcc emits them, and blake2()'s calls a symbol libwolfssl does
  # not export. WC_INLINE=inline lets tcc drop the unused ones, as gcc does.
  configure_in "$d" CC=tcc --disable-shared CPPFLAGS=-DWC_INLINE=inline || return 1
  epoll="epoll off (glibc hides struct epoll_event's packing from tcc: configure checks)"
  grep -q '^#define RILL_HAVE_EPOLL ' config.h && epoll="epoll on"
  make -j$jobs librill.la tests/run_tests || return 1
  run_suite "$d" || return 1
  note="tcc $(tcc -v 2>/dev/null | awk '{print $3}'), static library, $epoll; $summary"
}

cell_musl() {
  local d=$root/musl inc=$root/musl/inc L=/usr/lib/x86_64-linux-gnu libc
  rm -rf "$d" && mkdir -p "$inc" || return 1
  # Only the headers of c-ares, wolfSSL and CUnit: no glibc header can leak in.
  ln -s /usr/include/ares*.h /usr/include/wolfssl /usr/include/CUnit "$inc/" || return 1
  musl-gcc -std=c99 -O2 -Wall -Wextra -Werror -c "$src/tools/musl-glibc-fortify.c" \
    -o "$d/fortify.o" || return 1
  mkdir -p "$d/build" && cd "$d/build" || return 1
  "$src/configure" -q --disable-shared CC=musl-gcc \
    CARES_CFLAGS="-isystem $inc" CARES_LIBS="$L/libcares.a" \
    WOLFSSL_CFLAGS="-isystem $inc" WOLFSSL_LIBS="$L/libwolfssl.a" \
    CUNIT_CFLAGS="-isystem $inc" CUNIT_LIBS="$L/libcunit.a" LIBS="$d/fortify.o" || return 1
  make -j$jobs librill.la tests/run_tests || return 1
  libc=$(readelf -d tests/run_tests | sed -n 's/.*NEEDED.*\[\(.*\)\].*/\1/p' | tr '\n' ' ')
  case $libc in
    "libc.so ") ;;
    *) echo "tests/run_tests needs: $libc (want musl's libc.so only)"; return 1 ;;
  esac
  readelf -l tests/run_tests | grep -q 'ld-musl' || { echo "not linked by musl's loader"; return 1; }
  run_suite "$d/build" || return 1
  note="musl-gcc, musl's headers and libc.so only, Debian's static c-ares/wolfSSL/CUnit; $summary"
}

cell_cppcheck() {
  local d=$root/default f="$root/posix2001"
  [ -f "$d/config.h" ] || cell_c89 >/dev/null || return 1
  # Checks: error, warning, performance, portability, style. Off, and why:
  # variableScope (rill declares at the top of a function, C90 style, on purpose),
  # constParameter (callback and hook signatures keep their shape).
  local cfg n=0
  for cfg in "$d" "$f"; do
    [ -f "$cfg/config.h" ] || continue
    # shellcheck disable=SC2046
    cppcheck -q --std=c99 --enable=warning,performance,portability,style --inline-suppr \
      --suppress=variableScope --suppress=constParameter --suppress=missingIncludeSystem \
      --error-exitcode=1 $(lib_cppflags "$cfg") -D_POSIX_C_SOURCE=200112L "$src/lib" || return 1
    n=$((n + 1))
  done
  note="$(cppcheck --version), lib/ in $n configurations (default, all fallbacks): clean"
}

cell_clang_tidy() {
  local d=$root/default
  [ -f "$d/config.h" ] || cell_c89 >/dev/null || return 1
  # .clang-tidy (found beside lib/) holds the check set; any finding is an error.
  # shellcheck disable=SC2046,SC2086,SC2016
  (cd "$src" && printf '%s\n' $lib_sources |
     xargs -P$jobs -n1 sh -c 'clang-tidy -quiet "$0" -- -std=c99 '"$(lib_cppflags "$d")"' 2>/dev/null') ||
    return 1
  note="$(clang-tidy --version | sed -n 's/.*LLVM version \([0-9.]*\).*/LLVM \1/p'), .clang-tidy's checks on lib/: clean"
}

cell_scan_build() {
  local d=$root/default out
  [ -f "$d/config.h" ] || cell_c89 >/dev/null || return 1
  cd "$d" || return 1
  make clean >/dev/null 2>&1
  # scan-build hands its compiler wrapper over in CC; make must be told to use it.
  # shellcheck disable=SC2016
  out=$(scan-build -o "$root/scan-build-reports" --status-bugs \
          sh -c 'exec make -j'"$jobs"' librill.la CC="$CC"' 2>&1); local rc=$?
  printf '%s\n' "$out"
  [ $rc = 0 ] || return 1
  printf '%s\n' "$out" | grep -q 'No bugs found' || return 1
  note="clang static analyzer (default checkers) on lib/: no bugs found"
}

cell_distcheck() {
  local d=$root/dist
  configure_in "$d" --cache-file="$gcc_cache" || return 1
  make -j$jobs distcheck DISTCHECK_CONFIGURE_FLAGS="--cache-file=$gcc_cache" || return 1
  # shellcheck disable=SC2012
  note="$(ls rill-*.tar.gz 2>/dev/null | head -n 1): builds out of tree, make check, install, installcheck (pkg-config program, shared and static), uninstall"
}

# --------------------------------------------------------------------- main

# Internal: one cell, in a process of its own (so `timeout` can end all of it).
if [ "${1:-}" = --run-cell ]; then
  lib_sources=$(cd "$src" && ls lib/*/*.c) || exit 1
  fn=cell_${2//-/_}
  note="" summary=""
  $fn || exit 1
  printf '%s' "$note" > "$root/$2.note"
  exit 0
fi

passed=0 failed=0
printf 'matrix: work in %s\n' "$root"
start=$(date +%s)
if ! prepare_source > "$root/source.log" 2>&1; then
  echo "FAIL  source       could not copy the tree and run autogen.sh (see $root/source.log)"
  tail -n 20 "$root/source.log"
  echo "matrix: 0 passed, 1 failed"
  exit 1
fi
for cell in $cells; do
  fn=cell_${cell//-/_}
  if ! declare -F "$fn" >/dev/null; then
    printf 'FAIL  %-12s no such cell (cells: %s)\n' "$cell" "$all_cells"
    failed=$((failed + 1))
    continue
  fi
  log=$root/$cell.log
  rm -f "$root/$cell.note"
  t0=$(date +%s)
  # Each cell runs this script again, bounded in time; its note comes back in a file.
  RILL_MATRIX_DIR=$root timeout "$cell_timeout" "$self" --run-cell "$cell" > "$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  if [ $rc = 0 ] && [ -f "$root/$cell.note" ]; then
    printf 'PASS  %-12s %4ss  %s\n' "$cell" "$secs" "$(cat "$root/$cell.note")"
    passed=$((passed + 1))
  else
    printf 'FAIL  %-12s %4ss  exit %s; the end of %s:\n' "$cell" "$secs" "$rc" "$log"
    tail -n 40 "$log" | sed 's/^/      | /'
    failed=$((failed + 1))
  fi
done
printf 'matrix: %d cells in %ss\n' $((passed + failed)) $(( $(date +%s) - start ))
if [ $failed = 0 ] && [ $keep = 0 ]; then
  chmod -R u+w "$root" 2>/dev/null; rm -rf "$root"
fi
echo "matrix: $passed passed, $failed failed"
[ $failed = 0 ]
