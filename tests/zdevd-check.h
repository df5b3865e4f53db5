/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_ZDEVD_CHECK_H
#define ZDEV_TEST_ZDEVD_CHECK_H

#include <stdlib.h>

#include "check-run.h"
#include "zdevd-harness.h"

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
