#!/bin/sh
# zdevd socket-activated as systemd does it (systemd-socket-activate): the
# socket exists before zdevd runs, zdevd starts on the first connection,
# takes the passed socket and serves the client, tells NOTIFY_SOCKET READY=1,
# then STOPPING=1 on SIGTERM, and leaves the socket file to its creator, in
# the foreground and in the background. A passed socket of the wrong type is
# refused at start. Needs
# systemd-socket-activate and python3 (setup.sh installs them), and
# userfaultfd: skipped (77) where the client cannot be served.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
client=$top/examples/migrate
for f in "$top/zdevd" "$top/zdevctl" "$client"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
command -v systemd-socket-activate >/dev/null ||
	{ echo "SKIP: systemd-socket-activate is not installed (package systemd)"; exit 77; }
command -v python3 >/dev/null || { echo "FAIL: python3 is not installed (setup.sh installs it)"; exit 1; }

tmp=$(mktemp -d /tmp/zdev-activation-test-XXXXXX) || exit 99
pids=
cleanup() {
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
unset ZDEV_SOCKET LD_PRELOAD NOTIFY_SOCKET LISTEN_FDS LISTEN_PID
# A zdevd that made a socket of its own would make it here.
mkdir -m 700 "$tmp/xdg" && export XDG_RUNTIME_DIR="$tmp/xdg"

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}
wait_for() { # test-args...
	i=0
	until test "$@"; do
		i=$((i + 1))
		[ $i -gt 400 ] && return 1
		sleep 0.05
	done
}
comm_of() {
	cat "/proc/$1/comm" 2>/dev/null
}

# What systemd's notification socket hears, a line a message.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "a") as out:
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            break
        out.write(msg.replace("\n", " ") + "\n")
        out.flush()
        if "STOPPING=1" in msg:
            break
' "$tmp/notify.sock" "$tmp/notify.log" &
pids="$pids $!"
wait_for -S "$tmp/notify.sock" || { echo "FAIL: the notification listener did not start"; exit 1; }

sock=$tmp/zdevd.sock
NOTIFY_SOCKET=$tmp/notify.sock systemd-socket-activate --seqpacket -l "$sock" -E NOTIFY_SOCKET -E XDG_RUNTIME_DIR \
	"$top/zdevd" --foreground --pool-debug --verbose 2>"$tmp/zdevd.err" &
zpid=$!
pids="$pids $zpid"
wait_for -S "$sock" || { echo "FAIL: systemd-socket-activate did not create $sock"; exit 1; }
# No zdevd until a client comes: the socket is systemd-socket-activate's.
sleep 0.2
[ "$(comm_of $zpid)" = zdevd ] && fail "zdevd runs before any client connected"
[ -s "$tmp/notify.log" ] && fail "READY before any client: $(cat "$tmp/notify.log")"

# A zdevd that does not take the socket leaves the client waiting: timeout.
ZDEV_SOCKET=$sock timeout 60 "$client" >"$tmp/client.out" 2>"$tmp/client.err"
status=$?
if [ $status != 0 ] && grep -q -e 'not permitted' -e 'not implemented' "$tmp/client.err"; then
	echo "SKIP: zdevd cannot serve a client here: $(cat "$tmp/client.err")"
	exit 77
fi
if [ $status != 0 ]; then
	fail "the first client, which starts zdevd: exit $status: $(cat "$tmp/client.err")"
	exit 1
fi
grep -q '^migrate: moved 1024 pages to device 0' "$tmp/client.out" ||
	fail "the first client was not served: $(cat "$tmp/client.out")"
# systemd-socket-activate became zdevd (exec), which still serves.
[ "$(comm_of $zpid)" = zdevd ] || fail "zdevd is not running after the first client (pid $zpid: $(comm_of $zpid))"
timeout 60 "$top/zdevctl" --socket "$sock" status >"$tmp/status.out" 2>&1 ||
	fail "zdevctl status after the first client: $(cat "$tmp/status.out")"
ZDEV_SOCKET=$sock timeout 60 "$client" >"$tmp/client2.out" 2>&1 || fail "a second client: $(cat "$tmp/client2.out")"
wait_for -s "$tmp/notify.log" || fail "zdevd sent nothing to NOTIFY_SOCKET"
grep -q 'READY=1' "$tmp/notify.log" || fail "no READY=1: $(cat "$tmp/notify.log")"
grep -q "STATUS=serving 2 devices of 1024 MiB on $sock" "$tmp/notify.log" ||
	fail "no STATUS naming the passed socket: $(cat "$tmp/notify.log")"

kill -TERM $zpid
wait_for ! -d /proc/$zpid || kill -KILL $zpid
wait $zpid
status=$?
[ $status = 0 ] || fail "zdevd exited with status $status after SIGTERM: $(cat "$tmp/zdevd.err")"
wait_for "$(grep -c STOPPING=1 "$tmp/notify.log")" -gt 0 || fail "no STOPPING=1: $(cat "$tmp/notify.log")"
# systemd created the socket file and removes it, not zdevd.
[ -S "$sock" ] || fail "zdevd removed the socket file it was passed"

# In the background too: the started zdevd takes the socket before it forks
# (sd_listen_fds() answers only LISTEN_PID), the child serves it, and the
# starter exits 0. A child that made a socket of its own instead would leave
# the client waiting: timeout.
bg=$tmp/bg.sock
systemd-socket-activate --seqpacket -l "$bg" -E XDG_RUNTIME_DIR \
	"$top/zdevd" --pidfile "$tmp/bg.pid" 2>"$tmp/bg.err" &
bpid=$!
pids="$pids $bpid"
wait_for -S "$bg" || fail "systemd-socket-activate did not create $bg"
ZDEV_SOCKET=$bg timeout 30 "$client" >"$tmp/bg.out" 2>&1 ||
	fail "a client of zdevd in the background: $(cat "$tmp/bg.out") $(cat "$tmp/bg.err")"
wait_for ! -d /proc/$bpid || kill -KILL $bpid
wait $bpid
status=$?
[ $status = 0 ] || fail "the starter of zdevd in the background exited $status: $(cat "$tmp/bg.err")"
[ -e "$XDG_RUNTIME_DIR/zdev/zdevd.sock" ] && fail "zdevd in the background made a socket of its own"
if wait_for -s "$tmp/bg.pid"; then
	child=$(cat "$tmp/bg.pid")
	pids="$pids $child"
	kill -TERM "$child"
	wait_for ! -d "/proc/$child" || fail "zdevd in the background did not stop on SIGTERM"
	[ -S "$bg" ] || fail "zdevd in the background removed the socket file it was passed"
else
	fail "zdevd in the background wrote no pidfile"
fi

# A passed socket zdevd cannot serve (a stream socket) stops it at start.
stream=$tmp/stream.sock
systemd-socket-activate -l "$stream" -E XDG_RUNTIME_DIR "$top/zdevd" --foreground 2>"$tmp/stream.err" &
spid=$!
pids="$pids $spid"
wait_for -S "$stream" || fail "systemd-socket-activate did not create $stream"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$stream"
wait_for ! -d /proc/$spid || kill -KILL $spid
wait $spid
status=$?
[ $status != 0 ] || fail "zdevd served a stream socket"
grep -q 'not a listening AF_UNIX SOCK_SEQPACKET socket' "$tmp/stream.err" ||
	fail "zdevd did not say why it refused a stream socket: $(cat "$tmp/stream.err")"

[ $failed = 0 ] && echo "PASS: socket-activated zdevd"
exit $failed
