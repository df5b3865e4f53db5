#!/bin/sh
# Real, unmodified programs (tests/shim-programs.sh, which
# bench/shim-bench.sh times) under zdev-run and the shim, with every policy:
# their standard output, the files they write and their exit status must be
# byte for byte what they are without zdev; under stress the statistics must
# show pages that went to the device, CPU faults that brought them back and
# exclusive grants,
# and under evict pages that went, so a shim that does nothing fails.
# Needs userfaultfd (a private zdevd): skipped (77) where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
zr=$top/zdev-run
shim=$top/.libs/libzdev-preload.so
for f in "$zr" "$top/zdevd" "$shim"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
# A shim built with a sanitizer needs its runtime loaded first, which an
# uninstrumented program does not have.
if ldd "$shim" | grep -q -e libasan -e libtsan -e libubsan; then
	echo "SKIP: the shim is built with a sanitizer, which cannot be preloaded into these programs"
	exit 77
fi

tmp=$(mktemp -d /tmp/zdev-shim-test-XXXXXX) || exit 99
trap 'rm -rf "$tmp"' EXIT
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS
mkdir "$tmp/xdg" && chmod 700 "$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/xdg" ZDEV_PRELOAD="$shim"
# Stress often, and call a page idle soon, so that short programs see both.
export ZDEV_RATE=200 ZDEV_IDLE_MS=250

"$zr" --quiet -- true 2>"$tmp/start.err"
if [ $? = 125 ]; then
	echo "SKIP: zdev-run cannot start a private zdevd here: $(cat "$tmp/start.err")"
	exit 77
fi

. "$(dirname "$0")/moving-policy.sh"
why=$(moving_policy_unavailable "$zr")
if [ -n "$why" ]; then
	echo "SKIP: evict and stress move nothing for this user, which this test is about: $why"
	exit 77
fi

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}
# The programs, shared with bench/shim-bench.sh.
. "$(dirname "$0")/shim-programs.sh"
for p in $(shim_missing); do fail "$p is not installed (setup.sh installs it)"; done
[ $failed = 0 ] || exit 1
shim_programs >"$tmp/programs"

moved_stress=0
moved_evict=0
json() { # key file
	sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2"
}
while IFS='	' read -r name input compare cmd; do
	shim_prepare "$tmp" "$input"
	(cd "$tmp" && sh -c "$cmd") >"$tmp/native.out" 2>/dev/null
	native=$?
	shim_take_file "$tmp" "$compare" "$tmp/native.file"
	for policy in none stress evict; do
		rm -f "$tmp/stats.json"
		(cd "$tmp" && "$zr" --quiet --policy "$policy" --stats-json "$tmp/stats.json" \
			-- sh -c "$cmd") >"$tmp/zdev.out" 2>"$tmp/zdev.err"
		status=$?
		if [ $status != $native ]; then
			fail "$name, $policy: exit status $status, natively $native"
			sed 's/^/  | /' "$tmp/zdev.err" | head -5
		fi
		cmp -s "$tmp/native.out" "$tmp/zdev.out" || fail "$name, $policy: the output differs"
		shim_take_file "$tmp" "$compare" "$tmp/zdev.file"
		shim_same_taken "$tmp/native.file" "$tmp/zdev.file" ||
			fail "$name, $policy: $compare differs"
		[ -s "$tmp/stats.json" ] || { fail "$name, $policy: no statistics"; continue; }
		to_dev=$(json pages_to_device "$tmp/stats.json")
		faults=$(json cpu_faults "$tmp/stats.json")
		grants=$(json exclusive_grants "$tmp/stats.json")
		case $policy in
		none) [ "$to_dev" = 0 ] || fail "$name, none: $to_dev pages moved" ;;
		stress) [ "$to_dev" -gt 0 ] && [ "$faults" -gt 0 ] && [ "$grants" -gt 0 ] &&
			moved_stress=$((moved_stress + 1)) ;;
		evict) [ "$to_dev" -gt 0 ] && moved_evict=$((moved_evict + 1)) ;;
		esac
		echo "$name, $policy: same output, status $status, $to_dev pages to the device, $faults CPU faults, $grants exclusive grants"
	done
done <"$tmp/programs"
# Every program long enough to meet the policy shows it; the shortest may
# end before a page is picked.
[ $moved_stress -ge 8 ] ||
	fail "stress moved pages, faulted them back in and made some exclusive in only $moved_stress programs"
[ $moved_evict -ge 4 ] || fail "evict moved pages in only $moved_evict programs"
exit $failed
