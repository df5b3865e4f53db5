#!/bin/sh
# The source tree's floors (README.md, Layout; docs/architecture.md): a file
# includes headers of its own floor or of the floors below it, never of a
# floor above, and no two modules include each other, directly or through
# others. A module is a header and the .c files that implement it (x.h with
# x.c and x_*.c). Every source file must have a floor: a new file is placed
# here, on purpose.
src="${srcdir:-.}/src"

floor_of() {
	case "$1" in
	page.h | log.[ch] | proto.[ch] | uffd_compat.h | uffd_probe.[ch] | spinlock.h | \
		rescue_layout.h | xmap_layout.h | lathist.[ch] | zdev.h | units.[ch] | zdevd_limits.h | \
		trace_format.h)
		echo 0 ;;
	refpool.[ch] | refpool-int.h | refpool_debug.c | memtype_private.c | memtype_coherent.c | devmem.[ch] | \
		numa_place.[ch] | vmres.[ch])
		echo 1 ;;
	device.h | devmodel.[ch] | devset.[ch] | trace.[ch] | zmm.[ch] | zmm_pages.c | ptable.[ch] | vmas.[ch] | store.[ch] | warm.[ch] | parallel.[ch])
		echo 2 ;;
	uffd_dev.[ch] | client_mem.[ch] | migrate.[ch] | migrate_back.c | migrate_coherent.c | mirror.[ch] | exclusive_map.[ch])
		echo 3 ;;
	zdevd/*)
		echo 4 ;;
	# The client and the tools stand on the base floor alone: they share
	# the protocol and the layouts with zdevd, never its code.
	lib/* | tools/* | preload/*)
		echo 4 ;;
	*)
		echo "" ;;
	esac
}

# What a shell of floor 4 may include besides its own folder and floor 0.
may_include() { # file header
	case "$1" in
	zdevd/*) return 0 ;;
	lib/* | tools/*) [ "$(floor_of "$2")" = 0 ] || [ "${2%%/*}" = "${1%%/*}" ] ;;
	# The shim stands on libzdev: its API and the calls it exports for the shim.
	preload/*) [ "$(floor_of "$2")" = 0 ] || [ "${2%%/*}" = preload ] || [ "$2" = lib/zdevpriv.h ] ;;
	*) return 0 ;;
	esac
}

# The module a file belongs to: its folder and base name, but for the
# further files of a module (zmm_pages.c is zmm's, refpool-int.h the pool's).
module_of() {
	m=${1%.[ch]}
	case "$m" in
	zmm_pages) m=zmm ;;
	migrate_back | migrate_coherent) m=migrate ;;
	refpool-int | refpool_debug | memtype_private | memtype_coherent) m=refpool ;;
	esac
	echo "$m"
}

status=0
edges=$(mktemp) || exit 1
trap 'rm -f "$edges"' EXIT

cd "$src" || exit 1
for f in *.[ch] */*.[ch]; do
	[ -e "$f" ] || continue
	ff=$(floor_of "$f")
	if [ -z "$ff" ]; then
		echo "FAIL: src/$f has no floor (tests/floors.sh)"
		status=1
		continue
	fi
	dir=$(dirname "$f")
	for h in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
		[ "$h" = config.h ] && continue
		# Headers resolve from src/ (and include/ for zdev.h).
		case "$h" in
		*/*) hp=$h ;;
		*) if [ "$dir" != . ] && [ -e "$dir/$h" ]; then
			echo "FAIL: src/$f: #include \"$h\" is resolved by directory; name it \"$dir/$h\""
			status=1
			hp=$dir/$h
		   else
			hp=$h
		   fi ;;
		esac
		hf=$(floor_of "$hp")
		if [ -z "$hf" ]; then
			echo "FAIL: src/$f includes $hp, which has no floor"
			status=1
		elif [ "$hf" -gt "$ff" ] || ! may_include "$f" "$hp"; then
			echo "FAIL: src/$f (floor $ff) includes $hp (floor $hf): an include points up or across"
			status=1
		fi
		a=$(module_of "$f")
		b=$(module_of "$hp")
		[ "$a" != "$b" ] && echo "$a $b" >>"$edges"
	done
done

# No cycle among modules: repeatedly drop the modules nothing depends on
# (none left means no cycle).
cycle=$(sort -u "$edges" | awk '
	{ out[$1] = out[$1] " " $2; indeg[$2]++; node[$1] = 1; node[$2] = 1 }
	END {
		do {
			removed = 0
			for (n in node) {
				if (indeg[n] > 0)
					continue
				k = split(out[n], to, " ")
				for (i = 1; i <= k; i++)
					indeg[to[i]]--
				delete node[n]
				removed = 1
			}
		} while (removed)
		# What is left lies on a loop or downstream of one: drop the
		# modules that depend on nothing left, until only loops remain.
		do {
			removed = 0
			for (n in node) {
				k = split(out[n], to, " ")
				left = 0
				for (i = 1; i <= k; i++)
					left += (to[i] in node)
				if (left)
					continue
				delete node[n]
				removed = 1
			}
		} while (removed)
		for (n in node)
			printf "%s ", n
	}')
if [ -n "$cycle" ]; then
	echo "FAIL: modules that include each other in a loop: $cycle"
	status=1
fi
[ $status = 0 ] && echo "floors: every include of src/ points down or within its floor, no module loop"
exit $status
