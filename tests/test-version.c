/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "zdev.h"
#include "check-run.h"

START_TEST(test_library_matches_header)
{
	ck_assert_int_eq(zdev_version_major(), ZDEV_VERSION_MAJOR);
	ck_assert_int_eq(zdev_version_minor(), ZDEV_VERSION_MINOR);
	ck_assert(zdev_check_version(ZDEV_VERSION_MAJOR, ZDEV_VERSION_MINOR));
	ck_assert(zdev_check_version(0, 0));
	ck_assert(!zdev_check_version(ZDEV_VERSION_MAJOR, ZDEV_VERSION_MINOR + 1));
	ck_assert(!zdev_check_version(ZDEV_VERSION_MAJOR + 1, 0));
	ck_assert(ZDEV_CHECK_VERSION(0, 1));
	ck_assert(!ZDEV_CHECK_VERSION(1, 0));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("version");
	TCase *tc = tcase_create("version");
	int failed;

	tcase_add_test(tc, test_library_matches_header);
	suite_add_tcase(s, tc);
	failed = check_run(s);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
