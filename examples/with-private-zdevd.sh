#!/bin/sh
# Runs a program against a private zdevd on a temporary socket, then shows
# what the daemon saw and stops it:  with-private-zdevd.sh PROGRAM [ARGS...]
set -eu
bindir=${ZDEV_BINDIR:-$(dirname "$0")/..}
dir=$(mktemp -d /tmp/zdev-demo-XXXXXX)
sock=$dir/zdevd.sock
"$bindir/zdevd" --foreground --socket "$sock" &
zdevd_pid=$!
trap 'kill -TERM $zdevd_pid 2>/dev/null; wait $zdevd_pid 2>/dev/null; rm -rf "$dir"' EXIT
i=0
until "$bindir/zdevctl" --socket "$sock" status >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 200 ]; then
		echo "zdevd did not start" >&2
		exit 1
	fi
	sleep 0.05
done
status=0
ZDEV_SOCKET=$sock "$@" || status=$?
echo "--- zdevctl status: zdevd's devices now that the program has exited (its pages are back)"
"$bindir/zdevctl" --socket "$sock" status
echo "--- zdevctl stats: what zdevd did, in all and on each device"
"$bindir/zdevctl" --socket "$sock" stats
exit $status
