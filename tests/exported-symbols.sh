#!/bin/sh
# libzdev exports exactly what src/lib/libzdev.sym names, each in its version
# node, and nothing else: a helper that loses its `static` or its hidden
# visibility fails here, whatever its prefix.
lib="${top_builddir:-.}/.libs/libzdev.so"
sym="${srcdir:-.}/src/lib/libzdev.sym"
if [ ! -e "$lib" ]; then
	echo "FAIL: $lib not built"
	exit 1
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# The version script: "name@NODE" for every name listed under a global: tag.
awk '
	/^[A-Za-z_0-9.]+ *\{/ { node = $1; sub(/\{.*/, "", node); scope = ""; next }
	/global:/ { scope = "global"; next }
	/local:/ { scope = "local"; next }
	/^\}/ { scope = ""; next }
	scope == "global" && /;/ { n = $1; sub(/;.*/, "", n); print n "@" node }
' "$sym" | sort >"$tmp/want"
# What the library defines: "name@NODE", the version nodes themselves aside.
nm -D --defined-only "$lib" | awk '$2 != "A" { n = $3; sub(/@@?/, "@", n); print n }' |
	sort >"$tmp/have"

if ! cmp -s "$tmp/want" "$tmp/have"; then
	echo "FAIL: libzdev's exports differ from $sym"
	echo "(< listed only, > exported only)"
	diff "$tmp/want" "$tmp/have" | grep '^[<>]'
	exit 1
fi
echo "libzdev exports the $(wc -l <"$tmp/want") symbols of libzdev.sym:"
tr '\n' ' ' <"$tmp/want"
echo
