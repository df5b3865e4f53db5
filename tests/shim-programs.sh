# Sourced by tests/test-shim-programs.sh and bench/shim-bench.sh: the real,
# unmodified programs both run natively and under zdev-run, so that what the
# test checks is what the benchmark times. POSIX sh.
#
# The caller sets top (the build tree, absolute) before sourcing.
#
# shim_programs prints one entry a line, its fields separated by tabs:
#
#   name	input	compare	command
#
#   input	what shim_prepare makes in the work directory first:
#		numbers (1.5 million shuffled lines), text (30 MB of them),
#		cfile (prog.c), repo (a git repository), or - for nothing
#   compare	what must be byte for byte the same as natively besides the
#		standard output and the exit status: - or the name of a file
#		the command writes in the work directory
#   command	run by sh -c in the work directory
#
# Each command is deterministic: the same output every run, with or without
# zdev.

# The tools the entries use; setup.sh installs them. node is optional.
SHIM_PROGRAMS_NEED="sort xz python3 perl sqlite3 gcc git awk"
export SEGV_PROG="$top/tests/segv-prog"

shim_programs() {
	cat <<'LIST'
sort	numbers	-	sort -n numbers
sort-parallel	numbers	sorted	sort -k2,2n --parallel=2 -S 100M -o sorted numbers
xz	text	text.xz	head -c 10000000 text | xz -T2 -3 --block-size=2MiB -c >text.xz && xz -T2 -d -c text.xz | cksum
python3	-	-	python3 -c 'd = {i: str(i) * 3 for i in range(600000)}; l = sorted(d.values()); print(sum(map(len, l)), l[4242])'
perl	-	-	perl -e 'my %h; $h{$_} = $_ x 3 for 1..400000; my $s = 0; $s += length($h{$_}) for keys %h; print "$s\n"'
sqlite3	-	-	rm -f t.db && sqlite3 t.db 'PRAGMA cache_size=-100000; CREATE TABLE t(a, b); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) INSERT INTO t SELECT x, hex(x * 7919) FROM c; CREATE INDEX i ON t(b); SELECT count(*), sum(a), min(b) FROM t;'
gcc	cfile	prog	gcc -O2 -o prog prog.c && ./prog
git	repo	-	git -C repo log --stat && git -C repo fsck --full 2>&1
pipeline	-	-	seq 1 200000 | awk '{ print $1 * 7 % 1000 }' | sort -n | uniq -c | sh -c 'wc -l; tail -3'
read	text	-	python3 -c 'import hashlib; b = bytearray(8 << 20); h = hashlib.md5(); f = open("text", "rb"); [h.update(b[:n]) for n in iter(lambda: f.readinto(b), 0)]; print(h.hexdigest())'
realloc	-	-	python3 -c 'b = bytearray(); [b.extend(bytes([i % 251]) * 65536) for i in range(600)]; print(len(b), sum(b[::4096]))'
exit-status	text	-	sh -c 'head -c 1000000 text | wc -c; exit 3'
segv	-	-	"$SEGV_PROG"
LIST
	# A runtime with a SIGSEGV handler of its own, where one is installed.
	if command -v node >/dev/null 2>&1; then
		printf 'node\t-\t-\t%s\n' "node -e 'const a = []; for (let i = 0; i < 600000; i++) a.push({ k: i, v: String(i * 7) }); a.sort((x, y) => x.v < y.v ? -1 : 1); console.log(a.length, a[4242].v, JSON.stringify(a).length)'"
	fi
}

# The tools of SHIM_PROGRAMS_NEED that are missing, one a line.
shim_missing() {
	for p in $SHIM_PROGRAMS_NEED; do
		command -v "$p" >/dev/null 2>&1 || echo "$p"
	done
}

# Makes an entry's input in dir, once.
shim_prepare() { # dir input
	case $2 in
	numbers | text)
		[ -e "$1/numbers" ] ||
			seq 1 1500000 | awk 'BEGIN { srand(7) } { print int(rand() * 1000000000), $1 }' >"$1/numbers"
		[ "$2" = numbers ] || [ -e "$1/text" ] || head -c 30000000 "$1/numbers" >"$1/text"
		;;
	cfile)
		[ -e "$1/prog.c" ] || cat >"$1/prog.c" <<'C'
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
		;;
	repo)
		[ -e "$1/repo" ] && return 0
		shim_prepare "$1" cfile
		git -C "$1" init -q repo && cp "$1/prog.c" "$1/repo/" &&
			git -C "$1/repo" -c user.name=t -c user.email=t@t add prog.c &&
			git -C "$1/repo" -c user.name=t -c user.email=t@t commit -q -m one
		;;
	esac
}

# After a run: moves the file the entry compares, if it wrote it, out of
# the work directory to dest, so that the next run cannot pass with it.
shim_take_file() { # dir compare dest
	rm -f "$3"
	[ "$2" = - ] || mv "$1/$2" "$3" 2>/dev/null || :
}

# 0 when two files shim_take_file took are the same, or neither was written.
shim_same_taken() { # a b
	[ ! -e "$1" ] && [ ! -e "$2" ] && return 0
	cmp -s "$1" "$2"
}
