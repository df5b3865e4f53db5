#!/bin/sh
# zdevd --trace with a real program (examples/migrate) against it: the file
# is a JSON array that a real parser reads once zdevd exited on SIGTERM,
# every event and track as the trace format wants them, and its faults and
# migrations add up to what the program's own statistics say; zdevctl plot
# draws it as an SVG with both pictures, and refuses what is no trace of
# zdevd's; zdev-run refuses --trace with another zdevd's socket.
# Needs userfaultfd: skipped (77) where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
srcdir=$(cd "$(dirname "$0")" && pwd)
zdevctl=$top/zdevctl
for f in "$zdevctl" "$top/zdevd" "$top/zdev-run" "$top/examples/migrate"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
command -v python3 >/dev/null || { echo "FAIL: python3 is not installed (setup.sh installs it)"; exit 1; }

tmp=$(mktemp -d /tmp/zdev-trace-test-XXXXXX) || exit 99
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
unset ZDEV_SOCKET LD_PRELOAD ZDEV_POLICY
export XDG_RUNTIME_DIR="$tmp"
sock=$tmp/zdevd.sock

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}
expect() { # what pattern file
	grep -q -e "$2" "$3" || fail "$1: no line like '$2' in: $(cat "$3")"
}

# -- zdev-run: a trace needs a zdevd of its own
"$top/zdev-run" --socket "$tmp/other.sock" --trace "$tmp/x.json" -- true 2>"$tmp/err"
[ $? = 125 ] || fail "zdev-run --socket --trace: not refused"
expect "zdev-run --socket --trace" "zdev-run's own" "$tmp/err"

# -- zdevd cannot open the trace: it does not start
"$top/zdevd" --foreground --socket "$sock" --trace "$tmp/no/such/dir/t.json" 2>"$tmp/err"
[ $? = 1 ] || fail "zdevd --trace into a missing directory: exit status $?, expected 1"
expect "zdevd --trace into a missing directory" "--trace: $tmp/no/such/dir/t.json: No such file" "$tmp/err"

# -- a real program against a tracing zdevd
"$top/zdevd" --socket "$sock" --foreground --devices 2 --memory 64M \
	--trace "$tmp/trace.json" 2>"$tmp/zdevd.err" &
daemon=$!
for _ in $(seq 200); do
	"$zdevctl" --socket "$sock" status >/dev/null 2>&1 && break
	kill -0 "$daemon" 2>/dev/null || break
	sleep 0.05
done
if ! "$zdevctl" --socket "$sock" status >/dev/null 2>&1; then
	if grep -q -i userfaultfd "$tmp/zdevd.err"; then
		echo "SKIP: zdevd cannot start here: $(cat "$tmp/zdevd.err")"
		exit 77
	fi
	fail "zdevd did not start: $(cat "$tmp/zdevd.err")"
	exit 1
fi
ZDEV_SOCKET=$sock "$top/examples/migrate" >"$tmp/migrate.out" 2>&1 ||
	fail "examples/migrate: $(cat "$tmp/migrate.out")"
kill -TERM "$daemon"
wait "$daemon"
status=$?
daemon=
[ $status = 0 ] || fail "zdevd exited with $status after SIGTERM: $(cat "$tmp/zdevd.err")"

# What the program says zdevd served it (zdev_get_stats), against the trace.
line=$(grep 'zdevd served' "$tmp/migrate.out")
faults=$(echo "$line" | sed -n 's/.*served \([0-9]*\) CPU faults.*/\1/p')
to_dev=$(echo "$line" | sed -n 's/.*to the device \([0-9]*\),.*/\1/p')
to_sys=$(echo "$line" | sed -n 's/.*system memory \([0-9]*\),.*/\1/p')
[ -n "$faults" ] && [ -n "$to_dev" ] && [ -n "$to_sys" ] ||
	fail "examples/migrate printed no statistics: $(cat "$tmp/migrate.out")"
[ "${faults:-0}" -gt 0 ] || fail "examples/migrate saw no CPU fault: nothing to trace"
python3 "$srcdir/trace-check.py" "$tmp/trace.json" cpu_faults="$faults" \
	pages_to_device="$to_dev" pages_to_system="$to_sys" >"$tmp/check.out" 2>&1 ||
	fail "the trace: $(cat "$tmp/check.out")"
# The faulting thread's track, named after the program.
grep -q '"name":"thread_name".*"args":{"name":"migrate"}' "$tmp/trace.json" ||
	fail "no thread named migrate in the trace"
grep -q '"name":"client_connect"' "$tmp/trace.json" || fail "no client_connect in the trace"
grep -q '"name":"client_exit"' "$tmp/trace.json" || fail "no client_exit in the trace"

# -- zdevctl plot
"$zdevctl" plot "$tmp/trace.json" "$tmp/trace.svg" 2>"$tmp/err" ||
	fail "zdevctl plot: $(cat "$tmp/err")"
python3 "$srcdir/svg-check.py" "$tmp/trace.svg" 1 >"$tmp/check.out" 2>&1 ||
	fail "zdevctl plot: $(cat "$tmp/check.out")"
printf '[\n{"name":"process_name","ph":"M","ts":0,"pid":1,"tid":1,"args":{"name":"x"}},\n{"a":1},\n' >"$tmp/bad.json"
"$zdevctl" plot "$tmp/bad.json" "$tmp/bad.svg" 2>"$tmp/err"
[ $? = 4 ] || fail "zdevctl plot of a foreign line: not refused with exit status 4"
expect "zdevctl plot of a foreign line" "bad.json:3: not an event of zdevd's trace" "$tmp/err"
"$zdevctl" plot "$tmp/none.json" "$tmp/none.svg" 2>"$tmp/err"
[ $? = 4 ] || fail "zdevctl plot of a missing file: not refused with exit status 4"
"$zdevctl" plot "$tmp/trace.json" 2>"$tmp/err"
[ $? = 2 ] || fail "zdevctl plot with one argument: not a usage error"

exit $failed
