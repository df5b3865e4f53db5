#!/bin/sh
# The kernel's test driver files as the shim emulates them
# (zdev-preload(7), "The kernel's test driver"), tested directly by
# tests/dmirror-prog under zdev-run: open, close, dup and fork, each
# command's errors and counters, the driver's mmap, gup_test, the whole of
# hmm2.snapshot, and ZDEV_DMIRROR=0. Needs userfaultfd (a private zdevd):
# skipped (77) where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
zr=$top/zdev-run
prog=$top/tests/dmirror-prog
for f in "$zr" "$top/zdevd" "$top/.libs/libzdev-preload.so" "$prog"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/zdev-dmirror-test-XXXXXX) || exit 99
trap 'rm -rf "$tmp"' EXIT
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS ZDEV_DMIRROR
mkdir "$tmp/xdg" && chmod 700 "$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/xdg" ZDEV_PRELOAD="$top/.libs/libzdev-preload.so"

"$zr" --quiet -- true 2>"$tmp/start.err"
if [ $? = 125 ]; then
	echo "SKIP: zdev-run cannot start a private zdevd here: $(cat "$tmp/start.err")"
	exit 77
fi

failed=0
for case in open-close errors mmap fork gup snapshot; do
	if "$zr" --quiet -- "$prog" "$case" >"$tmp/out" 2>&1; then
		echo "ok: $case"
	else
		echo "FAIL: $case"
		sed 's/^/    /' "$tmp/out"
		failed=1
	fi
done
if ZDEV_DMIRROR=0 "$zr" --quiet -- "$prog" disabled >"$tmp/out" 2>&1; then
	echo "ok: ZDEV_DMIRROR=0 leaves /dev/hmm_dmirror0 to the system"
else
	echo "FAIL: ZDEV_DMIRROR=0"
	sed 's/^/    /' "$tmp/out"
	failed=1
fi
exit $failed
