#!/bin/sh
# Real, unmodified programs under zdev-run and the shim, with every policy:
# their standard output, the files they write and their exit status must be
# byte for byte what they are without zdev; under stress the statistics must
# show pages that went to the device, CPU faults that brought them back and
# exclusive grants,
# and under evict pages that went, so a shim that does nothing fails.
# Needs userfaultfd (a private zdevd): skipped (77) where zdevd cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
zr=$top/zdev-run
shim=$top/.libs/libzdev-preload.so
for f in "$zr" "$top/zdevd" "$shim"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
# A shim built with a sanitizer needs its runtime loaded first, which an
# uninstrumented program does not have.
if ldd "$shim" | grep -q -e libasan -e libtsan -e libubsan; then
	echo "SKIP: the shim is built with a sanitizer, which cannot be preloaded into these programs"
	exit 77
fi

tmp=$(mktemp -d /tmp/zdev-shim-test-XXXXXX) || exit 99
trap 'rm -rf "$tmp"' EXIT
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS
mkdir "$tmp/xdg" && chmod 700 "$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/xdg" ZDEV_PRELOAD="$shim"
# Stress often, and call a page idle soon, so that short programs see both.
export ZDEV_RATE=200 ZDEV_IDLE_MS=250

"$zr" --quiet -- true 2>"$tmp/start.err"
if [ $? = 125 ]; then
	echo "SKIP: zdev-run cannot start a private zdevd here: $(cat "$tmp/start.err")"
	exit 77
fi

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}
need() {
	command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed (setup.sh installs it)"
}
for p in sort xz python3 perl sqlite3 gcc git awk; do need $p; done
[ $failed = 0 ] || exit 1

# Inputs: a shuffled file of numbers, and a C file to compile.
seq 1 1500000 | awk 'BEGIN { srand(7) } { print int(rand() * 1000000000), $1 }' >"$tmp/numbers"
head -c 30000000 "$tmp/numbers" >"$tmp/text"
cat >"$tmp/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
	unsigned long sum = 0, n = 1 << 22;
	unsigned long *v = malloc(n * sizeof(*v));

	for (unsigned long i = 0; i < n; i++)
		v[i] = i * 2654435761ul;
	for (unsigned long i = 0; i < n; i++)
		sum += v[i] >> 7;
	printf("%lu\n", sum);
	return 0;
}
C
git -C "$tmp" init -q repo && cp "$tmp/prog.c" "$tmp/repo/" &&
	git -C "$tmp/repo" -c user.name=t -c user.email=t@t add prog.c &&
	git -C "$tmp/repo" -c user.name=t -c user.email=t@t commit -q -m one
cat >"$tmp/programs" <<'LIST'
sort	sort -n numbers
sort-parallel	sort -k2,2n --parallel=2 -S 100M numbers
python3	python3 -c 'd = {i: str(i) * 3 for i in range(600000)}; l = sorted(d.values()); print(sum(map(len, l)), l[4242])'
perl	perl -e 'my %h; $h{$_} = $_ x 3 for 1..400000; my $s = 0; $s += length($h{$_}) for keys %h; print "$s\n"'
sqlite3	rm -f t.db && sqlite3 t.db 'PRAGMA cache_size=-100000; CREATE TABLE t(a, b); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) INSERT INTO t SELECT x, hex(x * 7919) FROM c; CREATE INDEX i ON t(b); SELECT count(*), sum(a), min(b) FROM t;'
gcc	gcc -O2 -o prog prog.c && ./prog
git	git -C repo log --stat && git -C repo fsck --full 2>&1
pipeline	seq 1 200000 | awk '{ print $1 * 7 % 1000 }' | sort -n | uniq -c | sh -c 'wc -l; tail -3'
read	python3 -c 'import hashlib; b = bytearray(8 << 20); h = hashlib.md5(); f = open("text", "rb"); [h.update(b[:n]) for n in iter(lambda: f.readinto(b), 0)]; print(h.hexdigest())'
realloc	python3 -c 'b = bytearray(); [b.extend(bytes([i % 251]) * 65536) for i in range(600)]; print(len(b), sum(b[::4096]))'
exit-status	sh -c 'head -c 1000000 text | wc -c; exit 3'
segv	"$SEGV_PROG"
LIST
# A runtime with a SIGSEGV handler of its own, where one is installed.
command -v node >/dev/null 2>&1 &&
	printf 'node\t%s\n' "node -e 'const a = []; for (let i = 0; i < 600000; i++) a.push({ k: i, v: String(i * 7) }); a.sort((x, y) => x.v < y.v ? -1 : 1); console.log(a.length, a[4242].v, JSON.stringify(a).length)'" >>"$tmp/programs"
export SEGV_PROG="$top/tests/segv-prog"

moved_stress=0
moved_evict=0
json() { # key file
	sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2"
}
while IFS='	' read -r name cmd; do
	(cd "$tmp" && sh -c "$cmd") >"$tmp/native.out" 2>/dev/null
	native=$?
	for policy in none stress evict; do
		(cd "$tmp" && "$zr" --quiet --policy "$policy" --stats-json "$tmp/stats.json" \
			-- sh -c "$cmd") >"$tmp/zdev.out" 2>"$tmp/zdev.err"
		status=$?
		if [ $status != $native ]; then
			fail "$name, $policy: exit status $status, natively $native"
			sed 's/^/  | /' "$tmp/zdev.err" | head -5
		fi
		cmp -s "$tmp/native.out" "$tmp/zdev.out" || fail "$name, $policy: the output differs"
		[ -s "$tmp/stats.json" ] || { fail "$name, $policy: no statistics"; continue; }
		to_dev=$(json pages_to_device "$tmp/stats.json")
		faults=$(json cpu_faults "$tmp/stats.json")
		grants=$(json exclusive_grants "$tmp/stats.json")
		case $policy in
		none) [ "$to_dev" = 0 ] || fail "$name, none: $to_dev pages moved" ;;
		stress) [ "$to_dev" -gt 0 ] && [ "$faults" -gt 0 ] && [ "$grants" -gt 0 ] &&
			moved_stress=$((moved_stress + 1)) ;;
		evict) [ "$to_dev" -gt 0 ] && moved_evict=$((moved_evict + 1)) ;;
		esac
		echo "$name, $policy: same output, status $status, $to_dev pages to the device, $faults CPU faults, $grants exclusive grants"
	done
done <"$tmp/programs"
# Every program long enough to meet the policy shows it; the shortest may
# end before a page is picked.
[ $moved_stress -ge 8 ] ||
	fail "stress moved pages, faulted them back in and made some exclusive in only $moved_stress programs"
[ $moved_evict -ge 4 ] || fail "evict moved pages in only $moved_evict programs"
exit $failed
