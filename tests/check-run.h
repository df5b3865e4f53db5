/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_CHECK_RUN_H
#define ZDEV_TEST_CHECK_RUN_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check-hang.h"

/*
 * Test programs report in TAP on stdout, for automake's TAP driver: one
 * line a test, so that the summary counts every case a machine cannot run
 * as a SKIP and names it with its reason. A program that cannot run at all
 * says so with check_skip_all(); a case, with check_skip().
 */

/* Adds test as a tcase of its own named name (CK_RUN_CASE=<name> runs it
 * alone), with a checked fixture (either may be NULL) and a timeout in
 * seconds (0: Check's default), which reports where it hung (check-hang.h). */
static inline void check_add_case(Suite *s, const char *name, const TTest *test, SFun setup,
				  SFun teardown, double timeout)
{
	TCase *tc = tcase_create(name);

	if (setup || teardown)
		tcase_add_checked_fixture(tc, setup, teardown);
	if (timeout > 0)
		tcase_set_timeout(tc, timeout);
	tcase_add_test(tc, check_hang_wrap(test, timeout));
	suite_add_tcase(s, tc);
}

/* Where the forked tests append their skips: "<test>\t<reason>\n". */
#define CHECK_SKIPS_ENV "ZDEV_CHECK_SKIPS"

static inline void check_vline(char *buf, size_t size, const char *fmt, va_list ap)
{
	vsnprintf(buf, size, fmt, ap);
	/* one line, and no tab: the record's separator */
	for (char *c = buf; *c; c++)
		if (*c == '\n' || *c == '\t')
			*c = ' ';
}

/*
 * Skips the running test, for something this machine lacks and for nothing
 * else: the reason is recorded for check_run(), which reports the test as
 * "ok N - name # SKIP reason". The test then returns, asserting nothing
 * more.
 */
__attribute__((format(printf, 1, 2)))
static inline void check_skip(const char *fmt, ...)
{
	const char *path = getenv(CHECK_SKIPS_ENV);
	char line[512];
	va_list ap;
	size_t len;
	int fd;

	ck_assert_msg(path, "check_skip() outside check_run()");
	/* despite its name, the running test's */
	len = (size_t)snprintf(line, sizeof(line) - 1, "%s\t", tcase_name());
	ck_assert_uint_lt(len, sizeof(line) - 2);
	va_start(ap, fmt);
	check_vline(line + len, sizeof(line) - 1 - len, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	len = strlen(line);
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, line, len), (ssize_t)len);
	close(fd);
}

/*
 * For main(), when this machine lacks what every case needs: the whole
 * program is one SKIP with the reason. The status to exit with: 0, as the
 * TAP driver takes any other status (77 too) for an error.
 */
__attribute__((format(printf, 1, 2)))
static inline int check_skip_all(const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	check_vline(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	printf("1..0 # SKIP %s\n", reason);
	return EXIT_SUCCESS;
}

struct check_tap_line {
	char *text;		/* Check's TAP line, split in place */
	int ok;			/* 1 ok, 0 not ok, -1 not a result */
	const char *tcase, *test, *msg;
};

/* Check's "ok N - file:tcase:test: message", split in place. */
static inline void check_tap_parse(struct check_tap_line *l)
{
	char *file, *tcase, *test, *msg;

	l->ok = !strncmp(l->text, "ok ", 3) ? 1 : !strncmp(l->text, "not ok ", 7) ? 0 : -1;
	if (l->ok < 0)
		return;
	file = strstr(l->text, " - ");
	tcase = file ? strchr(file + 3, ':') : NULL;
	test = tcase ? strchr(tcase + 1, ':') : NULL;
	msg = test ? strstr(test + 1, ": ") : NULL;
	if (!msg) {
		l->ok = -1;
		return;
	}
	*test = *msg = '\0';
	l->tcase = tcase + 1;
	l->test = test + 1;
	l->msg = msg + 2;
}

/* TAP takes a "#" in a description for the start of a directive. */
static inline void check_tap_escaped(const char *s)
{
	for (; *s; s++) {
		if (*s == '#' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
}

static inline char *check_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t size = 0;

	if (!f)
		return NULL;
	if (getdelim(&buf, &size, '\0', f) < 0) {
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	return buf;
}

/* The next line of *text, cut out in place; NULL at the end. */
static inline char *check_next_line(char **text)
{
	char *line = *text, *nl;

	if (!line || !*line)
		return NULL;
	nl = strchr(line, '\n');
	if (nl) {
		*nl = '\0';
		*text = nl + 1;
	} else {
		*text = line + strlen(line);
	}
	return line;
}

/* The reason test was skipped for, NULL if it was not. */
static inline const char *check_skip_reason(const char *skips, size_t nskips, const char *test)
{
	for (size_t i = 0; i < nskips; i++, skips += strlen(skips) + 1) {
		const char *tab = strchr(skips, '\t');

		if (tab && (size_t)(tab - skips) == strlen(test) &&
		    !strncmp(skips, test, strlen(test)))
			return tab + 1;
	}
	return NULL;
}

/* Check's results as TAP on stdout, with the skips; the number of tests. */
static inline size_t check_tap_report(char *tap, char *skips)
{
	struct check_tap_line *lines;
	size_t nlines = 0, nskips = 0, ntests = 0, test = 0;
	char *line, *rest;

	/* each skip record becomes a string of its own, one after the other */
	for (rest = skips; check_next_line(&rest);)
		nskips++;
	for (char *c = tap; *c; c++)
		nlines += *c == '\n';
	lines = calloc(nlines + 1, sizeof(*lines));
	if (!lines)
		abort();
	nlines = 0;
	for (rest = tap; (line = check_next_line(&rest)); nlines++) {
		lines[nlines].text = line;
		check_tap_parse(&lines[nlines]);
		ntests += lines[nlines].ok >= 0;
	}
	if (!ntests)
		goto out;

	printf("1..%zu\n", ntests);
	for (size_t i = 0; i < nlines; i++) {
		struct check_tap_line *l = &lines[i];
		const char *reason;

		if (l->ok < 0) {
			/* Check's own plan, or the rest of a message */
			if (strncmp(l->text, "1..", 3))
				printf("# %s\n", l->text);
			continue;
		}
		reason = check_skip_reason(skips, nskips, l->test);
		printf("%s %zu - ", l->ok ? "ok" : "not ok", ++test);
		if (strcmp(l->tcase, l->test)) {
			check_tap_escaped(l->tcase);
			putchar('/');
		}
		check_tap_escaped(l->test);
		if (!l->ok) {
			printf(": ");
			check_tap_escaped(l->msg);
		} else if (reason) {
			printf(" # SKIP %s", reason);
		}
		putchar('\n');
	}
out:
	free(lines);
	fflush(stdout);
	return ntests;
}

/*
 * Runs a suite (each test forked, as Check does by default), then reports
 * it in TAP on stdout, a case that called check_skip() as a skip. The
 * number of tests that failed.
 */
static inline int check_run(Suite *s)
{
	char dir[] = "/tmp/zdev-check-XXXXXX", tap_path[64], skips_path[64];
	char *tap, *skips;
	SRunner *sr;
	int failed, fd;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(tap_path, sizeof(tap_path), "%s/tap", dir);
	snprintf(skips_path, sizeof(skips_path), "%s/skips", dir);
	fd = open(skips_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(skips_path);
		rmdir(dir);
		return 1;
	}
	close(fd);
	setenv(CHECK_SKIPS_ENV, skips_path, 1);

	sr = srunner_create(s);
	srunner_set_tap(sr, tap_path);
	/* a forked case would print again what stdio still holds */
	fflush(stdout);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	unsetenv(CHECK_SKIPS_ENV);
	tap = check_slurp(tap_path);
	skips = check_slurp(skips_path);
	if (!tap) {
		perror(tap_path);
		failed++;
	} else if (!check_tap_report(tap, skips)) {
		/* "1..0" would be a skip, and nothing here lacked anything */
		printf("Bail out! No test ran: CK_RUN_SUITE, CK_RUN_CASE or the tags chose none\n");
		failed++;
	}
	free(tap);
	free(skips);
	unlink(tap_path);
	unlink(skips_path);
	rmdir(dir);
	return failed;
}

#endif
