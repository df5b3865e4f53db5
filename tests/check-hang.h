/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_CHECK_HANG_H
#define ZDEV_TEST_CHECK_HANG_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hang-report.h"

/*
 * A case that outlives its timeout is killed by Check with SIGKILL, and its
 * log says only "Test timeout expired". So that a hang on a machine we cannot
 * log in to still says where it was, a watchdog wakes a little before each
 * case's timeout and reports it (hang-report.h).
 */

#define CHECK_HANG_MAX_CASES 64

/* A case's test, run through check_hang_run() */
struct check_hang_case {
	TTest wrapped;
	const TTest *test;
	double timeout;
};

static struct check_hang_case check_hang_cases[CHECK_HANG_MAX_CASES];
static unsigned int check_hang_ncases;

static inline void check_hang_run(int i);

/* The test to add in test's place: the same, with the alarm armed first. */
static inline const TTest *check_hang_wrap(const TTest *test, double timeout)
{
	struct check_hang_case *c;

	if (check_hang_ncases == CHECK_HANG_MAX_CASES)
		return test;
	c = &check_hang_cases[check_hang_ncases++];
	c->test = test;
	c->timeout = timeout;
	c->wrapped = *test;
	c->wrapped.fn = check_hang_run;
	return &c->wrapped;
}

/* In the forked case: Check names the running test, not its setup. */
static inline void check_hang_run(int i)
{
	const char *mult_env = getenv("CK_TIMEOUT_MULTIPLIER");
	const char *default_env = getenv("CK_DEFAULT_TIMEOUT");
	double timeout = default_env ? atof(default_env) : 4;
	double mult = mult_env ? atof(mult_env) : 1;
	const struct check_hang_case *c = NULL;
	double margin;

	for (unsigned int k = 0; k < check_hang_ncases && !c; k++)
		if (!strcmp(check_hang_cases[k].test->name, tcase_name()))
			c = &check_hang_cases[k];
	if (!c)
		abort();
	if (c->timeout > 0)
		timeout = c->timeout;
	if (mult > 0)
		timeout *= mult;
	/* gdb takes seconds to attach to a sanitized program */
	margin = timeout >= 60 ? 20 : timeout / 4;
	if (timeout - margin >= 1)
		hang_watch((unsigned int)(timeout - margin), c->test->name, false);
	c->test->fn(i);
}

#endif
