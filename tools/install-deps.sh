#!/bin/sh
# Installs the Debian packages rill needs to build and test, only those missing.
# Runs apt-get (as root, or through sudo when available) only when something is missing.
set -e
pkgs="build-essential autoconf automake libtool pkg-config libc-ares-dev libwolfssl-dev libcunit1-dev python3 openssl $*"
need=""
for p in $pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "installing:$need"
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq $need >/dev/null
