#!/bin/sh
# zdevd --group: the socket is 0660 and of the group, in a directory the
# group may enter; members are served, by a supplementary group or their
# primary one, and other users are refused, by the socket's mode and, where
# the socket is open to all (socket activation), by zdevd itself with
# -EACCES and one log line. A zdevd without --group refuses other users
# the same way. Members may not unplug a device: only root and zdevd's
# user. Needs root (it adds a group and two users, removed after),
# setpriv, and userfaultfd: skipped (77) otherwise.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
client=$top/examples/migrate
for f in "$top/zdevd" "$top/zdevctl" "$client"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: adding a group and users needs root"; exit 77; }
for c in setpriv groupadd useradd; do
	command -v $c >/dev/null || { echo "SKIP: $c is not installed"; exit 77; }
done

tag=zdevt$$
group=$tag-g
member=$tag-m
outsider=$tag-o
tmp=$(mktemp -d /tmp/zdev-group-test-XXXXXX) || exit 99
pids=
cleanup() {
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	userdel "$member" 2>/dev/null
	userdel "$outsider" 2>/dev/null
	groupdel "$group" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
unset ZDEV_SOCKET LD_PRELOAD NOTIFY_SOCKET LISTEN_FDS LISTEN_PID
mkdir -m 700 "$tmp/xdg" && export XDG_RUNTIME_DIR="$tmp/xdg"
chmod 755 "$tmp"

# Another program may hold the user database's lock for a moment.
retry() {
	i=0
	until "$@" 2>"$tmp/retry.err"; do
		i=$((i + 1))
		[ $i -gt 20 ] && { echo "FAIL: $*: $(cat "$tmp/retry.err")"; exit 1; }
		sleep 0.2
	done
}
retry groupadd --system "$group"
retry useradd --system --no-create-home --shell /usr/sbin/nologin --groups "$group" "$member"
retry useradd --system --no-create-home --shell /usr/sbin/nologin "$outsider"
if ! setpriv --reuid="$outsider" --regid="$outsider" --clear-groups test -x "$client"; then
	echo "SKIP: another user cannot run $client (a directory above it is private)"
	exit 77
fi

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
# The client as user $1 with the setpriv group options that follow.
as() { # user out setpriv-options...
	user=$1
	out=$2
	shift 2
	ZDEV_SOCKET=$sock timeout 60 setpriv --reuid="$user" "$@" "$client" >"$out" 2>&1
}
expect_served() { # what out
	grep -q '^migrate: moved 1024 pages to device 0' "$2" || fail "$1 is not served: $(cat "$2")"
}
expect_refused() { # what out
	grep -q '^zdev_open: Permission denied' "$2" || fail "$1 is not refused with EACCES: $(cat "$2")"
}

# -- zdevd creates the socket
sock=$tmp/run/zdevd.sock
"$top/zdevd" --foreground --group "$group" --socket "$sock" 2>"$tmp/zdevd.err" &
zpid=$!
pids="$pids $zpid"
wait_for -S "$sock" || { echo "FAIL: zdevd did not start: $(cat "$tmp/zdevd.err")"; exit 1; }
ZDEV_SOCKET=$sock timeout 60 "$client" >"$tmp/root.out" 2>&1
if [ $? != 0 ] && grep -q -e 'not permitted' -e 'not implemented' "$tmp/root.out"; then
	echo "SKIP: zdevd cannot serve a client here: $(cat "$tmp/root.out")"
	exit 77
fi
expect_served "zdevd's own user" "$tmp/root.out"
[ "$(stat -c '%a %G' "$sock")" = "660 $group" ] ||
	fail "the socket is $(stat -c '%a %G' "$sock"), not 660 $group"
[ "$(stat -c '%a %G' "$tmp/run")" = "750 $group" ] ||
	fail "the socket's directory is $(stat -c '%a %G' "$tmp/run"), not 750 $group"
as "$member" "$tmp/member.out" --regid="$member" --init-groups
expect_served "a member by a supplementary group" "$tmp/member.out"
as "$outsider" "$tmp/primary.out" --regid="$group" --clear-groups
expect_served "a user whose primary group is the group" "$tmp/primary.out"
as "$outsider" "$tmp/outsider.out" --regid="$outsider" --init-groups
expect_refused "another user" "$tmp/outsider.out"
# Only root and zdevd's own user may take a device from everyone: a member
# is refused with EPERM, and the refusal logged once.
setpriv --reuid="$member" --regid="$member" --init-groups \
	timeout 60 "$top/zdevctl" --socket "$sock" unplug 0 >"$tmp/unplug-member.out" 2>&1
rc=$?
[ $rc = 3 ] || fail "a member's unplug: exit status $rc, expected 3: $(cat "$tmp/unplug-member.out")"
grep -q '^zdevctl: unplug device 0: Operation not permitted' "$tmp/unplug-member.out" ||
	fail "a member's unplug is not refused with EPERM: $(cat "$tmp/unplug-member.out")"
[ "$(grep -c 'may not unplug devices' "$tmp/zdevd.err")" = 1 ] ||
	fail "a member's unplug is not logged once: $(cat "$tmp/zdevd.err")"
"$top/zdevctl" --socket "$sock" status >"$tmp/status.out" 2>&1
grep -q unplugged "$tmp/status.out" && fail "a member's unplug unplugged: $(cat "$tmp/status.out")"
"$top/zdevctl" --socket "$sock" unplug 0 >"$tmp/unplug-root.out" 2>&1 ||
	fail "root's unplug: $(cat "$tmp/unplug-root.out")"
"$top/zdevctl" --socket "$sock" plug 0 >"$tmp/plug-root.out" 2>&1 ||
	fail "root's plug: $(cat "$tmp/plug-root.out")"
kill -TERM $zpid
wait $zpid || fail "zdevd --group exited with $?: $(cat "$tmp/zdevd.err")"

# -- a socket open to all, as a unit's SocketMode=0666 makes it: zdevd refuses alone
activated() { # tag zdevd-args...
	tag=$1
	shift
	sock=$tmp/$tag.sock
	systemd-socket-activate --seqpacket -l "$sock" -E XDG_RUNTIME_DIR \
		"$top/zdevd" --foreground "$@" 2>"$tmp/$tag.err" &
	zpid=$!
	pids="$pids $zpid"
	wait_for -S "$sock" || { echo "FAIL: $tag: no socket"; exit 1; }
	chmod 666 "$sock"
}
stop() { # tag
	kill -TERM $zpid
	wait_for ! -d /proc/$zpid || kill -KILL $zpid
	wait $zpid || fail "$1: zdevd exited with $?: $(cat "$tmp/$1.err")"
	[ "$(grep -c 'refusing pid' "$tmp/$1.err")" = "$2" ] ||
		fail "$1: $2 refusals expected in zdevd's log: $(cat "$tmp/$1.err")"
	grep -q 'closing its connection' "$tmp/$1.err" &&
		fail "$1: a refused peer logged twice: $(cat "$tmp/$1.err")"
}
if command -v systemd-socket-activate >/dev/null; then
	activated open --group "$group"
	as "$member" "$tmp/open-member.out" --regid="$member" --init-groups
	expect_served "a member (passed socket)" "$tmp/open-member.out"
	as "$outsider" "$tmp/open-outsider.out" --regid="$outsider" --init-groups
	expect_refused "another user (passed socket)" "$tmp/open-outsider.out"
	setpriv --reuid="$outsider" --regid="$outsider" --init-groups \
		timeout 60 "$top/zdevctl" --socket "$sock" status >"$tmp/open-zdevctl.out" 2>&1
	grep -q 'Permission denied' "$tmp/open-zdevctl.out" ||
		fail "zdevctl status as another user is not refused: $(cat "$tmp/open-zdevctl.out")"
	stop open 2

	activated nogroup
	as "$member" "$tmp/nogroup.out" --regid="$member" --init-groups
	expect_refused "another user (no --group)" "$tmp/nogroup.out"
	stop nogroup 1
else
	echo "systemd-socket-activate is not installed: zdevd's own refusal is not tested"
fi

[ $failed = 0 ] && echo "PASS: zdevd --group"
exit $failed
