#!/bin/sh
# zdevd's command line and start: bad sizes and counts are refused with
# exit status 2 and a message naming the option; --version; in the
# background, every start-up error reaches the starter's standard error with
# exit status 1, the daemon holds none of the starter's output open, writes
# its --pidfile, refuses a second zdevd on its socket or its pidfile,
# ignores SIGHUP, and removes both files on SIGTERM. Skipped (77) where
# zdevd cannot start at all.
# $small holds several words on purpose; cleanup runs from the trap.
# shellcheck disable=SC2086,SC2317
set -u
top=${top_builddir:-.}
zdevd=$top/zdevd
zdevctl=$top/zdevctl
for f in "$zdevd" "$zdevctl"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/zdevd-options-test-XXXXXX) || exit 99
daemons=
cleanup() {
	for pid in $daemons; do
		kill -KILL "$pid" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}
expect_status() { # what expected actual
	[ "$2" = "$3" ] || fail "$1: exit status $3, expected $2"
}
# Waits up to 10 s for process $1 to be gone.
wait_gone() {
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && return 1
		sleep 0.05
	done
}
unset ZDEV_SOCKET
small="--devices 1 --memory 2M"

# -- bad sizes and counts: 2, and "zdevd: --OPTION: 'VALUE': why" (a zdevd
# that took one would serve: timeout ends it)
while read -r option value why; do
	timeout 10 "$zdevd" --foreground --socket "$tmp/bad.sock" $small "--$option" "$value" \
		>"$tmp/bad.out" 2>"$tmp/bad.err"
	expect_status "--$option '$value'" 2 $?
	grep -qF -- "zdevd: --$option: '$value': $why" "$tmp/bad.err" ||
		fail "--$option '$value': no message '$why': $(cat "$tmp/bad.err")"
	[ -s "$tmp/bad.out" ] && fail "--$option '$value': something on stdout"
	[ -e "$tmp/bad.sock" ] && fail "--$option '$value': a socket was made"
done <<'EOF'
memory 0 must be at least 2M
memory -1 not a size
memory 1X not a size
memory 1.5G not a size
memory 3M must be a multiple of 2M
memory 9T must be at most 8T
memory 16777216T must be at most 8T
memory 99999999999999999999 must be at most 8T
chunk 0 must be at least 2M
chunk 4M must be at most --memory (2M)
warm 1M must be at least 2M (or 0)
warm 3M must be a multiple of 2M
warm x not a size
client-memory 1 must be at least 4K (or 0)
client-memory -4K not a size
client-registered x not a size
client-registered 16777216T too large
client-handles -1 not a count
client-handles 1048577 must be at most 1048576
client-handles 2K not a count
client-pending -1 not a count
client-pending 257 must be at most 256
client-pending 8x not a count
devices 0 must be 1 to 8
devices 9 must be 1 to 8
devices -1 not a count
ready-fd -1 not a count
memory-type shared each type must be 'private' or 'coherent'
memory-type private, each type must be 'private' or 'coherent'
memory-type ,coherent each type must be 'private' or 'coherent'
memory-type private,coherent names 2 devices, but --devices is 1
memory-type coherent,coherent,coherent,coherent,coherent,coherent,coherent,coherent,coherent names more devices than zdevd can have
link 0 the bandwidth must be 0.001 to 10000 GB/s
link 0=20001 the bandwidth must be 0.001 to 10000 GB/s
link pcie6 a bandwidth in GB/s (such as 16 or 31.5) or a preset: pcie4, pcie5, cxl
link 16GB a bandwidth in GB/s (such as 16 or 31.5) or a preset: pcie4, pcie5, cxl
link nan a bandwidth in GB/s (such as 16 or 31.5) or a preset: pcie4, pcie5, cxl
link 0= a bandwidth in GB/s (such as 16 or 31.5) or a preset: pcie4, pcie5, cxl
link 1=pcie4 names device 1, but --devices is 1
link 8=16 DEV must be a device's index, 0 to 7
link x=16 DEV must be a device's index, as in 0=VALUE
link =16 DEV must be a device's index, as in 0=VALUE
fault-latency -5 a latency in microseconds (such as 20 or 2.5)
fault-latency 0=20us a latency in microseconds (such as 20 or 2.5)
fault-latency 0=pcie4 a latency in microseconds (such as 20 or 2.5)
fault-latency 2000000 the latency must be at most 1000000 us (1 s)
fault-latency 3=20 names device 3, but --devices is 1
EOF
timeout 10 "$zdevd" --foreground --socket "$tmp/bad.sock" --memory '' 2>"$tmp/bad.err"
expect_status "--memory ''" 2 $?
grep -qF "zdevd: --memory: '': not a size" "$tmp/bad.err" || fail "--memory '': $(cat "$tmp/bad.err")"
timeout 10 "$zdevd" --foreground --socket "$tmp/bad.sock" --memory 10M --chunk 4M 2>"$tmp/bad.err"
expect_status "--memory 10M --chunk 4M" 2 $?
grep -qF "zdevd: --chunk: '4M': must divide --memory (10M)" "$tmp/bad.err" ||
	fail "--chunk 4M of 10M: $(cat "$tmp/bad.err")"
timeout 10 "$zdevd" --foreground --socket "$tmp/bad.sock" stray 2>"$tmp/bad.err"
expect_status "a stray argument" 2 $?
grep -qF "'stray'" "$tmp/bad.err" || fail "a stray argument: $(cat "$tmp/bad.err")"
timeout 10 "$zdevd" --no-such-option 2>/dev/null
expect_status "an unknown option" 2 $?

# -- --version and --help: stdout, 0
out=$("$zdevd" --version)
expect_status "--version" 0 $?
case $out in
"zdevd (zdev) "[0-9]*) ;;
*) fail "--version: '$out'" ;;
esac
"$zdevd" --help | grep -q -- '--pidfile' || fail "--help does not list --pidfile"

# -- can zdevd start here at all? (io_uring, memfds)
"$zdevd" --foreground --socket "$tmp/probe.sock" $small --ready-fd 3 3>"$tmp/probe.ready" \
	2>"$tmp/probe.err" &
probe=$!
i=0
while [ ! -s "$tmp/probe.ready" ] && kill -0 $probe 2>/dev/null && [ $i -lt 200 ]; do
	i=$((i + 1))
	sleep 0.05
done
if [ ! -s "$tmp/probe.ready" ]; then
	kill -KILL $probe 2>/dev/null
	wait $probe
	echo "SKIP: zdevd cannot start here: $(cat "$tmp/probe.err")"
	exit 77
fi
# the sizes that defaults and documentation promise parse and serve
kill -TERM $probe
wait $probe
expect_status "SIGTERM to a zdevd in the foreground" 0 $?
[ -e "$tmp/probe.sock" ] && fail "the socket outlives a zdevd in the foreground"

# -- in the background, with a pipe as stdout and stderr: the starter exits
# 0, and the pipe ends, once the daemon serves; the pidfile names it
sock=$tmp/run/zdevd.sock
pidfile=$tmp/zdevd.pid
{
	"$zdevd" --socket "$sock" --pidfile "$pidfile" $small --client-registered 1T 2>&1
	echo $? >"$tmp/start.status"
} | { timeout 20 cat >"$tmp/start.out"; echo $? >"$tmp/pipe.status"; }
expect_status "a zdevd started in the background" 0 "$(cat "$tmp/start.status")"
expect_status "the pipe zdevd was started with (124: held open)" 0 "$(cat "$tmp/pipe.status")"
[ -s "$tmp/start.out" ] && fail "a zdevd in the background wrote: $(cat "$tmp/start.out")"
pid=$(cat "$pidfile" 2>/dev/null)
case $pid in
'' | *[!0-9]*) fail "the pidfile holds '$pid'"; pid= ;;
esac
if [ -n "$pid" ]; then
	daemons="$daemons $pid"
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = zdevd ] || fail "the pidfile names $pid, no zdevd"
	for fd in 0 1 2; do
		[ "$(readlink "/proc/$pid/fd/$fd")" = /dev/null ] ||
			fail "fd $fd of the daemon: $(readlink "/proc/$pid/fd/$fd")"
	done
	[ "$(readlink "/proc/$pid/cwd")" = / ] || fail "the daemon's cwd: $(readlink "/proc/$pid/cwd")"
fi
[ -S "$sock" ] || fail "no socket once the starter returned"
"$zdevctl" --socket "$sock" status >/dev/null 2>&1 || fail "the daemon does not answer zdevctl"

# -- a second zdevd on the same socket: 1 from the starter, a message
"$zdevd" --socket "$sock" $small >"$tmp/second.out" 2>"$tmp/second.err"
expect_status "a second zdevd on the socket" 1 $?
grep -qF "zdevd: $sock: a zdevd already serves on it" "$tmp/second.err" ||
	fail "a second zdevd on the socket: $(cat "$tmp/second.err")"
timeout 10 "$zdevd" --foreground --socket "$sock" $small 2>/dev/null
expect_status "a second zdevd on the socket, in the foreground" 1 $?

# -- a second zdevd with the same pidfile: refused, the file left alone
"$zdevd" --socket "$tmp/other.sock" --pidfile "$pidfile" $small 2>"$tmp/second.err"
expect_status "a second zdevd with the pidfile" 1 $?
grep -qF -- "zdevd: --pidfile: '$pidfile': zdevd $pid runs with it" "$tmp/second.err" ||
	fail "a second zdevd with the pidfile: $(cat "$tmp/second.err")"
[ "$(cat "$pidfile")" = "$pid" ] || fail "the pidfile was overwritten: $(cat "$pidfile")"
[ -e "$tmp/other.sock" ] && fail "a refused zdevd left its socket"

# -- start-up errors of every kind reach the starter: 1 and a message
: >"$tmp/file"
"$zdevd" --socket "$tmp/file/sub/zdevd.sock" $small 2>"$tmp/dir.err"
expect_status "a socket directory that cannot be made" 1 $?
grep -qF "zdevd: $tmp/file/sub/zdevd.sock: " "$tmp/dir.err" ||
	fail "a socket directory that cannot be made: $(cat "$tmp/dir.err")"
"$zdevd" --socket "$tmp/nopid.sock" --pidfile "$tmp/file/zdevd.pid" $small 2>"$tmp/pid.err"
expect_status "a pidfile that cannot be made" 1 $?
grep -qF -- "zdevd: --pidfile: '$tmp/file/zdevd.pid': " "$tmp/pid.err" ||
	fail "a pidfile that cannot be made: $(cat "$tmp/pid.err")"
[ -e "$tmp/nopid.sock" ] && fail "a zdevd without its pidfile left its socket"

# -- SIGHUP changes nothing; SIGTERM ends the daemon, which removes its files
if [ -n "$pid" ]; then
	kill -HUP "$pid"
	sleep 0.2
	kill -0 "$pid" 2>/dev/null || fail "SIGHUP ended the daemon"
	"$zdevctl" --socket "$sock" status >/dev/null 2>&1 || fail "no answer after SIGHUP"
	kill -TERM "$pid"
	wait_gone "$pid" || fail "the daemon outlived SIGTERM by 10 s"
	[ -e "$pidfile" ] && fail "the pidfile outlives the daemon"
	[ -e "$sock" ] && fail "the socket outlives the daemon"
fi

# -- in the foreground: the pidfile names it, SIGTERM gives 0 and removes it
"$zdevd" --foreground --socket "$tmp/fg.sock" --pidfile "$tmp/fg.pid" $small --ready-fd 3 \
	3>"$tmp/fg.ready" &
fg=$!
i=0
while [ ! -s "$tmp/fg.ready" ] && [ $i -lt 200 ]; do
	i=$((i + 1))
	sleep 0.05
done
[ "$(cat "$tmp/fg.pid" 2>/dev/null)" = $fg ] || fail "--foreground --pidfile: '$(cat "$tmp/fg.pid")', not $fg"
kill -TERM $fg
wait $fg
expect_status "SIGTERM with a pidfile" 0 $?
[ -e "$tmp/fg.pid" ] && fail "the pidfile outlives a zdevd in the foreground"

exit $failed
