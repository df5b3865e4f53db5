#!/bin/sh
# make fuzz: runs each libFuzzer target in turn, SECONDS over all of them
# (fuzz-session, the daemon's, gets four fifths), from the seed corpus kept
# in the tree; what a run adds to it stays in OUT/work/TARGET. A crash, a
# leak, a hang (-timeout) or a blown memory limit fails the run, its input
# saved as OUT/crash-TARGET-*, which replays with `OUT/TARGET FILE`.
# Prints, for each target, the inputs it executed and their rate.
# Usage: run-fuzz.sh SECONDS CORPUS_DIR OUT_DIR TARGET...
set -eu
total=$1 corpus=$2 out=$3
shift 3
status=0
for target in "$@"; do
	name=${target##*/}
	case $name in
	fuzz-session) seconds=$((total * 4 / 5)) ;;
	*) seconds=$((total / 5)) ;;
	esac
	[ "$seconds" -ge 1 ] || seconds=1
	seeds=$corpus/${name#fuzz-}
	work=$out/work/$name
	log=$out/$name.log
	mkdir -p "$work"
	echo "== $name: $seconds s, seeds in $seeds"
	# detect_leaks: a leak fails the run, as a crash does; -timeout: an
	# input that takes longer is a hang; -rss_limit_mb: a blown limit too.
	start=$(date +%s)
	if ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=1:abort_on_error=1" \
		UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:print_stacktrace=1:halt_on_error=1" \
		"$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
		-detect_leaks=1 -print_final_stats=1 -artifact_prefix="$out/crash-$name-" \
		"$work" "$seeds" >"$log" 2>&1; then
		:
	else
		status=1
		tail -n 60 "$log"
		echo "FAIL $name: see $log; replay the input with: $target $out/crash-$name-*"
	fi
	elapsed=$(($(date +%s) - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	echo "FUZZ $name ${execs:-?} inputs in $elapsed s, ${rate:-?} exec/s, ${cov:-cov: ?}"
done
exit $status
