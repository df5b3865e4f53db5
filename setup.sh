#!/bin/sh
# Installs what zdev needs to build (Debian packages, as root or through sudo),
# then configures and builds it in this tree. Extra arguments go to configure.
set -eu
cd "$(dirname "$0")"

packages="build-essential autoconf automake libtool pkg-config liburing-dev libnuma-dev check liburcu-dev libsystemd-dev
	python3 perl sqlite3 xz-utils git gawk systemd linux-source-6.12 clang libclang-rt-14-dev gdb"
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	as_root=""
	if [ "$(id -u)" -ne 0 ]; then
		# Packages need root; the build and zdev itself do not.
		if ! command -v sudo >/dev/null; then
			echo "setup.sh: these packages are missing and installing them needs root:$missing" >&2
			echo "setup.sh: run it once as root (or install sudo), then again as you" >&2
			exit 1
		fi
		as_root="sudo"
		echo "setup.sh: installing with sudo (packages need root):$missing"
	else
		echo "setup.sh: installing:$missing"
	fi
	$as_root apt-get update -q
	DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -q $missing
fi

[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure "$@"
make -j"$(nproc)"
