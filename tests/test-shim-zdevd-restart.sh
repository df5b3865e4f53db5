#!/bin/sh
# zdevd is SIGKILLed while an unmodified program runs under the stress
# policy with pages on the device, and a new zdevd starts on the same
# socket: the shim's policy picks the new zdevd up (its pages go to the new
# device; then it is killed too), and the program's output and exit status
# are what they are without zdev.
# Needs userfaultfd (a zdevd of our own) and kernel-mode faults for this
# user (stress moves nothing without them): skipped (77) otherwise.
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

. "$(dirname "$0")/moving-policy.sh"

tmp=$(mktemp -d /tmp/zdev-restart-test-XXXXXX) || exit 99
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS
export ZDEV_PRELOAD="$shim" ZDEV_RATE=500
sock=$tmp/zdevd.sock

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}

# The pages of device 0 in use, as zdevctl says (empty: no answer).
used_pages() {
	env -u LD_PRELOAD "$top/zdevctl" --socket "$sock" status 2>/dev/null |
		sed -n 's/^device 0: .* in use (\([0-9]*\) of [0-9]* pages).*/\1/p'
}

start_zdevd() {
	# env -u: a zdevd built with a sanitizer must not get the shim.
	env -u LD_PRELOAD "$top/zdevd" --socket "$sock" --foreground 2>"$tmp/zdevd.err" &
	daemon=$!
	for _ in $(seq 100); do [ -n "$(used_pages)" ] && return 0; sleep 0.05; done
	if grep -q -i userfaultfd "$tmp/zdevd.err"; then
		echo "SKIP: zdevd cannot start here: $(cat "$tmp/zdevd.err")"
		exit 77
	fi
	fail "zdevd did not start: $(cat "$tmp/zdevd.err")"
	exit 1
}

# Builds a hash, then reads all of it again and again for a few seconds.
prog='my %h; $h{$_} = $_ x 3 for 1..100000; my $s = 0;
for my $r (1..80) { $s += length($h{$_}) for keys %h; select(undef, undef, undef, 0.05) }
print "$s\n"; exit 5'
perl -e "$prog" >"$tmp/native.out"
native=$?

start_zdevd
why=$(ZDEV_SOCKET=$sock moving_policy_unavailable "$zr")
if [ -n "$why" ]; then
	echo "SKIP: stress moves no page to the device for this user, which this test needs: $why"
	exit 77
fi
ZDEV_SOCKET=$sock "$zr" --quiet --policy stress -- perl -e "$prog" \
	>"$tmp/zdev.out" 2>"$tmp/zdev.err" &
run=$!
used=0
for _ in $(seq 200); do
	used=$(used_pages)
	[ "${used:-0}" -gt 0 ] && break
	sleep 0.02
done
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
daemon=
[ "${used:-0}" -gt 0 ] || fail "the device never held a page before the kill"
# The dead zdevd's listener lingers a moment (its io_uring holds it): a new
# zdevd would take it for a live one.
for _ in $(seq 100); do [ -z "$(used_pages)" ] && break; sleep 0.05; done
start_zdevd
# The policy's next calls start a session with the new zdevd.
again=0
while kill -0 "$run" 2>/dev/null; do
	again=$(used_pages)
	[ "${again:-0}" -gt 0 ] && break
	sleep 0.02
done
# Killed in turn, so that the program ends soon, and without losing a byte
# to this zdevd either.
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
daemon=
wait "$run"
status=$?
[ "${again:-0}" -gt 0 ] || fail "the new zdevd never held a page of the program: $(head -5 "$tmp/zdev.err")"
[ $status = $native ] || fail "exit status $status, natively $native"
cmp -s "$tmp/native.out" "$tmp/zdev.out" ||
	fail "the output differs: $(head -c 200 "$tmp/zdev.out")"
[ "$(grep -c 'zdevd is gone' "$tmp/zdev.err")" -ge 2 ] ||
	fail "the program did not notice both zdevds go: $(head -5 "$tmp/zdev.err")"
echo "zdevd killed with $used device pages in use, the new one got $again; same output, status $status"
exit $failed
