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
. "$(dirname "$0")/shim-test.sh"
shim_test_start shim
# Stress often, and call a page idle soon, so that short programs see both.
export ZDEV_RATE=200 ZDEV_IDLE_MS=250

. "$(dirname "$0")/moving-policy.sh"
why=$(moving_policy_unavailable "$zr")
if [ -n "$why" ]; then
	echo "SKIP: evict and stress move nothing for this user, which this test is about: $why"
	exit 77
fi

# The programs, shared with bench/shim-bench.sh.
. "$(dirname "$0")/shim-programs.sh"
for p in $(shim_missing); do fail "$p is not installed (setup.sh installs it)"; done
[ $failed = 0 ] || exit 1
shim_programs >"$tmp/programs"

moved_stress=0
moved_evict=0
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
