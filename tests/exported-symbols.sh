#!/bin/sh
# libzdev exports zdev_* and nothing else.
lib="${top_builddir:-.}/.libs/libzdev.so"
if [ ! -e "$lib" ]; then
	echo "FAIL: $lib not built"
	exit 1
fi
leaks=$(nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | grep -v '^zdev_' || true)
if [ -n "$leaks" ]; then
	echo "FAIL: libzdev exports symbols outside zdev_*:"
	echo "$leaks"
	exit 1
fi
echo "libzdev exports: $(nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | tr '\n' ' ')"
