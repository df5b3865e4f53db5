#!/bin/sh
# The kernel's own HMM selftest, tools/testing/selftests/mm/hmm-tests.c of the
# kernel's source tarball (configure --with-linux-source), built unmodified
# (make kernel-hmm-tests), under zdev-run: the shim emulates the test
# driver's files /dev/hmm_dmirrorN and /sys/kernel/debug/gup_test, and
# zdev-run's zdevd has the driver's devices, 0 and 1 device-private, 2 and 3
# device-coherent. Every test of both variants must pass, but for one that
# this kernel itself fails (below). Skips are failures but for
# the ones named below; as root the test lends the kernel two huge pages for
# the hugetlb tests and gives them back. Skipped (77) without the tarball,
# with a shim built with a sanitizer (hmm-tests is not), or where zdevd
# cannot start.
set -u
top=$(cd "${top_builddir:-.}" && pwd)
zr=$top/zdev-run
shim=$top/.libs/libzdev-preload.so
hmm=$top/tests/kernel/hmm-tests
probe=$top/tests/dmirror-prog
src=${LINUX_SOURCE:-/usr/src/linux-source-6.12.tar.xz}

if [ ! -f "$src" ]; then
	echo "SKIP: the kernel's source tarball $src is not there: setup.sh installs it" \
		"(Debian's linux-source-6.12), or give configure --with-linux-source=PATH"
	exit 77
fi
for f in "$zr" "$top/zdevd" "$shim" "$probe"; do
	[ -e "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
[ -x "$hmm" ] || { echo "FAIL: $hmm was not built from $src (make kernel-hmm-tests)"; exit 1; }
if ldd "$shim" | grep -q -e libasan -e libtsan -e libubsan; then
	echo "SKIP: the shim is built with a sanitizer, which cannot be preloaded into hmm-tests"
	exit 77
fi

tmp=$(mktemp -d /tmp/zdev-kernel-hmm-XXXXXX) || exit 99
hugepages=/proc/sys/vm/nr_hugepages
lent=""
cleanup() {
	if [ -n "$lent" ] && ! echo "$lent" >"$hugepages"; then
		echo "FAIL: could not give back the huge pages lent: $hugepages is not $lent again"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
unset ZDEV_POLICY ZDEV_SEED ZDEV_STATS_DIR ZDEV_SOCKET ZDEVD LD_PRELOAD ZDEV_STATS ZDEV_DMIRROR
mkdir "$tmp/xdg" && chmod 700 "$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/xdg" ZDEV_PRELOAD="$shim"

"$zr" --quiet -- true 2>"$tmp/start.err"
if [ $? = 125 ]; then
	echo "SKIP: zdev-run cannot start a private zdevd here: $(cat "$tmp/start.err")"
	exit 77
fi

# hugetlb pages for anon_write_hugetlbfs and compound: lent as root, given
# back at exit; without free ones those two tests skip, which is allowed.
if [ "$(id -u)" = 0 ] && [ -w "$hugepages" ]; then
	before=$(cat "$hugepages")
	echo $((before + 2)) >"$hugepages" 2>/dev/null && lent=$before
fi
free_huge=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
[ "$free_huge" = 0 ] &&
	echo "note: no free huge page: hmm-tests' compound returns at once, and passes," \
		"when its hugetlb mapping fails"

# hmm2.snapshot asserts that a page read but never written is the shared
# zero page. Kernels that never map it on a read fault (a guest booted with
# pvm_no_zero_page=1, for one) give the page a frame of its own, which the
# kernel's own driver would report as READ too: there the test must fail at
# that byte and nowhere else, and test-shim-dmirror.sh checks every byte of
# the same snapshot.
"$probe" zero-page
zero_page=$?
why_no_zero=
grep -q -w pvm_no_zero_page=1 /proc/cmdline 2>/dev/null && why_no_zero=" (booted with pvm_no_zero_page=1)"

# The harness's diagnostics go to standard error, between the results.
"$zr" -- "$hmm" >"$tmp/out" 2>&1
status=$?
echo "zdev-run -- hmm-tests: exit status $status"
grep -E '^(not )?ok [0-9]+ |^# Totals' "$tmp/out"

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}
passed=0 known=0 allowed=0
grep -E '^(not )?ok [0-9]+ ' "$tmp/out" >"$tmp/results"
while IFS= read -r line; do
	name=$(echo "$line" | sed -E 's/^(not )?ok [0-9]+ ([^ ]+).*/\2/')
	reason=$(echo "$line" | sed -n -E 's/.*# SKIP (.*)/\1/p')
	case "$line" in
	"not ok "*)
		if [ "${name%.snapshot}" != "$name" ] && [ "${name#hmm2.}" != "$name" ] && [ "$zero_page" = 1 ] &&
			sed -n "/RUN .*$name /,/^not ok/p" "$tmp/out" |
				grep -q 'snapshot:Expected m\[2\] (1) == HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ (17)'; then
			echo "known: $name fails at page 2 alone: this kernel maps no zero page on a read" \
				"fault$why_no_zero, so its own driver would report READ there too"
			known=$((known + 1))
		else
			fail "$name"
			sed -n "/RUN .*$name /,/^not ok/p" "$tmp/out" | sed 's/^/    /'
		fi
		;;
	*"# SKIP "*)
		case "$name" in
		hmm.hmm_device_*.anon_write_hugetlbfs | hmm.hmm_device_*.compound)
			if [ "$free_huge" = 0 ]; then
				echo "allowed: $name skipped: no free huge page" \
					"($( [ -n "$lent" ] && echo "the kernel gave none" || echo "not root: none lent"))"
				allowed=$((allowed + 1))
			else
				fail "$name skipped with $free_huge free huge pages: $reason"
			fi
			;;
		*)
			fail "$name skipped: $reason"
			;;
		esac
		;;
	*)
		passed=$((passed + 1))
		;;
	esac
done <"$tmp/results"
# hmm-tests of 6.12 has 26 hmm tests and 3 hmm2 tests a variant, and two
# variants of each: device-private (devices 0 and 1) and device-coherent (2
# and 3).
echo "passed: $passed, failed as this kernel fails them: $known, skipped as allowed: $allowed"
[ $((passed + known + allowed)) = 58 ] || fail "$passed tests passed, $known known, $allowed allowed: not 58"
grep -q '^# Totals' "$tmp/out" || { fail "hmm-tests did not finish"; sed 's/^/    /' "$tmp/out"; }
exit $failed
