#!/bin/sh
# zdevd's device model as zdevctl shows it: the presets' numbers, a
# device's own --link over the one for every device, an explicit
# --fault-latency over a preset's, and a zdevd without the options, whose
# devices have no model and which adds no time. Skipped (77) where zdevd
# cannot start.
set -u
top=${top_builddir:-.}
zdevd=$top/zdevd
zdevctl=$top/zdevctl
for f in "$zdevd" "$zdevctl"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/zdevd-model-test-XXXXXX) || exit 99
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
unset ZDEV_SOCKET

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}

# Starts a zdevd on $tmp/zdevd.sock with the arguments given; exits 77 if
# this machine cannot run one.
start() {
	"$zdevd" --socket "$tmp/zdevd.sock" --foreground --memory 2M --warm 0 "$@" \
		2>"$tmp/zdevd.err" &
	daemon=$!
	for _ in $(seq 200); do
		"$zdevctl" --socket "$tmp/zdevd.sock" status >/dev/null 2>&1 && return 0
		kill -0 "$daemon" 2>/dev/null || break
		sleep 0.05
	done
	if grep -q -i userfaultfd "$tmp/zdevd.err"; then
		echo "SKIP: zdevd cannot start here: $(cat "$tmp/zdevd.err")"
		exit 77
	fi
	echo "FAIL: zdevd $* did not start: $(cat "$tmp/zdevd.err")"
	exit 1
}
stop() {
	kill -TERM "$daemon"
	wait "$daemon" || fail "zdevd exited with status $?"
	daemon=
}
status() {
	"$zdevctl" --socket "$tmp/zdevd.sock" status "$@" >"$tmp/out" 2>"$tmp/err" ||
		fail "zdevctl status $*: $(cat "$tmp/err")"
}
expect() { # what pattern
	grep -q -e "$2" "$tmp/out" || fail "$1: no line like '$2' in: $(cat "$tmp/out")"
}

# -- presets, and what overrides what
start --devices 4 --link pcie4 --link 1=pcie5 --link 2=cxl --fault-latency 2=7.5 --link 3=16
status
expect "pcie4 for every device" '^device 0: model: link 25 GB/s each way, fault latency 30 us; time added 0.000 ms$'
expect "device 1's own pcie5" '^device 1: model: link 50 GB/s each way, fault latency 30 us;'
expect "cxl, its fault latency set" '^device 2: model: link 50 GB/s each way, fault latency 7.5 us;'
expect "device 3's own 16 GB/s" '^device 3: model: link 16 GB/s each way, fault latency 0 us;'
status --json
expect "JSON" '"device":0,.*"model":{"link_gb_per_s":25,"fault_latency_us":30,"added_ms":0.000}'
stop

# -- a fault latency alone, for every device
start --devices 2 --fault-latency 20
status
expect "a fault latency alone" '^device 1: model: no link cost, fault latency 20 us;'
stop

# -- no model: no line about one, and zeros in JSON
start --devices 1
status
grep -q ': model:' "$tmp/out" && fail "no model, yet: $(cat "$tmp/out")"
status --json
expect "JSON without a model" '"model":{"link_gb_per_s":0,"fault_latency_us":0,"added_ms":0.000}'
stop

exit $failed
