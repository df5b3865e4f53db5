#!/bin/sh
# The policies that move pages need kernel-mode faults: where zdevd cannot
# give them (an ordinary user's userfaultfd with vm.unprivileged_userfaultfd=0),
# the shim observes instead (policy none) and says so once for the whole
# program; where it can, they run as asked and the shim says nothing. Either
# way a program that read(2)s into its large buffers gives the output it
# gives without zdev. Needs userfaultfd: skipped (77) where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
. "$(dirname "$0")/shim-test.sh"
shim_test_start fallback
export ZDEV_RATE=500 ZDEV_IDLE_MS=100

. "$(dirname "$0")/moving-policy.sh"
why=$(moving_policy_unavailable "$zr")
if [ -n "$why" ]; then
	echo "moving policies fall back to none here: $why"
else
	echo "moving policies move pages here"
fi

# 3 MB of numbers: sort reads them with read(2) into a buffer the shim manages.
awk 'BEGIN { srand(7); for (i = 0; i < 400000; i++) print int(rand() * 1000000000) }' \
	>"$tmp/numbers"
sort -n "$tmp/numbers" >"$tmp/native.out"
for policy in stress evict; do
	"$zr" --policy "$policy" --stats-json "$tmp/$policy.json" -- \
		sh -c 'sh -c "sort -n \"\$1\"" sh "$1"; true' sh "$tmp/numbers" \
		>"$tmp/$policy.out" 2>"$tmp/$policy.err"
	status=$?
	[ $status = 0 ] || fail "$policy: exit status $status: $(head -5 "$tmp/$policy.err")"
	cmp -s "$tmp/native.out" "$tmp/$policy.out" || fail "$policy: the output differs"
	said=$(grep -c 'needs kernel-mode faults' "$tmp/$policy.err")
	grep -q "\"policy\":\"$policy\"," "$tmp/$policy.json" ||
		fail "$policy: --stats-json: $(cat "$tmp/$policy.json")"
	if [ -n "$why" ]; then
		# three processes, one message
		[ "$said" = 1 ] || fail "$policy: the fallback said $said times: $(cat "$tmp/$policy.err")"
		grep -q '"policy_in_effect":"none",' "$tmp/$policy.json" ||
			fail "$policy: --stats-json: $(cat "$tmp/$policy.json")"
		grep -q '"pages_to_device":0,' "$tmp/$policy.json" ||
			fail "$policy: pages moved: $(cat "$tmp/$policy.json")"
		grep -q "policy $policy (in effect none: no kernel-mode faults)" "$tmp/$policy.err" ||
			fail "$policy: the summary: $(cat "$tmp/$policy.err")"
	else
		[ "$said" = 0 ] || fail "$policy: a fallback with kernel-mode faults: $(cat "$tmp/$policy.err")"
		grep -q "\"policy_in_effect\":\"$policy\"," "$tmp/$policy.json" ||
			fail "$policy: --stats-json: $(cat "$tmp/$policy.json")"
	fi
	echo "$policy: same output, the fallback said $said times"
done
exit $failed
