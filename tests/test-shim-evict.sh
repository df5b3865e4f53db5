#!/bin/sh
# The evict policy and memory a program keeps reading: soft-dirty bits see
# no reads, so such pages look idle every round. They must go to the device
# (the policy works) and come back with the same bytes, but not every other
# round: each time a page comes back it waits longer before it moves again.
# tests/reread-prog reads 4 MiB for 3 s; with a round every 30 ms, moving
# such pages every other round would fault each back about 50 times.
# Needs userfaultfd (a private zdevd): skipped (77) where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
prog=$top/tests/reread-prog
. "$(dirname "$0")/shim-test.sh"
shim_test_start evict "$prog"
export ZDEV_IDLE_MS=30
. "$(dirname "$0")/moving-policy.sh"
why=$(moving_policy_unavailable "$zr")
if [ -n "$why" ]; then
	echo "SKIP: evict moves nothing for this user, which this test is about: $why"
	exit 77
fi

mib=4 seconds=3 pages=1024 most_faults_per_page=12
"$prog" $mib $seconds >"$tmp/native.out" || fail "reread-prog failed natively"
"$zr" --quiet --policy evict --stats-json "$tmp/stats.json" -- "$prog" $mib $seconds \
	>"$tmp/zdev.out" 2>"$tmp/zdev.err" || { fail "reread-prog failed under evict"; cat "$tmp/zdev.err"; }
cmp -s "$tmp/native.out" "$tmp/zdev.out" ||
	fail "the output differs: $(cat "$tmp/zdev.out"), natively $(cat "$tmp/native.out")"
to_dev=$(json pages_to_device "$tmp/stats.json")
faults=$(json cpu_faults "$tmp/stats.json")
echo "reread-prog, $mib MiB read for $seconds s, a round every $ZDEV_IDLE_MS ms: $to_dev pages to the device, $faults CPU faults"
[ "${to_dev:-0}" -ge $pages ] || fail "only ${to_dev:-0} pages went to the device: the read pages must go at least once"
[ "${faults:-0}" -le $((pages * most_faults_per_page)) ] ||
	fail "$faults CPU faults: more than $most_faults_per_page a page, the policy keeps moving pages the program reads"
exit $failed
