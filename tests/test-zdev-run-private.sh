#!/bin/sh
# zdev-run with a zdevd of its own: the zdevd beside it in the build tree is
# found, started with the options given, serves while the program runs, and
# is gone afterwards with zdev-run's directory, however the program ends;
# a zdevd that cannot start is reported. Needs userfaultfd: skipped (77)
# where zdevd cannot start.
set -u
top=${top_builddir:-.}
zr=$top/zdev-run
zdevctl=$top/zdevctl
helper=$top/tests/zdev-run-helper
shim=$top/tests/.libs/libstandin-shim.so
for f in "$zr" "$zdevctl" "$top/zdevd" "$helper" "$shim"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/zdev-run-test-XXXXXX) || exit 99
trap 'rm -rf "$tmp"' EXIT

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}
expect_status() { # what expected actual
	[ "$2" = "$3" ] || fail "$1: exit status $3, expected $2"
}
wait_for() {
	i=0
	while [ ! -s "$1" ]; do
		i=$((i + 1))
		[ $i -gt 200 ] && return 1
		sleep 0.05
	done
}
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD STANDIN_ZDEVD_FAIL
mkdir "$tmp/xdg" && chmod 700 "$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/xdg"
export ZDEV_PRELOAD="$shim"

"$zr" --quiet -- true 2>"$tmp/start.err"
status=$?
if [ $status = 125 ] && grep -q -e userfaultfd -e 'exited at start' "$tmp/start.err"; then
	echo "SKIP: zdev-run cannot start a private zdevd here: $(cat "$tmp/start.err")"
	exit 77
fi
expect_status "a first run" 0 $status

# Runs zdev-run with the arguments given (then --), the program recording
# what it sees under the name $tag, and ending with $end.
run() { # tag end zdev-run-args...
	tag=$1
	end=$2
	shift 2
	"$zr" "$@" -- sh -c '
		echo "$ZDEV_SOCKET" >"$1.sock"; echo "$ZDEV_STATS_DIR" >"$1.stats"
		# zdevctl may be built with a sanitizer, whose runtime must come
		# before any preloaded library: it runs without the shim.
		env -u LD_PRELOAD "$2" --socket "$ZDEV_SOCKET" status >"$1.status" 2>&1
		for stat in /proc/[0-9]*/stat; do
			read -r line <"$stat" 2>/dev/null || continue
			case $line in *" (zdevd) "*) set -- "$1" "$2" ${line##*) }
				[ "$4" = "$PPID" ] && echo "${line%% *}" >"$1.zdevd";; esac
		done
		'"$end" sh "$tmp/$tag" "$zdevctl" 2>"$tmp/$tag.err"
}
# zdevd served during the run and is gone with zdev-run's directory.
check_gone() { # tag
	zpid=$(cat "$tmp/$1.zdevd" 2>/dev/null)
	[ -n "$zpid" ] || fail "$1: no zdevd child of zdev-run while the program ran"
	[ -n "$zpid" ] && kill -0 "$zpid" 2>/dev/null && fail "$1: zdevd $zpid still runs"
	sock=$(cat "$tmp/$1.sock")
	[ -e "$(dirname "$sock")" ] && fail "$1: $(dirname "$sock") is left behind"
	grep -q '^device 0:' "$tmp/$1.status" || fail "$1: zdevctl status: $(cat "$tmp/$1.status")"
}

# -- the defaults: two devices of 1 GiB; the summary gives zdevd's CPU time
run default 'echo out' --stats-json "$tmp/default.json" >"$tmp/default.out"
expect_status "a default run" 0 $?
check_gone default
[ "$(cat "$tmp/default.out")" = out ] || fail "stdout: $(cat "$tmp/default.out")"
grep -q '^device 1: device memory .* of 1 GiB in use (.* of 262144 pages)' "$tmp/default.status" || fail "defaults: $(cat "$tmp/default.status")"
# the kernel's test driver's devices: 0 and 1 private, 2 and 3 coherent
for d in 0 1; do
	grep -q "^device $d: .*; private memory\$" "$tmp/default.status" || fail "defaults: device $d: $(cat "$tmp/default.status")"
done
for d in 2 3; do
	grep -q "^device $d: .*; coherent memory\$" "$tmp/default.status" || fail "defaults: device $d: $(cat "$tmp/default.status")"
done
grep -q '^device 4:' "$tmp/default.status" && fail "defaults: more than four devices"
grep -q '^zdev-run: zdevd CPU time: [0-9.]* s user, [0-9.]* s system$' "$tmp/default.err" ||
	fail "no zdevd CPU time in the summary: $(cat "$tmp/default.err")"
grep -q '"zdevd_cpu_seconds":{"user":[0-9.]*,"system":[0-9.]*}}' "$tmp/default.json" ||
	fail "no zdevd CPU time in --stats-json: $(cat "$tmp/default.json")"

# -- --devices and --memory reach zdevd
run sized 'true' --quiet --devices 3 --memory 64M
expect_status "--devices 3 --memory 64M" 0 $?
check_gone sized
grep -q '^device 2: device memory .* of 64 MiB in use (.* of 16384 pages).*; coherent memory$' "$tmp/sized.status" || fail "--devices 3 --memory 64M: $(cat "$tmp/sized.status")"
grep -q '^device 3:' "$tmp/sized.status" && fail "--devices 3: more than three devices"

# -- --memory-type reaches zdevd; the devices it does not name are private
run typed 'true' --quiet --devices 3 --memory 64M --memory-type coherent,private
expect_status "--memory-type coherent,private" 0 $?
check_gone typed
grep -q '^device 0: .*; coherent memory$' "$tmp/typed.status" || fail "--memory-type: $(cat "$tmp/typed.status")"
grep -q '^device 1: .*; private memory$' "$tmp/typed.status" || fail "--memory-type: $(cat "$tmp/typed.status")"
grep -q '^device 2: .*; private memory$' "$tmp/typed.status" || fail "--memory-type: $(cat "$tmp/typed.status")"
"$zr" --devices 1 --memory-type private,coherent -- true 2>"$tmp/typed.err"
expect_status "--memory-type longer than --devices" 125 $?
grep -qF -- "--memory-type: 'private,coherent': names 2 devices, but --devices is 1" "$tmp/typed.err" ||
	fail "--memory-type longer than --devices: $(cat "$tmp/typed.err")"
"$zr" --memory-type shared -- true 2>"$tmp/typed.err"
expect_status "--memory-type shared" 125 $?
grep -qF "each type must be 'private' or 'coherent'" "$tmp/typed.err" ||
	fail "--memory-type shared: $(cat "$tmp/typed.err")"

# -- however the program ends, zdevd is stopped
run three 'exit 3' --quiet
expect_status "exit 3 with a private zdevd" 3 $?
check_gone three
run term 'kill -TERM $$' --quiet
expect_status "SIGTERM with a private zdevd" 143 $?
check_gone term

# -- a program that moves memory itself, through libzdev: the summary gives
# zdevd's count, since the shim counted less (the stand-in's 100 pages)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$zr" --stats-json "$tmp/own.json" -- "$top/examples/migrate" >"$tmp/own.out" 2>"$tmp/own.err"
expect_status "examples/migrate under zdev-run" 0 $?
grep -q '"pages_to_device":1024,.*"pages_to_system":256,' "$tmp/own.json" &&
	grep -q '"cpu_faults":256,' "$tmp/own.json" && grep -q '"counted_by":"zdevd"' "$tmp/own.json" ||
	fail "examples/migrate moved 1024 pages and faulted 256 back: $(cat "$tmp/own.json")"
grep -q 'pages to the device: 1024 (4.0 MiB), back to system memory: 256 (1.0 MiB)' "$tmp/own.err" ||
	fail "examples/migrate's summary: $(cat "$tmp/own.err")"

# -- a zdevd that cannot start: 125, a message, nothing run or left
STANDIN_ZDEVD_FAIL=1 ZDEVD=$helper "$zr" -- touch "$tmp/ran" 2>"$tmp/fail.err"
expect_status "a zdevd that fails at start" 125 $?
grep -q 'exited at start' "$tmp/fail.err" || fail "a zdevd that fails at start: $(cat "$tmp/fail.err")"
[ -e "$tmp/ran" ] && fail "a zdevd that fails at start: the program ran"

# -- ZDEVD names the zdevd to start, with the options zdev-run passes
STANDIN_ZDEVD_LOG=$tmp/args ZDEVD=$helper "$zr" --quiet --devices 4 --memory 2G -- true
expect_status "ZDEVD=stand-in" 0 $?
grep -q -- '--foreground --socket .*/zdevd.sock --devices 4 --memory 2G --warm 0 --memory-type private,private,coherent,coherent$' "$tmp/args" ||
	fail "zdevd's arguments: $(cat "$tmp/args")"
STANDIN_ZDEVD_LOG=$tmp/args ZDEVD=$helper "$zr" --quiet --warm 64M -- true
expect_status "ZDEVD=stand-in, --warm 64M" 0 $?
grep -q -- ' --warm 64M ' "$tmp/args" || fail "zdevd's arguments with --warm 64M: $(cat "$tmp/args")"
"$zr" --quiet --warm 3M -- true 2>"$tmp/warm.err"
expect_status "--warm 3M" 125 $?
grep -q -- "--warm" "$tmp/warm.err" || fail "--warm 3M: $(cat "$tmp/warm.err")"

# -- zdev-run killed outright takes its zdevd along
"$zr" --quiet -- sh -c 'echo $$ $PPID >"$1"; exec sleep 30' sh "$tmp/killed.pid" &
zr_pid=$!
if wait_for "$tmp/killed.pid"; then
	read -r prog parent <"$tmp/killed.pid"
	[ "$parent" = "$zr_pid" ] || fail "the program's parent is $parent, not zdev-run ($zr_pid)"
	zpid=
	for stat in /proc/[0-9]*/stat; do
		read -r line <"$stat" 2>/dev/null || continue
		case $line in *" (zdevd) "*)
			set -- ${line##*) }
			[ "$2" = "$zr_pid" ] && zpid=${line%% *} ;;
		esac
	done
	kill -KILL "$zr_pid"
	wait "$zr_pid" 2>/dev/null
	i=0
	while [ -n "$zpid" ] && kill -0 "$zpid" 2>/dev/null && [ $i -lt 200 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	[ -n "$zpid" ] || fail "no zdevd under zdev-run"
	[ -n "$zpid" ] && kill -0 "$zpid" 2>/dev/null && fail "zdevd $zpid outlived a killed zdev-run"
	kill -TERM "$prog" 2>/dev/null
else
	fail "the program under zdev-run did not start"
	kill -KILL "$zr_pid"
fi
# What a SIGKILL cannot clean up: not zdev-run's to remove any more.
rm -rf "$tmp"/xdg/zdev-run.*

[ -z "$(ls -A "$tmp/xdg")" ] || fail "left in \$XDG_RUNTIME_DIR: $(ls -A "$tmp/xdg")"
[ $failed = 0 ] && echo "PASS: zdev-run with a private zdevd"
exit $failed
