#!/bin/sh
# zdev-run against a running zdevd (a stand-in that only accepts
# connections) with a stand-in shim that writes known statistics: what the
# program sees (stdout, environment, signals, exit status), what zdev-run
# sums, and what it leaves behind. Needs no userfaultfd.
# tests/test-zdev-run-private.sh covers the private zdevd.
set -u
top=${top_builddir:-.}
zr=$top/zdev-run
helper=$top/tests/zdev-run-helper
shim=$top/tests/.libs/libstandin-shim.so
for f in "$zr" "$helper" "$shim"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/zdev-run-test-XXXXXX) || exit 99
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
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
# JSON members zdev-run writes in this exact spelling.
expect_json() { # file member...
	f=$1
	shift
	for m in "$@"; do
		grep -qF "$m" "$f" || fail "--stats-json lacks $m: $(cat "$f")"
	done
}
# Waits up to 10 s for a socket, or a file with something in it.
wait_for() {
	i=0
	while [ ! -S "$1" ] && [ ! -s "$1" ]; do
		i=$((i + 1))
		[ $i -gt 200 ] && return 1
		sleep 0.05
	done
}
# Waits up to 10 s for the background job $1 to end, then kills it and the
# pids that follow; its status.
wait_job() { # pid [pid...]
	i=0
	while [ $i -lt 200 ]; do
		state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
		case $state in Z | '') break ;; esac
		i=$((i + 1))
		sleep 0.05
	done
	if [ $i -ge 200 ]; then
		echo "FAIL: $1 did not end within 10 s: killed"
		failed=1
		kill -KILL "$@" 2>/dev/null
	fi
	wait "$1"
}

unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD STANDIN_SHIM_MALFORMED
mkdir "$tmp/xdg" && chmod 700 "$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/xdg"
export ZDEV_PRELOAD="$shim"

"$helper" --foreground --socket "$tmp/zdevd.sock" &
daemon=$!
wait_for "$tmp/zdevd.sock" || { echo "FAIL: the stand-in zdevd did not start"; exit 1; }
export ZDEV_SOCKET="$tmp/zdevd.sock"

# -- stdout is the program's alone, byte for byte; the summary is on stderr
prog='printf "one\n\ttwo\r\n\001\377"; seq 1 20000; printf "no newline"; echo to-stderr >&2'
sh -c "$prog" >"$tmp/plain.out" 2>/dev/null
"$zr" -- sh -c "$prog" >"$tmp/zr.out" 2>"$tmp/zr.err"
expect_status "a plain run" 0 $?
cmp -s "$tmp/plain.out" "$tmp/zr.out" || fail "stdout under zdev-run differs from the program's own"
grep -q '^to-stderr$' "$tmp/zr.err" || fail "the program's stderr is lost"
grep -q '^zdev-run: .*CPU faults served' "$tmp/zr.err" || fail "no summary on stderr: $(cat "$tmp/zr.err")"

# -- --quiet: nothing of zdev-run's own
"$zr" --quiet -- true >"$tmp/q.out" 2>"$tmp/q.err"
expect_status "--quiet" 0 $?
[ -s "$tmp/q.out" ] && fail "--quiet: something on stdout"
[ -s "$tmp/q.err" ] && fail "--quiet: something on stderr: $(cat "$tmp/q.err")"

# -- exit status: the program's, or 128 + the signal that killed it
"$zr" --quiet -- sh -c 'exit 3'
expect_status "exit 3" 3 $?
"$zr" --quiet --stats-json "$tmp/term.json" -- sh -c 'kill -TERM $$'
expect_status "killed by SIGTERM" 143 $?
expect_json "$tmp/term.json" '"exit_status":143'
"$zr" --quiet -- "$tmp/no-such-program" 2>"$tmp/nf.err"
expect_status "a program that does not exist" 127 $?
grep -q 'no-such-program' "$tmp/nf.err" || fail "no message for a missing program"
printf 'not executable\n' >"$tmp/noexec"
"$zr" --quiet -- "$tmp/noexec" 2>/dev/null
expect_status "a program that cannot be executed" 126 $?

# -- the sums of a program that forks two children, each writing its file
"$zr" --stats-json "$tmp/fork.json" -- sh -c 'sh -c : & sh -c : & wait' 2>"$tmp/fork.err"
expect_status "a program with two children" 0 $?
expect_json "$tmp/fork.json" '"processes":3,' '"exit_status":0,' '"policy":"none",' \
	'"seed":null,' '"cpu_faults":15,' '"device_faults":6,' '"pages_to_device":300,' \
	'"bytes_to_device":1228800,' '"pages_to_system":120,' '"bytes_to_system":491520,' \
	'"exclusive_grants":9,' '"exclusive_revokes":3,' '"peak_device_bytes":3145728,' \
	'"fault_latency_us":{"p50":1.536,"p99":3.000,"max":3.000}' '"stats_files":3,' \
	'"stats_files_skipped":0,' '"zdevd_cpu_seconds":null}'
[ "$(grep -c '^{.*}$' "$tmp/fork.json")" = 1 ] || fail "--stats-json is not one object on one line"
for line in 'sh: 3 processes, exit status 0, policy none' 'CPU faults served: 15, device faults: 6' \
	'pages to the device: 300 (1.2 MiB), back to system memory: 120 (480.0 KiB)' \
	'exclusive access: 9 grants, 3 revokes' 'fault latency: p50 1.5 us, p99 3.0 us, max 3.0 us' \
	'fault latency histogram' 'peak device memory: at most 3.0 MiB'; do
	grep -qF "zdev-run: $line" "$tmp/fork.err" || fail "summary lacks '$line': $(cat "$tmp/fork.err")"
done

# -- the environment the shim reads; the user's other variables stay
LD_PRELOAD=/nonexistent/libother.so ZDEV_MIN_BYTES=4096 "$zr" --quiet --policy stress --seed 42 \
	--stats-json "$tmp/env.json" -- sh -c 'printf "%s\n" "$LD_PRELOAD" "$ZDEV_POLICY" \
	"$ZDEV_SEED" "$ZDEV_MIN_BYTES" "$ZDEV_SOCKET" "$ZDEV_STATS_DIR" >"$1"; \
	[ -d "$ZDEV_STATS_DIR" ] && echo dir >>"$1"' sh "$tmp/env" 2>/dev/null
expect_status "--policy stress --seed 42" 0 $?
real_shim=$(cd "$(dirname "$shim")" && pwd -P)/$(basename "$shim")
{
	echo "$real_shim:/nonexistent/libother.so"
	echo stress
	echo 42
	echo 4096
	echo "$ZDEV_SOCKET"
} >"$tmp/env.expected"
head -n 5 "$tmp/env" | cmp -s - "$tmp/env.expected" ||
	fail "the program's environment: $(cat "$tmp/env"), expected $(cat "$tmp/env.expected")"
[ "$(tail -n 1 "$tmp/env")" = dir ] || fail "ZDEV_STATS_DIR is not a directory while the program runs"
stats_dir=$(sed -n 6p "$tmp/env")
[ -e "$stats_dir" ] && fail "the stats directory $stats_dir is left behind"
[ -e "$(dirname "$stats_dir")" ] && fail "zdev-run's directory $(dirname "$stats_dir") is left behind"
expect_json "$tmp/env.json" '"policy":"stress",' '"seed":42,'

# -- a stress run without a seed gets one, and the summary says how to repeat it
"$zr" --policy stress --stats-json "$tmp/seed.json" -- sh -c 'echo "$ZDEV_SEED" >"$1"' sh "$tmp/seed" \
	2>"$tmp/seed.err"
seed=$(cat "$tmp/seed")
case $seed in
'' | *[!0-9]*) fail "a stress run without --seed: ZDEV_SEED is '$seed'" ;;
*)
	expect_json "$tmp/seed.json" "\"seed\":$seed,"
	grep -qF -- "--seed $seed" "$tmp/seed.err" || fail "the summary does not name the seed $seed"
	;;
esac
ZDEV_POLICY=evict "$zr" --quiet -- sh -c 'echo "$ZDEV_POLICY" >"$1"' sh "$tmp/pol"
[ "$(cat "$tmp/pol")" = evict ] || fail "ZDEV_POLICY of the user's is not kept without --policy"

# -- bad command lines and a zdevd that is not there: 125, a message, no program run
for args in "--policy fast" "--devices 0" "--devices 9" "--memory 1X" "--seed -1" ""; do
	# shellcheck disable=SC2086
	"$zr" $args -- ${args:+touch "$tmp/ran"} 2>"$tmp/bad.err" >/dev/null
	expect_status "zdev-run $args" 125 $?
	[ -s "$tmp/bad.err" ] || fail "zdev-run $args: no message"
	[ -e "$tmp/ran" ] && fail "zdev-run $args: the program ran"
done
ZDEV_SOCKET=$tmp/nobody.sock "$zr" -- touch "$tmp/ran" 2>"$tmp/nobody.err"
expect_status "no zdevd on ZDEV_SOCKET" 125 $?
grep -q 'no zdevd accepts connections' "$tmp/nobody.err" || fail "no zdevd: $(cat "$tmp/nobody.err")"
[ -e "$tmp/ran" ] && fail "no zdevd: the program ran"
ZDEV_PRELOAD=$tmp/none.so "$zr" -- true 2>/dev/null
expect_status "a ZDEV_PRELOAD that is not there" 125 $?

# -- a malformed statistics file: one warning, left out of the sums
STANDIN_SHIM_MALFORMED=1 "$zr" --stats-json "$tmp/bad.json" -- true 2>"$tmp/malformed.err"
expect_status "a malformed stats file" 0 $?
[ "$(grep -c 'not a statistics file' "$tmp/malformed.err")" = 1 ] ||
	fail "a malformed stats file: $(cat "$tmp/malformed.err")"
expect_json "$tmp/bad.json" '"processes":0,' '"stats_files_skipped":1,'

# -- SIGINT to the process group, as Ctrl-C sends it, reaches the program,
#    and zdev-run outlives it
"$helper" pgrp "$zr" --quiet --stats-json "$tmp/int.json" -- sh -c \
	'trap "echo INT >\"\$1\"; exit 7" INT; echo $$ >"$1.ready"; while :; do sleep 0.05; done' \
	sh "$tmp/int" &
pid=$!
if wait_for "$tmp/int.ready"; then
	kill -INT -"$pid"
	wait_job "$pid" -"$pid"
	expect_status "SIGINT to the process group" 7 $?
	[ "$(cat "$tmp/int" 2>/dev/null)" = INT ] || fail "SIGINT did not reach the program"
	expect_json "$tmp/int.json" '"exit_status":7,'
else
	fail "the program under zdev-run did not start"
	kill -KILL -"$pid"
fi

# -- SIGTERM and SIGHUP to zdev-run alone are passed on to the program
for sig in TERM:143 HUP:129; do
	rm -f "$tmp/sig.ready"
	"$zr" --quiet --stats-json "$tmp/sig.json" -- sh -c 'echo $$ >"$1"; exec sleep 30' sh "$tmp/sig.ready" &
	pid=$!
	if wait_for "$tmp/sig.ready"; then
		kill -"${sig%:*}" "$pid"
		wait_job "$pid" "$(cat "$tmp/sig.ready")"
		expect_status "SIG${sig%:*} to zdev-run" "${sig#*:}" $?
		expect_json "$tmp/sig.json" "\"exit_status\":${sig#*:},"
	else
		fail "the program under zdev-run did not start"
		kill -KILL "$pid"
	fi
done

# -- the shim beside zdev-run in a build tree (.libs/), found without ZDEV_PRELOAD
if [ "$(head -c 4 "$zr")" = "$(printf '\177ELF')" ]; then
	mkdir -p "$tmp/bin/.libs"
	cp "$zr" "$tmp/bin/zdev-run"
	cp "$shim" "$tmp/bin/.libs/libzdev-preload.so"
	(unset ZDEV_PRELOAD && "$tmp/bin/zdev-run" --quiet -- sh -c 'echo "$LD_PRELOAD"') >"$tmp/found"
	bin=$(cd "$tmp/bin" && pwd -P)
	[ "$(cat "$tmp/found")" = "$bin/.libs/libzdev-preload.so" ] ||
		fail "the shim beside zdev-run: LD_PRELOAD is '$(cat "$tmp/found")'"
fi

# -- nothing left in the runtime directory
[ -z "$(ls -A "$tmp/xdg")" ] || fail "left in \$XDG_RUNTIME_DIR: $(ls -A "$tmp/xdg")"

[ $failed = 0 ] && echo "PASS: zdev-run with a running zdevd"
exit $failed
