#!/bin/sh
# zdevctl against a zdevd of its own: the status with every client process
# and its device pages (more clients than one answer holds), the stats with
# each device's counters and the latency's resolution, JSON with its schema
# version; unplug and plug of a device a client holds pages on, and their
# errors; and what it says to a wrong command and when no zdevd answers.
# Needs userfaultfd: skipped (77) where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
zdevctl=$top/zdevctl
client=$top/tests/zdevctl-client
for f in "$zdevctl" "$top/zdevd" "$client" "$top/examples/migrate"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/zdevctl-test-XXXXXX) || exit 99
daemon=
cleanup() {
	exec 3>&- 4>&-
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
unset ZDEV_SOCKET LD_PRELOAD
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
# Runs zdevctl with the arguments given; its exit status in $rc.
ctl() {
	"$zdevctl" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}
valid_json() { # what file
	command -v python3 >/dev/null || return 0
	python3 -m json.tool "$2" >/dev/null 2>&1 || fail "$1: not JSON: $(cat "$2")"
}

# -- what zdevctl says without a zdevd
ctl foo
[ $rc = 2 ] || fail "an unknown command: exit status $rc, expected 2"
expect "an unknown command" "^zdevctl: 'foo' is not a command; try zdevctl --help$" "$tmp/err"
ctl --version
[ $rc = 0 ] || fail "--version: exit status $rc"
expect "--version" '^zdevctl (zdev) [0-9.]*, protocol version [0-9]*$' "$tmp/out"
ctl --help
[ $rc = 0 ] || fail "--help: exit status $rc"
expect "--help" "^  stats " "$tmp/out"
expect "--help" "^  unplug DEVICE " "$tmp/out"
ZDEV_SOCKET=$tmp/none.sock ctl status
[ $rc = 1 ] || fail "no zdevd: exit status $rc, expected 1"
expect "no zdevd" "^zdevctl: no zdevd answers on $tmp/none.sock (from \$ZDEV_SOCKET)" "$tmp/err"
expect "no zdevd" "start one with 'zdevd', .*ZDEV_SOCKET" "$tmp/err"
ctl --socket "$tmp/none.sock" stats
[ $rc = 1 ] || fail "no zdevd, --socket: exit status $rc, expected 1"
expect "no zdevd, --socket" "start one with 'zdevd --socket $tmp/none.sock'" "$tmp/err"
ctl status
expect "no zdevd, the default socket" "^zdevctl: no zdevd answers on $tmp/zdev/zdevd.sock (from \$XDG_RUNTIME_DIR)" "$tmp/err"

# -- a zdevd of our own
"$top/zdevd" --socket "$sock" --foreground --devices 2 --memory 64M --memory-type private,coherent 2>"$tmp/zdevd.err" &
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
export ZDEV_SOCKET=$sock

# Five clients, more than one CLIENTS answer holds: the first with 256 pages
# (1 MiB) on device 1, the others with one page on device 0. Each holds its
# pages until its standard input, a fifo, closes.
mkfifo "$tmp/hold"
pids=
for i in 1 2 3 4 5; do
	if [ $i = 1 ]; then args="1 256"; else args="0 1"; fi
	"$client" $args <"$tmp/hold" >"$tmp/client$i.out" 2>"$tmp/client$i.err" 3>&- &
	pids="$pids $!"
	[ $i = 1 ] && exec 3>"$tmp/hold"
done
set -- $pids
first=$1
for i in 1 2 3 4 5; do
	for _ in $(seq 200); do
		[ -s "$tmp/client$i.out" ] && break
		sleep 0.05
	done
	if ! [ -s "$tmp/client$i.out" ]; then
		fail "client $i is not ready: $(cat "$tmp/client$i.err")"
		exit 1
	fi
done

ctl status
[ $rc = 0 ] || fail "status: exit status $rc: $(cat "$tmp/err")"
expect "status" "^zdevd: pid $daemon, up [0-9]* s, socket $sock$" "$tmp/out"
expect "status" "^device 1: device memory 1 MiB of 64 MiB in use (256 of 16384 pages)" "$tmp/out"
expect "status" "^device 0: device memory [0-9]* KiB of 64 MiB in use (4 of 16384 pages)" "$tmp/out"
expect "status" "^device 0: .*; private memory$" "$tmp/out"
expect "status" "^device 1: .*; coherent memory$" "$tmp/out"
expect "status" "^clients: 5 now, 5 served in all$" "$tmp/out"
expect "status" "^  pid $first (zdevctl-client), uid $(id -u), 1 device handle: 256 device pages (1 MiB) on device 1$" \
	"$tmp/out"
listed=$(sed -n 's/^  pid \([0-9]*\) .*/\1/p' "$tmp/out")
[ "$(echo "$listed" | wc -l)" = 5 ] || fail "status: not five clients: $(cat "$tmp/out")"
[ "$listed" = "$(echo "$listed" | sort -n)" ] || fail "status: clients not by pid: $listed"
for p in $pids; do
	echo "$listed" | grep -qx "$p" || fail "status: client $p is not listed: $(cat "$tmp/out")"
done

ctl status --json
[ $rc = 0 ] || fail "status --json: exit status $rc"
valid_json "status --json" "$tmp/out"
expect "status --json" '^{"schema_version":1,"zdevd":{"pid":'"$daemon"',"uptime_s":' "$tmp/out"
expect "status --json" '"devices":\[{"device":0,"memory_type":"private",.*},{"device":1,"memory_type":"coherent",' "$tmp/out"
expect "status --json" '"client_list":\[.*{"pid":'"$first"',"uid":'"$(id -u)"',"command":"zdevctl-client","handles":1,"device_pages":\[0,256\]}' \
	"$tmp/out"

ctl stats
[ $rc = 0 ] || fail "stats: exit status $rc"
expect "stats" "^device faults: 0$" "$tmp/out"
expect "stats" "^pages to device: 260 (1.0 MiB)$" "$tmp/out"
expect "stats" "^fault service latency: no CPU fault served yet$" "$tmp/out"
expect "stats" "^device 1: cpu faults 0, device faults 0, pages to device 256 (1 MiB), to system 0 (0 bytes), .*, peak 1 MiB in use$" \
	"$tmp/out"

# The clients go; a program whose CPU faults bring pages back.
exec 3>&-
for p in $pids; do wait "$p" || fail "client $p: exit status $?"; done
"$top/examples/migrate" >"$tmp/migrate.out" 2>&1 || fail "migrate: $(cat "$tmp/migrate.out")"
ctl stats
expect "stats after faults" "^cpu faults served: 256$" "$tmp/out"
expect "stats after faults" '^fault service latency: p50 in \[[0-9.]* [nmu]*s, [0-9.]* [nmu]*s), p99 in \[.*), max [0-9.]* [nmu]*s$' \
	"$tmp/out"
ctl stats --json
valid_json "stats --json" "$tmp/out"
expect "stats --json" '"device_faults":0,' "$tmp/out"
expect "stats --json" '"fault_latency_us":{"p50":[0-9.]*,"p50_bucket":\[[0-9.]*,[0-9.]*\],"p99":' "$tmp/out"
expect "stats --json" '"devices":\[{"device":0,"cpu_faults":256,' "$tmp/out"
ctl status
expect "status after the clients" "^clients: 0 now, 6 served in all$" "$tmp/out"
expect "status after the clients" "^device 1: device memory 0 bytes of 64 MiB in use (0 of 16384 pages), peak 1 MiB;" "$tmp/out"

# -- unplug and plug: a client's pages come home with their data
mkfifo "$tmp/hold2"
"$client" 1 64 check <"$tmp/hold2" >"$tmp/held.out" 2>"$tmp/held.err" 4>&- &
held=$!
exec 4>"$tmp/hold2"
for _ in $(seq 200); do
	[ -s "$tmp/held.out" ] && break
	sleep 0.05
done
[ -s "$tmp/held.out" ] || fail "the client on device 1 is not ready: $(cat "$tmp/held.err")"
ctl unplug 1
[ $rc = 0 ] || fail "unplug: exit status $rc: $(cat "$tmp/err")"
expect "unplug" "^device 1 unplugged: 64 pages came home$" "$tmp/out"
ctl status
expect "status unplugged" "^device 1: unplugged (zdevctl plug 1 brings it back: 64 MiB, coherent memory)$" "$tmp/out"
expect "status unplugged" "^device 0: device memory 0 bytes of 64 MiB in use" "$tmp/out"
ctl status --json
valid_json "status --json unplugged" "$tmp/out"
expect "status --json unplugged" '{"device":1,"memory_type":"coherent","plugged":false,' "$tmp/out"
expect "status --json unplugged" '{"device":0,"memory_type":"private","plugged":true,' "$tmp/out"
ctl unplug 1
[ $rc = 3 ] || fail "unplug twice: exit status $rc, expected 3"
expect "unplug twice" "^zdevctl: device 1 is unplugged already$" "$tmp/err"
ctl plug 1
[ $rc = 0 ] || fail "plug: exit status $rc: $(cat "$tmp/err")"
expect "plug" "^device 1 plugged$" "$tmp/out"
ctl plug 1
[ $rc = 3 ] || fail "plug twice: exit status $rc, expected 3"
expect "plug twice" "^zdevctl: device 1 is plugged already$" "$tmp/err"
ctl status
expect "status plugged" "^device 1: device memory 0 bytes of 64 MiB in use (0 of 16384 pages), peak 0 bytes; pool 0 bytes in 0 chunks, 0 bytes warm; coherent memory$" "$tmp/out"
ctl unplug 5
[ $rc = 3 ] || fail "unplug of no device: exit status $rc, expected 3"
expect "unplug of no device" "^zdevctl: zdevd has no device 5$" "$tmp/err"
for args in "unplug" "unplug x" "plug 8" "unplug 1 2" "--json unplug 1"; do
	ctl $args
	[ $rc = 2 ] || fail "zdevctl $args: exit status $rc, expected 2"
	[ -s "$tmp/err" ] || fail "zdevctl $args: nothing on standard error"
done
ctl plug 8
expect "plug 8" "^zdevctl: plug: '8' is not a device number (0 to 7)$" "$tmp/err"
exec 4>&-
wait "$held" || fail "the client whose pages came home: exit status $?: $(cat "$tmp/held.err")"

# -- a zdevd killed outright leaves its socket behind: nobody answers there
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
daemon=
# The kernel lets go of the listening socket a moment after the process
# (io_uring's requests on it end asynchronously): meanwhile zdevctl is let
# in and hung up on.
for _ in $(seq 100); do
	ctl status
	grep -q 'hung up' "$tmp/err" || break
	sleep 0.05
done
[ $rc = 1 ] || fail "a dead zdevd's socket: exit status $rc, expected 1"
expect "a dead zdevd's socket" "^zdevctl: no zdevd answers on $sock (from \$ZDEV_SOCKET): Connection refused$" "$tmp/err"

[ $failed = 0 ] && echo "PASS: zdevctl"
exit $failed
