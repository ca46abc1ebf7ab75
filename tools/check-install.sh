#!/bin/sh
# What `make install` put in place works for a program outside the tree (run by
# `make installcheck`, so by `make distcheck` too): the header, the static and
# shared libraries, rill.pc and the man pages are there; a program builds with
# nothing but `cc $(pkg-config --cflags --libs rill)` and runs, linked against
# the shared library and against the static one; rill_version(), the header's
# RILL_VERSION_* and pkg-config's version agree; the shared library's soname
# follows its libtool version-info; it exports exactly the public API; the docs
# and example sources are under DOCDIR; `#include <rill.h>` alone gives the AI_*
# flags rill_connect_opts.flags takes.
#
# usage: tools/check-install.sh LIBDIR INCLUDEDIR MANDIR SRCDIR [DOCDIR]
#   (DESTDIR, if set, prefixes the install directories)
# Environment: CC (default cc), PACKAGE_VERSION and RILL_LT_VERSION (from make).
set -eu
libdir=$1 includedir=$2 mandir=$3 srcdir=$4 docdir=${5:-}
destdir=${DESTDIR:-}
cc=${CC:-cc}
work=$(mktemp -d "${TMPDIR:-/tmp}/rill-installcheck.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "check-install: FAILED: $*"; exit 1; }
say() { echo "check-install: $*"; }

L=$destdir$libdir
for f in "$destdir$includedir/rill.h" "$L/librill.a" "$L/pkgconfig/rill.pc" \
         "$destdir$mandir/man3/rill.3" "$destdir$mandir/man3/rill_stream.3" \
         "$destdir$mandir/man3/rill_loop.3" "$destdir$mandir/man3/rill_connect.3" \
         "$destdir$mandir/man3/rill_server.3" "$destdir$mandir/man3/rill_tls.3" \
         "$destdir$mandir/man3/rill_process.3"; do
  [ -f "$f" ] || fail "$f is not installed"
done
if [ -n "$docdir" ]; then
  D=$destdir$docdir
  for f in README.md api.md guide.md semantics.md examples.md embedding.md state-machines.md \
           examples/echo_client.c examples/echo_server.c examples/http_headers.c \
           examples/wait_for_data.c examples/select_embed.c examples/chat_server.c examples/run_lines.c; do
    [ -f "$D/$f" ] || fail "$D/$f is not installed"
  done
  say "docs and example sources installed under $D"
fi
# shellcheck disable=SC2012
so=$(ls "$L"/librill.so.* 2>/dev/null | head -n 1 || true)
[ -n "$so" ] || fail "no shared library librill.so.* in $L"

# pkg-config finds the installed rill.pc (and, with DESTDIR, the staged paths).
PKG_CONFIG_PATH=$L/pkgconfig
PKG_CONFIG_SYSROOT_DIR=$destdir
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
cflags=$(pkg-config --cflags rill) || fail "pkg-config --cflags rill"
libs=$(pkg-config --libs rill) || fail "pkg-config --libs rill"
static_libs=$(pkg-config --static --libs rill) || fail "pkg-config --static --libs rill"
modversion=$(pkg-config --modversion rill)

cat > "$work/version.c" <<'EOF'
#include <rill.h>
#include <stdio.h>
#include <string.h>
#define STR_(x) #x
#define STR(x) STR_(x)
int main(int argc, char **argv)
{
    const char *want = STR(RILL_VERSION_MAJOR) "." STR(RILL_VERSION_MINOR) "." STR(RILL_VERSION_PATCH);
    printf("%s\n", rill_version());
    if (strcmp(rill_version(), want) != 0 || (argc > 1 && strcmp(argv[1], want) != 0)) {
        fprintf(stderr, "rill_version() %s, header %s, pkg-config %s\n",
                rill_version(), want, argc > 1 ? argv[1] : "?");
        return 1;
    }
    return 0;
}
EOF

# The header alone is enough for the AI_* flags (it includes <netdb.h>), in the
# compiler's default mode and in strict C99 with the POSIX.1-2001 feature macro.
cat > "$work/flags.c" <<'EOF'
#include <rill.h>
#include <string.h>
int main(void)
{
    rill_connect_opts o;
    memset(&o, 0, sizeof o);
    o.flags = AI_NUMERICHOST | AI_ADDRCONFIG | AI_V4MAPPED | AI_ALL;
    return o.flags == 0;
}
EOF
for mode in "" "-std=c99 -pedantic -D_POSIX_C_SOURCE=200112L"; do
  # shellcheck disable=SC2086
  $cc $mode $cflags -fsyntax-only "$work/flags.c" || fail "#include <rill.h> without AI_NUMERICHOST ($mode)"
done
say "#include <rill.h> alone gives AI_NUMERICHOST, AI_ADDRCONFIG, AI_V4MAPPED, AI_ALL"

# Shared: exactly the documented command line.
# shellcheck disable=SC2086
$cc $cflags -o "$work/version" "$work/version.c" $libs || fail "building against the shared library"
LD_LIBRARY_PATH=$L "$work/version" "$modversion" >/dev/null ||
  fail "rill_version(), RILL_VERSION_* and pkg-config --modversion ($modversion) disagree"
say "shared: rill_version() $modversion = RILL_VERSION_* = pkg-config --modversion"

# shellcheck disable=SC2086
$cc $cflags -o "$work/wait_for_data" "$srcdir/examples/wait_for_data.c" $libs ||
  fail "building examples/wait_for_data.c with pkg-config"
out=$(LD_LIBRARY_PATH=$L "$work/wait_for_data") || fail "wait_for_data failed: $out"
case $out in
  *"Received: abc"*) say "shared: examples/wait_for_data.c built with pkg-config: $out" ;;
  *) fail "wait_for_data printed: $out" ;;
esac

# Static: the archive and pkg-config's private libraries (c-ares, wolfSSL).
static_libs=$(printf '%s\n' "$static_libs" | sed 's/-lrill\b//')
# shellcheck disable=SC2086
$cc $cflags -o "$work/version-static" "$work/version.c" "$L/librill.a" $static_libs ||
  fail "building against librill.a with pkg-config --static"
"$work/version-static" "$modversion" >/dev/null || fail "the statically linked program failed"
say "static: librill.a with pkg-config --static --libs: ok"

# soname: librill.so.(current - age) for version-info current:revision:age.
if [ -n "${RILL_LT_VERSION:-}" ] && command -v readelf >/dev/null 2>&1; then
  IFS=: read -r current revision age <<EOF
$RILL_LT_VERSION
EOF
  want="librill.so.$((current - age))"
  soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
  [ "$soname" = "$want" ] || fail "soname $soname, version-info $RILL_LT_VERSION wants $want"
  say "soname $soname for version-info $RILL_LT_VERSION (revision $revision)"
fi

CC=$cc sh "$srcdir/tools/check-exports.sh" "$so" "$destdir$includedir/rill.h" ||
  fail "the installed library's exports"
say "ok"
