#!/bin/sh
# Every man page under man/ is installed, renders without a warning where it
# is installed (a .so link finds its target), has the section its name says
# with that section's title, and every zdev page it refers to exists.
# Skipped (77) without man or groff to render them.
set -u
src=${srcdir:-.}
if command -v man >/dev/null; then
	render() { LC_ALL=C MANROFFSEQ= man --warnings -E UTF-8 -l "$1" 2>&1 >/dev/null; }
elif command -v groff >/dev/null; then
	render() { soelim "$1" | groff -ww -man -z -Tutf8 2>&1; }
else
	echo "SKIP: neither man nor groff is installed to render the pages"
	exit 77
fi

tmp=$(mktemp -d /tmp/zdev-man-test-XXXXXX) || exit 99
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}

# The pages laid out as make install lays them out, .so links relative to it.
for page in "$src"/man/*.[1-8]; do
	name=${page##*/}
	sec=${name##*.}
	mkdir -p "$tmp/man$sec"
	cp "$page" "$tmp/man$sec/"
	grep -q "^[[:space:]]*man/$name\\>" "$src/Makefile.am" || fail "$name is not in dist_man_MANS"
done
cd "$tmp" || exit 99
for page in man*/*; do
	name=${page##*/}
	sec=${name##*.}
	out=$(render "$page")
	[ -z "$out" ] || fail "$name: $out"
	head -n 1 "$page" | grep -q '^\.so ' && continue
	th=$(grep -m 1 '^\.TH ' "$page")
	case $sec in
	1) title="User Commands" ;;
	3) title="zdev Programmer's Manual" ;;
	7) title="Miscellaneous Information Manual" ;;
	8) title="System Administration" ;;
	*) title= ;;
	esac
	echo "$th" | grep -q "^\\.TH [^ ]* $sec [0-9-]* \"zdev [0-9.]*\" \"$title\"\$" ||
		fail "$name: the header is '$th', expected section $sec, \"zdev VERSION\" and \"$title\""
	# References to zdev's own pages: .BR name (N)
	sed -n 's/^\.BR \([a-z_\\-]*\) (\([1-8]\)).*/\1 \2/p' "$page" | sed 's/\\-/-/g' |
		while read -r ref rsec; do
			case $ref in zdev* | libzdev*) ;; *) continue ;; esac
			[ -e "man$rsec/$ref.$rsec" ] || echo "$ref($rsec)"
		done >"$tmp/missing"
	[ -s "$tmp/missing" ] && fail "$name refers to pages that do not exist: $(cat "$tmp/missing")"
done
[ $failed = 0 ] && echo "PASS: every man page renders, and its references exist"
exit $failed
