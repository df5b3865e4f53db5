#!/bin/sh
# zdev-run --trace and --plot on a real, unmodified program moved around by
# the stress policy: the trace is JSON a real parser reads, and its faults,
# migrations, grants and revocations add up to what zdev-run --stats-json
# sums from the same run; the picture is an SVG with both plots, with and
# without --trace. Needs userfaultfd (a private zdevd) and a shim without a
# sanitizer: skipped (77) otherwise.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
srcdir=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "FAIL: python3 is not installed (setup.sh installs it)"; exit 1; }
. "$srcdir/shim-test.sh"
shim_test_start trace
export ZDEV_RATE=200

# -- stress: the trace and the statistics of one run. (Where this user's
# zdevd cannot give kernel-mode faults the policy falls back to none: both
# say nothing moved then.)
prog='b = bytearray(); [b.extend(bytes([i % 251]) * 65536) for i in range(600)]; print(len(b), sum(b[::4096]))'
"$zr" --quiet --policy stress --seed 1 --trace "$tmp/trace.json" --plot "$tmp/trace.svg" \
	--stats-json "$tmp/stats.json" -- python3 -c "$prog" >"$tmp/out" 2>"$tmp/err" ||
	fail "zdev-run --trace --plot: exit status $?: $(cat "$tmp/err")"
[ "$(cat "$tmp/out")" = "39321600 1080048" ] || fail "python3's output: $(cat "$tmp/out")"
set --
for k in cpu_faults pages_to_device pages_to_system exclusive_grants exclusive_revokes; do
	v=$(json $k "$tmp/stats.json")
	[ -n "$v" ] || fail "--stats-json has no $k: $(cat "$tmp/stats.json")"
	set -- "$@" "$k=$v"
done
python3 "$srcdir/trace-check.py" "$tmp/trace.json" "$@" >"$tmp/check.out" 2>&1 ||
	fail "the trace against the statistics: $(cat "$tmp/check.out")"
bars=1
grep -q '"policy_in_effect":"none"' "$tmp/stats.json" && bars=0
python3 "$srcdir/svg-check.py" "$tmp/trace.svg" $bars >"$tmp/check.out" 2>&1 ||
	fail "zdev-run --plot: $(cat "$tmp/check.out")"

# -- --plot alone traces into zdev-run's directory, which goes with it
"$zr" --quiet --policy stress --seed 2 --plot "$tmp/alone.svg" -- python3 -c "$prog" \
	>/dev/null 2>"$tmp/err" || fail "zdev-run --plot: exit status $?: $(cat "$tmp/err")"
python3 "$srcdir/svg-check.py" "$tmp/alone.svg" >"$tmp/check.out" 2>&1 ||
	fail "zdev-run --plot without --trace: $(cat "$tmp/check.out")"
ls "$tmp/xdg" | grep -q . && fail "zdev-run left $(ls "$tmp/xdg") behind"

exit $failed
