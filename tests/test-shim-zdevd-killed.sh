#!/bin/sh
# zdevd is SIGKILLed while an unmodified program runs under the stress
# policy with pages on the device: the program goes on without a device, and
# its output and exit status are what they are without zdev.
# Needs userfaultfd (a zdevd of our own): skipped (77) where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
zr=$top/zdev-run
shim=$top/.libs/libzdev-preload.so
for f in "$zr" "$top/zdevd" "$top/zdevctl" "$shim"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
if ldd "$shim" | grep -q -e libasan -e libtsan -e libubsan; then
	echo "SKIP: the shim is built with a sanitizer, which cannot be preloaded into these programs"
	exit 77
fi
command -v perl >/dev/null || { echo "FAIL: perl is not installed (setup.sh installs it)"; exit 1; }

tmp=$(mktemp -d /tmp/zdev-killed-test-XXXXXX) || exit 99
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS
export ZDEV_PRELOAD="$shim" ZDEV_RATE=500
sock=$tmp/zdevd.sock

. "$(dirname "$0")/moving-policy.sh"

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}

# Builds a hash, then reads all of it again and again for a few seconds.
prog='my %h; $h{$_} = $_ x 3 for 1..300000; my $s = 0;
for my $r (1..40) { $s += length($h{$_}) for keys %h; select(undef, undef, undef, 0.05) }
print "$s\n"; exit 5'
perl -e "$prog" >"$tmp/native.out"
native=$?

for round in 1 2; do
	# env -u: a zdevd built with a sanitizer must not get the shim.
	env -u LD_PRELOAD "$top/zdevd" --socket "$sock" --foreground 2>"$tmp/zdevd.err" &
	daemon=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	if ! [ -S "$sock" ]; then
		if grep -q -i userfaultfd "$tmp/zdevd.err"; then
			echo "SKIP: zdevd cannot start here: $(cat "$tmp/zdevd.err")"
			exit 77
		fi
		fail "zdevd did not start: $(cat "$tmp/zdevd.err")"
		exit 1
	fi
	why=$(ZDEV_SOCKET=$sock moving_policy_unavailable "$zr")
	if [ -n "$why" ]; then
		echo "SKIP: stress moves no page to the device for this user, which this test needs: $why"
		exit 77
	fi
	ZDEV_SOCKET=$sock "$zr" --quiet --policy stress -- perl -e "$prog" \
		>"$tmp/zdev.out" 2>"$tmp/zdev.err" &
	run=$!
	# Wait until the device holds some of the program's pages, then kill.
	used=0
	for _ in $(seq 200); do
		used=$(env -u LD_PRELOAD "$top/zdevctl" --socket "$sock" status 2>/dev/null |
			sed -n 's/^device 0: .* in use (\([0-9]*\) of [0-9]* pages).*/\1/p')
		[ "${used:-0}" -gt 0 ] && break
		sleep 0.02
	done
	kill -KILL "$daemon"
	wait "$daemon" 2>/dev/null
	daemon=
	wait "$run"
	status=$?
	rm -f "$sock"
	[ "${used:-0}" -gt 0 ] || fail "round $round: the device never held a page before the kill"
	[ $status = $native ] || fail "round $round: exit status $status, natively $native"
	cmp -s "$tmp/native.out" "$tmp/zdev.out" ||
		fail "round $round: the output differs: $(head -c 200 "$tmp/zdev.out")"
	grep -q 'zdevd is gone' "$tmp/zdev.err" ||
		fail "round $round: the program never noticed zdevd was gone: $(head -5 "$tmp/zdev.err")"
	echo "round $round: zdevd killed with $used device pages in use; same output, status $status"
done
exit $failed
