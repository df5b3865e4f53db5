/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_CHECK_RUN_H
#define ZDEV_TEST_CHECK_RUN_H

#include <check.h>

/* Adds test as a tcase of its own named name (CK_RUN_CASE=<name> runs it
 * alone), with a checked fixture (either may be NULL) and a timeout in
 * seconds (0: Check's default). */
static inline void check_add_case(Suite *s, const char *name, const TTest *test, SFun setup,
				  SFun teardown, double timeout)
{
	TCase *tc = tcase_create(name);

	if (setup || teardown)
		tcase_add_checked_fixture(tc, setup, teardown);
	if (timeout > 0)
		tcase_set_timeout(tc, timeout);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

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
