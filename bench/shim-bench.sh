#!/bin/sh
# What zdev-run and the shim cost real, unmodified programs: the programs of
# tests/shim-programs.sh (those tests/test-shim-programs.sh checks), each
# timed natively and under zdev-run in the same run, and zdev-run's own
# start-up. Figures, in the format of the other benchmarks:
#
#   shim_<program>		wall time under zdev-run --policy none, median of
#				the rounds; baseline: natively
#   shim_<program>_cold	the same in the first round only
#   shim_<program>_stress	under --policy stress, median; baseline: natively
#   shim_<program>_evict	under --policy evict, median; baseline: natively
#   shim_startup		zdev-run -- /bin/true against /bin/true, median
#				of ten samples a round
#
# Each round runs a program natively and under the three policies, in the
# reverse order of the round before, so that neither side always runs on a
# cache the other warmed; the first round runs natively last, so that a cost
# of a cold start falls on zdev. ZDEV_BENCH_ROUNDS rounds (5); with
# ZDEV_BENCH_PROGRAMS (names, separated by spaces), only those programs, and
# with ZDEV_BENCH_POLICIES (of none, stress and evict), only those policies:
# evict can take minutes where natively a program takes seconds. The
# output, exit status and written file of every run must be the native ones.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
zr=$top/zdev-run
shim=$top/.libs/libzdev-preload.so
walltime=$top/bench/walltime
rounds=${ZDEV_BENCH_ROUNDS:-5}
policies=${ZDEV_BENCH_POLICIES:-none stress evict}
for f in "$zr" "$top/zdevd" "$shim" "$walltime" "$top/tests/segv-prog"; do
	[ -e "$f" ] || { echo "shim-bench: $f is not built"; exit 1; }
done
case $rounds in
'' | *[!0-9]* | 0) echo "shim-bench: ZDEV_BENCH_ROUNDS=$rounds: a number of rounds, 1 or more"; exit 1 ;;
esac
for policy in $policies; do
	case $policy in
	none | stress | evict) ;;
	*) echo "shim-bench: ZDEV_BENCH_POLICIES: '$policy' is none, stress or evict"; exit 1 ;;
	esac
done
# A shim built with a sanitizer needs its runtime loaded first, which an
# uninstrumented program does not have.
if ldd "$shim" | grep -q -e libasan -e libtsan -e libubsan; then
	echo "shim-bench: skipped: the shim is built with a sanitizer"
	exit 0
fi

tmp=$(mktemp -d /tmp/zdev-shim-bench-XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS ZDEV_RATE ZDEV_IDLE_MS
mkdir "$tmp/xdg" "$tmp/work" "$tmp/times" && chmod 700 "$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/xdg" ZDEV_PRELOAD="$shim"

if ! "$zr" --quiet -- true 2>"$tmp/start.err"; then
	echo "shim-bench: skipped: zdev-run cannot start a private zdevd here: $(cat "$tmp/start.err")"
	exit 0
fi

. "$(dirname "$0")/../tests/shim-programs.sh"
missing=$(shim_missing)
if [ -n "$missing" ]; then
	echo "shim-bench: not installed (setup.sh installs them):" $missing
	exit 1
fi

failed=0
# Prints a figure as bench/figure.c does, from two files of nanoseconds, a
# sample a line: their medians, or with "first" their first samples.
figure() { # name which value-file baseline-file
	awk -v name="$1" -v which="$2" '
		function pick(v, n,    i, j, t) {
			if (which == "first")
				return v[1]
			for (i = 2; i <= n; i++)	# insertion sort: a few samples
				for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
					t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
				}
			return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		}
		FNR == NR { a[++na] = $1 / 1e9; next }
		{ b[++nb] = $1 / 1e9 }
		END {
			x = pick(a, na); y = pick(b, nb)
			printf "FIGURE %s %.4g s baseline %.4g s ratio %.3f\n", name, x, y, y ? x / y : 0
		}' "$3" "$4"
}

# One timed run of an entry, natively (policy "native") or under zdev-run;
# what it printed, its status and the file it wrote are kept as
# $tmp/run.<policy>.*, for check_round.
run_one() { # name policy compare command
	o=$tmp/run.$2
	if [ "$2" = native ]; then
		(cd "$tmp/work" && "$walltime" "$tmp/times/$1.$2" sh -c "$4") >"$o.out" 2>"$o.err"
	else
		(cd "$tmp/work" && "$walltime" "$tmp/times/$1.$2" \
			"$zr" --quiet --policy "$2" -- sh -c "$4") >"$o.out" 2>"$o.err"
	fi
	echo $? >"$o.status"
	shim_take_file "$tmp/work" "$3" "$o.file"
}

# Each policy's run of the round against the native one.
check_round() { # name
	n=$tmp/run.native
	for policy in $policies; do
		o=$tmp/run.$policy
		cmp -s "$o.status" "$n.status" && cmp -s "$o.out" "$n.out" &&
			shim_same_taken "$o.file" "$n.file" && continue
		echo "shim-bench: $1 under $policy: status $(cat "$o.status") (natively $(cat "$n.status")), or its output differs"
		sed 's/^/  | /' "$o.err" | head -5
		failed=1
	done
}

bench_program() { # name input compare command
	shim_prepare "$tmp/work" "$2"
	forward="$policies native"	# the first round: native last
	backward="native $(echo $policies | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')"
	order=$forward
	r=1
	while [ $r -le "$rounds" ]; do
		for policy in $order; do
			run_one "$1" "$policy" "$3" "$4"
		done
		check_round "$1"
		if [ "$order" = "$forward" ]; then order=$backward; else order=$forward; fi
		r=$((r + 1))
	done
	t=$tmp/times/$1
	for policy in $policies; do
		case $policy in
		none)
			figure "shim_$1" median "$t.none" "$t.native"
			figure "shim_$1_cold" first "$t.none" "$t.native"
			;;
		*) figure "shim_$1_$policy" median "$t.$policy" "$t.native" ;;
		esac
	done
}

shim_programs >"$tmp/programs"
while IFS='	' read -r name input compare cmd; do
	case " ${ZDEV_BENCH_PROGRAMS:-$name} " in
	*" $name "*) bench_program "$name" "$input" "$compare" "$cmd" ;;
	esac
done <"$tmp/programs"

i=0
while [ $i -lt $((rounds * 10)) ]; do
	"$walltime" "$tmp/times/startup.none" "$zr" --quiet -- /bin/true || failed=1
	"$walltime" "$tmp/times/startup.native" /bin/true
	i=$((i + 1))
done
figure shim_startup median "$tmp/times/startup.none" "$tmp/times/startup.native"
exit $failed
