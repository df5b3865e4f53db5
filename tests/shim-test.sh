# Sourced by the shell tests that run programs under zdev-run and the shim,
# with $top set to the build tree. POSIX sh.
#
# shim_test_start NAME [FILE...] checks that zdev-run, zdevd, the shim and
# each FILE are built (FAIL otherwise), skips (77) with the reason where the
# shim is built with a sanitizer or zdev-run cannot start a private zdevd,
# and otherwise leaves: $zr and $shim; $tmp, a directory of NAME removed at
# exit; an environment with none of the user's zdev variables, its own
# XDG_RUNTIME_DIR, and ZDEV_PRELOAD, the shim of this build.
shim_test_start() {
	name=$1
	shift
	zr=$top/zdev-run
	shim=$top/.libs/libzdev-preload.so
	for f in "$zr" "$top/zdevd" "$shim" "$@"; do
		[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
	done
	# A shim built with a sanitizer needs its runtime loaded first, which
	# an uninstrumented program does not have.
	if ldd "$shim" | grep -q -e libasan -e libtsan -e libubsan; then
		echo "SKIP: the shim is built with a sanitizer, which cannot be preloaded into these programs"
		exit 77
	fi
	tmp=$(mktemp -d "/tmp/zdev-$name-test-XXXXXX") || exit 99
	trap 'rm -rf "$tmp"' EXIT
	unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS
	mkdir "$tmp/xdg" && chmod 700 "$tmp/xdg"
	export XDG_RUNTIME_DIR="$tmp/xdg" ZDEV_PRELOAD="$shim"
	"$zr" --quiet -- true 2>"$tmp/start.err"
	if [ $? = 125 ]; then
		echo "SKIP: zdev-run cannot start a private zdevd here: $(cat "$tmp/start.err")"
		exit 77
	fi
	failed=0
}

# fail MESSAGE: says what failed; the test goes on, and exits with $failed.
fail() {
	echo "FAIL: $*"
	failed=1
}

# json KEY FILE: the number KEY has in zdev-run's --stats-json FILE.
json() {
	sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2"
}
