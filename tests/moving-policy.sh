# Sourced by the shell tests of the shim. POSIX sh.
#
# moving_policy_unavailable ZDEV-RUN [ARGS...] prints why the policies that
# move pages (evict, stress) fall back to none for this process, as the
# shim says it on standard error, or nothing when they move pages. The
# shim does so where zdevd cannot give its clients kernel-mode faults
# (zdev-preload(7)), which is the case of an ordinary user with
# vm.unprivileged_userfaultfd=0. ZDEV-RUN [ARGS...] runs /bin/true under
# --policy evict against the zdevd the caller's tests use.
moving_policy_unavailable() {
	"$@" --quiet --policy evict -- true 2>&1 >/dev/null | grep -m 1 'needs kernel-mode faults'
}
