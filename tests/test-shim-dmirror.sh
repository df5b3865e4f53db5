#!/bin/sh
# The kernel's test driver files as the shim emulates them
# (zdev-preload(7), "The kernel's test driver"), tested directly by
# tests/dmirror-prog with the shim preloaded, against a zdevd of the test's
# own: open, close, dup and fork, each command's errors and counters, the
# driver's mmap, gup_test, the whole of hmm2.snapshot, and ZDEV_DMIRROR=0.
# dmirror-prog is built as zdev is, so a shim built with a sanitizer is
# preloaded after the sanitizer's runtimes. Needs userfaultfd: skipped (77)
# where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
shim=$top/.libs/libzdev-preload.so
prog=$top/tests/dmirror-prog
for f in "$top/zdevd" "$shim" "$prog"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/zdev-dmirror-test-XXXXXX) || exit 99
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS ZDEV_DMIRROR
sock=$tmp/zdevd.sock

"$top/zdevd" --socket "$sock" --devices 2 --foreground 2>"$tmp/zdevd.err" &
daemon=$!
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
if ! [ -S "$sock" ]; then
	if grep -q -i userfaultfd "$tmp/zdevd.err"; then
		echo "SKIP: zdevd cannot start here: $(cat "$tmp/zdevd.err")"
		exit 77
	fi
	echo "FAIL: zdevd did not start: $(cat "$tmp/zdevd.err")"
	exit 1
fi

# ASan insists on coming first in LD_PRELOAD, before the shim it is in.
runtimes=
for rt in libasan libubsan; do
	path=$(ldd "$shim" | awk -v rt="$rt" 'index($1, rt) == 1 { print $3 }')
	[ -n "$path" ] && runtimes="$runtimes$path:"
done

failed=0
run() { # what, then the environment and the case
	what=$1
	shift
	if env LD_PRELOAD="$runtimes$shim" ZDEV_SOCKET="$sock" "$@" >"$tmp/out" 2>&1; then
		echo "ok: $what"
	else
		echo "FAIL: $what"
		sed 's/^/    /' "$tmp/out"
		failed=1
	fi
}
for case in open-close errors mmap fork gup snapshot; do
	run "$case" "$prog" "$case"
done
run "ZDEV_DMIRROR=0 leaves /dev/hmm_dmirror0 to the system" ZDEV_DMIRROR=0 "$prog" disabled
exit $failed
