/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_ZDEVD_CHECK_H
#define ZDEV_TEST_ZDEVD_CHECK_H

#include <stdlib.h>

#include "check-run.h"
#include "zdev.h"
#include "zdevd-harness.h"

/*
 * Why this process lacks feature (one ZDEV_FEATURE_*), as zdevd's handshake
 * with a handle of its own says, or NULL when it has it. The handle is
 * closed again; the process stays zdevd's client.
 */
static inline const char *zdevd_lacks(uint64_t feature)
{
	uint64_t features = 0;
	struct zdev *d;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	ck_assert_int_eq(zdev_get_features(d, &features), 0);
	ck_assert_int_eq(zdev_close(d), 0);
	if (features & feature)
		return NULL;
	switch (feature) {
	case ZDEV_FEATURE_KERNEL_FAULTS:
		return "no kernel-mode faults: this process's userfaultfd is user-mode only "
		       "(vm.unprivileged_userfaultfd=0 and no read-write access to "
		       "/dev/userfaultfd), so system calls fail with EFAULT on device pages";
	case ZDEV_FEATURE_FORK_SHARED:
		return "no fork sharing: zdevd gets no fork events (UFFD_FEATURE_EVENT_FORK "
		       "needs CAP_SYS_PTRACE), so a fork brings device pages home first";
	default:
		return "zdevd does not give this process the feature";
	}
}

/* In a test: skips it, with the reason, unless this process has feature. */
#define SKIP_WITHOUT_FEATURE(feature)                         \
	do {                                                  \
		const char *why_ = zdevd_lacks(feature);      \
		if (why_) {                                   \
			check_skip("%s", why_);               \
			return;                               \
		}                                             \
	} while (0)

/* A test program's main: a private zdevd (with extra arguments, may be
 * NULL), the suite against it, and EXIT_SUCCESS if every test passed and
 * zdevd stopped cleanly, or every test skipped (no zdevd on this machine). */
static inline int run_suite_with_zdevd(struct zdevd_instance *z, const char *const *args,
				       Suite *suite)
{
	const char *why = zdevd_unavailable();
	int failed, stopped;

	if (why) {
		/* Check frees a suite only with its runner. */
		srunner_free(srunner_create(suite));
		return check_skip_all("%s", why);
	}
	zdevd_start(z, args);
	failed = check_run(suite);
	stopped = zdevd_stop(z);
	return failed || stopped ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
