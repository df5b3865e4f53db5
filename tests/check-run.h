/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_CHECK_RUN_H
#define ZDEV_TEST_CHECK_RUN_H

#include <check.h>

/* Runs a suite (each test forked, as Check does by default); the number of
 * tests that failed. */
static inline int check_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

#endif
