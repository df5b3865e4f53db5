/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_ZDEVD_CHECK_H
#define ZDEV_TEST_ZDEVD_CHECK_H

#include <stdlib.h>

#include "check-run.h"
#include "zdevd-harness.h"

/* A test program's main: a private zdevd (with extra arguments, may be
 * NULL), the suite against it, and EXIT_SUCCESS if every test passed and
 * zdevd stopped cleanly. */
static inline int run_suite_with_zdevd(struct zdevd_instance *z, const char *const *args,
				       Suite *suite)
{
	int failed, stopped;

	zdevd_start(z, args);
	failed = check_run(suite);
	stopped = zdevd_stop(z);
	return failed || stopped ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
